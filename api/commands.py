"""The API's write side: the one place that produces commands, and the use cases that do.

A mutating call validates against the read model, produces a command and waits for
the broker's acknowledgement; where the spec answers with the outcome, it then waits
for the projection to show it (read-your-writes), and raises NotYetVisible with the
outcome when the wait runs out first. Failures are the API's own errors (api/errors.py).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from confluent_kafka import KafkaError, KafkaException, Producer
from sqlalchemy.orm import Session

from api.errors import Conflict, DeliveryFailed, NotFound, NotYetVisible
from api.models import BreakerResetOut, FlushOutcome, ReprocessQueued
from api.queries.batches import BatchState, batch_state
from api.queries.breakers import circuit_breakers
from projections.tables import DetectionRow
from schemas.batches import FlushBatch
from schemas.detections import BoundingBox, Detection
from schemas.enrichments import ReprocessEnrichment
from schemas.envelope import Message
from schemas.system import ResetCircuitBreaker
from schemas.topics import (
    BATCH_COMMANDS,
    ENRICHMENT_COMMANDS,
    SYSTEM_COMMANDS,
    TopicSpec,
    producer_settings,
)
from vigil import tracing

T = TypeVar("T")


@dataclass(frozen=True)
class Outgoing:
    """One message to produce, already encoded."""

    topic: str
    key: str | None
    value: bytes


@dataclass(frozen=True)
class Delivered:
    """Where the broker stored a message."""

    partition: int
    offset: int


@dataclass(frozen=True)
class NotDelivered:
    reason: str


def outgoing(topic: TopicSpec, key: str | None, message: Message) -> Outgoing:
    """A message for `topic`, refused when the topic does not carry its type."""
    return Outgoing(topic.name, key, topic.encode(message))


class CommandSender:
    """Produces messages (from any thread) and returns only once the broker has answered."""

    def __init__(self, producer: Producer, ack_timeout_s: float) -> None:
        self._producer = producer
        self._ack_timeout_s = ack_timeout_s

    @classmethod
    def connect(cls, bootstrap_servers: str, ack_timeout_s: float = 5.0) -> CommandSender:
        producer = Producer(
            producer_settings(
                bootstrap_servers,
                {
                    "client.id": "vigil-api",
                    "acks": "all",
                    "linger.ms": 0,
                    # librdkafka gives up (and reports why) when the caller stops waiting.
                    "message.timeout.ms": int(ack_timeout_s * 1000),
                },
            )
        )
        return cls(producer, ack_timeout_s)

    def send(self, topic: TopicSpec, key: str | None, message: Message) -> Delivered:
        """Produce one message; raises DeliveryFailed unless the broker stored it."""
        [result] = self.deliver([outgoing(topic, key, message)])
        if isinstance(result, NotDelivered):
            raise DeliveryFailed(
                f"{message.event_type} was not acknowledged by Kafka on {topic.name}: "
                f"{result.reason}"
            )
        return result

    def deliver(self, messages: Sequence[Outgoing]) -> list[Delivered | NotDelivered]:
        """Produce every message, then wait for the broker's answer to each, in order.

        Never raises for a message the broker refused: the caller sees which ones went.
        """
        results: list[Delivered | NotDelivered | None] = [None] * len(messages)

        def on_delivery(index: int) -> Callable[[KafkaError | None, Any], None]:
            def record(error: KafkaError | None, stored: Any) -> None:
                results[index] = (
                    NotDelivered(error.str())
                    if error is not None
                    else Delivered(stored.partition(), stored.offset())
                )

            return record

        for index, message in enumerate(messages):
            try:
                self._producer.produce(
                    message.topic,
                    key=message.key.encode() if message.key is not None else None,
                    value=message.value,
                    headers=tracing.headers_for(tracing.traceparent()),
                    on_delivery=on_delivery(index),
                )
            except (BufferError, KafkaException) as exc:
                results[index] = NotDelivered(str(exc))
        # A little longer than message.timeout.ms, so librdkafka's own verdict arrives.
        deadline = time.monotonic() + self._ack_timeout_s + 1.0
        while None in results and (left := deadline - time.monotonic()) > 0:
            self._producer.poll(min(left, 0.1))
        unanswered = NotDelivered(f"no answer within {self._ack_timeout_s}s")
        return [result if result is not None else unanswered for result in results]

    def close(self) -> None:
        # Bounded: anything still queued expires after message.timeout.ms anyway.
        self._producer.flush(self._ack_timeout_s)
        self._producer.close()


def wait_for_read_model(
    session: Session,
    probe: Callable[[], T],
    done: Callable[[T], bool],
    *,
    wait_s: float,
    poll_s: float = 0.1,
) -> T:
    """Read-your-writes: poll `probe` until `done` holds or `wait_s` passes; the last value.

    The transaction stays open (locks held by the caller stay held); expiring the session
    between polls makes every poll read what the projector has committed by then.
    """
    deadline = time.monotonic() + wait_s
    value = probe()
    while not done(value) and time.monotonic() < deadline:
        time.sleep(poll_s)
        session.expire_all()
        value = probe()
    return value


def flush_batch(
    session: Session,
    sender: CommandSender,
    state: BatchState,
    *,
    wait_s: float,
    poll_s: float = 0.1,
) -> FlushOutcome:
    """Ask the aggregator to close the batch, then wait for the read model to show it closed."""
    if state.status != "aggregating":
        raise Conflict(
            f"batch {state.batch_id} is {state.status}: only an aggregating batch can be flushed"
        )
    command = FlushBatch(batch_id=state.batch_id, camera_id=state.camera_id)
    sender.send(BATCH_COMMANDS, state.camera_id, command)
    current = wait_for_read_model(
        session,
        lambda: batch_state(session, state.batch_id) or state,
        lambda s: s.status != "aggregating",
        wait_s=wait_s,
        poll_s=poll_s,
    )
    if current.status == "aggregating":
        raise NotYetVisible(
            FlushOutcome(
                status="queued",
                batch_id=current.batch_id,
                detection_count=current.detection_count,
                message=f"Flush requested; the batch had not closed after {wait_s:g}s",
            )
        )
    return FlushOutcome(
        status="flushed",
        batch_id=current.batch_id,
        detection_count=current.detection_count,
        message="Batch sent for analysis",
    )


def reprocess_command(row: DetectionRow) -> ReprocessEnrichment:
    return ReprocessEnrichment(
        request_id=uuid.uuid4().hex,
        detection_id=row.id,
        image_id=row.image_id,
        camera_id=row.camera_id,
        file_path=row.file_path,
        position=row.position,
        detection=Detection(
            label=row.label,
            class_id=row.class_id,
            confidence=row.confidence,
            bbox=BoundingBox(x1=row.x1, y1=row.y1, x2=row.x2, y2=row.y2),
        ),
    )


def request_reprocess(sender: CommandSender, row: DetectionRow) -> ReprocessQueued:
    """Ask the enrichment stage to describe one detection again; its answer comes as an event."""
    sender.send(ENRICHMENT_COMMANDS, row.camera_id, reprocess_command(row))
    return ReprocessQueued(detection_id=row.id)


def reset_breaker(
    session: Session, sender: CommandSender, name: str, *, stale_s: float, wait_s: float
) -> BreakerResetOut:
    """Tell every worker to close its breaker `name`, then wait until all report it closed."""
    known = circuit_breakers(session, stale_s).circuit_breakers
    if name not in known:
        raise NotFound(f"circuit breaker {name!r} not found; known: {sorted(known)}")
    sender.send(SYSTEM_COMMANDS, name, ResetCircuitBreaker(name=name))
    shown = wait_for_read_model(
        session,
        lambda: circuit_breakers(session, stale_s).circuit_breakers.get(name),
        lambda breaker: breaker is not None and breaker.state == "closed",
        wait_s=wait_s,
    )
    # A breaker whose every worker went quiet meanwhile keeps the state it was last seen in.
    state = (shown or known[name]).state
    if state != "closed":
        raise NotYetVisible(
            BreakerResetOut(
                name=name,
                status="queued",
                state=state,
                message=f"Reset sent; not every worker reported it closed after {wait_s:g}s",
            )
        )
    return BreakerResetOut(name=name, status="reset", state=state, message="Circuit breaker reset")
