"""The reprocess_detection job on a broker and a database of this module's own, with the
real worker, projector and runner and the session's Triton: images of a time range read
back from `vigil.images` go through a second detector, whose detections are kept beside
the first one's and go no further down the pipeline."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from projections.tables import DeadLetterRow, DetectionRow, Image, JobRow
from schemas.codec import encode
from schemas.detections import DetectionsReprocessed
from schemas.enrichments import DetectionsEnriched
from schemas.jobs import FINISHED
from schemas.topics import DETECTIONS, ENRICHMENTS, IMAGES, JOBS
from tests.factories import image_event, job_requested
from tests.support import json_log_lines, new_camera_id, publish, read_topic, wait_for

WORKER_ENV = {
    # No batch closes while the module runs: no LLM work beside the detections.
    "BATCH_WINDOW_S": "3600",
    "BATCH_IDLE_S": "3600",
    "RETRY_BASE_DELAY_S": "0.05",
    "RETRY_MAX_DELAY_S": "0.2",
}


@pytest.fixture(scope="module")
def services(own_stack, tmp_path_factory):
    root = tmp_path_factory.mktemp("reprocess-cameras")
    processes = {
        "worker": own_stack.start_app(
            "worker", name="reprocess-worker", CAMERA_ROOT=str(root), **WORKER_ENV
        ),
        "projector": own_stack.start_app("projector", name="reprocess-projector"),
        "runner": own_stack.start_app(
            "runner",
            name="reprocess-runner",
            WORKER_ID="reprocess-runner",
            DATA_DIR=str(tmp_path_factory.mktemp("reprocess-data")),
            LOG_FORMAT="json",
        ),
    }
    yield processes
    for process in processes.values():
        process.stop()


@pytest.fixture(scope="module")
def detected(services, own_stack, own_producer, own_engine, samples, tmp_path_factory):
    """Two photos of one camera and one of another, detected by the pipeline (centernet)."""
    folder = tmp_path_factory.mktemp("reprocess-photos")
    camera, other = new_camera_id("again"), new_camera_id("left")
    start = datetime.now(UTC)
    images = []
    for camera_id, name in ((camera, "bus.jpg"), (camera, "zidane.jpg"), (other, "bus.jpg")):
        path = folder / f"{camera_id}-{name}"
        data = samples[name].read_bytes()
        path.write_bytes(data)
        images.append(
            image_event(
                camera_id,
                digest=hashlib.sha256(data).hexdigest(),
                file_path=str(path),
                size_bytes=len(data),
            )
        )
    for image in images:
        publish(own_producer, IMAGES.name, image.camera_id, encode(image))

    def all_detected():
        with Session(own_engine) as session:
            statuses = session.scalars(
                select(Image.status).where(Image.image_id.in_([i.image_id for i in images]))
            ).all()
        return statuses == ["detected"] * 3

    wait_for(all_detected, timeout=120, what="the pipeline to detect the three photos")
    return {
        "camera": camera,
        "other": other,
        "images": images,
        "start": start - timedelta(seconds=1),
        "end": datetime.now(UTC) + timedelta(seconds=1),
    }


def run_job(own_producer, own_engine, params: dict) -> tuple[str, JobRow]:
    request = job_requested("reprocess_detection", queue="reprocess_detection", params=params)
    publish(own_producer, JOBS.name, request.job_id, encode(request))

    def done():
        with Session(own_engine) as session:
            job = session.get(JobRow, request.job_id)
            return job if job is not None and job.status in FINISHED else None

    return request.job_id, wait_for(done, timeout=120, what=f"job {request.job_id} to finish")


def rows_of(own_engine, image_id: str, model_name: str) -> list[tuple]:
    with Session(own_engine) as session:
        rows = session.scalars(
            select(DetectionRow)
            .where(DetectionRow.image_id == image_id, DetectionRow.model_name == model_name)
            .order_by(DetectionRow.position)
        ).all()
    return [
        (r.position, r.label, round(r.confidence, 5), round(r.x1, 2), round(r.y2, 2)) for r in rows
    ]


def params_for(detected: dict, **overrides) -> dict:
    return {
        "camera_id": detected["camera"],
        "start": detected["start"].isoformat(),
        "end": detected["end"].isoformat(),
        **overrides,
    }


def test_reprocess_adds_a_second_models_detections_beside_the_first(
    own_stack, own_producer, own_engine, own_api_client, detected
):
    job_id, job = run_job(own_producer, own_engine, params_for(detected, model="centernet-strict"))

    assert job.status == "completed", job.error_message
    ours, theirs = detected["images"][:2], detected["images"][2]
    firsts = {image.image_id: rows_of(own_engine, image.image_id, "centernet") for image in ours}
    strict = {
        image.image_id: rows_of(own_engine, image.image_id, "centernet-strict") for image in ours
    }
    # The same network with a 0.5 threshold: exactly the first model's detections scoring
    # that much, in the same order, beside them.
    for image_id, first in firsts.items():
        assert first, "the pipeline found nothing to compare with"
        assert strict[image_id] == [row for row in first if row[2] >= 0.5]
        assert len(strict[image_id]) < len(first)
    made = sum(len(rows) for rows in strict.values())
    assert job.result == {
        "model_name": "centernet-strict",
        "model_version": None,
        "images": 2,
        "reprocessed": 2,
        "failed": 0,
        "detections": made,
    }
    assert rows_of(own_engine, theirs.image_id, "centernet-strict") == []

    # The API lists the configured detector's by default, the other on request.
    default = own_api_client.get("/api/detections", params={"camera_id": detected["camera"]})
    assert {d["model_name"] for d in default.json()["detections"]} == {"centernet"}
    assert default.json()["count"] == sum(len(rows) for rows in firsts.values())
    listed = own_api_client.get(
        "/api/detections",
        params={"camera_id": detected["camera"], "model_name": "centernet-strict"},
    ).json()
    assert listed["count"] == made
    assert {(d["model_name"], d["model_version"]) for d in listed["detections"]} == {
        ("centernet-strict", "1")
    }

    # On the topics, as another service reads them: one result per image, and nothing of
    # it went on to enrichment (each image enriched once, by the pipeline).
    results = [
        e
        for e in read_topic(own_stack.kafka_bootstrap, DETECTIONS)
        if isinstance(e, DetectionsReprocessed) and e.job_id == job_id
    ]
    assert sorted(e.image_id for e in results) == sorted(image.image_id for image in ours)
    enriched = [
        e.image_id
        for e in read_topic(own_stack.kafka_bootstrap, ENRICHMENTS)
        if isinstance(e, DetectionsEnriched)
    ]
    assert sorted(i for i in enriched if i in firsts) == sorted(firsts)


def test_reprocess_with_a_failing_model_fails_and_dead_letters_each_image(
    own_producer, own_engine, detected
):
    job_id, job = run_job(own_producer, own_engine, params_for(detected, model="faulty-detector"))

    assert job.status == "failed"
    assert job.error_type == "EveryItemFailed"
    with Session(own_engine) as session:
        letters = session.scalars(
            select(DeadLetterRow).where(DeadLetterRow.original["job_id"].astext == job_id)
        ).all()
        statuses = session.scalars(
            select(Image.status).where(
                Image.image_id.in_([i.image_id for i in detected["images"][:2]])
            )
        ).all()
    assert sorted(letter.original["image_id"] for letter in letters) == sorted(
        image.image_id for image in detected["images"][:2]
    )
    assert {letter.source_topic for letter in letters} == {"vigil.commands.detection"}
    assert statuses == ["detected", "detected"]  # the images' own detection stands


def test_a_range_without_images_completes_with_nothing_done(own_producer, own_engine, detected):
    before = detected["start"] - timedelta(days=2)
    _, job = run_job(
        own_producer,
        own_engine,
        params_for(
            detected,
            model="centernet-strict",
            start=before.isoformat(),
            end=(before + timedelta(hours=1)).isoformat(),
        ),
    )
    assert job.status == "completed", job.error_message
    assert (job.result["images"], job.result["detections"]) == (0, 0)


def test_the_runner_logs_json_lines(services, detected):
    lines = json_log_lines(services["runner"].log_path)
    assert any(
        line["logger"] == "jobs.runner" and line["message"].startswith("assigned partitions")
        for line in lines
    )
