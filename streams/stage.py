"""What every agent does at its boundary: decode or dead-letter, and dead-letter after retries."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import faust

from schemas.codec import UndecodableMessage, decode
from schemas.dead_letters import Stage as StageName
from schemas.envelope import Message
from schemas.topics import TopicSpec
from streams.dead_letters import dead_letter
from streams.retry import RetryExhausted

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stage:
    name: StageName
    dlq: faust.TopicT
    producer: str

    async def decode(self, event: faust.EventT, specs: dict[str, TopicSpec]) -> Message | None:
        """The message as its topic's event type, or None once it has been dead-lettered."""
        message = event.message
        try:
            return decode(specs[message.topic], message.value)
        except UndecodableMessage as exc:
            log.warning(
                "%s: poison message at %s[%d]@%d: %s",
                self.name,
                message.topic,
                message.partition,
                message.offset,
                exc,
            )
            key = message.key.decode(errors="replace") if message.key else None
            await self._send(event, exc, key)
            return None

    async def handle(
        self,
        event: faust.EventT,
        specs: dict[str, TopicSpec],
        handler: Callable[[faust.EventT, Any], Awaitable[None]],
    ) -> None:
        """Decode `event` and run `handler` on it; nothing that goes wrong stops the agent.

        Handlers dead-letter the failures they expect; anything else they raise is
        dead-lettered here, with its type and text, and the loop goes on to the next message.
        """
        message = await self.decode(event, specs)
        if message is None:
            return
        try:
            await handler(event, message)
        except Exception as exc:
            log.exception("%s: unexpected failure on %s", self.name, type(message).__name__)
            await self._send(
                event,
                exc,
                getattr(message, "camera_id", None),
                trace_id=getattr(message, "trace_id", None),
            )

    async def give_up(
        self,
        event: faust.EventT,
        failure: RetryExhausted,
        camera_id: str | None,
        *,
        trace_id: str | None = None,
        context: dict[str, Any] | None = None,
    ) -> None:
        log.warning(
            "%s: dead-lettering %s[%d]@%d: %s",
            self.name,
            event.message.topic,
            event.message.partition,
            event.message.offset,
            failure,
        )
        await self._send(
            event,
            failure.last_error,
            camera_id,
            attempt_count=failure.attempts,
            first_failed_at=failure.first_failed_at,
            last_failed_at=failure.last_failed_at,
            trace_id=trace_id,
            context=context,
        )

    async def _send(
        self, event: faust.EventT, error: BaseException, camera_id: str | None, **details: Any
    ) -> None:
        from streams.app import publish

        message = event.message
        letter = dead_letter(
            stage=self.name,
            raw=message.value,
            error=error,
            producer=self.producer,
            source_topic=message.topic,
            source_partition=message.partition,
            source_offset=message.offset,
            camera_id=camera_id,
            **details,
        )
        await publish(self.dlq, camera_id, letter)
