"""`vigil replay` over seeded topics: the API answers every list endpoint (a sample of pages,
with the filters a user uses) and every stats endpoint as it did before the replay."""

from __future__ import annotations

import os
import subprocess
import sys

from fastapi.testclient import TestClient
from sqlalchemy import text

from api.main import create_app
from bench.api import cases
from bench.replay import partition_ends, project
from bench.seed import DETECTOR, publish
from projections.db import make_engine

# Pages further in, and the stats endpoints the benchmark's cases leave out.
MORE = (
    "/api/detections?limit=50&offset=700",
    "/api/detections?limit=1000",
    "/api/events?limit=20&offset=10",
    "/api/enrichment?limit=50&offset=300",
    "/api/batches?limit=10&offset=5",
    "/api/ai-audit?limit=10&offset=3",
    "/api/ai-audit/recommendations?days=7",
    "/api/dlq/jobs/dlq:detection_queue?start=5&limit=5",
    "/api/jobs/types",
)


def _answers(client: TestClient, requests: list[str]) -> dict[str, object]:
    answers = {}
    for request in requests:
        reply = client.get(request)
        assert reply.status_code == 200, (request, reply.text)
        answers[request] = _comparable(reply.json())
    return answers


def _comparable(answer: object) -> object:
    """`answer` without the rows' serial ids (a replay numbers rows in the order it applies
    them, and partitions interleave differently each time), its floats to 12 digits (an
    average summed in another order)."""
    if isinstance(answer, dict):
        return {
            key: _comparable(value)
            for key, value in answer.items()
            if not (isinstance(value, int) and (key == "id" or key.endswith("_id")))
        }
    if isinstance(answer, list):
        return [_comparable(item) for item in answer]
    if isinstance(answer, float):
        return float(f"{answer:.12g}")
    return answer


def test_replay_gives_the_same_answers(own_stack):
    settings = own_stack.settings(detector_model=DETECTOR)
    publish(own_stack.kafka_bootstrap, 3000, cameras=4, days=3, seed=7)
    ends = partition_ends(own_stack.kafka_bootstrap)
    engine = make_engine(own_stack.database_url)
    try:
        project(engine, own_stack.kafka_bootstrap, ends, consumer=settings.projector_group)
        requests = [*cases(engine).values(), *MORE]
        with TestClient(create_app(settings)) as client:
            before = _answers(client, requests)
        replayed = subprocess.run(
            [sys.executable, "-m", "vigil.cli", "replay", "--yes"],
            env={**os.environ, **own_stack.env()},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert replayed.returncode == 0, replayed.stderr
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM detections")).scalar_one() == 0
        project(engine, own_stack.kafka_bootstrap, ends, consumer=settings.projector_group)
        with TestClient(create_app(settings)) as client:
            after = _answers(client, requests)
    finally:
        engine.dispose()
    dead_letters = before["/api/dlq/jobs/dlq:detection_queue?start=5&limit=5"]
    assert before["/api/detections?limit=1000"]["count"] >= 3000
    assert len(before["/api/events?limit=20&offset=10"]["events"]) == 20
    assert len(next(v for v in dead_letters.values() if isinstance(v, list))) == 5
    assert [request for request in requests if before[request] != after[request]] == []
