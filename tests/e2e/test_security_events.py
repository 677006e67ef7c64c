"""The whole pipeline to security events on real services: batches close on each trigger,
the analysis runs on the real LLM, events reach REST and the WebSocket, and a worker killed
mid-batch still closes that batch with every detection, once."""

from __future__ import annotations

import json
import threading
import time
import zlib
from collections import Counter

import pytest

from schemas.topics import BATCH_COMMANDS, BATCHES, partition_for
from tests.support import drop, new_camera_id, read_records, variant, wait_for

BATCH_ENV = {
    "FILE_STABLE_S": "0.3",
    "WATCH_INTERVAL_S": "0.25",
    "RETRY_BASE_DELAY_S": "0.2",
    "RETRY_MAX_DELAY_S": "1",
    "BATCH_WINDOW_S": "24",
    "BATCH_IDLE_S": "8",
    "BATCH_MAX_SIZE": "40",
    "BATCH_CHECK_INTERVAL_S": "0.5",
}


@pytest.fixture(scope="module")
def camera_root(tmp_path_factory):
    return tmp_path_factory.mktemp("event-cameras")


@pytest.fixture(scope="module")
def pipeline(stack, camera_root):
    env = {"CAMERA_ROOT": str(camera_root), **BATCH_ENV}
    worker = stack.start_app("worker", name="events-worker", **env)
    projector = stack.start_app("projector", name="events-projector", **env)
    handles = {"worker": worker, "projector": projector, "env": env}
    yield handles
    for name in ("projector", "worker"):
        handles[name].stop()


def batches_of(api_client, camera_id: str, **params) -> list[dict]:
    reply = api_client.get("/api/batches", params={"camera_id": camera_id, **params})
    assert reply.status_code == 200, reply.text
    return reply.json()["batches"]


def completed_batches(api_client, camera_id: str) -> list[dict]:
    return [b for b in batches_of(api_client, camera_id) if b["event_id"] is not None]


def events_of(api_client, camera_id: str) -> list[dict]:
    reply = api_client.get("/api/events", params={"camera_id": camera_id})
    assert reply.status_code == 200, reply.text
    return reply.json()["events"]


@pytest.fixture(scope="module")
def idle_batch(pipeline, camera_root, api_client, samples) -> tuple[str, dict]:
    """A camera's one photo of a bus, analysed once its batch went idle."""
    camera_id = new_camera_id("idle")
    drop(camera_root, camera_id, "bus.jpg", samples["bus.jpg"].read_bytes())
    [batch] = wait_for(
        lambda: completed_batches(api_client, camera_id), timeout=120, what="an analysed batch"
    )
    return camera_id, batch


def test_idle_batch_becomes_an_event_with_its_detections(api_client, idle_batch):
    camera_id, batch = idle_batch
    assert batch["trigger"] == "idle_timeout"
    assert batch["status"] == "completed"
    detections = api_client.get("/api/detections", params={"camera_id": camera_id}).json()
    assert batch["detection_count"] == detections["count"] > 0
    [event] = events_of(api_client, camera_id)
    assert event["id"] == batch["event_id"]
    assert 0 <= event["risk_score"] <= 100
    assert event["risk_level"] in {"low", "medium", "high", "critical"}
    assert event["summary"] and event["reasoning"]
    assert (event["model_name"], event["prompt_version"]) == ("nemotron", 1)
    detail = api_client.get(f"/api/events/{event['id']}").json()
    assert detail["batch"]["batch_id"] == batch["batch_id"]
    assert len(detail["detections"]) == batch["detection_count"]
    people = [d for d in detail["detections"] if d["label"] == "person"]
    assert people and all(d["enrichments"] for d in people)
    assert people[0]["enrichments"][0]["model_name"] == "crop-attributes"


def test_a_real_event_is_evaluated_with_every_figure_and_its_evidence(api_client, idle_batch):
    _, batch = idle_batch
    event_id = batch["event_id"]
    reply = api_client.post(f"/api/ai-audit/events/{event_id}/evaluate")
    assert reply.status_code in (200, 202), reply.text
    body = wait_for(
        lambda: (
            (shown := api_client.get(f"/api/ai-audit/events/{event_id}").json())["status"]
            not in ("not_evaluated", "pending")
            and shown
        ),
        timeout=180,
        what="the evaluation on the real LLM",
    )
    evaluation = body["evaluation"]
    assert body["status"] == "evaluated", evaluation["failures"]
    assert all(0 <= score <= 1 for score in body["quality_scores"].values())
    assert set(body["model_contributions"]) == {"centernet", "crop-attributes", "nemotron"}
    assert sum(body["model_contributions"].values()) == pytest.approx(1, abs=1e-3)
    assert body["prompt_suggestions"] and evaluation["self_critique"]
    evidence = evaluation["evidence"]
    assert len(evidence["consistency"]["repeated_scores"]) == 2
    assert "person" in evidence["relevance"]["evidence_terms"]
    assert set(evidence["ablation"]["ablated_scores"]) == {"centernet", "crop-attributes"}
    assert len(evaluation["audit_ids"]) == 6
    print("real evaluation:", json.dumps(body, indent=1))


def test_burst_past_max_size_closes_on_max_size(pipeline, camera_root, api_client, samples):
    camera_id = new_camera_id("max")
    # bus.jpg yields 4 detections: 11 copies pass the maximum of 40.
    for n in range(11):
        drop(camera_root, camera_id, f"bus-{n}.jpg", variant(samples, "bus.jpg", n))
    first = wait_for(
        lambda: [b for b in batches_of(api_client, camera_id) if b["status"] != "aggregating"],
        timeout=120,
        what="a closed batch",
    )
    triggers = {b["trigger"] for b in first}
    assert "max_size" in triggers
    full = [b for b in first if b["trigger"] == "max_size"]
    assert all(b["detection_count"] >= 40 for b in full)


def test_steady_activity_closes_on_the_time_window(pipeline, camera_root, api_client, samples):
    camera_id = new_camera_id("window")
    started = time.monotonic()
    n = 0
    # One photo every 3 s keeps the batch from going idle (8 s) until the window (24 s) ends.
    while time.monotonic() - started < 30 and not completed_batches(api_client, camera_id):
        drop(camera_root, camera_id, f"zidane-{n}.jpg", variant(samples, "zidane.jpg", 500 + n))
        n += 1
        time.sleep(3)
    batch = wait_for(
        lambda: completed_batches(api_client, camera_id), timeout=120, what="an analysed batch"
    )[0]
    assert batch["trigger"] == "time_window"


def test_active_batch_is_listed_and_manual_flush_closes_it(
    pipeline, camera_root, api_client, samples, stack
):
    # A camera whose partition under librdkafka's default partitioner (CRC32) is not its
    # partition under Kafka's murmur2, which the worker's Faust producer uses.
    camera_id = new_camera_id("flush")
    partitions = stack.settings().topic_partitions
    while zlib.crc32(camera_id.encode()) % partitions == partition_for(camera_id, partitions):
        camera_id = new_camera_id("flush")
    drop(camera_root, camera_id, "zidane.jpg", samples["zidane.jpg"].read_bytes())

    def active():
        # Once its detections are in: the projector may apply BatchOpened on its own first.
        body = api_client.get("/api/batches/active").json()
        return [b for b in body["batches"] if b["camera_id"] == camera_id and b["detection_count"]]

    [batch] = wait_for(active, timeout=60, what="an aggregating batch", interval=0.1)
    assert 0 <= batch["last_activity_seconds"] <= batch["age_seconds"] < 8
    reply = api_client.post(f"/api/batches/{batch['batch_id']}/flush")
    assert reply.status_code == 200, reply.text
    assert reply.json() == {
        "status": "flushed",
        "batch_id": batch["batch_id"],
        "detection_count": batch["detection_count"],
        "message": "Batch sent for analysis",
    }
    [done] = wait_for(
        lambda: completed_batches(api_client, camera_id),
        timeout=120,
        what="the flushed batch's event",
    )
    assert (done["batch_id"], done["trigger"]) == (batch["batch_id"], "manual_flush")
    again = api_client.post(f"/api/batches/{batch['batch_id']}/flush")
    assert again.status_code == 409
    # The API's flush command went to the camera's partition, where the worker that holds
    # the camera's batch reads it: one batch, opened and closed once, all on that partition.
    records = [
        (partition, type(message).__name__)
        for spec in (BATCH_COMMANDS, BATCHES)
        for partition, message in read_records(stack.kafka_bootstrap, spec, key=camera_id)
    ]
    assert {partition for partition, _ in records} == {partition_for(camera_id, partitions)}
    kinds = Counter(kind for _, kind in records)
    assert (kinds["FlushBatch"], kinds["BatchOpened"], kinds["BatchClosed"]) == (1, 1, 1)


def test_websocket_client_receives_the_event(pipeline, camera_root, api_client, samples):
    camera_id = new_camera_id("ws")
    received: list[dict] = []
    with api_client.websocket_connect("/ws/events") as socket:
        drop(camera_root, camera_id, "bus.jpg", samples["bus.jpg"].read_bytes())
        stop_at = time.monotonic() + 120

        def read():
            while time.monotonic() < stop_at:
                message = json.loads(socket.receive_text())
                if message["event"]["camera_id"] == camera_id:
                    received.append(message)
                    return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(timeout=125)
    assert received, "no event for the camera arrived on the WebSocket"
    assert received[0]["type"] == "event"
    pushed = received[0]["event"]
    assert pushed["risk_level"] in {"low", "medium", "high", "critical"}
    # Pushed once the read model shows it: REST has the same event, with the same id.
    [event] = events_of(api_client, camera_id)
    assert (pushed["id"], pushed["batch_id"]) == (event["id"], event["batch_id"])


def test_worker_killed_mid_batch_closes_it_with_every_detection_once(
    stack, pipeline, camera_root, api_client, samples
):
    camera_id = new_camera_id("crash")
    drop(camera_root, camera_id, "a.jpg", variant(samples, "zidane.jpg", 1))
    drop(camera_root, camera_id, "b.jpg", variant(samples, "zidane.jpg", 2))

    def open_with_both():
        body = api_client.get("/api/batches/active").json()
        found = [b for b in body["batches"] if b["camera_id"] == camera_id]
        expected = 2 * _detections_per_image(api_client, camera_id)
        return found if found and expected and found[0]["detection_count"] == expected else None

    [batch] = wait_for(open_with_both, timeout=60, what="both images in the open batch")
    pipeline["worker"].kill()
    pipeline["worker"] = stack.start_app("worker", name="events-worker-2", **pipeline["env"])
    [done] = wait_for(
        lambda: completed_batches(api_client, camera_id),
        timeout=180,
        what="the batch closed after the restart",
    )
    assert done["batch_id"] == batch["batch_id"]
    assert done["detection_count"] == batch["detection_count"]
    assert len(batches_of(api_client, camera_id)) == 1
    assert len(events_of(api_client, camera_id)) == 1


def _detections_per_image(api_client, camera_id: str) -> int:
    body = api_client.get("/api/detections", params={"camera_id": camera_id, "limit": 1000}).json()
    per_image: dict[str, int] = {}
    for d in body["detections"]:
        per_image[d["image_id"]] = per_image.get(d["image_id"], 0) + 1
    return next(iter(per_image.values()), 0) if len(per_image) == 2 else 0


def test_reprocessing_an_enrichment_adds_a_new_record(pipeline, camera_root, api_client, samples):
    camera_id = new_camera_id("reprocess")
    drop(camera_root, camera_id, "bus.jpg", variant(samples, "bus.jpg", 900))
    people = wait_for(
        lambda: api_client.get(
            "/api/detections", params={"camera_id": camera_id, "label": "person"}
        ).json()["detections"],
        timeout=90,
        what="person detections",
    )
    detection_id = people[0]["id"]

    def enrichments():
        body = api_client.get(f"/api/enrichment/detection/{detection_id}").json()
        return body["enrichments"]

    [first] = wait_for(enrichments, timeout=90, what="the first enrichment")
    reply = api_client.post(f"/api/enrichment/reprocess/{detection_id}")
    assert reply.status_code == 202, reply.text
    both = wait_for(
        lambda: len(enrichments()) == 2 and enrichments(),
        timeout=90,
        what="the reprocessed enrichment",
    )
    newer = next(e for e in both if e["id"] != first["id"])
    assert first in both, "the first enrichment was overwritten"
    assert newer["detection_id"] == detection_id
    # The same pixels give the same honest attributes.
    assert (newer["description"], newer["attributes"]) == (
        first["description"],
        first["attributes"],
    )
