"""Several messages in flight at once: decided together, published, recorded and
acknowledged strictly in the order they came, never more than the limit at a time."""

from __future__ import annotations

import asyncio

import pytest

from schemas.topics import DETECTIONS, DLQ_DETECTION, IMAGES
from streams.in_flight import InFlight
from streams.stage import Outcome, Publish, Received, Stage
from tests.factories import detections_event, image_event
from tests.fakes import Published


class Table(dict):
    """The stage's state: what InFlight records, and the order it recorded it in."""

    def __init__(self) -> None:
        super().__init__()
        self.order: list[tuple[str, int]] = []

    async def put(self, key: str, value: object, partition: int) -> None:
        self[key] = value
        self.order.append((key, partition))

    def recorded(self, key: str) -> bool:
        return key in self


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


async def submit_image(window, handlers, acked, offset: int, image_id: str, gate: str = "") -> None:
    """Submit image `image_id` at `offset`, its handler held until `gate` (its id) is released."""
    await window.submit(
        lambda: acked.append(offset),
        received(offset),
        image_event(image_id=image_id),
        image_id,
        handlers.handler(gate or image_id, published(image_id)),
    )


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_outcomes_are_published_recorded_and_acked_in_arrival_order():
    sent, table, handlers, acked = Published(), Table(), Handlers(), []
    stage = Stage("detection", "w/detection", sent)
    async with InFlight(stage, 3, table.recorded, table.put) as window:
        for offset, image_id in enumerate(["a", "b", "c"]):
            await submit_image(window, handlers, acked, offset, image_id)
        await settle()
        assert handlers.running == 3
        handlers.release("c", "b")  # the later ones finish first
        await settle()
        assert (sent, acked, table.order) == ([], [], [])
        handlers.release("a")
        await settle()
    assert [item.message.image_id for item in sent] == ["a", "b", "c"]
    assert acked == [0, 1, 2]
    assert table.order == [("a", 1), ("b", 1), ("c", 1)]


async def test_no_more_than_the_limit_are_decided_at_once():
    sent, table, handlers, acked = Published(), Table(), Handlers(), []
    stage = Stage("detection", "w/detection", sent)
    async with InFlight(stage, 2, table.recorded, table.put) as window:

        async def feed() -> None:
            for offset in range(5):
                await submit_image(window, handlers, acked, offset, f"i{offset}")

        feeding = asyncio.create_task(feed())
        await settle()
        assert (handlers.running, feeding.done()) == (2, False)
        handlers.release(*(f"i{n}" for n in range(5)))
        await feeding
        await settle()
    assert handlers.most_running == 2 and acked == [0, 1, 2, 3, 4]


async def test_a_second_message_of_a_key_in_flight_is_not_published_again():
    sent, table, handlers, acked = Published(), Table(), Handlers(), []
    stage = Stage("detection", "w/detection", sent)
    async with InFlight(stage, 4, table.recorded, table.put) as window:
        for offset in range(2):  # the same image announced twice, both decided as new
            await submit_image(window, handlers, acked, offset, "same", gate=f"same{offset}")
        handlers.release("same0", "same1")
        await settle()
    assert len(sent) == 1 and acked == [0, 1] and table.order == [("same", 1)]


async def test_a_handler_that_raises_is_dead_lettered_at_its_turn_and_skips_are_acked_in_order():
    sent, table, handlers, acked = Published(), Table(), Handlers(), []
    stage = Stage("detection", "w/detection", sent)

    async def broken() -> Outcome:
        raise RuntimeError("the detector client broke")

    async with InFlight(stage, 4, table.recorded, table.put) as window:
        await submit_image(window, handlers, acked, 0, "a")
        await window.submit(lambda: acked.append(1), received(1), image_event(), "b", broken)
        await window.skip(lambda: acked.append(2))
        await settle()
        assert (sent, acked) == ([], [])
        handlers.release("a")
        await settle()
    assert [item.topic for item in sent] == [DETECTIONS, DLQ_DETECTION]
    assert sent[1].message.error_type == "RuntimeError"
    assert acked == [0, 1, 2] and table.order == [("a", 1)]


async def test_leaving_the_window_cancels_what_is_still_deciding_and_acks_nothing_more():
    sent, table, handlers, acked = Published(), Table(), Handlers(), []
    stage = Stage("detection", "w/detection", sent)
    async with InFlight(stage, 2, table.recorded, table.put) as window:
        await submit_image(window, handlers, acked, 0, "a")
        await settle()
    await settle()
    assert (sent, acked, handlers.running) == ([], [], 0)


def test_a_window_needs_room_for_one_message():
    with pytest.raises(ValueError, match="not 0"):
        InFlight(Stage("detection", "w", Published()), 0, dict().__contains__, None)
