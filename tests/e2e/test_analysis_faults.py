"""Fault injection at the analysis stage: answers that are not valid JSON, out of range or
self-contradictory, and a failing model. Each leads to no event, a failed batch, an audit
record per attempt, and a dead letter holding the raw answer. The analyst is a scripted
fault model on the real Triton, in each of the two contracts the analyst speaks: the CPU
nemotron's (`scripted-analyst`, one HTTP infer) and the vLLM backend's (`vllm-analyst`,
decoupled, over a gRPC stream); every test runs against both, and both must come out the
same. Everything else is real."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from projections.tables import AuditRow, DeadLetterRow, SecurityEventRow
from schemas.topics import BATCHES
from tests.support import drop, new_camera_id, wait_for

FAULT_ENV = {
    "FILE_STABLE_S": "0.3",
    "WATCH_INTERVAL_S": "0.25",
    "RETRY_BASE_DELAY_S": "0.1",
    "RETRY_MAX_DELAY_S": "0.5",
    "BATCH_IDLE_S": "2",
    "BATCH_CHECK_INTERVAL_S": "0.5",
}


@pytest.fixture(scope="module")
def camera_root(tmp_path_factory):
    return tmp_path_factory.mktemp("fault-cameras")


@pytest.fixture(scope="module", params=["scripted-analyst", "vllm-analyst"])
def analyst(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def pipeline(stack, camera_root, analyst):
    env = {"CAMERA_ROOT": str(camera_root), "ANALYST_MODEL": analyst, **FAULT_ENV}
    worker = stack.start_app("worker", name=f"faults-worker-{analyst}", **env)
    projector = stack.start_app("projector", name=f"faults-projector-{analyst}", **env)
    yield
    for process in (projector, worker):
        process.stop()
        stack.apps.remove(process)


def analysis_letters(engine, camera_id: str) -> list[DeadLetterRow]:
    with Session(engine) as session:
        return list(
            session.scalars(
                select(DeadLetterRow).where(
                    DeadLetterRow.camera_id == camera_id, DeadLetterRow.stage == "analysis"
                )
            )
        )


def audits(engine, camera_id: str) -> list[AuditRow]:
    with Session(engine) as session:
        return list(
            session.scalars(
                select(AuditRow).where(AuditRow.camera_id == camera_id).order_by(AuditRow.attempt)
            )
        )


def events(engine, camera_id: str) -> list[SecurityEventRow]:
    with Session(engine) as session:
        return list(
            session.scalars(select(SecurityEventRow).where(SecurityEventRow.camera_id == camera_id))
        )


@pytest.mark.parametrize(
    ("kind", "raw_fragment", "reason"),
    [
        ("notjson", "The risk looks high", "answer is not valid JSON"),
        ("score150", '"risk_score": 150', "risk_score: Input should be less than or equal to 100"),
        ("contradicts", '"risk_score": 10', "risk_level 'critical' contradicts risk_score 10"),
    ],
)
def test_invalid_answer_is_retried_then_dead_lettered_with_the_raw_answer(
    pipeline, camera_root, api_client, engine, samples, kind, raw_fragment, reason
):
    camera_id = new_camera_id(kind)
    drop(camera_root, camera_id, "bus.jpg", samples["bus.jpg"].read_bytes())
    [letter] = wait_for(
        lambda: analysis_letters(engine, camera_id), timeout=120, what="the analysis dead letter"
    )
    assert letter.error_type == "InvalidAnalysis"
    assert reason in letter.error
    assert letter.attempt_count == 3
    assert raw_fragment in letter.context["raw_answer"]
    assert letter.source_topic == BATCHES.name
    assert letter.original["event_type"] == "BatchClosed"
    trail = audits(engine, camera_id)
    assert [(a.attempt, a.outcome) for a in trail] == [(n, "invalid_output") for n in (1, 2, 3)]
    assert all(raw_fragment in a.raw_output for a in trail)
    assert events(engine, camera_id) == []
    batch = api_client.get(f"/api/batches/{letter.original['batch_id']}").json()
    assert (batch["status"], batch["event_id"]) == ("failed", None)


def test_failing_model_is_dead_lettered_without_an_answer(pipeline, camera_root, engine, samples):
    camera_id = new_camera_id("unavailable")
    drop(camera_root, camera_id, "bus.jpg", samples["bus.jpg"].read_bytes())
    [letter] = wait_for(
        lambda: analysis_letters(engine, camera_id), timeout=120, what="the analysis dead letter"
    )
    assert letter.error_type == "AnalystUnavailable"
    assert "scripted failure" in letter.error
    assert letter.context is None
    assert [a.outcome for a in audits(engine, camera_id)] == ["error"] * 3
    assert events(engine, camera_id) == []


def test_valid_scripted_answer_becomes_an_event(pipeline, analyst, camera_root, engine, samples):
    camera_id = new_camera_id("valid")
    drop(camera_root, camera_id, "bus.jpg", samples["bus.jpg"].read_bytes())
    [event] = wait_for(lambda: events(engine, camera_id), timeout=120, what="the event")
    assert (event.risk_score, event.risk_level, event.model_name) == (42, "medium", analyst)
    [audit] = audits(engine, camera_id)
    assert (audit.outcome, audit.audit_id) == ("success", event.audit_id)
    assert audit.tokens_in > 0 and audit.tokens_out > 0
    assert analysis_letters(engine, camera_id) == []
