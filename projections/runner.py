"""The projection runner: Kafka topics in, read-model rows and offsets out, in one transaction.

Offsets live in Postgres (`projection_offsets`), not in Kafka: on every
assignment the consumer seeks to what Postgres says was applied, so a crash,
a restart or a replay never duplicates or loses a row. Offsets are also
committed to Kafka afterwards, only so that lag tooling can see them.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from sqlalchemy import Engine, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session

from projections.handlers import HANDLERS, RUN_HANDLERS, Handler, RunHandler
from projections.retention import Retention
from projections.tables import ProjectionOffset, ProjectionReject
from schemas.codec import UndecodableMessage, decode
from schemas.jobs import RetentionApplied
from schemas.reading import take
from schemas.topics import EVENT_TOPICS, TopicSpec, client_settings
from vigil import tracing
from vigil.metrics import (
    PROJECTED,
    PROJECTOR_LAG,
    PROJECTOR_REJECTS,
    PROJECTOR_TRANSACTION,
)

log = logging.getLogger(__name__)


def settle_heap() -> None:
    """Take what is alive now (modules, mappers, schemas: long-lived, in the hundreds of
    thousands) out of the garbage collector's walks, which every oldest-generation
    collection made over all of it: the collector took 2.4 s of a 20.6 s replay of 100k
    seeded detections, 0.6 s of 18.4 s after this. For the projector's process, once set
    up."""
    gc.collect()
    gc.freeze()


@dataclass
class Projector:
    engine: Engine
    bootstrap_servers: str
    consumer_name: str = "vigil-projector"
    topics: Sequence[TopicSpec] = EVENT_TOPICS
    handlers: Mapping[type, list[Handler]] = field(default_factory=lambda: HANDLERS)
    # Consecutive events of these types are applied as one run (not when applying carefully).
    run_handlers: Mapping[type, RunHandler] = field(default_factory=lambda: RUN_HANDLERS)
    batch_size: int = 500
    # How long the group waits for a member that stopped heartbeating (killed).
    session_timeout_s: float = 45.0
    _positions: dict[tuple[str, int], int] = field(default_factory=dict)
    # The cleanups' cut-offs, read at the start of every batch (another projector of the
    # group may have applied one).
    _retention: Retention = field(default_factory=Retention)
    # Records kept as rejects in the transaction being applied, by topic.
    _rejected: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._by_name = {topic.name: topic for topic in self.topics}
        # A type given handlers of its own (fault injection) is applied by those, one by one.
        self._runs = {
            kind: run
            for kind, run in self.run_handlers.items()
            if self.handlers.get(kind) is HANDLERS.get(kind)
        }
        self._consumer = Consumer(
            {
                **client_settings(self.bootstrap_servers),
                "group.id": self.consumer_name,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                # The end of a partition moves its offset past the marker of the transaction
                # that wrote its last record (offset + 1 of that record would leave a lag of 1).
                "enable.partition.eof": True,
                "topic.metadata.refresh.interval.ms": 5000,
                "reconnect.backoff.max.ms": 2000,
                # The loop stops polling while it waits out a Postgres outage.
                "max.poll.interval.ms": 900_000,
                "session.timeout.ms": int(self.session_timeout_s * 1000),
            }
        )

    def run(self, stop: threading.Event) -> None:
        self._consumer.subscribe(
            [t.name for t in self.topics], on_assign=self._on_assign, on_revoke=self._on_revoke
        )
        try:
            while not stop.is_set():
                messages = take(self._consumer, self.batch_size, 0.5)
                live = [m for m in messages if self._wanted(m)]
                if live:
                    self._apply_until_done(live, stop)
                self._report_lag()
        finally:
            self._consumer.close()

    def _report_lag(self) -> None:
        """Each assigned partition's records beyond what is applied, from the high watermark
        of the consumer's last fetch (no request to the broker)."""
        for (topic, partition), applied in list(self._positions.items()):
            try:
                _, high = self._consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), cached=True
                )
            except KafkaException:
                continue
            if high >= 0:
                PROJECTOR_LAG.labels(topic, str(partition)).set(max(high - applied, 0))

    def _wanted(self, message: Message) -> bool:
        """A record, or the end of a partition beyond its last applied record."""
        error = message.error()
        if error is None:
            return True
        if error.code() == KafkaError._PARTITION_EOF:
            return message.offset() > self._positions.get((message.topic(), message.partition()), 0)
        log.warning("consumer error: %s", error)
        return False

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        stored = self._load_positions_blocking([(p.topic, p.partition) for p in partitions])
        for tp in partitions:
            tp.offset = stored.get((tp.topic, tp.partition), OFFSET_BEGINNING)
        consumer.assign(partitions)
        log.info("assigned %s", [(p.topic, p.partition, p.offset) for p in partitions])

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self._positions.pop((tp.topic, tp.partition), None)

    def _load_positions_blocking(self, keys: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """Read stored offsets, waiting for Postgres if it is down (never guess an offset)."""
        delay = 0.5
        while True:
            try:
                with Session(self.engine) as session:
                    rows = session.execute(
                        select(ProjectionOffset).where(
                            ProjectionOffset.consumer == self.consumer_name
                        )
                    ).scalars()
                    stored = {(r.topic, r.partition): r.next_offset for r in rows}
                break
            except (OperationalError, InterfaceError) as exc:
                log.warning("postgres unavailable while loading offsets (%s); retrying", exc)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
        positions = {key: stored[key] for key in keys if key in stored}
        for key in keys:
            self._positions[key] = stored.get(key, 0)
        return positions

    def _apply_until_done(self, messages: list[Message], stop: threading.Event) -> None:
        delay = 0.5
        while not stop.is_set():
            try:
                self._apply_batch(messages)
                return
            except (OperationalError, InterfaceError) as exc:
                log.warning("postgres unavailable (%s); retrying batch in %.1fs", exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
        # Stopping mid-outage: the batch was not applied, and Postgres still has the old offsets.

    def _apply_batch(self, messages: list[Message]) -> None:
        advanced = self.apply(messages)
        if advanced:
            self._consumer.commit(
                offsets=[TopicPartition(t, p, o) for (t, p), o in advanced.items()],
                asynchronous=True,
            )

    def apply(self, messages: Sequence[Message]) -> dict[tuple[str, int], int]:
        """Apply `messages` in one transaction, with the offsets they advance to; what each
        partition's next offset now is.

        The batch is first applied as a whole: a savepoint per record would be two more
        round trips each (a quarter of a replay's time). If the database refuses one
        record's rows, that transaction is rolled back and the batch applied again with a
        savepoint per record, the refused one kept as a reject."""
        try:
            return self._apply(messages, careful=False)
        except (OperationalError, InterfaceError):
            raise  # the database is away: the caller retries the batch
        except DBAPIError as exc:
            log.info("a record of the batch was refused (%s): applying it one by one", exc.orig)
            return self._apply(messages, careful=True)

    def _apply(self, messages: Sequence[Message], careful: bool) -> dict[tuple[str, int], int]:
        started = time.perf_counter()
        started_ns = time.time_ns()
        traced: list[tuple[Message, Any]] = []
        applied: Counter[str] = Counter()
        self._rejected.clear()  # of this pass only: a refused batch is applied again
        advanced: dict[tuple[str, int], int] = {}
        run = _Run(self._runs)
        with Session(self.engine) as session, session.begin():
            self._retention = Retention.load(session)
            for message in messages:
                key = (message.topic(), message.partition())
                offset = message.offset()
                if message.error() is not None:  # the end of the partition: only its offset
                    advanced[key] = max(advanced.get(key, 0), offset)
                    continue
                if offset < self._positions.get(key, 0):
                    continue  # already applied before a restart or rebalance
                event = self._decoded(session, message)
                if event is not None and tracing.exporting():
                    traced.append((message, event))
                if event is not None and not careful and type(event) in self._runs:
                    run.add(event, session)
                else:
                    run.flush(session)
                    if event is not None:
                        self._apply_one(session, event, careful, message)
                advanced[key] = offset + 1
                applied[message.topic()] += 1
            run.flush(session)
            for (topic, partition), next_offset in advanced.items():
                session.execute(
                    insert(ProjectionOffset)
                    .values(
                        consumer=self.consumer_name,
                        topic=topic,
                        partition=partition,
                        next_offset=next_offset,
                    )
                    .on_conflict_do_update(
                        index_elements=["consumer", "topic", "partition"],
                        set_={"next_offset": next_offset, "updated_at": func.now()},
                    )
                )
        PROJECTOR_TRANSACTION.observe(time.perf_counter() - started)
        self._record_spans(traced, started_ns)
        for topic, n in applied.items():
            PROJECTED.labels(topic).inc(n)
        for topic, n in self._rejected.items():
            PROJECTOR_REJECTS.labels(topic).inc(n)
        self._positions.update(advanced)
        return advanced

    def _record_spans(self, traced: list[tuple[Message, Any]], started_ns: int) -> None:
        """Each projected record as a span of its message's trace, lasting the transaction
        that applied it (records are applied in runs, not one at a time)."""
        ended_ns = time.time_ns()
        for message, event in traced:
            tracing.record_span(
                f"project {message.topic()}",
                message.headers(),
                getattr(event, "trace_id", None),
                started_ns,
                ended_ns,
                {
                    "messaging.destination.name": message.topic(),
                    "vigil.consumer": self.consumer_name,
                },
            )

    def _decoded(self, session: Session, message: Message) -> Any | None:
        """The record's event; None if it is kept as a reject (undecodable) or a cleanup
        removed what it says (a replay must not bring it back)."""
        try:
            event = decode(self._by_name[message.topic()], message.value())
        except UndecodableMessage as exc:
            self._reject(session, message, str(exc))
            return None
        return None if self._retention.forgets(event) else event

    def _apply_one(self, session: Session, event: Any, careful: bool, message: Message) -> None:
        """Run the record's handlers; `careful`: in a savepoint, a refusal kept as a reject
        (otherwise it is raised, and the batch is applied again carefully)."""
        if not careful:
            self._handle(session, event)
        else:
            try:
                with session.begin_nested():
                    self._handle(session, event)
            except (OperationalError, InterfaceError):
                raise  # the database is away: the whole batch is retried
            except DBAPIError as exc:
                # The database refused this one event's rows: keep it as a reject and go on.
                self._reject(session, message, f"{type(exc.orig).__name__}: {exc.orig}")
                return
        if isinstance(event, RetentionApplied):
            self._retention = Retention.load(session)  # the facts after it in this batch

    def _handle(self, session: Session, event: object) -> None:
        for handler in self.handlers.get(type(event), []):
            handler(event, session)
        self._retention.after(event, session)

    def _reject(self, session: Session, message: Message, error: str) -> None:
        self._rejected[message.topic()] += 1
        log.warning(
            "rejecting %s[%d]@%d: %s", message.topic(), message.partition(), message.offset(), error
        )
        raw = (message.value() or b"").decode(errors="replace").replace("\x00", "\\x00")
        session.execute(
            insert(ProjectionReject)
            .values(
                consumer=self.consumer_name,
                topic=message.topic(),
                partition=message.partition(),
                offset=message.offset(),
                error=error,
                raw=raw,
            )
            .on_conflict_do_nothing()
        )


class _Run:
    """Consecutive events of one type with a run handler, applied together when the type
    changes, another kind of record comes, or the batch ends (the order of the batch is
    kept: a run is applied where its first event stood, before anything after its last)."""

    def __init__(self, handlers: Mapping[type, RunHandler]) -> None:
        self._handlers = handlers
        self._events: list[Any] = []

    def add(self, event: Any, session: Session) -> None:
        if self._events and type(self._events[0]) is not type(event):
            self.flush(session)
        self._events.append(event)

    def flush(self, session: Session) -> None:
        if self._events:
            self._handlers[type(self._events[0])](self._events, session)
            self._events = []
