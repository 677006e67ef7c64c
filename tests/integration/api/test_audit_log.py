"""GET /api/ai-audit: the audit log of model calls, from the read model, with its filters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.factories import apply, audited
from tests.support import new_camera_id

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def calls(engine):
    camera = new_camera_id("audit")
    made = [
        audited(camera, "nemotron", "success", T0),
        audited(camera, "nemotron", "error", T0 + timedelta(minutes=1)),
        audited(camera, "florence-2", "invalid_output", T0 + timedelta(minutes=2)),
    ]
    apply(engine, *made)
    return camera, made


def ids(reply) -> list[str]:
    assert reply.status_code == 200, reply.text
    return [a["audit_id"] for a in reply.json()["audits"]]


def test_the_log_lists_a_cameras_calls_newest_first_with_every_field(api_client, calls):
    camera, made = calls
    reply = api_client.get("/api/ai-audit", params={"camera_id": camera})
    assert ids(reply) == [c.audit_id for c in reversed(made)]
    assert (reply.json()["count"], reply.json()["limit"], reply.json()["offset"]) == (3, 50, 0)
    first = reply.json()["audits"][-1]
    expected = made[0]
    assert {k: first[k] for k in ("model_name", "outcome", "prompt_version", "tokens_in")} == {
        "model_name": "nemotron",
        "outcome": "success",
        "prompt_version": 1,
        "tokens_in": 120,
    }
    assert (first["raw_output"], first["latency_ms"], first["batch_id"]) == (
        expected.raw_output,
        850.0,
        expected.batch_id,
    )
    assert first["created_at"] == T0.isoformat().replace("+00:00", "Z")


@pytest.mark.parametrize(
    ("params", "picked"),
    [
        ({"model": "nemotron"}, [1, 0]),
        ({"outcome": "error"}, [1]),
        ({"start_date": (T0 + timedelta(seconds=30)).isoformat()}, [2, 1]),
        ({"end_date": (T0 + timedelta(seconds=30)).isoformat()}, [0]),
        ({"limit": 1, "offset": 1}, [1]),
    ],
)
def test_the_log_filters(api_client, calls, params, picked):
    camera, made = calls
    reply = api_client.get("/api/ai-audit", params={"camera_id": camera, **params})
    assert ids(reply) == [made[i].audit_id for i in picked]


@pytest.mark.parametrize(
    "params", [{"outcome": "maybe"}, {"limit": 0}, {"limit": 1001}, {"model": ""}]
)
def test_a_bad_filter_is_422(api_client, params):
    assert api_client.get("/api/ai-audit", params=params).status_code == 422
