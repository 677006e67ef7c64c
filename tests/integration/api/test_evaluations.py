"""The evaluation read side on a database of this module's own: an event's audit, and the
window aggregates (stats, leaderboard, recommendations) computed exactly on known
evaluations; the batch endpoint's choice of events; the bounds of every parameter."""

from __future__ import annotations

import statistics
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from projections.tables import AuditRow, SecurityEventRow
from schemas.jobs import JobRequested
from schemas.prompts import DEFAULT_PROMPTS
from schemas.topics import JOBS
from tests.factories import apply, audited, closed_batch, evaluated, recorded
from tests.support import new_camera_id, read_topic


def _at() -> datetime:
    """A moment of today (UTC) a minute ago, or just after midnight."""
    now = datetime.now(UTC)
    return max(now - timedelta(minutes=1), now.replace(hour=0, minute=0, second=1))


@pytest.fixture(scope="module")
def seeded(own_engine):
    """Events A-E of one camera today and F 20 days ago; evaluations: A twice (the newer
    counts), B, C, D partial, E failed, F (outside a 7-day window); two audited calls."""
    camera, at = new_camera_id("evals"), _at()
    events = {}
    for name in "ABCDE":
        batch = closed_batch(["person"], at=at, camera_id=camera, batch_id=f"b_{camera}_{name}")
        events[name] = recorded(batch, 70, at=at)
    old = at - timedelta(days=20)
    f_batch = closed_batch(["car"], at=old, camera_id=camera, batch_id=f"b_{camera}_F")
    events["F"] = recorded(f_batch, 20, at=old)
    time_of_day = [("context", "Add time of day.")]
    evaluations = [
        evaluated(
            events["A"],
            at - timedelta(seconds=30),
            quality=(0.1, 0.1, 0.1),
            contributions={"centernet": 0.9, "crop-attributes": 0.0, "nemotron": 0.1},
        ),
        evaluated(
            events["A"],
            at,
            quality=(1.0, 0.5, 0.75),
            contributions={"centernet": 0.1, "crop-attributes": 0.2, "nemotron": 0.7},
            suggestions=time_of_day,
        ),
        evaluated(
            events["B"],
            at,
            quality=(0.9, 0.6, 0.5),
            contributions={"centernet": 0.2, "crop-attributes": 0.0, "nemotron": 0.8},
            suggestions=[("context", "  add TIME of day ")],
        ),
        evaluated(
            events["C"],
            at,
            quality=(0.8, 1.0, 0.25),
            contributions={"centernet": 0.3, "crop-attributes": 0.1, "nemotron": 0.6},
            suggestions=[("format", "Use bullet points.")],
        ),
        evaluated(
            events["D"],
            at,
            quality=(0.7, 0.2, None),
            contributions={"centernet": 0.4, "crop-attributes": 0.0, "nemotron": 0.6},
            status="partial",
        ),
        evaluated(events["E"], at, quality=(None, None, None), contributions=None, status="failed"),
        evaluated(
            events["F"],
            old,
            quality=(0.5, 0.5, 0.5),
            contributions={"centernet": 1.0, "crop-attributes": 0.0, "nemotron": 0.0},
        ),
    ]
    calls = [
        audited(camera, "nemotron", "success", at),
        audited(camera, "nemotron", "success", at, latency_ms=1150.0, tokens_in=80),
        audited(camera, "nemotron", "error", at, tokens_in=None, tokens_out=None),
    ]
    apply(own_engine, DEFAULT_PROMPTS["nemotron"], *events.values(), *evaluations, *calls)
    with Session(own_engine) as session:
        ids = dict(session.execute(select(SecurityEventRow.batch_id, SecurityEventRow.id)).all())
    return {
        "camera": camera,
        "ids": {name: ids[e.batch_id] for name, e in events.items()},
        "evaluations": evaluations,
    }


OVERALL = {"A": 0.75, "B": 0.6667, "C": 0.6833, "D": 0.45}


def test_an_events_audit_is_its_newest_evaluation(own_api_client, seeded):
    reply = own_api_client.get(f"/api/ai-audit/events/{seeded['ids']['A']}")
    assert reply.status_code == 200, reply.text
    body = reply.json()
    newest = seeded["evaluations"][1]
    assert body["status"] == "evaluated" and body["reason"] is None
    assert body["evaluation"]["evaluation_id"] == newest.evaluation_id
    assert body["model_contributions"] == {
        "centernet": 0.1,
        "crop-attributes": 0.2,
        "nemotron": 0.7,
    }
    assert body["quality_scores"] == {
        "coherence": 0.75,
        "relevance": 0.5,
        "consistency": 1.0,
        "overall": 0.75,
    }
    assert body["prompt_suggestions"] == ["Add time of day."]
    assert body["created_at"] == newest.occurred_at.isoformat().replace("+00:00", "Z")
    older = own_api_client.get(f"/api/ai-audit/events/{seeded['ids']['B']}").json()
    assert older["audit_id"] != body["audit_id"] and isinstance(body["audit_id"], int)


def test_a_failed_evaluation_is_shown_failed_with_its_reason_and_no_number(own_api_client, seeded):
    body = own_api_client.get(f"/api/ai-audit/events/{seeded['ids']['E']}").json()
    assert (body["status"], body["reason"]) == ("failed", "coherence: answer is not valid JSON")
    assert body["quality_scores"] == dict.fromkeys(
        ("coherence", "relevance", "consistency", "overall")
    )
    assert body["model_contributions"] is None


def test_the_leaderboard_ranks_models_by_mean_measured_contribution(own_api_client, seeded):
    reply = own_api_client.get("/api/ai-audit/leaderboard", params={"days": 7})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert (body["period_days"], body["total_events"]) == (7, 4)  # A (newest), B, C, D
    overall = [OVERALL[n] for n in "ABCD"]
    detector = [0.1, 0.2, 0.3, 0.4]
    entries = {e["model_name"]: e for e in body["entries"]}
    assert [e["model_name"] for e in body["entries"]] == [
        "nemotron",
        "centernet",
        "crop-attributes",
    ]
    assert entries["centernet"] == {
        "model_name": "centernet",
        "contribution_rate": 0.25,
        "total_events": 4,
        "avg_quality_score": round(sum(overall) / 4, 4),
        "quality_correlation": round(statistics.correlation(detector, overall), 4),
    }
    assert entries["nemotron"]["contribution_rate"] == 0.675
    assert entries["crop-attributes"]["contribution_rate"] == 0.075
    # Over 30 days F counts too.
    month = own_api_client.get("/api/ai-audit/leaderboard", params={"days": 30}).json()
    assert month["total_events"] == 5


def test_recommendations_group_suggestions_by_category_and_wording(own_api_client, seeded):
    body = own_api_client.get("/api/ai-audit/recommendations").json()
    assert (body["period_days"], body["total_events_analyzed"]) == (7, 3)  # A, B, C
    outside_ab = (OVERALL["C"] + OVERALL["D"]) / 2
    outside_c = (OVERALL["A"] + OVERALL["B"] + OVERALL["D"]) / 3
    assert body["recommendations"] == [
        {
            "model": "nemotron",
            "priority": "high",  # 2 of 3 evaluated events
            "category": "context",
            "suggestion": "Add time of day.",
            "impact_estimate": round(outside_ab - (OVERALL["A"] + OVERALL["B"]) / 2, 4),
            "affected_events": 2,
        },
        {
            "model": "nemotron",
            "priority": "high",  # 1 of 3
            "category": "format",
            "suggestion": "Use bullet points.",
            "impact_estimate": round(outside_c - OVERALL["C"], 4),
            "affected_events": 1,
        },
    ]


def test_stats_aggregate_the_window_of_a_camera(own_api_client, seeded):
    reply = own_api_client.get(
        "/api/ai-audit/stats", params={"days": 7, "camera_id": seeded["camera"]}
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert (body["total_events"], body["events_today"], body["evaluated_events"]) == (5, 5, 4)
    assert body["quality_scores"] == {
        "avg_coherence": 0.5,
        "avg_relevance": 0.575,
        "avg_consistency": 0.85,
    }
    assert body["by_model"]["nemotron"] == {
        "events": 2,  # the successful calls
        "avg_latency_ms": 1000.0,
        "contribution_rate": 0.675,
    }
    assert body["by_model"]["centernet"] == {
        "events": 0,
        "avg_latency_ms": None,
        "contribution_rate": 0.25,
    }
    assert body["token_usage"] == {
        "total_input": 200,
        "total_output": 60,
        "today_input": 200,
        "today_output": 60,
    }
    assert body["period_days"] == 7
    other = own_api_client.get("/api/ai-audit/stats", params={"camera_id": "nobody"}).json()
    assert (other["total_events"], other["evaluated_events"], other["by_model"]) == (0, 0, {})


@pytest.mark.parametrize("path", ["stats", "leaderboard", "recommendations"])
@pytest.mark.parametrize("days", [0, 91, "x"])
def test_days_outside_1_to_90_answer_422(own_api_client, path, days):
    reply = own_api_client.get(f"/api/ai-audit/{path}", params={"days": days})
    assert reply.status_code == 422
    assert reply.json()["detail"][0]["loc"] == ["query", "days"]


@pytest.mark.parametrize("event_id", ["0", "9223372036854775808", "x"])
def test_an_event_id_out_of_range_answers_422(own_api_client, event_id):
    assert own_api_client.get(f"/api/ai-audit/events/{event_id}").status_code == 422
    assert own_api_client.post(f"/api/ai-audit/events/{event_id}/evaluate").status_code == 422


def test_a_batch_audit_queues_the_chosen_events_not_evaluated_yet(
    own_stack, own_api_client, seeded
):
    ids = seeded["ids"]
    reply = own_api_client.post(
        "/api/ai-audit/batch",
        json={"event_ids": [ids["A"], ids["E"]], "camera_id": seeded["camera"]},
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    # The union of A, E and the camera's events, less A-D and F (evaluated or partial).
    assert (body["queued_count"], body["message"]) == (1, "Batch audit processing queued")
    [job] = [
        e
        for e in read_topic(own_stack.kafka_bootstrap, JOBS)
        if isinstance(e, JobRequested) and e.job_id == body["job_id"]
    ]
    assert job.job_type == "batch_audit"
    assert job.params == {"event_ids": [ids["E"]], "force": False}
    forced = own_api_client.post(
        "/api/ai-audit/batch", json={"camera_id": seeded["camera"], "force": True, "limit": 3}
    ).json()
    assert forced["queued_count"] == 3


@pytest.mark.parametrize(
    "body",
    [{}, {"limit": 5}, {"event_ids": [1], "limit": 0}, {"min_risk_score": 101}, {"bogus": 1}],
)
def test_a_batch_audit_without_a_choice_or_with_bad_bounds_answers_422(own_api_client, body):
    assert own_api_client.post("/api/ai-audit/batch", json=body).status_code == 422


def test_a_batch_audit_of_unknown_events_answers_404(own_api_client, seeded):
    reply = own_api_client.post(
        "/api/ai-audit/batch", json={"event_ids": [seeded["ids"]["A"], 987654321]}
    )
    assert reply.status_code == 404
    assert reply.json()["detail"] == "events not found: [987654321]"


def _audited_calls(engine) -> int:
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(AuditRow)) or 0


CONFIG = {"system_prompt": "Be brief.", "temperature": 0.2, "max_tokens": 256}


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("prompts/test", {"event_id": 987654321, "config": CONFIG}, 404),
        ("prompts/test", {"model": "florence-9", "event_id": 1, "config": CONFIG}, 404),
        ("prompts/test", {"event_id": 1, "config": {**CONFIG, "temperature": 2.5}}, 422),
        ("prompts/test", {"event_id": 1, "config": {**CONFIG, "system_prompt": ""}}, 422),
        ("prompts/test", {"event_id": 1, "days": 7, "config": CONFIG}, 422),
        ("prompts/test", {"config": CONFIG}, 422),
        ("prompts/test", {"event_id": 1, "camera_id": "x", "config": CONFIG}, 422),
        ("prompts/test", {"days": 91, "config": CONFIG}, 422),
        ("test-prompt", {"event_id": 987654321, "custom_prompt": "Look."}, 404),
        ("test-prompt", {"event_id": 1, "custom_prompt": "   "}, 422),
        ("test-prompt", {"event_id": 1, "custom_prompt": "Look.", "temperature": -1}, 422),
        ("test-prompt", {"event_id": 1, "custom_prompt": "Look.", "max_tokens": 0}, 422),
        ("test-prompt", {"event_id": 1, "custom_prompt": "Look.", "model": "nope"}, 404),
    ],
)
def test_a_bad_prompt_test_is_refused_before_any_model_is_called(
    own_api_client, own_engine, seeded, path, body, status
):
    before = _audited_calls(own_engine)
    reply = own_api_client.post(f"/api/ai-audit/{path}", json=body)
    assert reply.status_code == status, reply.text
    assert _audited_calls(own_engine) == before


def test_a_prompt_test_over_days_starts_a_prompt_replay_job(own_stack, own_api_client, seeded):
    reply = own_api_client.post(
        "/api/ai-audit/prompts/test",
        json={"days": 14, "camera_id": seeded["camera"], "config": CONFIG},
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert (body["status"], body["days"], body["camera_id"]) == ("pending", 14, seeded["camera"])
    [job] = [
        e
        for e in read_topic(own_stack.kafka_bootstrap, JOBS)
        if isinstance(e, JobRequested) and e.job_id == body["job_id"]
    ]
    assert (job.job_type, job.params) == (
        "prompt_replay",
        {"days": 14, "camera_id": seeded["camera"], "model": "nemotron", "candidate": CONFIG},
    )


def test_an_unknown_prompt_test_answers_404(own_api_client):
    assert own_api_client.get("/api/ai-audit/prompts/test/nope").status_code == 404


def test_an_event_whose_batch_left_the_topic_cannot_be_evaluated_or_tested(
    own_api_client, own_engine, seeded
):
    """The seeded events' batches were never put on this module's batches topic."""
    event_id = seeded["ids"]["E"]
    before = _audited_calls(own_engine)
    reply = own_api_client.post(f"/api/ai-audit/events/{event_id}/evaluate")
    assert reply.status_code == 409, reply.text
    assert reply.json()["detail"].endswith(
        "is no longer on the batches topic, so its analysis cannot be run again"
    )
    tested = own_api_client.post(
        "/api/ai-audit/prompts/test", json={"event_id": event_id, "config": CONFIG}
    )
    assert tested.status_code == 409, tested.text
    assert _audited_calls(own_engine) == before


def test_an_evaluated_event_is_answered_as_it_is_without_a_model_call(own_api_client, seeded):
    event_id = seeded["ids"]["A"]
    reply = own_api_client.post(f"/api/ai-audit/events/{event_id}/evaluate")
    assert reply.status_code == 200, reply.text
    assert reply.json() == own_api_client.get(f"/api/ai-audit/events/{event_id}").json()
