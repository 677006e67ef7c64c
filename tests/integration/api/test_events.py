"""GET /api/events and /api/events/{id} against the real Postgres."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.factories import (
    apply,
    closed,
    detections,
    enriched,
    enrichment,
    members,
    opened,
    recorded,
    reprocessed,
)
from tests.support import new_camera_id

BASE = datetime(2026, 4, 1, 8, 0, tzinfo=UTC)
EVENT_KEYS = {
    "id",
    "thumbnail_url",
    "batch_id",
    "camera_id",
    "risk_score",
    "risk_level",
    "summary",
    "reasoning",
    "analysis_version",
    "started_at",
    "ended_at",
    "detection_count",
    "model_name",
    "model_version",
    "prompt_version",
    "created_at",
    "updated_at",
}


@pytest.fixture(scope="module")
def seeded(engine) -> dict:
    """Camera A: a reanalysed 3-detection batch (low, then high) and a critical one an hour
    later; camera B: a medium one, and an event whose batch is not projected yet."""
    cam_a, cam_b = new_camera_id("evt"), new_camera_id("evt")
    a1 = detections(cam_a, ["person", "car"], BASE)
    a2 = detections(cam_a, ["person"], BASE + timedelta(seconds=10))
    a3 = detections(cam_a, ["dog"], BASE + timedelta(hours=2))
    b1 = detections(cam_b, ["person"], BASE + timedelta(hours=3))
    minute = BASE + timedelta(minutes=1)
    enrichments = [
        enriched(a1, [enrichment(0, "person", 0.9), enrichment(1, "vehicle", 0.8)], minute, 1200),
        enriched(a2, [enrichment(0, "person", 0.7)], minute, 900),
        reprocessed(a2, enrichment(0, "person", 0.95, "again"), BASE + timedelta(hours=1), 1500),
    ]
    first = closed(opened(cam_a, BASE), members(a1, a2), "idle_timeout", 60)
    second = closed(opened(cam_a, BASE + timedelta(hours=2)), members(a3), "max_size", 30)
    third = closed(opened(cam_b, BASE + timedelta(hours=3)), members(b1), "time_window", 90)
    unprojected = closed(opened(cam_b, BASE + timedelta(hours=4)), [], "manual_flush", 10)
    apply(engine, a1, a2, a3, b1, *enrichments, first, second, third)
    apply(engine, recorded(first, 20, version=1), recorded(first, 70, version=2))
    apply(engine, recorded(second, 90), recorded(third, 45), recorded(unprojected, 10))
    return {
        "cameras": (cam_a, cam_b),
        "images": (a1, a2),
        "batches": (first, second, third, unprojected),
        "enrichments": enrichments,
    }


def _list(api_client, **params) -> dict:
    reply = api_client.get("/api/events", params=params)
    assert reply.status_code == 200, reply.text
    return reply.json()


def _event_of(api_client, camera_id: str, batch_id: str) -> dict:
    [event] = [
        e for e in _list(api_client, camera_id=camera_id)["events"] if e["batch_id"] == batch_id
    ]
    return event


def test_list_filters_by_camera_newest_first(api_client, seeded):
    first, second, _, _ = seeded["batches"]
    body = _list(api_client, camera_id=seeded["cameras"][0])
    assert (body["count"], body["limit"], body["offset"]) == (2, 50, 0)
    assert [e["batch_id"] for e in body["events"]] == [second.batch_id, first.batch_id]
    assert set(body["events"][0]) == EVENT_KEYS


def test_list_shows_the_latest_analysis(api_client, seeded):
    first = seeded["batches"][0]
    event = _event_of(api_client, seeded["cameras"][0], first.batch_id)
    assert (event["analysis_version"], event["risk_score"], event["risk_level"]) == (2, 70, "high")
    assert event["summary"] == f"summary v2 of {first.batch_id}"
    assert event["detection_count"] == 3
    assert event["started_at"].startswith("2026-04-01T08:00:00")
    assert event["ended_at"].startswith("2026-04-01T08:01:00")


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"risk_level": "high"}, [0]),
        ({"risk_level": "critical"}, [1]),
        ({"risk_level": "low"}, []),
        ({"min_risk": 80}, [1]),
        ({"min_risk": 70}, [1, 0]),
        ({"min_risk": 0}, [1, 0]),
        ({"start_date": "2026-04-01T09:00:00Z"}, [1]),
        ({"end_date": "2026-04-01T09:00:00Z"}, [0]),
        ({"start_date": "2026-04-01T08:00:00Z", "end_date": "2026-04-01T10:00:00Z"}, [1, 0]),
    ],
)
def test_list_filters(api_client, seeded, params, expected):
    batches = seeded["batches"]
    body = _list(api_client, camera_id=seeded["cameras"][0], **params)
    assert [e["batch_id"] for e in body["events"]] == [batches[i].batch_id for i in expected]
    assert body["count"] == len(expected)


def test_list_paginates_with_total_count(api_client, seeded):
    camera = seeded["cameras"][0]
    first = _list(api_client, camera_id=camera, limit=1, offset=0)
    second = _list(api_client, camera_id=camera, limit=1, offset=1)
    beyond = _list(api_client, camera_id=camera, limit=1, offset=2)
    assert (first["count"], second["count"], beyond["count"]) == (2, 2, 2)
    assert (first["limit"], second["offset"]) == (1, 1)
    assert first["events"][0]["id"] != second["events"][0]["id"]
    assert beyond["events"] == []


def test_read_event_with_batch_detections_enrichments_and_analyses(api_client, seeded):
    first = seeded["batches"][0]
    a1, a2 = seeded["images"]
    listed = _event_of(api_client, seeded["cameras"][0], first.batch_id)
    reply = api_client.get(f"/api/events/{listed['id']}")
    assert reply.status_code == 200, reply.text
    event = reply.json()
    assert {k: event[k] for k in EVENT_KEYS} == listed

    assert event["batch"] == {
        "batch_id": first.batch_id,
        "camera_id": first.camera_id,
        "status": "completed",
        "detection_count": 3,
        "started_at": "2026-04-01T08:00:00Z",
        "completed_at": "2026-04-01T08:01:00Z",
        "event_id": listed["id"],
        "trigger": "idle_timeout",
    }

    found = [(d["image_id"], d["label"]) for d in event["detections"]]
    assert found == [(a1.image_id, "person"), (a1.image_id, "car"), (a2.image_id, "person")]
    detections = api_client.get("/api/detections", params={"camera_id": first.camera_id}).json()
    by_id = {d["id"]: d for d in detections["detections"]}
    for detection in event["detections"]:
        assert {k: v for k, v in detection.items() if k != "enrichments"} == by_id[detection["id"]]
        for e in detection["enrichments"]:
            assert (e["detection_id"], e["event_id"]) == (detection["id"], listed["id"])
    confidences = [[e["confidence"] for e in d["enrichments"]] for d in event["detections"]]
    assert confidences == [[0.9], [0.8], [0.95, 0.7]]  # newest first: the reprocessed one

    assert [
        (a["analysis_version"], a["risk_score"], a["risk_level"]) for a in event["analyses"]
    ] == [
        (2, 70, "high"),
        (1, 20, "low"),
    ]
    assert set(event["analyses"][0]) == {
        "analysis_version",
        "risk_score",
        "risk_level",
        "summary",
        "reasoning",
        "prompt_version",
        "audit_id",
        "created_at",
    }


def test_read_event_whose_batch_is_not_projected_yet(api_client, seeded):
    unprojected = seeded["batches"][3]
    listed = _event_of(api_client, seeded["cameras"][1], unprojected.batch_id)
    event = api_client.get(f"/api/events/{listed['id']}").json()
    assert (event["batch"], event["detections"], len(event["analyses"])) == (None, [], 1)


def test_read_event_not_found(api_client):
    reply = api_client.get("/api/events/987654321")
    assert reply.status_code == 404
    assert reply.json() == {"detail": "event 987654321 not found", "error": "NotFound"}


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"limit": 0}, "limit", "greater than or equal to 1"),
        ({"limit": 1001}, "limit", "less than or equal to 1000"),
        ({"offset": -1}, "offset", "greater than or equal to 0"),
        ({"risk_level": "severe"}, "risk_level", "'low', 'medium', 'high' or 'critical'"),
        ({"min_risk": 101}, "min_risk", "less than or equal to 100"),
        ({"min_risk": -1}, "min_risk", "greater than or equal to 0"),
        ({"start_date": "yesterday"}, "start_date", "valid datetime"),
        ({"end_date": "2026-13-45"}, "end_date", "valid datetime"),
        (
            {"start_date": "2026-04-02T00:00:00Z", "end_date": "2026-04-01T00:00:00Z"},
            "start_date",
            "is after end_date",
        ),
    ],
)
def test_list_rejects_bad_parameters(api_client, params, field, message):
    reply = api_client.get("/api/events", params=params)
    assert reply.status_code == 422
    [error] = reply.json()["detail"]
    assert error["loc"] == ["query", field]
    assert message in error["msg"]


def test_read_event_rejects_non_integer_id(api_client):
    reply = api_client.get("/api/events/abc")
    assert reply.status_code == 422
    assert reply.json()["detail"][0]["loc"] == ["path", "event_id"]
