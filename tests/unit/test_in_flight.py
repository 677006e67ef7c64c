"""Several messages in flight at once: decided together, completed strictly in the order
they came, never more than the limit at a time."""

from __future__ import annotations

import asyncio

import pytest

from schemas.topics import DETECTIONS, IMAGES
from streams.in_flight import InFlight, Pending
from streams.stage import Outcome, Publish, Received, Stage
from tests.factories import detections_event, image_event


class Completed(list):
    """The window's `complete`: each message's offset and outcome, in the order completed."""

    async def __call__(self, pending: Pending, outcome: Outcome) -> None:
        self.append((pending.received.offset, outcome))

    def offsets(self) -> list[int]:
        return [offset for offset, _ in self]


class Handlers:
    """Handlers that finish when told to (`release`), counting how many run at once."""

    def __init__(self) -> None:
        self.gates: dict[str, asyncio.Event] = {}
        self.running = self.most_running = 0

    def release(self, *keys: str) -> None:
        for key in keys:
            self.gates.setdefault(key, asyncio.Event()).set()

    def handler(self, key: str, outcome: Outcome):
        async def handle() -> Outcome:
            self.running += 1
            self.most_running = max(self.most_running, self.running)
            try:
                await self.gates.setdefault(key, asyncio.Event()).wait()
            finally:
                self.running -= 1
            return outcome

        return handle


def received(offset: int, partition: int = 1) -> Received:
    return Received(topic=IMAGES.name, partition=partition, offset=offset, key=b"cam", value=b"")


def published(image_id: str) -> Outcome:
    produced = detections_event(image_event(image_id=image_id), ["person"])
    return Outcome(publish=(Publish(DETECTIONS, "cam", produced),), state=True)


async def submit_image(window, handlers, offset: int, image_id: str, gate: str = "") -> None:
    """Submit image `image_id` at `offset`, its handler held until `gate` (its id) is released."""
    await window.submit(
        received(offset),
        image_event(image_id=image_id),
        handlers.handler(gate or image_id, published(image_id)),
    )


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


STAGE = Stage("detection", "w/detection")


async def test_outcomes_are_completed_in_arrival_order():
    completed, handlers = Completed(), Handlers()
    async with InFlight(STAGE, 3, completed) as window:
        for offset, image_id in enumerate(["a", "b", "c"]):
            await submit_image(window, handlers, offset, image_id)
        await settle()
        assert handlers.running == 3
        handlers.release("c", "b")  # the later ones finish first
        await settle()
        assert completed == []
        handlers.release("a")
        await settle()
        assert window.settled.is_set()
    assert completed.offsets() == [0, 1, 2]
    assert [o.publish[0].message.image_id for _, o in completed] == ["a", "b", "c"]


async def test_no_more_than_the_limit_are_decided_at_once():
    completed, handlers = Completed(), Handlers()
    async with InFlight(STAGE, 2, completed) as window:

        async def feed() -> None:
            for offset in range(5):
                await submit_image(window, handlers, offset, f"i{offset}")

        feeding = asyncio.create_task(feed())
        await settle()
        assert (handlers.running, feeding.done()) == (2, False)
        handlers.release(*(f"i{n}" for n in range(5)))
        await feeding
        await settle()
    assert handlers.most_running == 2 and completed.offsets() == [0, 1, 2, 3, 4]


async def test_a_handler_that_raises_becomes_a_failure_completed_at_its_turn():
    completed, handlers = Completed(), Handlers()

    async def broken() -> Outcome:
        raise RuntimeError("the detector client broke")

    async with InFlight(STAGE, 4, completed) as window:
        await submit_image(window, handlers, 0, "a")
        await window.submit(received(1), image_event(), broken)
        await settle()
        assert completed == []
        handlers.release("a")
        await settle()
    assert completed.offsets() == [0, 1]
    failure = completed[1][1].failure
    assert isinstance(failure.error, RuntimeError) and completed[1][1].publish == ()


async def test_a_complete_that_fails_stops_the_window_and_is_raised():
    handlers = Handlers()

    async def refuse(pending: Pending, outcome: Outcome) -> None:
        raise ConnectionError("the broker is gone")

    async with InFlight(STAGE, 2, refuse) as window:
        await submit_image(window, handlers, 0, "a")
        handlers.release("a")
        with pytest.raises(ConnectionError, match="broker is gone"):
            await window.stopped()
        with pytest.raises(ConnectionError):
            await window.submit(received(1), image_event(), handlers.handler("b", Outcome()))


async def test_leaving_the_window_cancels_what_is_still_deciding_and_completes_nothing_more():
    completed, handlers = Completed(), Handlers()
    async with InFlight(STAGE, 2, completed) as window:
        await submit_image(window, handlers, 0, "a")
        await settle()
    await settle()
    assert (completed, handlers.running) == ([], 0)


def test_a_window_needs_room_for_one_message():
    with pytest.raises(ValueError, match="not 0"):
        InFlight(STAGE, 0, Completed())
