"""/api/batches: list, detail, stats, active and flush, against the real Postgres and Kafka."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from api.commands import CommandSender
from api.errors import DeliveryFailed
from schemas.batches import FlushBatch
from schemas.envelope import utcnow
from schemas.topics import BATCH_COMMANDS, ENRICHMENT_COMMANDS
from tests.factories import (
    analysis_failed,
    apply,
    closed,
    detections,
    members,
    opened,
    progressed,
    recorded,
)
from tests.support import new_camera_id

BASE = datetime(2026, 5, 1, 6, 0, tzinfo=UTC)
ITEM_KEYS = {
    "batch_id",
    "camera_id",
    "status",
    "detection_count",
    "started_at",
    "completed_at",
    "event_id",
    "trigger",
}


def _seed_camera(engine, camera_id: str, now: datetime) -> dict:
    """One batch per outcome; returns them with the plan the stats are checked against."""
    images = [
        detections(camera_id, labels, BASE + timedelta(hours=hour))
        for hour, labels in enumerate(
            [["person", "car", "dog"], ["person", "bus"], ["car"], ["cat"]]
        )
    ]
    live = detections(camera_id, ["person", "person"], now - timedelta(seconds=20))
    active = opened(camera_id, now - timedelta(seconds=60))
    analysed = closed(opened(camera_id, BASE), members(images[0]), "idle_timeout", 90)
    unanalysed = closed(
        opened(camera_id, BASE + timedelta(hours=1)), members(images[1]), "max_size", 30
    )
    failed = closed(
        opened(camera_id, BASE + timedelta(hours=2)), members(images[2]), "time_window", 90
    )
    # Its event is projected before the batch's own events: the batch must still show it.
    early_event_batch = opened(camera_id, BASE + timedelta(hours=3))
    early_event = closed(early_event_batch, members(images[3]), "manual_flush", 10)
    apply(engine, *images, live, active, progressed(active, live.image_id, 2, live.occurred_at))
    apply(engine, analysed, recorded(analysed, 50), unanalysed, failed, analysis_failed(failed))
    apply(engine, recorded(early_event, 15))
    apply(engine, early_event_batch, early_event)
    return {
        "active": active,
        "analysed": analysed,
        "unanalysed": unanalysed,
        "failed": failed,
        "early_event": early_event,
        # (status, trigger, detections, duration) per batch, as seeded
        "plan": [
            ("aggregating", None, 2, None),
            ("completed", "idle_timeout", 3, 90.0),
            ("completed", "max_size", 2, 30.0),
            ("failed", "time_window", 1, 90.0),
            ("completed", "manual_flush", 1, 10.0),
        ],
    }


@pytest.fixture(scope="module")
def seeded(engine) -> dict:
    camera_id = new_camera_id("bat")
    other = new_camera_id("bat")
    other_batch = closed(opened(other, BASE), [], "manual_flush", 5)
    apply(engine, other_batch)
    return {"camera": camera_id, "other": other, **_seed_camera(engine, camera_id, utcnow())}


def _get(api_client, path: str, **params) -> dict:
    reply = api_client.get(path, params=params)
    assert reply.status_code == 200, reply.text
    return reply.json()


def _event_id(api_client, camera_id: str, batch_id: str) -> int:
    events = _get(api_client, "/api/events", camera_id=camera_id)["events"]
    return next(e["id"] for e in events if e["batch_id"] == batch_id)


def test_list_filters_by_camera_newest_first(api_client, seeded):
    body = _get(api_client, "/api/batches", camera_id=seeded["camera"])
    assert (body["count"], body["limit"], body["offset"]) == (5, 50, 0)
    expected = ["active", "early_event", "failed", "unanalysed", "analysed"]
    assert [b["batch_id"] for b in body["batches"]] == [seeded[k].batch_id for k in expected]
    assert all(set(b) == ITEM_KEYS for b in body["batches"])


def test_list_items_carry_status_trigger_and_event(api_client, seeded):
    camera = seeded["camera"]
    by_id = {
        b["batch_id"]: b for b in _get(api_client, "/api/batches", camera_id=camera)["batches"]
    }
    analysed = by_id[seeded["analysed"].batch_id]
    assert analysed == {
        "batch_id": seeded["analysed"].batch_id,
        "camera_id": camera,
        "status": "completed",
        "detection_count": 3,
        "started_at": "2026-05-01T06:00:00Z",
        "completed_at": "2026-05-01T06:01:30Z",
        "event_id": _event_id(api_client, camera, seeded["analysed"].batch_id),
        "trigger": "idle_timeout",
    }
    early = by_id[seeded["early_event"].batch_id]
    assert early["event_id"] == _event_id(api_client, camera, seeded["early_event"].batch_id)
    active = by_id[seeded["active"].batch_id]
    assert (active["status"], active["trigger"], active["completed_at"]) == (
        "aggregating",
        None,
        None,
    )
    assert by_id[seeded["failed"].batch_id]["event_id"] is None


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "aggregating"}, ["active"]),
        ({"status": "failed"}, ["failed"]),
        ({"status": "completed"}, ["early_event", "unanalysed", "analysed"]),
        (
            {"start_date": "2026-05-01T07:00:00Z", "end_date": "2026-05-01T08:00:00Z"},
            ["failed", "unanalysed"],
        ),
        ({"end_date": "2026-05-01T06:30:00Z"}, ["analysed"]),
    ],
)
def test_list_filters(api_client, seeded, params, expected):
    body = _get(api_client, "/api/batches", camera_id=seeded["camera"], **params)
    assert [b["batch_id"] for b in body["batches"]] == [seeded[k].batch_id for k in expected]
    assert body["count"] == len(expected)


def test_list_paginates_with_total_count(api_client, seeded):
    pages = [
        _get(api_client, "/api/batches", camera_id=seeded["camera"], limit=2, offset=offset)
        for offset in (0, 2, 4)
    ]
    assert [p["count"] for p in pages] == [5, 5, 5]
    assert [len(p["batches"]) for p in pages] == [2, 2, 1]
    assert len({b["batch_id"] for p in pages for b in p["batches"]}) == 5


def test_read_batch_with_its_detections(api_client, seeded):
    analysed = seeded["analysed"]
    batch = _get(api_client, f"/api/batches/{analysed.batch_id}")
    listed = _get(api_client, "/api/batches", camera_id=seeded["camera"], status="completed")
    assert {k: batch[k] for k in ITEM_KEYS} == next(
        b for b in listed["batches"] if b["batch_id"] == analysed.batch_id
    )
    assert (batch["last_activity_at"], batch["error"]) == ("2026-05-01T06:01:30Z", None)
    image_id = analysed.detections[0].image_id
    rows = _get(api_client, "/api/detections", camera_id=seeded["camera"], limit=1000)
    ids = {(d["image_id"], d["label"]): d["id"] for d in rows["detections"]}
    assert batch["detections"] == [
        {"image_id": image_id, "position": 0, "detection_id": ids[(image_id, "person")]},
        {"image_id": image_id, "position": 1, "detection_id": ids[(image_id, "car")]},
        {"image_id": image_id, "position": 2, "detection_id": ids[(image_id, "dog")]},
    ]


def test_read_failed_batch_shows_the_error(api_client, seeded):
    batch = _get(api_client, f"/api/batches/{seeded['failed'].batch_id}")
    assert (batch["status"], batch["error"]) == ("failed", "TimeoutError: nemotron did not answer")


def test_read_active_batch_has_no_members_yet(api_client, seeded):
    batch = _get(api_client, f"/api/batches/{seeded['active'].batch_id}")
    assert (batch["status"], batch["detection_count"], batch["detections"]) == (
        "aggregating",
        2,
        [],
    )


def test_read_batch_not_found(api_client):
    reply = api_client.get("/api/batches/batch_nope")
    assert reply.status_code == 404
    assert reply.json() == {"detail": "batch batch_nope not found", "error": "NotFound"}


def _expected_stats(plan: list[tuple]) -> dict:
    closed_counts = [n for status, _, n, _ in plan if status != "aggregating"]
    durations = [d for status, _, _, d in plan if status == "completed"]
    return {
        "total_batches": len(plan),
        "by_status": {
            s: sum(p[0] == s for p in plan) for s in ("aggregating", "completed", "failed")
        },
        "by_trigger": {
            t: sum(p[1] == t for p in plan)
            for t in ("time_window", "idle_timeout", "max_size", "manual_flush")
        },
        "active_count": sum(p[0] == "aggregating" for p in plan),
        "avg_detections_per_batch": pytest.approx(sum(closed_counts) / len(closed_counts)),
        "avg_duration_seconds": pytest.approx(sum(durations) / len(durations)),
    }


def test_stats_of_one_camera(api_client, seeded):
    stats = _get(api_client, "/api/batches/stats", camera_id=seeded["camera"])
    assert stats == _expected_stats(seeded["plan"])


def test_stats_of_a_camera_without_batches(api_client):
    stats = _get(api_client, "/api/batches/stats", camera_id=new_camera_id("none"))
    assert (stats["total_batches"], stats["active_count"]) == (0, 0)
    assert set(stats["by_status"].values()) == set(stats["by_trigger"].values()) == {0}
    assert (stats["avg_detections_per_batch"], stats["avg_duration_seconds"]) == (None, None)


def test_stats_over_all_cameras_count_what_was_added(api_client, engine):
    before = _get(api_client, "/api/batches/stats")
    plan = _seed_camera(engine, new_camera_id("bat"), utcnow())["plan"]
    after = _get(api_client, "/api/batches/stats")
    added = _expected_stats(plan)
    assert after["total_batches"] == before["total_batches"] + added["total_batches"]
    assert after["active_count"] == before["active_count"] + added["active_count"]
    for key in ("by_status", "by_trigger"):
        assert after[key] == {k: before[key][k] + added[key][k] for k in before[key]}
    # The mean over everything moves by exactly what was added.
    closed_before = before["by_status"]["completed"] + before["by_status"]["failed"]
    closed_added = [n for status, _, n, _ in plan if status != "aggregating"]
    expected = ((before["avg_detections_per_batch"] or 0) * closed_before + sum(closed_added)) / (
        closed_before + len(closed_added)
    )
    assert after["avg_detections_per_batch"] == pytest.approx(expected)


def test_active_batches_with_ages_from_now(api_client, seeded):
    body = _get(api_client, "/api/batches/active", camera_id=seeded["camera"])
    assert body["count"] == 1
    [batch] = body["batches"]
    assert set(batch) == {
        "batch_id",
        "camera_id",
        "detection_count",
        "started_at",
        "age_seconds",
        "last_activity_seconds",
    }
    assert (batch["batch_id"], batch["detection_count"]) == (seeded["active"].batch_id, 2)
    # seeded 60 s and 20 s before the module started; tests since then take seconds
    assert 60 <= batch["age_seconds"] < 120
    assert 20 <= batch["last_activity_seconds"] < 80
    assert batch["age_seconds"] - batch["last_activity_seconds"] == pytest.approx(40, abs=0.2)


def test_active_batches_over_all_cameras(api_client, seeded):
    body = _get(api_client, "/api/batches/active")
    assert body["count"] == len(body["batches"])
    assert seeded["active"].batch_id in {b["batch_id"] for b in body["batches"]}
    assert seeded["analysed"].batch_id not in {b["batch_id"] for b in body["batches"]}


def test_flush_unknown_batch_not_found(api_client):
    reply = api_client.post("/api/batches/batch_nope/flush")
    assert reply.status_code == 404
    assert reply.json() == {"detail": "batch batch_nope not found", "error": "NotFound"}


@pytest.mark.parametrize(("key", "status"), [("analysed", "completed"), ("failed", "failed")])
def test_flush_closed_batch_conflicts(api_client, seeded, key, status):
    batch_id = seeded[key].batch_id
    reply = api_client.post(f"/api/batches/{batch_id}/flush")
    assert reply.status_code == 409
    assert reply.json() == {
        "detail": f"batch {batch_id} is {status}: only an aggregating batch can be flushed",
        "error": "Conflict",
    }


def _open_batch(engine, labels: list[str]):
    camera_id = new_camera_id("flush")
    image = detections(camera_id, labels, utcnow())
    batch = opened(camera_id, utcnow())
    apply(engine, image, batch, progressed(batch, image.image_id, len(labels), utcnow()))
    return batch, image


def test_flush_answers_once_the_batch_closed(api_client, engine, consumer_of):
    batch, image = _open_batch(engine, ["person", "car", "dog"])

    def aggregate(command) -> None:  # the aggregator closes the batch on the command
        apply(engine, closed(batch, members(image), command.trigger, 5))

    with consumer_of(BATCH_COMMANDS, lambda c: c.batch_id == batch.batch_id, aggregate) as seen:
        reply = api_client.post(f"/api/batches/{batch.batch_id}/flush")
    assert reply.status_code == 200, reply.text
    assert reply.json() == {
        "status": "flushed",
        "batch_id": batch.batch_id,
        "detection_count": 3,
        "message": "Batch sent for analysis",
    }
    [(key, command)] = seen
    assert isinstance(command, FlushBatch)
    assert (key, command.camera_id, command.trigger) == (
        batch.camera_id,
        batch.camera_id,
        "manual_flush",
    )
    after = _get(api_client, f"/api/batches/{batch.batch_id}")
    assert (after["status"], after["trigger"]) == ("completed", "manual_flush")


def test_flush_answers_202_when_the_batch_does_not_close_in_time(
    api_client, engine, consumer_of, short_wait
):
    batch, _ = _open_batch(engine, ["person"])
    with consumer_of(
        BATCH_COMMANDS, lambda c: c.batch_id == batch.batch_id, lambda _: None
    ) as seen:
        reply = api_client.post(f"/api/batches/{batch.batch_id}/flush")
    assert reply.status_code == 202, reply.text
    assert reply.json() == {
        "status": "queued",
        "batch_id": batch.batch_id,
        "detection_count": 1,
        "message": f"Flush requested; the batch had not closed after {short_wait:g}s",
    }
    [(key, command)] = seen
    assert (key, command.trigger) == (batch.camera_id, "manual_flush")
    assert _get(api_client, f"/api/batches/{batch.batch_id}")["status"] == "aggregating"


def test_command_not_acknowledged_is_delivery_failed():
    sender = CommandSender.connect("127.0.0.1:1", ack_timeout_s=0.5)
    with pytest.raises(DeliveryFailed) as raised:
        sender.send(BATCH_COMMANDS, "cam", FlushBatch(batch_id="batch_x", camera_id="cam"))
    sender.close()
    assert type(raised.value) is DeliveryFailed
    assert raised.value.detail.startswith(
        f"FlushBatch was not acknowledged by Kafka on {BATCH_COMMANDS.name}: "
    )


def test_flush_answers_503_when_kafka_does_not_acknowledge(api_client, engine):
    batch, _ = _open_batch(engine, ["person"])
    services = api_client.app.state.services
    saved = services.commands
    services.commands = CommandSender.connect("127.0.0.1:1", ack_timeout_s=0.5)
    try:
        reply = api_client.post(f"/api/batches/{batch.batch_id}/flush")
    finally:
        services.commands.close()
        services.commands = saved
    assert reply.status_code == 503, reply.text
    body = reply.json()
    assert set(body) == {"detail", "error"}
    assert body["error"] == "DeliveryFailed"
    assert body["detail"].startswith(
        f"FlushBatch was not acknowledged by Kafka on {BATCH_COMMANDS.name}: "
    )
    assert _get(api_client, f"/api/batches/{batch.batch_id}")["status"] == "aggregating"


def test_command_on_the_wrong_topic_is_refused(stack):
    sender = CommandSender.connect(stack.kafka_bootstrap)
    with pytest.raises(TypeError, match="FlushBatch is not carried by"):
        sender.send(ENRICHMENT_COMMANDS, "cam", FlushBatch(batch_id="batch_x", camera_id="cam"))
    sender.close()


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"limit": 0}, "limit", "greater than or equal to 1"),
        ({"limit": 1001}, "limit", "less than or equal to 1000"),
        ({"offset": -1}, "offset", "greater than or equal to 0"),
        ({"status": "closed"}, "status", "'aggregating', 'completed' or 'failed'"),
        ({"start_date": "yesterday"}, "start_date", "valid datetime"),
        ({"end_date": "2026-13-45"}, "end_date", "valid datetime"),
        (
            {"start_date": "2026-05-02T00:00:00Z", "end_date": "2026-05-01T00:00:00Z"},
            "start_date",
            "is after end_date",
        ),
    ],
)
def test_list_rejects_bad_parameters(api_client, params, field, message):
    reply = api_client.get("/api/batches", params=params)
    assert reply.status_code == 422
    [error] = reply.json()["detail"]
    assert error["loc"] == ["query", field]
    assert message in error["msg"]
