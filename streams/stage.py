"""The shape every stage has: a handler decides, the loop around it publishes.

A handler is a plain function of a decoded message, the stage's state and its
dependencies; it returns an `Outcome`: the messages to publish, the failure to
dead-letter (if the stage gives up on its input) and the state to record once all of it
is published. It never publishes or writes state itself, so a unit test calls it with
fakes and reads the answer.

`Stage` is what every stage's loop does around its handlers: decode the message (or
dead-letter it as undecodable: `parse`), call the handler and dead-letter anything
unexpected it raises (`decide`), and turn the outcome into the messages to publish
(`publications`), which the transactional stage (`streams.transactional`) writes in the
transaction that commits its input. Nothing that goes wrong stops the loop.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from schemas.batches import BatchClosed
from schemas.codec import UndecodableMessage, decode
from schemas.dead_letters import Stage as StageName
from schemas.envelope import Message
from schemas.topics import DEAD_LETTER_TOPICS, TOPICS_BY_NAME, TopicSpec
from streams.dead_letters import dead_letter
from streams.retry import RetryExhausted
from vigil import tracing
from vigil.logs import context_of, message_context
from vigil.metrics import BATCH_DETECTIONS, STAGE_DECISIONS, STAGE_IN_FLIGHT, STAGE_MESSAGES
from vigil.tracing import Headers

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Publish:
    """One message to publish, on one of our topics, under its key."""

    topic: TopicSpec
    key: str | None
    message: Message
    # The span that decided it, as its `traceparent` Kafka header (None: no header).
    traceparent: str | None = None


@dataclass(frozen=True)
class Failure:
    """Why a stage gives up on its input, which then goes to the stage's dead-letter topic."""

    error: BaseException
    attempts: int = 1
    first_failed_at: datetime | None = None
    last_failed_at: datetime | None = None
    # Evidence beyond the error text, e.g. {"raw_answer": ...} for a model answer that failed.
    context: dict[str, Any] | None = None

    @classmethod
    def after(cls, exhausted: RetryExhausted, context: dict[str, Any] | None = None) -> Failure:
        """The failure the retry policy gave up with, attempts and times included."""
        return cls(
            error=exhausted.last_error,
            attempts=exhausted.attempts,
            first_failed_at=exhausted.first_failed_at,
            last_failed_at=exhausted.last_failed_at,
            context=context,
        )


@dataclass(frozen=True)
class Outcome:
    """What a handler decided: publish these (in order), dead-letter the input if `failure`,
    and record `state` in the stage's table once everything is published (None: nothing)."""

    publish: tuple[Publish, ...] = ()
    failure: Failure | None = None
    state: Any = None
    # The span of the decision: what is published of it continues that trace.
    traceparent: str | None = None


@dataclass(frozen=True)
class Received:
    """A message as it came off its topic: what a dead letter of it needs."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers | None = None


Handle = Callable[[], Outcome | Awaitable[Outcome]]


@dataclass(frozen=True)
class Stage:
    name: StageName
    producer: str

    def __post_init__(self) -> None:
        # Every series of the stage exists from the start, at 0: a rate over a counter that
        # appears only at its first message misses that message.
        for direction in ("in", "out", "dead_lettered"):
            STAGE_MESSAGES.labels(self.name, direction)
        STAGE_IN_FLIGHT.labels(self.name)

    @property
    def dead_letter_topic(self) -> TopicSpec:
        return DEAD_LETTER_TOPICS[self.name]

    def parse(self, received: Received, topic: TopicSpec | None = None) -> Message | Publish:
        """The message as its topic's event type (`topic`: which topic it came from, when not
        one of ours by name), or the dead letter of it if undecodable."""
        STAGE_MESSAGES.labels(self.name, "in").inc()
        try:
            return decode(topic or TOPICS_BY_NAME[received.topic], received.value)
        except UndecodableMessage as exc:
            STAGE_MESSAGES.labels(self.name, "dead_lettered").inc()
            log.warning(
                "%s: poison message at %s[%d]@%d: %s",
                self.name,
                received.topic,
                received.partition,
                received.offset,
                exc,
            )
            key = received.key.decode(errors="replace") if received.key else None
            return self.dead_letter(received, Failure(exc), camera_id=key)

    async def decide(
        self, message: Message | None, handle: Handle, received: Received | None = None
    ) -> Outcome:
        """What the handler decided. What it raises is unexpected (it returns the failures it
        expects): that is an outcome that dead-letters the input with the error's type and
        text, and records nothing. With the `received` message, the decision is a span of the
        message's trace, and the outcome names it."""
        if received is None or received.value is None:  # no message: a partition's end
            return await self._decide(message, handle)
        trace_id = getattr(message, "trace_id", None)
        name = f"{self.name} {received.topic}"
        attributes = {"messaging.destination.name": received.topic, "vigil.stage": self.name}
        started = time.perf_counter()
        with tracing.consuming(name, received.headers, trace_id, attributes):
            outcome = await self._decide(message, handle)
            STAGE_DECISIONS.labels(self.name).observe(time.perf_counter() - started)
            return replace(outcome, traceparent=tracing.traceparent())

    async def _decide(self, message: Message | None, handle: Handle) -> Outcome:
        in_flight = STAGE_IN_FLIGHT.labels(self.name)
        in_flight.inc()
        try:
            with message_context(message):
                outcome = handle()
                if inspect.isawaitable(outcome):
                    outcome = await outcome
        except Exception as exc:
            log.exception("%s: unexpected failure on %s", self.name, type(message).__name__)
            outcome = Outcome(failure=Failure(exc))
        finally:
            in_flight.dec()
        return outcome

    def publications(self, received: Received, message: Message, outcome: Outcome) -> list[Publish]:
        """What `outcome` publishes, in order: its messages, then the input's dead letter,
        each continuing the decision's trace unless it names a span of its own."""
        items = [
            item if item.traceparent else replace(item, traceparent=outcome.traceparent)
            for item in outcome.publish
        ]
        STAGE_MESSAGES.labels(self.name, "out").inc(len(items))
        for item in items:
            if isinstance(item.message, BatchClosed):
                BATCH_DETECTIONS.labels(item.message.trigger).observe(len(item.message.detections))
        if outcome.failure is not None:
            STAGE_MESSAGES.labels(self.name, "dead_lettered").inc()
            log.warning(
                "%s: dead-lettering %s[%d]@%d after %d attempt(s): %s: %s",
                self.name,
                received.topic,
                received.partition,
                received.offset,
                outcome.failure.attempts,
                type(outcome.failure.error).__name__,
                outcome.failure.error,
                extra=context_of(message),
            )
            letter = self.dead_letter(
                received,
                outcome.failure,
                camera_id=getattr(message, "camera_id", None),
                trace_id=getattr(message, "trace_id", None),
            )
            items.append(replace(letter, traceparent=outcome.traceparent))
        return items

    def dead_letter(
        self,
        received: Received,
        failure: Failure,
        *,
        camera_id: str | None,
        trace_id: str | None = None,
    ) -> Publish:
        letter = dead_letter(
            stage=self.name,
            raw=received.value,
            error=failure.error,
            producer=self.producer,
            source_topic=received.topic,
            source_partition=received.partition,
            source_offset=received.offset,
            camera_id=camera_id,
            attempt_count=failure.attempts,
            first_failed_at=failure.first_failed_at,
            last_failed_at=failure.last_failed_at,
            trace_id=trace_id,
            context=failure.context,
        )
        return Publish(self.dead_letter_topic, camera_id, letter)
