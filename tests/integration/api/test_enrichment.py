"""/api/enrichment: list, stats, by id, by detection, by event, reprocess."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta

import pytest

from schemas.detections import BoundingBox, Detection
from schemas.enrichments import ReprocessEnrichment
from schemas.envelope import utcnow
from schemas.topics import ENRICHMENT_COMMANDS
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
from tests.support import TopicWatcher, new_camera_id

BASE = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
ITEM_KEYS = {
    "id",
    "detection_id",
    "event_id",
    "model_name",
    "model_version",
    "description",
    "attributes",
    "confidence",
    "latency_ms",
    "created_at",
}


def _seed_camera(engine, camera_id: str, now: datetime) -> dict:
    """Five enrichments: two old ones of a batched (analysed) image, three of today for an
    image in no batch, one of them reprocessed. Confidences are unique, to tell rows apart."""
    old = detections(camera_id, ["person", "car"], BASE)
    new = detections(camera_id, ["person", "dog", "chair"], BASE + timedelta(hours=1))
    batch = closed(opened(camera_id, BASE), members(old), "idle_timeout", 60)
    apply(
        engine,
        old,
        new,
        enriched(
            old,
            [enrichment(0, "person", 0.95), enrichment(1, "vehicle", 0.70)],
            BASE + timedelta(minutes=1),
            1000,
        ),
        enriched(
            new,
            [enrichment(0, "person", 0.85), enrichment(1, "animal", 0.60)],
            now - timedelta(seconds=2),
            2000,
        ),
        reprocessed(new, enrichment(0, "person", 0.90, "again"), now - timedelta(seconds=1), 2500),
        batch,
        recorded(batch, 40),
    )
    # confidence -> (image_id, position, detection type, latency, today?)
    plan = {
        0.95: (old.image_id, 0, "person", 1000.0, False),
        0.70: (old.image_id, 1, "vehicle", 1000.0, False),
        0.85: (new.image_id, 0, "person", 2000.0, True),
        0.60: (new.image_id, 1, "animal", 2000.0, True),
        0.90: (new.image_id, 0, "person", 2500.0, True),
    }
    return {"camera": camera_id, "old": old, "new": new, "batch": batch, "plan": plan}


@pytest.fixture(scope="module")
def seeded(engine) -> dict:
    other = new_camera_id("enr")
    elsewhere = detections(other, ["person"], BASE)
    apply(engine, elsewhere, enriched(elsewhere, [enrichment(0, "person", 0.99)], BASE, 100))
    return {"other": other, **_seed_camera(engine, new_camera_id("enr"), utcnow())}


def _get(api_client, path: str, **params) -> dict:
    reply = api_client.get(path, params=params)
    assert reply.status_code == 200, reply.text
    return reply.json()


def _list(api_client, **params) -> dict:
    return _get(api_client, "/api/enrichment", **params)


def _detection_ids(api_client, camera_id: str) -> dict[tuple[str, int], int]:
    rows = _get(api_client, "/api/detections", camera_id=camera_id, limit=1000)["detections"]
    # class_id is the position in these seeded images
    return {(r["image_id"], r["class_id"]): r["id"] for r in rows}


def _event_id(api_client, seeded) -> int:
    [event] = _get(api_client, "/api/events", camera_id=seeded["camera"])["events"]
    return event["id"]


def _confidences(body: dict) -> list[float]:
    return [e["confidence"] for e in body["enrichments"]]


def test_list_filters_by_camera_newest_first(api_client, seeded):
    body = _list(api_client, camera_id=seeded["camera"])
    assert (body["count"], body["limit"], body["offset"]) == (5, 50, 0)
    assert all(set(e) == ITEM_KEYS for e in body["enrichments"])
    order = [(e["created_at"], e["id"]) for e in body["enrichments"]]
    assert order == sorted(order, reverse=True)
    assert _confidences(body)[0] == 0.90  # the reprocessed one is the newest
    assert sorted(_confidences(body)) == sorted(seeded["plan"])


def test_list_items_name_their_detection_and_event(api_client, seeded):
    ids = _detection_ids(api_client, seeded["camera"])
    event_id = _event_id(api_client, seeded)
    for item in _list(api_client, camera_id=seeded["camera"])["enrichments"]:
        image_id, position, _, latency, _ = seeded["plan"][item["confidence"]]
        assert item["detection_id"] == ids[(image_id, position)]
        in_batch = image_id == seeded["old"].image_id
        assert item["event_id"] == (event_id if in_batch else None)
        assert item["latency_ms"] == latency
        assert (item["model_name"], item["model_version"]) == ("qwen-vl", "2.5-3b")
        assert item["attributes"] == {"position": position, "clothing": ["dark jacket"]}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"detection_type": "person"}, [0.90, 0.85, 0.95]),
        ({"detection_type": "vehicle"}, [0.70]),
        ({"detection_type": "object"}, []),
        ({"min_confidence": 0.85}, [0.90, 0.85, 0.95]),
        ({"min_confidence": 1.0}, []),
        ({"end_date": "2026-06-01T10:00:00Z"}, [0.95, 0.70]),
        ({"start_date": "2026-06-02T00:00:00Z"}, [0.90, 0.85, 0.60]),
    ],
)
def test_list_filters(api_client, seeded, params, expected):
    body = _list(api_client, camera_id=seeded["camera"], **params)
    assert sorted(_confidences(body)) == sorted(expected)
    assert body["count"] == len(expected)


def test_list_filters_by_event(api_client, seeded):
    event_id = _event_id(api_client, seeded)
    body = _list(api_client, event_id=event_id)
    assert (body["count"], sorted(_confidences(body))) == (2, [0.70, 0.95])
    assert {e["event_id"] for e in body["enrichments"]} == {event_id}
    assert _list(api_client, event_id=987654321) == {
        "enrichments": [],
        "count": 0,
        "limit": 50,
        "offset": 0,
    }


def test_list_paginates_with_total_count(api_client, seeded):
    pages = [_list(api_client, camera_id=seeded["camera"], limit=2, offset=o) for o in (0, 2, 4)]
    assert [p["count"] for p in pages] == [5, 5, 5]
    assert [len(p["enrichments"]) for p in pages] == [2, 2, 1]
    assert len({e["id"] for p in pages for e in p["enrichments"]}) == 5


def test_read_enrichment_by_id(api_client, seeded):
    listed = _list(api_client, camera_id=seeded["camera"])["enrichments"][2]
    assert _get(api_client, f"/api/enrichment/{listed['id']}") == listed


def test_read_enrichment_not_found(api_client):
    reply = api_client.get("/api/enrichment/987654321")
    assert reply.status_code == 404
    assert reply.json() == {"detail": "enrichment 987654321 not found", "error": "NotFound"}


def test_enrichments_of_a_detection_newest_first(api_client, seeded):
    ids = _detection_ids(api_client, seeded["camera"])
    body = _get(api_client, f"/api/enrichment/detection/{ids[(seeded['new'].image_id, 0)]}")
    assert (body["count"], _confidences(body)) == (2, [0.90, 0.85])
    assert body["enrichments"][0]["description"] == "again"
    chair = _get(api_client, f"/api/enrichment/detection/{ids[(seeded['new'].image_id, 2)]}")
    assert chair == {"enrichments": [], "count": 0}


def test_enrichments_of_unknown_detection_not_found(api_client):
    reply = api_client.get("/api/enrichment/detection/987654321")
    assert reply.status_code == 404
    assert reply.json() == {"detail": "detection 987654321 not found", "error": "NotFound"}


def test_enrichments_of_an_event(api_client, seeded):
    event_id = _event_id(api_client, seeded)
    body = _get(api_client, f"/api/enrichment/event/{event_id}")
    assert (body["count"], sorted(_confidences(body))) == (2, [0.70, 0.95])
    assert body["enrichments"] == _list(api_client, event_id=event_id)["enrichments"]


def test_enrichments_of_unknown_event_not_found(api_client):
    reply = api_client.get("/api/enrichment/event/987654321")
    assert reply.status_code == 404
    assert reply.json() == {"detail": "event 987654321 not found", "error": "NotFound"}


def _percentile_cont(values: list[float], fraction: float) -> float:
    """Postgres' percentile_cont: linear interpolation between the closest ranks."""
    ordered = sorted(values)
    rank = fraction * (len(ordered) - 1)
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def test_stats_of_one_camera(api_client, seeded):
    plan = seeded["plan"]
    latencies = [p[3] for p in plan.values()]
    types = [p[2] for p in plan.values()]
    stats = _get(api_client, "/api/enrichment/stats", camera_id=seeded["camera"])
    assert stats == {
        "total_enrichments": len(plan),
        "enrichments_today": sum(p[4] for p in plan.values()),
        "by_detection_type": {t: types.count(t) for t in set(types)},
        "avg_confidence": pytest.approx(sum(plan) / len(plan)),
        "avg_latency_ms": pytest.approx(sum(latencies) / len(latencies)),
        "p95_latency_ms": pytest.approx(_percentile_cont(latencies, 0.95)),
    }
    assert stats["p95_latency_ms"] == pytest.approx(2400)  # 2000 + 0.8 * (2500 - 2000)


def test_stats_of_a_camera_without_enrichments(api_client):
    stats = _get(api_client, "/api/enrichment/stats", camera_id=new_camera_id("none"))
    assert stats == {
        "total_enrichments": 0,
        "enrichments_today": 0,
        "by_detection_type": {},
        "avg_confidence": None,
        "avg_latency_ms": None,
        "p95_latency_ms": None,
    }


def test_stats_over_all_cameras_count_what_was_added(api_client, engine):
    before = _get(api_client, "/api/enrichment/stats")
    plan = _seed_camera(engine, new_camera_id("enr"), utcnow())["plan"]
    after = _get(api_client, "/api/enrichment/stats")
    assert after["total_enrichments"] == before["total_enrichments"] + len(plan)
    assert after["enrichments_today"] == before["enrichments_today"] + sum(
        p[4] for p in plan.values()
    )
    added = [p[2] for p in plan.values()]
    for kind in set(added) | set(before["by_detection_type"]):
        assert after["by_detection_type"][kind] == before["by_detection_type"].get(
            kind, 0
        ) + added.count(kind)
    n = before["total_enrichments"]
    expected = ((before["avg_confidence"] or 0) * n + sum(plan)) / (n + len(plan))
    assert after["avg_confidence"] == pytest.approx(expected)


def test_reprocess_produces_the_command(api_client, seeded, stack):
    new = seeded["new"]
    detection_id = _detection_ids(api_client, seeded["camera"])[(new.image_id, 0)]
    watcher = TopicWatcher(stack.kafka_bootstrap, ENRICHMENT_COMMANDS)
    try:
        reply = api_client.post(f"/api/enrichment/reprocess/{detection_id}")
        key, command = watcher.find(lambda c: c.detection_id == detection_id)
    finally:
        watcher.close()
    assert reply.status_code == 202, reply.text
    assert reply.json() == {
        "status": "queued",
        "detection_id": detection_id,
        "message": "Enrichment reprocessing queued successfully",
    }
    assert isinstance(command, ReprocessEnrichment)
    assert key == seeded["camera"]
    assert re.fullmatch(r"[0-9a-f]{32}", command.request_id)
    assert (command.image_id, command.camera_id, command.file_path, command.position) == (
        new.image_id,
        seeded["camera"],
        new.file_path,
        0,
    )
    assert command.detection == Detection(
        label="person", class_id=0, confidence=0.9, bbox=BoundingBox(x1=10, y1=20, x2=110, y2=220)
    )


def test_reprocess_unknown_detection_not_found(api_client):
    reply = api_client.post("/api/enrichment/reprocess/987654321")
    assert reply.status_code == 404
    assert reply.json() == {"detail": "detection 987654321 not found", "error": "NotFound"}


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"limit": 0}, "limit", "greater than or equal to 1"),
        ({"limit": 1001}, "limit", "less than or equal to 1000"),
        ({"offset": -1}, "offset", "greater than or equal to 0"),
        ({"min_confidence": 1.5}, "min_confidence", "less than or equal to 1"),
        ({"min_confidence": -0.1}, "min_confidence", "greater than or equal to 0"),
        (
            {"detection_type": "ghost"},
            "detection_type",
            "'person', 'vehicle', 'animal' or 'object'",
        ),
        ({"event_id": "abc"}, "event_id", "valid integer"),
        ({"start_date": "yesterday"}, "start_date", "valid datetime"),
        ({"end_date": "2026-13-45"}, "end_date", "valid datetime"),
        (
            {"start_date": "2026-06-02T00:00:00Z", "end_date": "2026-06-01T00:00:00Z"},
            "start_date",
            "is after end_date",
        ),
    ],
)
def test_list_rejects_bad_parameters(api_client, params, field, message):
    reply = api_client.get("/api/enrichment", params=params)
    assert reply.status_code == 422
    [error] = reply.json()["detail"]
    assert error["loc"] == ["query", field]
    assert message in error["msg"]


@pytest.mark.parametrize(
    ("method", "path", "field"),
    [
        ("get", "/api/enrichment/abc", "enrichment_id"),
        ("get", "/api/enrichment/detection/abc", "detection_id"),
        ("get", "/api/enrichment/event/abc", "event_id"),
        ("post", "/api/enrichment/reprocess/abc", "detection_id"),
    ],
)
def test_non_integer_ids_are_rejected(api_client, method, path, field):
    reply = getattr(api_client, method)(path)
    assert reply.status_code == 422
    assert reply.json()["detail"][0]["loc"] == ["path", field]
