"""WS /ws/events on a real server (uvicorn) fed by the real events topic, and the fan-out."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import uvicorn
from confluent_kafka import Producer
from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from api.broadcast import (
    GOING_AWAY,
    TRY_AGAIN_LATER,
    Broadcaster,
    Closed,
    SecurityEventFeed,
    Subscription,
    event_message,
)
from api.main import create_app
from schemas.codec import encode
from schemas.envelope import utcnow
from schemas.topics import SECURITY_EVENTS
from tests.factories import closed, opened, recorded
from tests.support import new_camera_id, publish, wait_for
from vigil.devservices.kafka import KafkaService, create_topics, start_kafka

TIMEOUT_S = 15.0


@dataclass
class LiveApi:
    app: FastAPI
    url: str
    loop: asyncio.AbstractEventLoop


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def live_api(stack) -> Iterator[LiveApi]:
    """The app served by uvicorn in its own thread and loop, its event feed ready."""
    app = create_app(stack.settings())
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(
        target=loop.run_until_complete, args=(server.serve(),), name="live-api", daemon=True
    )
    thread.start()
    wait_for(
        lambda: server.started and app.state.event_feed.ready,
        timeout=30,
        what="the API to serve with its event feed at the end of the topic",
    )
    yield LiveApi(app=app, url=f"ws://127.0.0.1:{port}/ws/events", loop=loop)
    server.should_exit = True
    thread.join(15)
    loop.close()


def _security_event(camera_id: str, score: int = 72):
    batch = closed(opened(camera_id, utcnow()), [], "max_size", 30)
    return recorded(batch, score)


async def _next_event_of(ws: ClientConnection, batch_id: str) -> dict[str, Any]:
    """The pushed message for this batch; every message before it must be a well-formed event."""
    async with asyncio.timeout(TIMEOUT_S):
        while True:
            message = json.loads(await ws.recv())
            assert message["type"] == "event"
            assert set(message) == {"type", "event"}
            if message["event"]["batch_id"] == batch_id:
                return message


async def test_connected_client_receives_a_new_event(live_api, producer):
    camera_id = new_camera_id("ws")
    event = _security_event(camera_id)
    async with connect(live_api.url) as ws:
        publish(producer, SECURITY_EVENTS.name, camera_id, encode(event))
        message = await _next_event_of(ws, event.batch_id)
    assert message == {"type": "event", "event": event.model_dump(mode="json")}
    assert message["event"]["risk_level"] == "high"


async def test_every_client_receives_the_event(live_api, producer):
    camera_id = new_camera_id("ws")
    event = _security_event(camera_id, score=95)
    async with connect(live_api.url) as first, connect(live_api.url) as second:
        publish(producer, SECURITY_EVENTS.name, camera_id, encode(event))
        received = await asyncio.gather(
            _next_event_of(first, event.batch_id), _next_event_of(second, event.batch_id)
        )
    assert [m["event"]["event_id"] for m in received] == [str(event.event_id)] * 2


async def test_undecodable_messages_are_skipped(live_api, producer):
    camera_id = new_camera_id("ws")
    event = _security_event(camera_id, score=10)
    async with connect(live_api.url) as ws:
        # Same key, same partition: the good event comes after the bad ones.
        publish(producer, SECURITY_EVENTS.name, camera_id, b"not json at all")
        publish(producer, SECURITY_EVENTS.name, camera_id, b'{"event_type": "Nonsense"}')
        publish(producer, SECURITY_EVENTS.name, camera_id, event.model_dump_json()[:40].encode())
        publish(producer, SECURITY_EVENTS.name, camera_id, encode(event))
        message = await _next_event_of(ws, event.batch_id)
    assert message["event"]["event_id"] == str(event.event_id)
    assert live_api.app.state.event_feed.ready


async def test_a_client_that_falls_behind_is_disconnected_with_a_reason(live_api):
    broadcaster: Broadcaster = live_api.app.state.services.broadcaster
    async with connect(live_api.url) as ws:
        await asyncio.to_thread(
            wait_for, lambda: broadcaster.client_count >= 1, timeout=5, what="subscription"
        )

        def flood() -> None:  # all at once, on the server's loop: nothing is sent in between
            for n in range(broadcaster.queue_size + 1):
                broadcaster.publish({"type": "event", "event": {"n": n}})

        live_api.loop.call_soon_threadsafe(flood)
        with pytest.raises(ConnectionClosed) as gone:
            async with asyncio.timeout(TIMEOUT_S):
                while True:
                    await ws.recv()
    assert gone.value.rcvd is not None
    assert gone.value.rcvd.code == TRY_AGAIN_LATER
    assert gone.value.rcvd.reason == (
        f"client fell behind: {broadcaster.queue_size} events waiting to be sent"
    )


async def test_a_slow_subscription_does_not_hold_back_the_others():
    broadcaster = Broadcaster(queue_size=3)
    fast, slow = broadcaster.subscribe(), broadcaster.subscribe()
    received = []
    for n in range(10):
        broadcaster.publish({"n": n})
        received.append(await fast.get())
    assert received == [{"n": n} for n in range(10)]
    assert await slow.get() == Closed(
        TRY_AGAIN_LATER, "client fell behind: 3 events waiting to be sent"
    )
    assert broadcaster.client_count == 1


async def test_closing_the_broadcaster_says_goodbye_to_every_client():
    broadcaster = Broadcaster(queue_size=3)
    first, second = broadcaster.subscribe(), broadcaster.subscribe()
    broadcaster.publish({"n": 1})
    broadcaster.close()
    for subscription in (first, second):
        assert await subscription.get() == Closed(GOING_AWAY, "server shutting down")
    assert broadcaster.client_count == 0


@pytest.fixture(scope="module")
def own_kafka(tmp_path_factory) -> Iterator[KafkaService]:
    """A broker of this module's own, to restart without disturbing the shared one."""
    kafka = start_kafka(tmp_path_factory.mktemp("ws-kafka"))
    try:
        create_topics(kafka.bootstrap, [(SECURITY_EVENTS.name, 2)])
        yield kafka
    finally:
        kafka.stop()


async def _published_and_received(
    bootstrap: str, subscription: Subscription, timeout: float
) -> None:
    event = _security_event(new_camera_id("ws"))
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    await asyncio.to_thread(publish, producer, SECURITY_EVENTS.name, event.camera_id, encode(event))
    async with asyncio.timeout(timeout):
        while (message := await subscription.get()) != event_message(event):
            assert not isinstance(message, Closed)


async def test_feed_survives_a_broker_restart_and_stops_cleanly(own_kafka):
    broadcaster = Broadcaster()
    subscription = broadcaster.subscribe()
    feed = SecurityEventFeed(own_kafka.bootstrap, broadcaster, retry_s=0.5)
    task = asyncio.create_task(feed.run())
    try:
        await asyncio.to_thread(wait_for, lambda: feed.ready, timeout=30, what="feed ready")
        await _published_and_received(own_kafka.bootstrap, subscription, TIMEOUT_S)
        await asyncio.to_thread(own_kafka.restart)
        await _published_and_received(own_kafka.bootstrap, subscription, 60)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert not feed.ready
