"""WS /ws/events on a real server (uvicorn) fed by the real events topic and read model,
and the fan-out.

No projector runs for this module: each test projects its events itself (`apply`), so it
decides when the read model shows them, and publishes the SecurityEventRecorded to Kafka.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Producer
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from api.broadcast import (
    GOING_AWAY,
    TRY_AGAIN_LATER,
    Broadcaster,
    Closed,
    SecurityEventFeed,
    ShownEvents,
    Subscription,
    read_model_lookup,
)
from api.images import ImageLinks
from projections.db import make_sessionmaker
from schemas.codec import encode
from schemas.topics import SECURITY_EVENTS, producer_settings
from tests.factories import analysed_batch, apply, recorded
from tests.support import LiveApi, live_api_of, new_camera_id, publish, wait_for
from vigil.devservices.kafka import KafkaService, create_topics, start_kafka

TIMEOUT_S = 15.0
# How long a test watches for a push that must not come.
QUIET_S = 2.0


@pytest.fixture(scope="module")
def live_api(stack) -> Iterator[LiveApi]:
    with live_api_of(stack.settings()) as live:
        yield live


def events_url(live_api: LiveApi) -> str:
    return f"{live_api.base_url}/ws/events"


def _rest_event(api_client, camera_id: str) -> dict[str, Any]:
    """GET /api/events/{id} of the camera's one event."""
    [listed] = api_client.get("/api/events", params={"camera_id": camera_id}).json()["events"]
    reply = api_client.get(f"/api/events/{listed['id']}")
    assert reply.status_code == 200, reply.text
    return reply.json()


async def _next_event_of(ws: ClientConnection, batch_id: str) -> dict[str, Any]:
    """The pushed message for this batch; every message before it must be a well-formed event."""
    async with asyncio.timeout(TIMEOUT_S):
        while True:
            message = json.loads(await ws.recv())
            assert message["type"] == "event"
            assert set(message) == {"type", "event"}
            if message["event"]["batch_id"] == batch_id:
                return message


async def _nothing_for(ws: ClientConnection, batch_id: str, seconds: float = QUIET_S) -> None:
    """No message for this batch arrives within `seconds`."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            while True:
                message = json.loads(await ws.recv())
                assert message["event"]["batch_id"] != batch_id, "pushed before it was shown"


async def test_event_is_pushed_once_shown_as_rest_shows_it(live_api, producer, engine, api_client):
    camera_id = new_camera_id("ws")
    *batch, event = analysed_batch(camera_id)
    async with connect(events_url(live_api)) as ws:
        publish(producer, SECURITY_EVENTS.name, camera_id, encode(event))
        await _nothing_for(ws, event.batch_id)
        apply(engine, *batch, event)
        message = await _next_event_of(ws, event.batch_id)
    assert message == {"type": "event", "event": _rest_event(api_client, camera_id)}
    assert (message["event"]["risk_level"], message["event"]["analysis_version"]) == ("high", 1)


async def test_reanalysis_is_pushed_once_shown_at_its_version(
    live_api, producer, engine, api_client
):
    camera_id = new_camera_id("ws")
    batch, done, first = analysed_batch(camera_id, score=20)
    apply(engine, batch, done, first)
    again = recorded(done, 90, version=2)
    async with connect(events_url(live_api)) as ws:
        publish(producer, SECURITY_EVENTS.name, camera_id, encode(again))
        await _nothing_for(ws, again.batch_id)  # the read model shows version 1 only
        apply(engine, again)
        message = await _next_event_of(ws, again.batch_id)
    assert message == {"type": "event", "event": _rest_event(api_client, camera_id)}
    assert (message["event"]["analysis_version"], message["event"]["risk_score"]) == (2, 90)
    assert [a["analysis_version"] for a in message["event"]["analyses"]] == [2, 1]


async def test_events_of_a_camera_are_pushed_in_the_order_recorded(live_api, producer, engine):
    camera_id = new_camera_id("ws")
    analysed = [analysed_batch(camera_id, score) for score in (10, 40, 70)]
    async with connect(events_url(live_api)) as ws:
        for *_, event in analysed:
            publish(producer, SECURITY_EVENTS.name, camera_id, encode(event))
        apply(engine, *(e for events in analysed for e in events))
        pushed = []
        async with asyncio.timeout(TIMEOUT_S):
            while len(pushed) < len(analysed):
                message = json.loads(await ws.recv())
                if message["event"]["camera_id"] == camera_id:
                    pushed.append(message["event"]["batch_id"])
    assert pushed == [event.batch_id for *_, event in analysed]


async def test_every_client_receives_the_event(live_api, producer, engine, api_client):
    camera_id = new_camera_id("ws")
    *batch, event = analysed_batch(camera_id, score=95)
    apply(engine, *batch, event)
    async with connect(events_url(live_api)) as first, connect(events_url(live_api)) as second:
        publish(producer, SECURITY_EVENTS.name, camera_id, encode(event))
        received = await asyncio.gather(
            _next_event_of(first, event.batch_id), _next_event_of(second, event.batch_id)
        )
    rest = _rest_event(api_client, camera_id)
    assert [m["event"] for m in received] == [rest, rest]


async def test_undecodable_messages_are_skipped(live_api, producer, engine, api_client):
    camera_id = new_camera_id("ws")
    *batch, event = analysed_batch(camera_id, score=10)
    apply(engine, *batch, event)
    async with connect(events_url(live_api)) as ws:
        # Same key, same partition: the good event comes after the bad ones.
        publish(producer, SECURITY_EVENTS.name, camera_id, b"not json at all")
        publish(producer, SECURITY_EVENTS.name, camera_id, b'{"event_type": "Nonsense"}')
        publish(producer, SECURITY_EVENTS.name, camera_id, event.model_dump_json()[:40].encode())
        publish(producer, SECURITY_EVENTS.name, camera_id, encode(event))
        message = await _next_event_of(ws, event.batch_id)
    assert message["event"]["id"] == _rest_event(api_client, camera_id)["id"]
    assert live_api.app.state.event_feed.ready


async def test_a_client_that_falls_behind_is_disconnected_with_a_reason(live_api):
    broadcaster: Broadcaster = live_api.app.state.services.broadcaster
    async with connect(events_url(live_api)) as ws:
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


@contextlib.asynccontextmanager
async def _feed_on(bootstrap: str, shown: ShownEvents, **options: Any):
    """A feed of its own on `bootstrap`, looking events up with `shown`, and a subscription."""
    broadcaster = Broadcaster()
    subscription = broadcaster.subscribe()
    feed = SecurityEventFeed(bootstrap, broadcaster, shown, **options)
    task = asyncio.create_task(feed.run())
    try:
        await asyncio.to_thread(wait_for, lambda: feed.ready, timeout=30, what="feed ready")
        yield subscription
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert not feed.ready


def _over(engine) -> ShownEvents:
    return read_model_lookup(make_sessionmaker(engine), ImageLinks(secret=None, ttl_s=3600))


async def _pushed_for(subscription: Subscription, batch_id: str, timeout: float) -> dict:
    async with asyncio.timeout(timeout):
        while True:
            message = await subscription.get()
            assert not isinstance(message, Closed)
            if message["event"]["batch_id"] == batch_id:
                return message


async def test_an_event_never_shown_is_dropped_with_a_warning(stack, producer, engine, caplog):
    caplog.set_level(logging.WARNING, logger="api.broadcast")
    camera_id = new_camera_id("ws")
    *_, refused = analysed_batch(camera_id)  # never projected: as if the projection refused it
    *batch, event = analysed_batch(camera_id)
    async with _feed_on(
        stack.kafka_bootstrap, _over(engine), read_model_wait_s=1.0
    ) as subscription:
        publish(producer, SECURITY_EVENTS.name, camera_id, encode(refused))
        publish(producer, SECURITY_EVENTS.name, camera_id, encode(event))
        apply(engine, *batch, event)
        message = await _pushed_for(subscription, event.batch_id, TIMEOUT_S)
        await asyncio.to_thread(
            wait_for,
            lambda: [r for r in caplog.records if refused.batch_id in r.getMessage()],
            timeout=10,
            what="the warning about the dropped event",
        )
        assert message["event"]["batch_id"] == event.batch_id
        with pytest.raises(TimeoutError):
            await _pushed_for(subscription, refused.batch_id, 0.5)
    [warning] = [r for r in caplog.records if refused.batch_id in r.getMessage()]
    assert warning.levelno == logging.WARNING
    assert warning.getMessage() == (
        f"event feed: dropping the event of batch {refused.batch_id} (camera {camera_id}, "
        "analysis version 1): the read model did not show it within 1s (the projection "
        "refused it, or lags that far behind)"
    )


async def test_feed_asks_again_when_the_read_model_does_not_answer(stack, producer, engine):
    shown, calls = _over(engine), []

    def failing_once(recorded):
        calls.append(len(recorded))
        if len(calls) == 1:
            raise OSError("connection to the read model lost")
        return shown(recorded)

    camera_id = new_camera_id("ws")
    *batch, event = analysed_batch(camera_id)
    apply(engine, *batch, event)
    async with _feed_on(stack.kafka_bootstrap, failing_once, retry_s=0.5) as subscription:
        publish(producer, SECURITY_EVENTS.name, camera_id, encode(event))
        message = await _pushed_for(subscription, event.batch_id, TIMEOUT_S)
    assert message["event"]["batch_id"] == event.batch_id
    assert len(calls) >= 2


async def _published_and_received(
    bootstrap: str, engine, subscription: Subscription, timeout: float
) -> None:
    *batch, event = analysed_batch(new_camera_id("ws"))
    apply(engine, *batch, event)
    producer = Producer(producer_settings(bootstrap, {"acks": "all"}))
    await asyncio.to_thread(publish, producer, SECURITY_EVENTS.name, event.camera_id, encode(event))
    message = await _pushed_for(subscription, event.batch_id, timeout)
    assert message["event"]["analysis_version"] == event.analysis_version


async def test_feed_survives_a_broker_restart_and_stops_cleanly(own_kafka, engine):
    async with _feed_on(own_kafka.bootstrap, _over(engine), retry_s=0.5) as subscription:
        await _published_and_received(own_kafka.bootstrap, engine, subscription, TIMEOUT_S)
        await asyncio.to_thread(own_kafka.restart)
        await _published_and_received(own_kafka.bootstrap, engine, subscription, 60)
