"""The batch aggregator's handlers: the events of each trigger, and what is left alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from schemas.batches import BatchClosed, BatchOpened, DetectionsBatched, FlushBatch
from schemas.topics import BATCH_COMMANDS, BATCHES
from streams.batch_agent import BatchDeps, due_flushes, on_detections, on_flush
from streams.batching import BatchLimits, CameraBatches, PendingFlushes
from streams.stage import Outcome
from tests.factories import enriched_image

T0 = datetime(2026, 6, 1, 22, 0, tzinfo=UTC)
DEPS = BatchDeps(BatchLimits(window_s=90, idle_s=30, max_size=5), producer="w1/batches")


def _types(outcome: Outcome) -> list[str]:
    return [item.message.event_type for item in outcome.publish]


def _open(labels: list[str], image_id: str = "a") -> Outcome:
    return on_detections(enriched_image(image_id, labels, at=T0), CameraBatches(), T0, DEPS)


def test_first_detections_open_a_batch_and_add_to_it():
    outcome = _open(["person", "car"])
    assert _types(outcome) == ["BatchOpened", "DetectionsBatched"]
    assert {(item.topic, item.key) for item in outcome.publish} == {(BATCHES, "cam")}
    opened, added = (item.message for item in outcome.publish)
    assert isinstance(opened, BatchOpened) and isinstance(added, DetectionsBatched)
    assert opened.batch_id == added.batch_id == outcome.state.open.batch_id
    assert (opened.started_at, opened.producer) == (T0, "w1/batches")
    assert (added.image_id, added.added, added.detection_count) == ("a", 2, 2)
    assert [d.label for d in outcome.state.open.detections] == ["person", "car"]
    assert outcome.state.recent_images == ["a"]


def test_later_detections_join_the_open_batch():
    first = _open(["person"])
    later = T0 + timedelta(seconds=10)
    outcome = on_detections(enriched_image("b", ["dog"], at=later), first.state, later, DEPS)
    assert _types(outcome) == ["DetectionsBatched"]
    added = outcome.publish[0].message
    assert (added.added, added.detection_count, added.last_activity_at) == (1, 2, later)
    assert outcome.state.open.batch_id == first.state.open.batch_id


def test_an_image_already_batched_changes_nothing():
    first = _open(["person"])
    again = enriched_image("a", ["person"], at=T0)
    assert on_detections(again, first.state, T0, DEPS) == Outcome()


def test_an_image_without_detections_opens_nothing():
    assert _open([]) == Outcome()


def test_reaching_max_size_closes_the_batch_at_once():
    first = _open(["person"] * 3)
    outcome = on_detections(enriched_image("b", ["car"] * 2, at=T0), first.state, T0, DEPS)
    assert _types(outcome) == ["DetectionsBatched", "BatchClosed"]
    closed = outcome.publish[1].message
    assert isinstance(closed, BatchClosed)
    assert (closed.trigger, len(closed.detections)) == ("max_size", 5)
    assert closed.batch_id == first.state.open.batch_id
    assert outcome.state.open is None


def _timer(state: CameraBatches, pending: PendingFlushes, at: datetime) -> list[FlushBatch]:
    commands = due_flushes([state.open], pending, at, DEPS)
    assert {(item.topic, item.key) for item in commands} <= {(BATCH_COMMANDS, "cam")}
    return [item.message for item in commands]


def test_idle_timer_sends_a_flush_that_closes_on_idle_timeout():
    state = _open(["person"]).state
    pending = PendingFlushes()
    assert _timer(state, pending, T0 + timedelta(seconds=29)) == []
    idle = T0 + timedelta(seconds=30)
    [command] = _timer(state, pending, idle)
    assert (command.batch_id, command.trigger) == (state.open.batch_id, "idle_timeout")
    assert _timer(state, pending, idle + timedelta(seconds=1)) == []  # sent, in flight
    outcome = on_flush(command, state, idle + timedelta(seconds=1), DEPS)
    [item] = outcome.publish
    assert (item.message.trigger, item.message.batch_id) == ("idle_timeout", command.batch_id)
    assert outcome.state.open is None and outcome.state.recent_images == ["a"]


def test_window_timer_closes_on_time_window_despite_activity():
    state = _open(["person"]).state
    for second in (25, 50, 75):  # activity every 25 s keeps it from going idle (30 s)
        at = T0 + timedelta(seconds=second)
        state = on_detections(enriched_image(f"i{second}", ["car"], at=at), state, at, DEPS).state
    window = T0 + timedelta(seconds=90)
    [command] = _timer(state, PendingFlushes(), window)
    assert command.trigger == "time_window"
    closed = on_flush(command, state, window, DEPS).publish[0].message
    assert (closed.trigger, len(closed.detections)) == ("time_window", 5 - 1)


def test_manual_flush_closes_the_open_batch_now():
    state = _open(["person"]).state
    command = FlushBatch(batch_id=state.open.batch_id, camera_id="cam")
    outcome = on_flush(command, state, T0 + timedelta(seconds=1), DEPS)
    closed = outcome.publish[0].message
    assert (closed.trigger, closed.closed_at) == ("manual_flush", T0 + timedelta(seconds=1))
    assert outcome.state.open is None


def test_a_flush_of_a_batch_already_closed_changes_nothing():
    state = _open(["person"]).state
    command = FlushBatch(batch_id=state.open.batch_id, camera_id="cam")
    after = on_flush(command, state, T0, DEPS).state
    assert on_flush(command, after, T0, DEPS) == Outcome()
    assert on_flush(FlushBatch(batch_id="batch_other", camera_id="cam"), state, T0, DEPS) == (
        Outcome()
    )


def test_a_timer_flush_is_ignored_when_activity_came_after_it():
    state = _open(["person"]).state
    idle = T0 + timedelta(seconds=30)
    [command] = _timer(state, PendingFlushes(), idle)
    state = on_detections(enriched_image("b", ["dog"], at=idle), state, idle, DEPS).state
    assert on_flush(command, state, idle + timedelta(seconds=1), DEPS) == Outcome()
