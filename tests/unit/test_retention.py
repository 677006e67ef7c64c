"""Which facts a cleanup's cut-off makes the projector skip."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from projections.retention import Cutoff, Retention
from schemas.topics import DLQ_DETECTION
from tests.factories import camera_history, job_requested

CUTOFF = datetime(2026, 6, 1, tzinfo=UTC)
BEFORE, AFTER = CUTOFF - timedelta(hours=1), CUTOFF + timedelta(hours=1)


def retention(camera_id: str | None) -> Retention:
    return Retention((Cutoff(camera_id, CUTOFF, CUTOFF + timedelta(days=30)),))


def data_facts(camera_id: str, at: datetime) -> list:
    """A history's facts that write read-model rows of their own, not the dead letters."""
    return [e for topic, e in camera_history(camera_id, at, "/c/x.jpg") if topic != DLQ_DETECTION]


def test_every_data_fact_before_the_cutoff_of_its_camera_is_forgotten():
    facts = data_facts("front", BEFORE - timedelta(minutes=5))
    assert len(facts) == 10
    assert [retention("front").forgets(e) for e in facts] == [True] * 10
    assert [retention(None).forgets(e) for e in facts] == [True] * 10


def test_facts_after_the_cutoff_or_of_another_camera_are_kept():
    assert not any(retention("front").forgets(e) for e in data_facts("front", AFTER))
    assert not any(retention("front").forgets(e) for e in data_facts("back", BEFORE))


def test_a_batch_is_judged_by_each_facts_own_time():
    """A batch opened before the cut-off and closed after it keeps its close (and so its row)."""
    opened, batched, closed = data_facts("front", CUTOFF - timedelta(seconds=10))[3:6]
    assert closed.closed_at > CUTOFF > opened.started_at
    assert [retention("front").forgets(e) for e in (opened, batched, closed)] == [
        True,
        True,
        False,
    ]


def test_dead_letters_and_jobs_are_never_skipped():
    letters = [
        e for topic, e in camera_history("front", BEFORE, "/c/x.jpg") if topic == DLQ_DETECTION
    ]
    assert len(letters) == 3
    assert not any(retention(None).forgets(e) for e in letters)
    assert not retention(None).forgets(job_requested("cleanup", at=BEFORE))


def test_no_cutoff_forgets_nothing():
    assert not any(Retention().forgets(e) for e in data_facts("front", BEFORE))
