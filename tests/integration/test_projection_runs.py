"""The projector applies consecutive events of its busiest types as one run (a statement or
two per run, not per record). A seeded history, with some records delivered a second time
further on, gives the same read models applied in batches of runs as applied one record at
a time."""

from __future__ import annotations

from datetime import UTC, datetime

from bench.seed import history
from projections.runner import Projector
from tests.support import Record, fresh_read_models, read_model_contents


def _records() -> list[Record]:
    """The history's records in order up to a point where each camera has a batch open,
    every 5th one of them delivered again 45 records later."""
    end = datetime(2026, 11, 30, tzinfo=UTC)
    facts = list(history(1500, cameras=3, days=1, seed=11, end=end))
    facts = facts[: len(facts) * 4 // 5]
    records = [
        Record(topic.name, n, topic.encode(message)) for n, (topic, message) in enumerate(facts)
    ]
    again = list(records)
    for n in range(0, len(records), 5):
        again.insert(min(n + 45, len(again)), records[n])
    # As a replay fetches them: a topic's records together (long runs of one type), in
    # their order; offsets renumbered, the duplicates being records of their own.
    again.sort(key=lambda record: record.topic())
    return [Record(r.topic(), n, r.value()) for n, r in enumerate(again)]


def test_runs_and_records_one_at_a_time_give_the_same_read_models(own_stack):
    records = _records()
    with fresh_read_models(own_stack.database_url, "runs", 2) as (in_runs, one_by_one):
        runs = Projector(in_runs, "127.0.0.1:9", consumer_name="runs")
        single = Projector(one_by_one, "127.0.0.1:9", consumer_name="single", run_handlers={})
        for start in range(0, len(records), 500):
            runs.apply(records[start : start + 500])
        for record in records:
            single.apply([record])
        got, want = read_model_contents(in_runs), read_model_contents(one_by_one)
    assert {t: len(rows) for t, rows in got.items()} == {t: len(rows) for t, rows in want.items()}
    assert got == want
    assert len(want["detections"]) >= 1000
    assert any(batch[2] == "aggregating" for batch in want["batches"])
    assert any(event[2] > 1 for event in want["events"])  # events moved on to a new version
