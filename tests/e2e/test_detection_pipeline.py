"""The whole path on real services: camera folder -> watcher -> Kafka -> detection agent ->
Triton -> Kafka -> projector -> Postgres -> API."""

from __future__ import annotations

import hashlib
import shutil
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from projections.tables import DeadLetterRow
from schemas.codec import encode
from schemas.images import ImageReceived, image_id_for
from schemas.topics import DETECTION_COMMANDS, IMAGES, STAGE_INPUTS
from tests.support import (
    OtlpReceiver,
    drop,
    json_log_lines,
    metric,
    new_camera_id,
    otlp_env,
    publish,
    read_topic,
    sha256_of,
    variant,
    wait_for,
)
from vigil.devservices.procs import free_port

PIPELINE_ENV = {
    "FILE_STABLE_S": "0.5",
    # Longer than the pauses of the uploads in pieces below, shorter than the default 30 s
    # a truncated photo would otherwise wait.
    "FILE_INCOMPLETE_S": "4",
    "WATCH_INTERVAL_S": "0.25",
    "RETRY_BASE_DELAY_S": "0.2",
    "RETRY_MAX_DELAY_S": "1",
    # Nothing here is about batches: none closes, so no analysis competes for the CPU.
    "BATCH_WINDOW_S": "3600",
    "BATCH_IDLE_S": "3600",
    "LOG_FORMAT": "json",
}


@pytest.fixture(scope="module")
def camera_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cameras")


@pytest.fixture(scope="module")
def otlp() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    yield receiver
    receiver.close()


@pytest.fixture(scope="module")
def pipeline(stack, camera_root, otlp):
    """The worker and the projector, by role (a test may replace the worker), exporting
    their spans to `otlp`."""
    env = {
        "CAMERA_ROOT": str(camera_root),
        "WORKER_METRICS_PORT": str(free_port()),
        **PIPELINE_ENV,
        **otlp_env(otlp),
    }
    processes = {
        "env": env,
        "worker": stack.start_app("worker", name="e2e-worker", **env),
        "projector": stack.start_app("projector", name="e2e-projector", **env),
    }
    yield processes
    for role in ("projector", "worker"):
        processes[role].stop()
        stack.apps.remove(processes[role])


def detections_for(api_client, camera_id: str) -> list[dict]:
    reply = api_client.get("/api/detections", params={"camera_id": camera_id, "limit": 1000})
    assert reply.status_code == 200, reply.text
    return reply.json()["detections"]


def dead_letters_for(engine, camera_id: str) -> list[DeadLetterRow]:
    with Session(engine) as session:
        return list(
            session.scalars(
                select(DeadLetterRow)
                .where(DeadLetterRow.camera_id == camera_id)
                .order_by(DeadLetterRow.id)
            )
        )


def test_bus_photo_yields_people_and_a_bus(pipeline, camera_root, api_client, samples):
    camera_id = new_camera_id("bus")
    path = drop(camera_root, camera_id, "bus.jpg", samples["bus.jpg"].read_bytes())
    rows = wait_for(lambda: detections_for(api_client, camera_id), timeout=90, what="detections")
    labels = [r["label"] for r in rows]
    assert labels.count("person") >= 2
    assert "bus" in labels
    assert {r["file_path"] for r in rows} == {str(path)}
    assert {r["image_id"] for r in rows} == {image_id_for(camera_id, sha256_of(path))}
    for row in rows:
        box = row["bbox"]
        assert (row["image_width"], row["image_height"]) == (810, 1080)
        assert 0 <= box["x1"] < box["x2"] <= 810
        assert 0 <= box["y1"] < box["y2"] <= 1080
        assert 0.3 <= row["confidence"] <= 1.0
        assert row["model_name"] == "centernet"
    bus = max((r for r in rows if r["label"] == "bus"), key=lambda r: r["confidence"])
    # The bus fills most of the photo's width.
    assert bus["bbox"]["x2"] - bus["bbox"]["x1"] > 500


def test_same_photo_dropped_twice_is_detected_once(
    pipeline, camera_root, api_client, samples, producer
):
    camera_id = new_camera_id("dup")
    data = samples["bus.jpg"].read_bytes()
    first = drop(camera_root, camera_id, "first.jpg", data)
    wait_for(lambda: detections_for(api_client, camera_id), timeout=90, what="first detections")
    once = detections_for(api_client, camera_id)
    drop(camera_root, camera_id, "again.jpg", data)
    # A worker restart republishes what it finds; the same image must still count once.
    digest = sha256_of(first)
    publish(
        producer,
        IMAGES.name,
        camera_id,
        encode(
            ImageReceived(
                image_id=image_id_for(camera_id, digest),
                camera_id=camera_id,
                file_path=str(first),
                sha256=digest,
                size_bytes=len(data),
                file_modified_at="2026-01-01T00:00:00Z",
            )
        ),
    )
    # A different photo dropped afterwards on the same camera is processed after both copies.
    drop(camera_root, camera_id, "zidane.jpg", samples["zidane.jpg"].read_bytes())
    wait_for(
        lambda: any(
            r["file_path"].endswith("zidane.jpg") for r in detections_for(api_client, camera_id)
        ),
        timeout=90,
        what="the later photo",
    )
    rows = detections_for(api_client, camera_id)
    bus_rows = [r for r in rows if not r["file_path"].endswith("zidane.jpg")]
    assert sorted(r["id"] for r in bus_rows) == sorted(r["id"] for r in once)


def test_a_restarted_worker_announces_nothing_twice(
    stack, pipeline, camera_root, api_client, samples
):
    camera_id = new_camera_id("restart")
    before = [variant(samples, "bus.jpg", n) for n in range(3)]
    for n, data in enumerate(before):
        drop(camera_root, camera_id, f"before-{n}.jpg", data)
    wait_for(
        lambda: len({r["file_path"] for r in detections_for(api_client, camera_id)}) == 3,
        timeout=120,
        what="the first three photos detected",
    )
    old = pipeline["worker"]
    old.stop()
    stack.apps.remove(old)
    pipeline["worker"] = stack.start_app("worker", name="e2e-worker-restarted", **pipeline["env"])
    # The same photos again under other names, and one new photo.
    for n, data in enumerate(before):
        drop(camera_root, camera_id, f"again-{n}.jpg", data)
    drop(camera_root, camera_id, "new.jpg", variant(samples, "zidane.jpg", 99))
    wait_for(
        lambda: any(
            r["file_path"].endswith("new.jpg") for r in detections_for(api_client, camera_id)
        ),
        timeout=120,
        what="the new photo detected by the restarted worker",
    )
    announced = Counter(
        message.sha256
        for message in read_topic(stack.kafka_bootstrap, IMAGES, key=camera_id)
        if isinstance(message, ImageReceived)
    )
    assert sorted(announced.values()) == [1, 1, 1, 1]
    assert set(announced) == {
        sha256_of(camera_root / camera_id / f"before-{n}.jpg") for n in range(3)
    } | {sha256_of(camera_root / camera_id / "new.jpg")}


def _upload_in_pieces(path: Path, data: bytes, pieces: int, *, keep_open: bool) -> None:
    """Write `data` in `pieces` with a 1 s pause after each but the last, as an FTP upload
    does: keeping the file open throughout, or closing it after each piece."""
    size = -(-len(data) // pieces)
    parts = [data[at : at + size] for at in range(0, len(data), size)]
    handle = open(path, "wb")
    try:
        for index, part in enumerate(parts):
            if index:
                time.sleep(1.0)
                if not keep_open:
                    handle = open(path, "ab")
            handle.write(part)
            handle.flush()
            if not keep_open:
                handle.close()
    finally:
        handle.close()


def test_an_upload_in_pieces_is_read_only_once_whole(
    pipeline, camera_root, api_client, engine, stack, samples
):
    """The pauses (1 s) outlast FILE_STABLE_S (0.5 s): only the image's own structure tells
    that the file is not whole yet."""
    camera_id = new_camera_id("pieces")
    uploads = {
        "held-open.jpg": variant(samples, "bus.jpg", 1),
        "reopened.jpg": samples["zidane.jpg"].read_bytes(),
        "whole.jpg": variant(samples, "bus.jpg", 2),
    }
    # The watcher is at work before the uploads start: a whole photo is announced.
    drop(camera_root, camera_id, "whole.jpg", uploads["whole.jpg"])
    wait_for(
        lambda: read_topic(stack.kafka_bootstrap, IMAGES, key=camera_id),
        timeout=60,
        what="the whole photo announced",
    )
    writers = [
        threading.Thread(
            target=_upload_in_pieces,
            args=(camera_root / camera_id / name, data, 5),
            kwargs={"keep_open": name == "held-open.jpg"},
        )
        for name, data in uploads.items()
        if name != "whole.jpg"
    ]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()

    def both_detected() -> list[dict] | None:
        rows = detections_for(api_client, camera_id)
        return rows if {Path(r["file_path"]).name for r in rows} == set(uploads) else None

    rows = wait_for(both_detected, timeout=90, what="detections of both uploads")
    announced = [
        message
        for message in read_topic(stack.kafka_bootstrap, IMAGES, key=camera_id)
        if isinstance(message, ImageReceived)
    ]
    assert sorted((Path(m.file_path).name, m.size_bytes, m.sha256) for m in announced) == sorted(
        (name, len(data), hashlib.sha256(data).hexdigest()) for name, data in uploads.items()
    )
    assert len({r["image_id"] for r in rows}) == 3
    assert dead_letters_for(engine, camera_id) == []


@pytest.mark.parametrize(
    ("name", "content", "error_type", "reason"),
    [
        ("empty.jpg", b"", "InvalidImage", "zero-byte file"),
        ("notes.jpg", b"this is a text file, not a photo\n", "InvalidImage", "not a known image"),
        ("truncated.jpg", None, "InvalidImage", "invalid image"),
    ],
)
def test_bad_files_are_dead_lettered_and_the_worker_carries_on(
    pipeline, camera_root, api_client, engine, samples, name, content, error_type, reason
):
    worker = pipeline["worker"]
    camera_id = new_camera_id("bad")
    if content is None:
        whole = samples["bus.jpg"].read_bytes()
        content = whole[: len(whole) // 3]
    drop(camera_root, camera_id, name, content)
    letters = wait_for(lambda: dead_letters_for(engine, camera_id), timeout=60, what="dead letter")
    assert len(letters) == 1
    letter = letters[0]
    assert (letter.stage, letter.error_type) == ("detection", error_type)
    assert reason in letter.error
    assert letter.attempt_count == 1  # bad input is not retried
    assert letter.original["file_path"].endswith(name)
    assert letter.source_topic == IMAGES.name
    assert worker.alive()
    drop(camera_root, camera_id, "good.jpg", samples["bus.jpg"].read_bytes())
    wait_for(lambda: detections_for(api_client, camera_id), timeout=90, what="a good photo after")


def test_the_worker_counts_its_stages_model_calls_and_breakers(
    pipeline, camera_root, api_client, engine, samples
):
    scrape = f"http://127.0.0.1:{pipeline['env']['WORKER_METRICS_PORT']}/metrics"
    before = httpx.get(scrape, timeout=5, trust_env=False).text
    camera_id = new_camera_id("metrics")
    drop(camera_root, camera_id, "notes.jpg", b"this is a text file, not a photo\n")
    drop(camera_root, camera_id, "bus.jpg", samples["bus.jpg"].read_bytes())
    wait_for(lambda: detections_for(api_client, camera_id), timeout=90, what="detections")
    wait_for(lambda: dead_letters_for(engine, camera_id), timeout=60, what="the dead letter")
    after = httpx.get(scrape, timeout=5, trust_env=False).text

    def moved(name: str, **labels: str) -> float:
        return metric(after, name, **labels) - metric(before, name, **labels)

    detection = {"stage": "detection"}
    assert moved("vigil_stage_messages_total", direction="in", **detection) >= 2
    assert moved("vigil_stage_messages_total", direction="dead_lettered", **detection) >= 1
    assert moved("vigil_stage_messages_total", direction="out", **detection) >= 1
    assert moved("vigil_stage_messages_total", stage="enrichment", direction="in") >= 1
    assert moved("vigil_model_call_seconds_count", model="centernet", outcome="ok") >= 1
    assert metric(after, "vigil_circuit_breaker_state", model="centernet") == 0
    assert 'vigil_stage_in_flight{stage="detection"}' in after


def test_one_image_is_one_trace_from_the_watcher_to_the_projector(
    pipeline, otlp, camera_root, api_client, samples, spans
):
    camera_id = new_camera_id("trace")
    drop(camera_root, camera_id, "bus.jpg", samples["bus.jpg"].read_bytes())
    [detection, *_] = wait_for(
        lambda: detections_for(api_client, camera_id), timeout=90, what="detections"
    )

    def reported():
        return [
            span
            for span in otlp.spans
            if span.name == "watcher report" and span.attributes["vigil.camera_id"] == camera_id
        ]

    [report] = wait_for(reported, timeout=30, what="the watcher's span")
    # (service, span) -> the span it nests in; one of each, in this one trace.
    nesting = {
        ("vigil-worker", "detection vigil.images"): "watcher report",
        ("vigil-worker", "infer centernet"): "detection vigil.images",
        ("vigil-worker", "enrichment vigil.detections"): "detection vigil.images",
        ("vigil-worker", "infer crop-attributes"): "enrichment vigil.detections",
        ("vigil-worker", "analysis vigil.enrichments"): "enrichment vigil.detections",
        ("vigil-projector", "project vigil.images"): "watcher report",
        ("vigil-projector", "project vigil.detections"): "detection vigil.images",
        ("vigil-projector", "project vigil.enrichments"): "enrichment vigil.detections",
    }

    def the_trace():
        by_name = {}
        for span in otlp.of_trace(report.trace_id):
            by_name.setdefault((span.service, span.name), span)
        return by_name if set(nesting) <= set(by_name) else None

    traced = wait_for(the_trace, timeout=30, what="every stage's span of the image's trace")
    assert report.parent_span_id is None and report.service == "vigil-worker"
    named = {name: span for (_, name), span in traced.items()}
    for (service, name), parent_name in nesting.items():
        span, parent = traced[service, name], named[parent_name]
        assert span.parent_span_id == parent.span_id, f"{name} is not under {parent_name}"
        assert span.start_ns >= parent.start_ns, f"{name} starts before {parent_name}"
    assert traced["vigil-worker", "detection vigil.images"].attributes["vigil.stage"] == "detection"

    # The API request that reads the result, sent within the trace, is a span of it.
    traceparent = f"00-{report.trace_id}-{report.span_id}-01"
    reply = api_client.get(
        f"/api/detections/{detection['id']}", headers={"traceparent": traceparent}
    )
    assert reply.status_code == 200, reply.text
    [request] = [
        span
        for span in spans.get_finished_spans()
        if format(span.context.trace_id, "032x") == report.trace_id and span.kind.name == "SERVER"
    ]
    assert (request.name, request.kind.name) == ("GET /api/detections/{detection_id}", "SERVER")
    assert format(request.parent.span_id, "016x") == report.span_id
    assert request.attributes["http.response.status_code"] == 200
    inside = [span.name for span in spans.get_finished_spans() if span.parent == request.context]
    assert "fastapi.endpoint" in inside  # the request's own work nests in it


def test_the_worker_and_the_projector_log_json_lines_naming_the_image(
    pipeline, camera_root, engine
):
    camera_id = new_camera_id("logs")
    drop(camera_root, camera_id, "notes.jpg", b"this is a text file, not a photo\n")
    [letter] = wait_for(lambda: dead_letters_for(engine, camera_id), timeout=60, what="letter")
    worker = json_log_lines(pipeline["worker"].log_path)
    [warning] = [line for line in worker if line.get("camera_id") == camera_id]
    assert warning["level"] == "WARNING"
    assert "dead-lettering" in warning["message"]
    assert warning["image_id"] == letter.original["image_id"]
    assert warning["trace_id"] == letter.original["trace_id"]
    projector = json_log_lines(pipeline["projector"].log_path)
    assert any(line["logger"] == "projections.runner" for line in projector)


@pytest.mark.parametrize(
    ("value", "error_type", "reason"),
    [
        (b"\x00\x01 definitely not json", "UndecodableMessage", "not JSON"),
        (
            b'{"event_type": "ImageReceived", "schema_version": 99}',
            "UnsupportedSchemaVersion",
            "schema_version 99 is newer",
        ),
    ],
)
def test_poison_messages_on_the_images_topic_are_dead_lettered(
    pipeline, engine, producer, value, error_type, reason
):
    camera_id = new_camera_id("poison")
    publish(producer, IMAGES.name, camera_id, value)
    letters = wait_for(lambda: dead_letters_for(engine, camera_id), timeout=60, what="dead letter")
    assert [letter.error_type for letter in letters] == [error_type]
    assert reason in letters[0].error


def test_file_linked_from_outside_the_camera_root_is_refused(
    pipeline, camera_root, engine, tmp_path, samples
):
    camera_id = new_camera_id("link")
    outside = tmp_path / "secret.jpg"
    shutil.copyfile(samples["bus.jpg"], outside)
    (camera_root / camera_id).mkdir()
    (camera_root / camera_id / "link.jpg").symlink_to(outside)
    letters = wait_for(lambda: dead_letters_for(engine, camera_id), timeout=60, what="dead letter")
    assert [letter.error_type for letter in letters] == ["PathOutsideCameraRoot"]
    assert "outside the camera root" in letters[0].error


def test_health_reports_every_service_and_lag(pipeline, api_client):
    body = api_client.get("/api/system/health").json()
    assert body["status"] == "healthy", body
    assert {name: s["status"] for name, s in body["services"].items()} == {
        "kafka": "healthy",
        "postgres": "healthy",
        "triton": "healthy",
    }
    assert body["services"]["triton"]["models"] == {
        "centernet": "ready",
        "crop-attributes": "ready",
        "nemotron": "ready",
    }
    assert set(body["consumer_lag"]) == {*STAGE_INPUTS, "vigil-projector"}
    assert set(body["consumer_lag"]["vigil-detection"]) == {IMAGES.name, DETECTION_COMMANDS.name}


def test_once_everything_is_processed_no_stage_lags(pipeline, camera_root, api_client, samples):
    """Each stage's offsets reach the end of its inputs, past the marker of the transaction
    that wrote their last record."""
    camera_id = new_camera_id("lag")
    drop(camera_root, camera_id, "lag.jpg", samples["bus.jpg"].read_bytes())
    wait_for(lambda: detections_for(api_client, camera_id), timeout=60, what="detections")
    seen: list[dict] = []

    def lagging() -> bool:
        seen.append(api_client.get("/api/system/health").json()["consumer_lag"])
        return not any(n for by_topic in seen[-1].values() for n in by_topic.values())

    try:
        wait_for(lagging, timeout=120, what="every stage's lag at 0")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the last lags: {seen[-1]}") from None
