from __future__ import annotations

import asyncio
import contextlib

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from api.broadcast import Broadcaster, Closed, Subscription

router = APIRouter(tags=["events"])


async def _send_events(websocket: WebSocket, subscription: Subscription) -> None:
    while True:
        item = await subscription.get()
        if isinstance(item, Closed):
            await websocket.close(code=item.code, reason=item.reason)
            return
        await websocket.send_json(item)


async def _until_disconnected(websocket: WebSocket) -> None:
    while (await websocket.receive())["type"] != "websocket.disconnect":
        pass  # whatever the client sends is ignored


@router.websocket("/ws/events")
async def stream_events(websocket: WebSocket) -> None:
    """Pushes `{"type": "event", "event": {...}}` for each new or updated event, the event
    as `GET /api/events/{id}` answers it, once the read model shows it."""
    await _stream(websocket, websocket.app.state.services.broadcaster)


@router.websocket("/ws/jobs")
async def stream_jobs(websocket: WebSocket) -> None:
    """Pushes `{"type": "job", "job": {...}}` on every change of a job's status and every
    progress step, the job as `GET /api/jobs/{id}` answers it once the read model shows it."""
    await _stream(websocket, websocket.app.state.services.job_broadcaster)


async def _stream(websocket: WebSocket, broadcaster: Broadcaster) -> None:
    # Subscribed before the handshake completes: an event produced once the client is
    # connected is never missed.
    subscription = broadcaster.subscribe()
    try:
        await websocket.accept()
        tasks = [
            asyncio.create_task(_send_events(websocket, subscription)),
            asyncio.create_task(_until_disconnected(websocket)),
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(
                    asyncio.CancelledError, WebSocketDisconnect, RuntimeError, OSError
                ):
                    await task
    finally:
        broadcaster.unsubscribe(subscription)
