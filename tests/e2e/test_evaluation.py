"""Evaluations on a broker and a database of this module's own, with the real worker,
projector, runner and API, and the `scripted-analyst` fault model on the real Triton (its
answers are known, so every figure is exact): one event evaluated through the API, a judge
that does not answer JSON, batch audits that complete, abort, and survive a worker killed
mid-way, and an evaluation with Triton out of reach."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from projections.tables import EvaluationRow, SecurityEventRow
from schemas.analysis import ModelCallAudited
from schemas.codec import encode
from schemas.evaluation import EventEvaluated
from schemas.topics import AI_AUDIT, BATCHES
from tests.factories import closed_batch
from tests.support import finished_job, new_camera_id, publish, read_topic, wait_for
from vigil.devservices.procs import free_port

# A call that hangs (a Triton request left behind by a killed worker) is given up and
# retried after 20 s, not the 2 minutes the real LLM is given.
WORKER_ENV = {
    "ANALYST_MODEL": "scripted-analyst",
    "RETRY_BASE_DELAY_S": "0.2",
    "ANALYST_TIMEOUT_S": "20",
}


@pytest.fixture(scope="module")
def services(own_stack, tmp_path_factory):
    env = {**WORKER_ENV, "CAMERA_ROOT": str(tmp_path_factory.mktemp("evaluation-cameras"))}
    processes = {
        "env": env,
        "worker": own_stack.start_app("worker", name="evaluation-worker", **env),
        "projector": own_stack.start_app("projector", name="evaluation-projector"),
        "runner": own_stack.start_app("runner", name="evaluation-runner"),
    }
    yield processes
    for name, process in processes.items():
        if name != "env":
            process.stop()


def analysed_events(own_producer, own_engine, prefix: str, count: int) -> list[int]:
    """`count` closed batches of a new camera (a person and a car each), analysed by the
    pipeline: their event ids, oldest first."""
    camera = new_camera_id(prefix)
    now = datetime.now(UTC)
    batches = [
        closed_batch(
            ["person", "car"],
            at=now - timedelta(minutes=10 * (count - i)),
            camera_id=camera,
            batch_id=f"b_{camera}_{i}",
        )
        for i in range(count)
    ]
    for batch in batches:
        publish(own_producer, BATCHES.name, batch.camera_id, encode(batch))

    def events():
        with Session(own_engine) as session:
            rows = session.scalars(
                select(SecurityEventRow.id)
                .where(SecurityEventRow.camera_id == camera)
                .order_by(SecurityEventRow.started_at)
            ).all()
        return rows if len(rows) == count else None

    return wait_for(events, timeout=120, what=f"{count} events of {camera}")


def audit_of(own_api_client, event_id: int, status: str = "evaluated") -> dict:
    def shown():
        body = own_api_client.get(f"/api/ai-audit/events/{event_id}").json()
        return body if body["status"] == status else None

    return wait_for(shown, timeout=120, what=f"event {event_id}'s evaluation ({status})")


def evaluations_of_job(own_engine, job_id: str) -> list[EvaluationRow]:
    with Session(own_engine) as session:
        return list(session.scalars(select(EvaluationRow).where(EvaluationRow.job_id == job_id)))


def published_for(own_stack, job_id: str) -> Counter:
    """Per batch, how many EventEvaluated the job put on vigil.ai-audit (outside consumer)."""
    return Counter(
        e.batch_id
        for e in read_topic(own_stack.kafka_bootstrap, AI_AUDIT)
        if isinstance(e, EventEvaluated) and e.job_id == job_id
    )


def test_an_event_is_evaluated_through_the_api_with_every_figure_and_its_evidence(
    services, own_stack, own_producer, own_engine, own_api_client
):
    [event_id] = analysed_events(own_producer, own_engine, "evaluate", 1)
    assert own_api_client.get(f"/api/ai-audit/events/{event_id}").json() == {
        "event_id": event_id,
        "audit_id": None,
        "status": "not_evaluated",
        "reason": None,
        "model_contributions": None,
        "quality_scores": None,
        "prompt_suggestions": None,
        "created_at": None,
        "evaluation": None,
    }
    reply = own_api_client.post(f"/api/ai-audit/events/{event_id}/evaluate")
    assert reply.status_code in (200, 202), reply.text
    body = audit_of(own_api_client, event_id)

    assert isinstance(body["audit_id"], int)
    # The scripted analyst answers 42 every time: no change on re-runs or ablations.
    assert body["model_contributions"] == {
        "centernet": 0.0,
        "crop-attributes": 0.0,
        "scripted-analyst": 1.0,
    }
    # Rubric 4, 3, 4, 2 -> mean 3.25 -> 0.5625; "Scripted." names neither object: relevance 0.
    assert body["quality_scores"] == {
        "coherence": 0.5625,
        "relevance": 0.0,
        "consistency": 1.0,
        "overall": 0.5208,
    }
    assert body["prompt_suggestions"] == ["Scripted: give the time."]
    evaluation = body["evaluation"]
    assert evaluation["self_critique"] == "Scripted critique: it does not say what to do."
    assert evaluation["suggestions"] == [
        {"category": "context", "suggestion": "Scripted: give the time."}
    ]
    assert evaluation["evidence"]["consistency"]["repeated_scores"] == [42, 42]
    assert evaluation["evidence"]["relevance"]["evidence_terms"] == ["car", "person"]
    assert evaluation["evidence"]["relevance"]["matched"] == []
    assert evaluation["evidence"]["ablation"]["ablated_scores"] == {
        "centernet": 42,
        "crop-attributes": 42,
    }
    assert (evaluation["failures"], evaluation["prompt_version"]) == ({}, 1)
    # Every LLM call of the evaluation is audited and named by it.
    calls = [
        a
        for a in read_topic(own_stack.kafka_bootstrap, AI_AUDIT)
        if isinstance(a, ModelCallAudited) and a.audit_id in evaluation["audit_ids"]
    ]
    assert len(calls) == 6 == len(evaluation["audit_ids"])
    assert all(
        c.input_summary.startswith(f"evaluation {evaluation['evaluation_id']}, ") for c in calls
    )

    # Evaluated: answered as it is; forced: evaluated again.
    again = own_api_client.post(f"/api/ai-audit/events/{event_id}/evaluate")
    assert (again.status_code, again.json()["audit_id"]) == (200, body["audit_id"])
    forced = own_api_client.post(f"/api/ai-audit/events/{event_id}/evaluate?force=true")
    assert forced.status_code in (200, 202), forced.text
    newer = wait_for(
        lambda: (
            (b := own_api_client.get(f"/api/ai-audit/events/{event_id}").json())["audit_id"]
            != body["audit_id"]
            and b
        ),
        timeout=120,
        what="the forced evaluation",
    )
    assert newer["evaluation"]["evaluation_id"] != evaluation["evaluation_id"]


def test_a_judge_answer_that_is_not_json_leaves_coherence_null(
    services, own_producer, own_engine, own_api_client
):
    [event_id] = analysed_events(own_producer, own_engine, "badjudge", 1)
    reply = own_api_client.post(f"/api/ai-audit/events/{event_id}/evaluate")
    assert reply.status_code in (200, 202), reply.text
    body = audit_of(own_api_client, event_id, status="partial")
    assert body["quality_scores"]["coherence"] is None
    assert body["quality_scores"]["consistency"] == 1.0
    assert body["prompt_suggestions"] is None
    failures = body["evaluation"]["failures"]
    assert set(failures) == {"coherence", "suggestions"}
    assert "answer is not valid JSON" in failures["coherence"]
    assert body["reason"].startswith("coherence: coherence rubric: InvalidAnalysis after 3")


def test_an_unknown_event_answers_404(services, own_api_client):
    assert own_api_client.get("/api/ai-audit/events/999999999").status_code == 404
    assert own_api_client.post("/api/ai-audit/events/999999999/evaluate").status_code == 404


def test_a_batch_audit_evaluates_every_event_once(
    services, own_stack, own_producer, own_engine, own_api_client
):
    ids = analysed_events(own_producer, own_engine, "audit", 5)
    reply = own_api_client.post("/api/ai-audit/batch", json={"event_ids": ids})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert (body["queued_count"], body["message"]) == (5, "Batch audit processing queued")
    job = finished_job(own_engine, body["job_id"], timeout=240)
    assert job.status == "completed", job.error_message
    assert job.result["by_status"] == {"evaluated": 5}
    assert (job.result["queued"], job.result["failed"]) == (5, 0)
    assert len(evaluations_of_job(own_engine, job.job_id)) == 5
    published = published_for(own_stack, job.job_id)
    assert (len(published), set(published.values())) == (5, {1})
    # Evaluated already: nothing is queued again without force.
    again = own_api_client.post("/api/ai-audit/batch", json={"event_ids": ids}).json()
    assert (again["queued_count"], again["job_id"]) == (0, None)


def test_a_batch_audit_can_be_aborted_midway(services, own_producer, own_engine, own_api_client):
    ids = analysed_events(own_producer, own_engine, "slowabort", 5)
    job_id = own_api_client.post("/api/ai-audit/batch", json={"event_ids": ids}).json()["job_id"]
    wait_for(
        lambda: evaluations_of_job(own_engine, job_id),
        timeout=120,
        what="the first evaluation of the job",
    )
    reply = own_api_client.post(f"/api/jobs/{job_id}/abort")
    assert reply.status_code in (200, 202), reply.text
    job = finished_job(own_engine, job_id, timeout=240)
    assert job.status == "aborted"
    assert 1 <= len(evaluations_of_job(own_engine, job_id)) < 5


def test_a_batch_audit_survives_a_worker_kill_without_evaluating_an_event_twice(
    services, own_stack, own_producer, own_engine, own_api_client
):
    ids = analysed_events(own_producer, own_engine, "slowkill", 3)
    job_id = own_api_client.post("/api/ai-audit/batch", json={"event_ids": ids}).json()["job_id"]
    wait_for(
        lambda: evaluations_of_job(own_engine, job_id),
        timeout=120,
        what="the first evaluation of the job",
    )
    services["worker"].kill()
    services["worker"] = own_stack.start_app(
        "worker", name="evaluation-worker-2", **services["env"]
    )
    job = finished_job(own_engine, job_id, timeout=240)
    assert job.status == "completed", job.error_message
    assert job.result["by_status"] == {"evaluated": 3}
    assert len(evaluations_of_job(own_engine, job_id)) == 3
    # An outside consumer sees one evaluation per event.
    published = published_for(own_stack, job_id)
    assert (len(published), set(published.values())) == (3, {1})


def test_with_triton_out_of_reach_the_evaluation_fails_with_the_reason_and_no_number(
    services, own_stack, own_producer, own_engine, own_api_client
):
    [event_id] = analysed_events(own_producer, own_engine, "nomodel", 1)
    services["worker"].stop()
    services["worker"] = own_stack.start_app(
        "worker",
        name="evaluation-worker-no-triton",
        **{**services["env"], "TRITON_URL": f"127.0.0.1:{free_port()}", "RETRY_MAX_ATTEMPTS": "2"},
    )
    try:
        reply = own_api_client.post(f"/api/ai-audit/events/{event_id}/evaluate")
        assert reply.status_code in (200, 202), reply.text
        body = audit_of(own_api_client, event_id, status="failed")
    finally:
        services["worker"].stop()
        services["worker"] = own_stack.start_app(
            "worker", name="evaluation-worker-3", **services["env"]
        )
    assert body["quality_scores"] == {
        "coherence": None,
        "relevance": None,
        "consistency": None,
        "overall": None,
    }
    assert body["model_contributions"] is None and body["prompt_suggestions"] is None
    assert "AnalystUnavailable" in body["evaluation"]["failures"]["consistency"]
    assert body["evaluation"]["failures"]["coherence"].startswith("not attempted: ")


def test_a_prompt_test_compares_the_current_and_a_modified_configuration_and_writes_no_event(
    services, own_stack, own_producer, own_engine, own_api_client
):
    [event_id] = analysed_events(own_producer, own_engine, "prompttest", 1)
    config = {"system_prompt": "Be brief.", "temperature": 0.2, "max_tokens": 256}
    reply = own_api_client.post(
        "/api/ai-audit/prompts/test",
        json={"model": "nemotron", "event_id": event_id, "config": config},
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    current, modified = body["current_result"], body["modified_result"]
    assert (body["event_id"], body["model"], body["status"]) == (event_id, "nemotron", "completed")
    assert (current["risk_score"], current["risk_level"], current["summary"]) == (
        42,
        "medium",
        "Scripted.",
    )
    assert (current["prompt_version"], modified["prompt_version"]) == (1, None)
    assert modified["risk_score"] == 42 and modified["error"] is None
    assert body["comparison"] == {
        "risk_score_diff": 0,
        "latency_diff_ms": round(modified["latency_ms"] - current["latency_ms"], 1),
    }
    assert own_api_client.get(f"/api/ai-audit/prompts/test/{body['test_id']}").json() == body
    calls = [
        a
        for a in read_topic(own_stack.kafka_bootstrap, AI_AUDIT)
        if isinstance(a, ModelCallAudited) and f"prompt test {body['test_id']}" in a.input_summary
    ]
    assert [(c.input_summary.split(":")[0], c.prompt_version) for c in calls] == [
        (f"prompt test {body['test_id']}, current", 1),
        (f"prompt test {body['test_id']}, modified", None),
    ]

    custom = own_api_client.post(
        "/api/ai-audit/test-prompt",
        json={"event_id": event_id, "custom_prompt": "Focus on vehicles.", "temperature": 0.0},
    )
    assert custom.status_code == 200, custom.text
    result = custom.json()
    assert result["result"]["risk_score"] == 42 and result["result"]["reasoning"] == "Scripted."
    assert result["tokens_used"] == result["result"]["tokens_used"] > 0
    assert result["latency_ms"] > 0
    # Neither test wrote a security event or a prompt version.
    events = own_api_client.get(f"/api/events/{event_id}").json()
    assert [a["analysis_version"] for a in events["analyses"]] == [1]
    history = own_api_client.get("/api/ai-audit/prompts/history/nemotron").json()
    assert history["total"] == 1
