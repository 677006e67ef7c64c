from datetime import UTC, datetime, timedelta

import pytest

from streams.batching import (
    RECENT_IMAGES,
    BatchLimits,
    CameraBatches,
    PendingFlushes,
    add_detections,
    close_batch,
    due_trigger,
    flush,
)
from tests.factories import enriched_image

T0 = datetime(2026, 6, 1, 22, 0, tzinfo=UTC)
LIMITS = BatchLimits(window_s=90, idle_s=30, max_size=5)


def enriched(image_id: str, labels: list[str], enrich_first: bool = False):
    return enriched_image(image_id, labels, at=T0, enrich_first=enrich_first)


def test_first_detections_open_a_batch():
    result = add_detections(CameraBatches(), enriched("a", ["person", "car"], True), T0, LIMITS)
    assert result.opened is not None
    assert result.added == 2
    batch = result.state.open
    assert batch.batch_id == result.opened.batch_id
    assert (batch.started_at, batch.last_activity_at) == (T0, T0)
    assert [d.label for d in batch.detections] == ["person", "car"]
    assert batch.detections[0].enrichment.description == "Person in red"
    assert batch.detections[0].enrichment_model == "crop-attributes"
    assert batch.detections[1].enrichment is None


def test_image_without_detections_opens_nothing():
    result = add_detections(CameraBatches(), enriched("a", []), T0, LIMITS)
    assert (result.opened, result.added, result.state.open) == (None, 0, None)


def test_later_detections_join_and_refresh_activity():
    state = add_detections(CameraBatches(), enriched("a", ["person"]), T0, LIMITS).state
    later = T0 + timedelta(seconds=20)
    result = add_detections(state, enriched("b", ["dog"]), later, LIMITS)
    assert result.opened is None
    assert result.state.open.batch_id == state.open.batch_id
    assert result.state.open.last_activity_at == later
    assert len(result.state.open.detections) == 2


def test_redelivered_image_is_not_batched_twice_even_after_close():
    state = add_detections(CameraBatches(), enriched("a", ["person"]), T0, LIMITS).state
    assert add_detections(state, enriched("a", ["person"]), T0, LIMITS).duplicate
    closed_state, _ = close_batch(state, "manual_flush", T0)
    assert add_detections(closed_state, enriched("a", ["person"]), T0, LIMITS).duplicate


def test_recent_images_memory_is_bounded():
    state = CameraBatches(recent_images=[f"i{n}" for n in range(RECENT_IMAGES)])
    result = add_detections(state, enriched("new", ["person"]), T0, LIMITS)
    assert len(result.state.recent_images) == RECENT_IMAGES
    assert result.state.recent_images[-1] == "new"
    assert "i0" not in result.state.recent_images


def test_max_size_closes_at_once():
    state = add_detections(CameraBatches(), enriched("a", ["person"] * 3), T0, LIMITS).state
    result = add_detections(state, enriched("b", ["car"] * 2), T0, LIMITS)
    assert result.closed is not None
    assert result.closed.trigger == "max_size"
    assert len(result.closed.detections) == 5
    assert result.state.open is None


@pytest.mark.parametrize(
    ("since_start", "since_activity", "expected"),
    [(10, 10, None), (10, 30, "idle_timeout"), (90, 5, "time_window"), (95, 40, "time_window")],
)
def test_due_trigger(since_start, since_activity, expected):
    state = add_detections(CameraBatches(), enriched("a", ["person"]), T0, LIMITS).state
    batch = state.open.model_copy(
        update={"last_activity_at": T0 + timedelta(seconds=since_start - since_activity)}
    )
    assert due_trigger(batch, T0 + timedelta(seconds=since_start), LIMITS) == expected


def test_flush_only_closes_the_named_open_batch():
    state = add_detections(CameraBatches(), enriched("a", ["person"]), T0, LIMITS).state
    assert flush(state, "batch_other", "manual_flush", T0, LIMITS) == (state, None)
    new_state, closed = flush(state, state.open.batch_id, "manual_flush", T0, LIMITS)
    assert closed.trigger == "manual_flush"
    assert closed.batch_id == state.open.batch_id
    assert new_state.open is None
    assert new_state.recent_images == ["a"]


def test_timer_flush_is_ignored_when_activity_came_after_it():
    state = add_detections(CameraBatches(), enriched("a", ["person"]), T0, LIMITS).state
    batch_id = state.open.batch_id
    now = T0 + timedelta(seconds=31)
    state = add_detections(state, enriched("b", ["person"]), now, LIMITS).state
    assert flush(state, batch_id, "idle_timeout", now, LIMITS)[1] is None
    closed = flush(state, batch_id, "idle_timeout", now + timedelta(seconds=30), LIMITS)[1]
    assert (closed.trigger, len(closed.detections)) == ("idle_timeout", 2)


def test_close_without_open_batch_raises():
    with pytest.raises(ValueError, match="no open batch"):
        close_batch(CameraBatches(), "manual_flush", T0)


def test_pending_flushes_sent_once_until_resend_interval():
    state = add_detections(CameraBatches(), enriched("a", ["person"]), T0, LIMITS).state
    pending = PendingFlushes(resend_after_s=10)
    idle = T0 + timedelta(seconds=31)
    assert pending.due([state.open], idle, LIMITS) == [(state.open, "idle_timeout")]
    assert pending.due([state.open], idle + timedelta(seconds=5), LIMITS) == []
    assert len(pending.due([state.open], idle + timedelta(seconds=11), LIMITS)) == 1
    # Once the batch is no longer open it is forgotten: a batch open again is due at once.
    assert pending.due([], idle + timedelta(seconds=12), LIMITS) == []
    assert pending.sent == {}
    assert len(pending.due([state.open], idle + timedelta(seconds=12), LIMITS)) == 1
