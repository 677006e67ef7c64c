"""Live security events and jobs for WebSocket clients: Kafka feeds per replica, fanned out.

Every API replica reads the whole events topic and the whole jobs topic itself, without a
consumer group (aiokafka with `group_id=None` assigns every partition of the subscribed
topic and reassigns when the metadata it refreshes every `partition_check_s` shows a
partition change), starting at the end: a client sees what happened after it connected.
Each event is pushed as REST shows it (`GET /api/events/{id}`), once the read model shows
it at its analysis version or a later one; each job step as `GET /api/jobs/{id}` shows the
job once the projector applied that step. A feed holds what it read, in arrival order,
looks the held items up every `check_s`, and pushes those shown; one not shown within
`read_model_wait_s` is dropped with a warning. Each client has a bounded queue; one that
falls that far behind is disconnected rather than allowed to hold the others back or grow
without limit.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from sqlalchemy.orm import Session, sessionmaker

from api.images import ImageLinks
from api.models import EventDetail, JobStatusOut
from api.queries.events import shown_events
from api.queries.jobs import shown_jobs
from schemas.analysis import SecurityEventRecorded
from schemas.codec import UndecodableMessage, decode
from schemas.jobs import JobEvent, JobLogged, RetentionApplied
from schemas.topics import JOBS, SECURITY_EVENTS, TopicSpec

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


def event_message(event: EventDetail) -> dict[str, Any]:
    return {"type": "event", "event": event.model_dump(mode="json")}


def job_message(job: JobStatusOut) -> dict[str, Any]:
    return {"type": "job", "job": job.model_dump(mode="json")}


# For each event recorded, the event as the read model shows it; None while it does not
# show it at that analysis version. Called in a worker thread.
ShownEvents = Callable[[Sequence[SecurityEventRecorded]], list[EventDetail | None]]


def read_model_lookup(sessions: sessionmaker[Session], links: ImageLinks) -> ShownEvents:
    def shown(recorded: Sequence[SecurityEventRecorded]) -> list[EventDetail | None]:
        with sessions() as session:
            return shown_events(
                session, [(e.batch_id, e.analysis_version) for e in recorded], links
            )

    return shown


@dataclass(frozen=True)
class JobEventAt:
    """A job event and where it stands on `vigil.jobs`."""

    partition: int
    offset: int
    event: JobEvent


# For each job event, the job as the read model shows it once the projector applied that
# event; None until then. Called in a worker thread.
ShownJobs = Callable[[Sequence[JobEventAt]], list[JobStatusOut | None]]


def job_lookup(sessions: sessionmaker[Session], projector_group: str) -> ShownJobs:
    def shown(held: Sequence[JobEventAt]) -> list[JobStatusOut | None]:
        with sessions() as session:
            return shown_jobs(
                session, projector_group, [(h.partition, h.offset, h.event.job_id) for h in held]
            )

    return shown


T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Held(Generic[T]):
    item: T
    until: float  # time.monotonic() after which the feed stops waiting for it


class HeldEvents(Generic[T]):
    """Items read from a topic, in arrival order, until the read model shows them or their
    wait runs out. Plain code: the feed says when it is, and what the lookup found."""

    def __init__(self, wait_s: float) -> None:
        self.wait_s = wait_s
        self._held: list[Held[T]] = []

    def __len__(self) -> int:
        return len(self._held)

    def hold(self, item: T, now: float) -> None:
        self._held.append(Held(item, now + self.wait_s))

    def waiting(self) -> list[T]:
        return [held.item for held in self._held]

    def settle(self, shown: Sequence[R | None], now: float) -> tuple[list[R], list[T]]:
        """Settle the first len(shown) held items (those looked up, in that order): the ones
        shown leave to be pushed, in order; those whose wait ran out leave to be dropped;
        the rest stay held, ahead of any held since."""
        looked_up, later = self._held[: len(shown)], self._held[len(shown) :]
        push: list[R] = []
        drop: list[T] = []
        kept: list[Held[T]] = []
        for held, detail in zip(looked_up, shown, strict=True):
            if detail is not None:
                push.append(detail)
            elif now > held.until:
                drop.append(held.item)
            else:
                kept.append(held)
        self._held = kept + later
        return push, drop


def once_each(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages in order, each identical one once (two steps of a job the read model
    already shows as one state are one push)."""
    unique: list[dict[str, Any]] = []
    for message in messages:
        if message not in unique:
            unique.append(message)
    return unique


class TopicFeed(Generic[T]):
    """Consumes a topic from the end and publishes a message to the broadcaster for each
    item it holds, once the read model shows it. A subclass says what it follows (`held`),
    how the read model shows it (`messages`), and what a dropped item was (`dropped`)."""

    topic: TopicSpec
    name: str

    def __init__(
        self,
        bootstrap_servers: str,
        broadcaster: Broadcaster,
        *,
        partition_check_s: float = 30.0,
        retry_s: float = 2.0,
        read_model_wait_s: float = 60.0,
        check_s: float = 0.2,
    ) -> None:
        self._bootstrap_servers = bootstrap_servers
        self._broadcaster = broadcaster
        self._partition_check_s = partition_check_s
        self._retry_s = retry_s
        self._check_s = check_s
        self._held: HeldEvents[T] = HeldEvents(read_model_wait_s)
        self._arrived = asyncio.Event()
        # True once every partition has a position: messages produced from then on arrive.
        self.ready = False

    def held(self, partition: int, offset: int, message: Any) -> T | None:
        """What to hold for a decoded message; None for one this feed does not push."""
        raise NotImplementedError

    def messages(self, items: Sequence[T]) -> list[dict[str, Any] | None]:
        """For each item, its message once the read model shows it, else None (in a thread)."""
        raise NotImplementedError

    def dropped(self, item: T) -> str:
        raise NotImplementedError

    async def run(self) -> None:
        """Until cancelled: read the topic, and push what the read model shows."""
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._read_topic())
            tasks.create_task(self._push_when_shown())

    def _consumer(self) -> AIOKafkaConsumer:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap_servers,
            client_id=f"vigil-api-{self.name.replace(' ', '-')}",
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="latest",
            metadata_max_age_ms=int(self._partition_check_s * 1000),
        )
        consumer.subscribe([self.topic.name])
        return consumer

    async def _read_topic(self) -> None:
        """Until cancelled. A consumer that cannot start is replaced after `retry_s`."""
        while True:
            consumer = self._consumer()
            try:
                await consumer.start()
                for partition in consumer.assignment():
                    await consumer.position(partition)  # resolves "latest" now
                self.ready = True
                log.info("%s reading %s", self.name, sorted(consumer.assignment()))
                await self._pump(consumer)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s stopped; starting again in %.0fs", self.name, self._retry_s)
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
                log.warning("%s: %s: %s; retrying", self.name, type(exc).__name__, exc)
                await asyncio.sleep(self._retry_s)
                continue
            for records in batches.values():
                for record in records:
                    self._hold(record.partition, record.offset, record.value)

    def _hold(self, partition: int, offset: int, raw: bytes | None) -> None:
        try:
            message = decode(self.topic, raw)
        except UndecodableMessage as exc:
            log.warning("skipping %s[%d]@%d: %s", self.topic.name, partition, offset, exc)
            return
        item = self.held(partition, offset, message)
        if item is None:
            return
        self._held.hold(item, time.monotonic())
        self._arrived.set()

    async def _push_when_shown(self) -> None:
        """Until cancelled: look the held items up, push the ones shown, drop the overdue."""
        while True:
            await self._arrived.wait()
            waiting = self._held.waiting()
            pause = self._check_s
            try:
                shown = await asyncio.to_thread(self.messages, waiting)
            except Exception:
                log.exception("%s: the read model did not answer; asking again", self.name)
                shown, pause = [None] * len(waiting), self._retry_s
            push, drop = self._held.settle(shown, time.monotonic())
            for message in once_each(push):
                self._broadcaster.publish(message)
            for item in drop:
                log.warning(
                    "%s: dropping %s: the read model did not show it within %gs (the "
                    "projection refused it, or lags that far behind)",
                    self.name,
                    self.dropped(item),
                    self._held.wait_s,
                )
            if len(self._held):
                await asyncio.sleep(pause)
            else:
                self._arrived.clear()


class SecurityEventFeed(TopicFeed[SecurityEventRecorded]):
    """Each security event recorded, as `GET /api/events/{id}` shows it."""

    topic = SECURITY_EVENTS
    name = "event feed"

    def __init__(
        self, bootstrap_servers: str, broadcaster: Broadcaster, shown: ShownEvents, **options
    ) -> None:
        super().__init__(bootstrap_servers, broadcaster, **options)
        self._shown = shown

    def held(self, partition: int, offset: int, message: Any) -> SecurityEventRecorded:
        return message

    def messages(self, items: Sequence[SecurityEventRecorded]) -> list[dict[str, Any] | None]:
        return [event_message(d) if d is not None else None for d in self._shown(items)]

    def dropped(self, item: SecurityEventRecorded) -> str:
        return (
            f"the event of batch {item.batch_id} (camera {item.camera_id}, analysis version "
            f"{item.analysis_version})"
        )


class JobFeed(TopicFeed[JobEventAt]):
    """Each change of a job's status and each progress step, as `GET /api/jobs/{id}` shows
    the job once the projector applied it. Log lines and a cleanup's cut-off are not pushed."""

    topic = JOBS
    name = "job feed"

    def __init__(
        self, bootstrap_servers: str, broadcaster: Broadcaster, shown: ShownJobs, **options
    ) -> None:
        super().__init__(bootstrap_servers, broadcaster, **options)
        self._shown = shown

    def held(self, partition: int, offset: int, message: Any) -> JobEventAt | None:
        if isinstance(message, JobLogged | RetentionApplied):
            return None
        return JobEventAt(partition, offset, message)

    def messages(self, items: Sequence[JobEventAt]) -> list[dict[str, Any] | None]:
        return [job_message(j) if j is not None else None for j in self._shown(items)]

    def dropped(self, item: JobEventAt) -> str:
        return f"the {item.event.event_type} of job {item.event.job_id}"


# How long a feed's consumer may take to stop. One stopped while it was still starting (a
# server told to stop right after it started) has been seen never to finish stopping, which
# held the API worker's shutdown and its server's with it.
STOP_TIMEOUT_S = 5.0


async def _stop_quietly(consumer: AIOKafkaConsumer) -> None:
    try:
        async with asyncio.timeout(STOP_TIMEOUT_S):
            await consumer.stop()
    except TimeoutError:
        log.warning("feed consumer did not stop within %.0f s; left behind", STOP_TIMEOUT_S)
    except Exception:
        log.exception("feed consumer did not stop cleanly")
