"""Live security events for WebSocket clients: one Kafka feed per replica, fanned out.

Every API replica reads the whole events topic itself, without a consumer group
(aiokafka with `group_id=None` assigns every partition of the subscribed topic and
reassigns when the metadata it refreshes every `partition_check_s` shows a partition
change), starting at the end: a client sees events recorded after it connected.
Each client has a bounded queue; one that falls that far behind is disconnected
rather than allowed to hold the others back or grow without limit.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

from schemas.codec import UndecodableMessage, decode
from schemas.topics import SECURITY_EVENTS

log = logging.getLogger(__name__)

# WebSocket close codes (RFC 6455 / IANA registry).
GOING_AWAY = 1001
TRY_AGAIN_LATER = 1013


@dataclass(frozen=True)
class Closed:
    """The last item a subscription yields: close the connection with this code and reason."""

    code: int
    reason: str


class Subscription:
    def __init__(self, queue_size: int) -> None:
        self._queue: asyncio.Queue[dict[str, Any] | Closed] = asyncio.Queue(queue_size)
        self.closed: Closed | None = None

    def offer(self, message: dict[str, Any]) -> bool:
        try:
            self._queue.put_nowait(message)
        except asyncio.QueueFull:
            return False
        return True

    def close(self, code: int, reason: str) -> None:
        """Drop whatever is still queued; the next `get` answers `Closed`."""
        if self.closed is not None:
            return
        self.closed = Closed(code, reason)
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(self.closed)

    async def get(self) -> dict[str, Any] | Closed:
        return await self._queue.get()


class Broadcaster:
    """Fans each message out to every subscription; runs on the event loop only."""

    def __init__(self, queue_size: int = 100) -> None:
        self.queue_size = queue_size
        self._subscriptions: set[Subscription] = set()

    def subscribe(self) -> Subscription:
        subscription = Subscription(self.queue_size)
        self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)

    @property
    def client_count(self) -> int:
        return len(self._subscriptions)

    def publish(self, message: dict[str, Any]) -> None:
        for subscription in list(self._subscriptions):
            if not subscription.offer(message):
                self._subscriptions.discard(subscription)
                subscription.close(
                    TRY_AGAIN_LATER,
                    f"client fell behind: {self.queue_size} events waiting to be sent",
                )
                log.warning("disconnecting a WebSocket client that fell behind")

    def close(self) -> None:
        for subscription in self._subscriptions:
            subscription.close(GOING_AWAY, "server shutting down")
        self._subscriptions.clear()


def event_message(event: Any) -> dict[str, Any]:
    return {"type": "event", "event": event.model_dump(mode="json")}


class SecurityEventFeed:
    """Consumes SECURITY_EVENTS from the end and publishes each event to the broadcaster."""

    def __init__(
        self,
        bootstrap_servers: str,
        broadcaster: Broadcaster,
        *,
        partition_check_s: float = 30.0,
        retry_s: float = 2.0,
    ) -> None:
        self._bootstrap_servers = bootstrap_servers
        self._broadcaster = broadcaster
        self._partition_check_s = partition_check_s
        self._retry_s = retry_s
        # True once every partition has a position: events produced from then on arrive.
        self.ready = False

    def _consumer(self) -> AIOKafkaConsumer:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap_servers,
            client_id="vigil-api-events",
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="latest",
            metadata_max_age_ms=int(self._partition_check_s * 1000),
        )
        consumer.subscribe([SECURITY_EVENTS.name])
        return consumer

    async def run(self) -> None:
        """Until cancelled. A consumer that cannot start is replaced after `retry_s`."""
        while True:
            consumer = self._consumer()
            try:
                await consumer.start()
                for partition in consumer.assignment():
                    await consumer.position(partition)  # resolves "latest" now
                self.ready = True
                log.info("event feed reading %s", sorted(consumer.assignment()))
                await self._pump(consumer)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("event feed stopped; starting again in %.0fs", self._retry_s)
            finally:
                self.ready = False
                await _stop_quietly(consumer)
            await asyncio.sleep(self._retry_s)

    async def _pump(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            try:
                batches = await consumer.getmany(timeout_ms=1000, max_records=500)
            except KafkaError as exc:
                # aiokafka reconnects on its own (a broker restart, say): log and keep going.
                log.warning("event feed: %s: %s; retrying", type(exc).__name__, exc)
                await asyncio.sleep(self._retry_s)
                continue
            for records in batches.values():
                for record in records:
                    self._deliver(record.partition, record.offset, record.value)

    def _deliver(self, partition: int, offset: int, raw: bytes | None) -> None:
        try:
            event = decode(SECURITY_EVENTS, raw)
        except UndecodableMessage as exc:
            log.warning("skipping %s[%d]@%d: %s", SECURITY_EVENTS.name, partition, offset, exc)
            return
        self._broadcaster.publish(event_message(event))


async def _stop_quietly(consumer: AIOKafkaConsumer) -> None:
    try:
        await consumer.stop()
    except Exception:
        log.exception("event feed consumer did not stop cleanly")
