"""Several messages of one stage's stream in flight at once, their outcomes completed in
the order the messages came.

A stage that waits on a model for one message at a time leaves the model idle between
calls. `InFlight` starts the handler of up to `limit` messages before the first has
finished, and hands each outcome to `complete` strictly in arrival order (the
transactional stage writes it into its open transaction there), so a camera's detections
reach the topic in the order its images came, and a batch can never be closed ahead of a
detection that came before the close.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from schemas.envelope import Message
from streams.stage import Handle, Outcome, Received, Stage


@dataclass
class Pending:
    """A message in the window, and its outcome once decided."""

    received: Received
    message: Message | None
    outcome: asyncio.Future[Outcome]


Complete = Callable[[Pending, Outcome], Awaitable[None]]


class InFlight:
    """`complete`: what becomes of each outcome at its turn."""

    def __init__(self, stage: Stage, limit: int, complete: Complete) -> None:
        if limit < 1:
            raise ValueError(f"at least one message must be in flight, not {limit}")
        self._complete = complete
        self.stage = stage
        self.limit = limit
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

    async def submit(self, received: Received, message: Message | None, handle: Handle) -> None:
        """Start deciding `message` (waits while `limit` messages are in flight); None: the
        handler decides on no message (an undecodable one's dead letter)."""
        self.raise_if_stopped()
        await self._slots.acquire()
        outcome = asyncio.ensure_future(self.stage.decide(message, handle, received))
        self._pending.append(Pending(received, message, outcome))
        self._arrived.set()

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
