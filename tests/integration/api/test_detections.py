"""GET /api/detections and /api/detections/{id} against the real Postgres."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from projections.handlers import detections_produced
from tests.factories import detections_event, image_event
from tests.support import new_camera_id

BASE = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def seeded(engine) -> dict:
    """Two cameras, four images an hour apart, with known labels and confidences."""
    cameras = [new_camera_id("api"), new_camera_id("api")]
    plan = [
        (cameras[0], 0, ["person", "bus"]),
        (cameras[0], 1, ["person"]),
        (cameras[1], 2, ["car", "person", "dog"]),
        (cameras[1], 3, []),
    ]
    with Session(engine) as session, session.begin():
        for camera_id, hour, labels in plan:
            image = image_event(camera_id, digest=f"{hour + 7:064x}")
            event = detections_event(image, labels).model_copy(
                update={"occurred_at": BASE + timedelta(hours=hour)}
            )
            detections_produced(event, session)
    return {"cameras": cameras}


def _list(api_client, **params) -> dict:
    reply = api_client.get("/api/detections", params=params)
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_list_filters_by_camera_newest_first(api_client, seeded):
    body = _list(api_client, camera_id=seeded["cameras"][0])
    assert body["count"] == 3
    assert (body["limit"], body["offset"]) == (50, 0)
    times = [d["detected_at"] for d in body["detections"]]
    assert times == sorted(times, reverse=True)
    assert [d["label"] for d in body["detections"]] == ["person", "bus", "person"]


def test_list_filters_by_label_and_confidence(api_client, seeded):
    camera = seeded["cameras"][1]
    assert [d["label"] for d in _list(api_client, camera_id=camera, label="dog")["detections"]] == [
        "dog"
    ]
    # confidences are 0.9, 0.8, 0.7 by position
    strong = _list(api_client, camera_id=camera, min_confidence=0.8)["detections"]
    assert sorted(d["label"] for d in strong) == ["car", "person"]


def test_list_filters_by_date_range(api_client, seeded):
    camera = seeded["cameras"][0]
    body = _list(
        api_client,
        camera_id=camera,
        start_date=(BASE + timedelta(minutes=30)).isoformat(),
        end_date=(BASE + timedelta(hours=5)).isoformat(),
    )
    assert body["count"] == 1
    assert body["detections"][0]["detected_at"].startswith("2026-03-01T13:00:00")


def test_list_paginates_with_total_count(api_client, seeded):
    camera = seeded["cameras"][1]
    first = _list(api_client, camera_id=camera, limit=2, offset=0)
    rest = _list(api_client, camera_id=camera, limit=2, offset=2)
    assert (first["count"], rest["count"]) == (3, 3)
    assert len(first["detections"]) == 2 and len(rest["detections"]) == 1
    ids = [d["id"] for d in first["detections"] + rest["detections"]]
    assert len(set(ids)) == 3


def test_read_detection_by_id(api_client, seeded):
    listed = _list(api_client, camera_id=seeded["cameras"][0], label="bus")["detections"][0]
    reply = api_client.get(f"/api/detections/{listed['id']}")
    assert reply.status_code == 200
    assert reply.json() == listed
    assert set(listed["bbox"]) == {"x1", "y1", "x2", "y2"}


def test_read_detection_not_found(api_client):
    reply = api_client.get("/api/detections/987654321")
    assert reply.status_code == 404
    assert reply.json() == {"detail": "detection 987654321 not found", "error": "NotFound"}


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"limit": 0}, "limit", "greater than or equal to 1"),
        ({"limit": 1001}, "limit", "less than or equal to 1000"),
        ({"offset": -1}, "offset", "greater than or equal to 0"),
        ({"min_confidence": 1.5}, "min_confidence", "less than or equal to 1"),
        ({"start_date": "yesterday"}, "start_date", "valid datetime"),
        ({"end_date": "2026-13-45"}, "end_date", "valid datetime"),
        (
            {"start_date": "2026-03-02T00:00:00Z", "end_date": "2026-03-01T00:00:00Z"},
            "start_date",
            "is after end_date",
        ),
    ],
)
def test_list_rejects_bad_parameters(api_client, params, field, message):
    reply = api_client.get("/api/detections", params=params)
    assert reply.status_code == 422
    [error] = reply.json()["detail"]
    assert error["loc"] == ["query", field]
    assert message in error["msg"]


def test_read_detection_rejects_non_integer_id(api_client):
    reply = api_client.get("/api/detections/abc")
    assert reply.status_code == 422
    assert reply.json()["detail"][0]["loc"] == ["path", "detection_id"]
