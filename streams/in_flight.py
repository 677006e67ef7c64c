"""Several messages of one agent's stream in flight at once, their outcomes published in the
order the messages came.

An agent that waits on a model for one message at a time leaves the model idle between
calls. `InFlight` lets an agent start the handler of up to `limit` messages before the first
has finished, and publishes each one's outcome, records its state and acknowledges its
message strictly in arrival order (so a camera's detections reach the topic in the order
its images came, and a batch can never be closed ahead of a detection that came before
the close). Faust commits a partition's offset only up to its first unacknowledged
message, so the offset never passes work that has not been published: a worker killed
with messages in flight has them delivered again, as with one at a time.

Two messages with the same key in flight together (the same image announced twice) are
both decided; the later one's outcome is dropped at its turn if the earlier one recorded
its state, so a duplicate costs a model call, never a second publication.

A transactional stage gives its own `complete`: what to do with each message's outcome at
its turn (write it into the open transaction) instead of publishing, recording and
acknowledging it here.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from schemas.envelope import Message
from streams.stage import Handle, Outcome, Received, Stage

log = logging.getLogger(__name__)


@dataclass
class Pending:
    """A message in the window: `received` and `message` are None for one with nothing to
    decide (`skip`)."""

    ack: Callable[[], Any]
    received: Received | None
    message: Message | None
    key: str | None
    outcome: asyncio.Future[Outcome]


Complete = Callable[[Pending, Outcome], Awaitable[None]]


class InFlight:
    """`recorded(key)`: whether the state of `key` is recorded; `record(key, state,
    partition)` records it for the message's partition (and returns once it is durable).
    A stage that keeps no state gives neither. `complete`: what becomes of each outcome at
    its turn, in place of all that (then neither is given)."""

    def __init__(
        self,
        stage: Stage,
        limit: int,
        recorded: Callable[[str], bool] | None = None,
        record: Callable[[str, Any, int], Awaitable[None]] | None = None,
        *,
        complete: Complete | None = None,
    ) -> None:
        if limit < 1:
            raise ValueError(f"at least one message must be in flight, not {limit}")
        if (recorded is None) != (record is None):
            raise ValueError("a stage's state needs both `recorded` and `record`, or neither")
        if complete is not None and record is not None:
            raise ValueError("`complete` decides what becomes of the outcome: no `record` with it")
        self._complete = complete or self._publish
        self.stage = stage
        self.limit = limit
        self._recorded = recorded
        self._record = record
        self._slots = asyncio.Semaphore(limit)
        self._pending: deque[Pending] = deque()
        self._arrived = asyncio.Event()
        # Set while the window has no decided outcome left to complete.
        self.settled = asyncio.Event()
        self._emitter: asyncio.Task | None = None

    async def __aenter__(self) -> InFlight:
        self._emitter = asyncio.create_task(self._emit_in_order())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._emitter is not None
        self._emitter.cancel()
        for pending in self._pending:
            pending.outcome.cancel()
        await asyncio.gather(self._emitter, return_exceptions=True)

    async def submit(
        self,
        ack: Callable[[], Any],
        received: Received,
        message: Message,
        key: str | None,
        handle: Handle,
    ) -> None:
        """Start deciding `message` (waits while `limit` messages are in flight)."""
        await self._admit()
        outcome = asyncio.ensure_future(self.stage.decide(message, handle))
        self._enqueue(Pending(ack, received, message, key, outcome))

    async def skip(self, ack: Callable[[], Any]) -> None:
        """A message with nothing to decide (undecodable, dead-lettered already): acknowledged
        at its turn."""
        await self._admit()
        done: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        done.set_result(Outcome())
        self._enqueue(Pending(ack, None, None, None, done))

    async def _admit(self) -> None:
        self.raise_if_stopped()
        await self._slots.acquire()

    async def stopped(self) -> None:
        """Wait for the emitter to stop, and raise what stopped it."""
        assert self._emitter is not None, "use InFlight with `async with`"
        await asyncio.wait([self._emitter])
        self.raise_if_stopped()

    def raise_if_stopped(self) -> None:
        """Raise what stopped the window's emitter, if it stopped."""
        assert self._emitter is not None, "use InFlight with `async with`"
        if self._emitter.done():
            self._emitter.result()  # raises what stopped it
            raise RuntimeError("the in-flight window stopped")

    def _enqueue(self, pending: Pending) -> None:
        self._pending.append(pending)
        self._arrived.set()

    async def _emit_in_order(self) -> None:
        while True:
            while not self._pending:
                self._arrived.clear()
                self.settled.set()
                await self._arrived.wait()
            head = self._pending[0]
            if not head.outcome.done():
                self.settled.set()
                await asyncio.wait([head.outcome])
            self.settled.clear()
            await self._complete(head, await head.outcome)
            self._pending.popleft()
            self._slots.release()

    async def _publish(self, head: Pending, outcome: Outcome) -> None:
        """Publish the outcome, record its state and acknowledge its message."""
        if head.message is not None and head.received is not None:
            stateful = head.key is not None and outcome.state and self._record is not None
            if stateful and self._recorded(head.key):
                log.info(
                    "%s: %s was handled by an earlier message in flight; not published again",
                    self.stage.name,
                    head.key,
                )
            else:
                await self.stage.emit(head.received, head.message, outcome)
                if stateful:
                    await self._record(head.key, outcome.state, head.received.partition)
        head.ack()
