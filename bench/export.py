"""Export benchmark: the export job through the real runner vs Postgres's own COPY, in one run.

Seeds N security events (each batch with two detections, the person described) straight
into the read models of a fresh database, then exports the camera's events three ways,
each in a process of its own whose peak memory (VmHWM) is read when it is done:

- `copy events`: `COPY (SELECT the event columns ...) TO STDOUT` into a file; the floor.
- `copy with detections`: the same COPY with each event's detections and enrichments
  aggregated to JSON by Postgres itself: what the export writes, done entirely in SQL.
- the export job: requested on `vigil.jobs`, run by `vigil runner`, timed from the job's
  start to its completion as the runner reports them (the read model's started_at and
  completed_at), CSV.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from confluent_kafka import Producer
from sqlalchemy import text
from sqlalchemy.orm import Session

from projections.db import make_engine
from projections.tables import JobRow
from schemas.jobs import FINISHED, JobRequested
from schemas.topics import JOBS, producer_settings
from vigil.devservices.stack import Stack

CAMERA = "bench-export"

SEED = """
INSERT INTO events (batch_id, camera_id, analysis_version, risk_score, risk_level, summary,
    reasoning, started_at, ended_at, detection_count, model_name, model_version,
    prompt_version, audit_id, created_at, updated_at)
SELECT 'b' || n, :camera, 1, n % 101, 'low', 'summary of batch ' || n, 'reasoning ' || n,
    :base + n * interval '1 second', :base + n * interval '1 second' + interval '30 second',
    2, 'nemotron', '1', 1, md5(n::text), now(), now()
FROM generate_series(1, :rows) AS n;
INSERT INTO batch_detections (batch_id, image_id, position)
SELECT 'b' || n, 'img' || n, p FROM generate_series(1, :rows) AS n, generate_series(0, 1) AS p;
INSERT INTO detections (image_id, position, camera_id, file_path, label, class_id, confidence,
    x1, y1, x2, y2, image_width, image_height, model_name, model_version, latency_ms,
    detected_at)
SELECT 'img' || n, p, :camera, '/cameras/bench/' || n || '.jpg',
    CASE p WHEN 0 THEN 'person' ELSE 'car' END, p * 2, 0.9 - p * 0.1, 10, 20, 110, 220,
    640, 480, 'centernet', '1', 30.0, :base + n * interval '1 second'
FROM generate_series(1, :rows) AS n, generate_series(0, 1) AS p;
INSERT INTO enrichments (source_event_id, image_id, position, camera_id, detection_type,
    model_name, model_version, description, attributes, confidence, latency_ms, reprocessed,
    created_at)
SELECT md5('e' || n), 'img' || n, 0, :camera, 'person', 'crop-attributes', '1',
    'Person in a dark jacket', '{"colors": ["black"]}', 0.7, 12.0, false,
    :base + n * interval '1 second'
FROM generate_series(1, :rows) AS n;
ANALYZE;
"""

EVENT_COLUMNS = (
    "id, batch_id, camera_id, analysis_version, risk_score, risk_level, summary, reasoning, "
    "started_at, ended_at, detection_count, model_name, model_version, prompt_version, created_at"
)
COPY_EVENTS = f"""COPY (SELECT {EVENT_COLUMNS} FROM events WHERE camera_id = '{CAMERA}'
    ORDER BY started_at, id) TO STDOUT WITH (FORMAT csv, HEADER)"""
COPY_WITH_DETECTIONS = f"""COPY (SELECT {EVENT_COLUMNS}, (
    SELECT json_agg(json_build_object('image_id', d.image_id, 'position', d.position,
        'file_path', d.file_path, 'label', d.label, 'class_id', d.class_id,
        'confidence', d.confidence,
        'bbox', json_build_object('x1', d.x1, 'y1', d.y1, 'x2', d.x2, 'y2', d.y2),
        'model_name', d.model_name, 'model_version', d.model_version,
        'detected_at', d.detected_at,
        'enrichments', (SELECT coalesce(json_agg(json_build_object(
            'detection_type', n.detection_type, 'description', n.description,
            'attributes', n.attributes, 'confidence', n.confidence,
            'model_name', n.model_name, 'model_version', n.model_version,
            'reprocessed', n.reprocessed, 'created_at', n.created_at)
            ORDER BY n.created_at, n.id), '[]') FROM enrichments n
            WHERE n.image_id = d.image_id AND n.position = d.position))
        ORDER BY d.detected_at, d.image_id, d.position)
    FROM batch_detections m JOIN detections d
        ON d.image_id = m.image_id AND d.position = m.position AND NOT d.reprocessed
    WHERE m.batch_id = e.batch_id) AS detections
    FROM events e WHERE camera_id = '{CAMERA}' ORDER BY started_at, id)
    TO STDOUT WITH (FORMAT csv, HEADER)"""


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise LookupError(f"no VmHWM for {pid}")


def copy_to_file(database_url: str, statement: str, out: Path) -> dict:
    """Runs in its own process (`python -m bench.export copy ...`): COPY into `out`."""
    import psycopg

    url = database_url.replace("postgresql+psycopg://", "postgresql://")
    started = time.perf_counter()
    with psycopg.connect(url) as connection, out.open("wb") as file:
        with connection.cursor().copy(statement) as copy:
            for chunk in copy:
                file.write(chunk)
    seconds = time.perf_counter() - started
    with Path("/proc/self/status").open() as status:
        peak = next(int(x.split()[1]) / 1024 for x in status if x.startswith("VmHWM:"))
    rows = sum(1 for _ in out.open("rb")) - 1  # header; no field holds a newline here
    return {"seconds": seconds, "rows": rows, "bytes": out.stat().st_size, "peak_rss_mb": peak}


def _copy_in_process(database_url: str, statement: str, out: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "bench.export", "copy", database_url, statement, str(out)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(done.stdout)


def _export_job(stack: Stack, data_dir: Path, timeout: float) -> dict:
    runner = stack.start_app("runner", name="bench-runner", DATA_DIR=str(data_dir))
    projector = stack.start_app("projector", name="bench-projector")
    engine = make_engine(stack.database_url)
    try:
        idle_peak = None
        time.sleep(3)  # the runner joins its group and reads the (empty) jobs topic
        idle_peak = peak_rss_mb(runner.pid)
        request = JobRequested(
            job_id=f"job_bench{int(time.time())}",
            job_type="export",
            params={"camera_id": CAMERA, "format": "csv"},
            requested_by="bench",
            queue="export",
            max_attempts=1,
        )
        producer = Producer(producer_settings(stack.kafka_bootstrap, {"acks": "all"}))
        producer.produce(JOBS.name, key=request.job_id.encode(), value=JOBS.encode(request))
        producer.flush(10)
        deadline = time.monotonic() + timeout
        while True:
            with Session(engine) as session:
                job = session.get(JobRow, request.job_id)
                if job is not None and job.status in FINISHED:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError(f"export job not finished in {timeout:.0f} s")
            time.sleep(0.2)
        if job.status != "completed":
            raise RuntimeError(f"export job {job.status}: {job.error_message}")
        return {
            "seconds": (job.completed_at - job.started_at).total_seconds(),
            "rows": job.result["rows"],
            "bytes": job.result["size_bytes"],
            "peak_rss_mb": peak_rss_mb(runner.pid),
            "idle_peak_rss_mb": idle_peak,
        }
    finally:
        engine.dispose()
        for process in (projector, runner):
            process.stop()
            stack.apps.remove(process)


def run(state_dir: Path, rows: int = 100_000) -> dict:
    from vigil.bootstrap import initialize
    from vigil.devservices.kafka import start_kafka
    from vigil.devservices.postgres import start_postgres

    state_dir.mkdir(parents=True, exist_ok=True)
    kafka = start_kafka(state_dir / "kafka")
    postgres = start_postgres(state_dir / "postgres")
    stack = Stack(
        state_dir=state_dir,
        kafka_bootstrap=kafka.bootstrap,
        database_url=postgres.url,
        triton_url="",
        kafka=kafka,
        postgres=postgres,
    )
    try:
        initialize(stack.settings())
        engine = make_engine(stack.database_url)
        with engine.begin() as connection:
            connection.execute(text("TRUNCATE events, batch_detections, detections, enrichments"))
            for statement in SEED.split(";\n"):
                if statement.strip():
                    connection.execute(
                        text(statement),
                        {"camera": CAMERA, "rows": rows, "base": datetime(2026, 1, 1, tzinfo=UTC)},
                    )
        engine.dispose()
        out = state_dir / "out"
        out.mkdir(exist_ok=True)
        floor = _copy_in_process(stack.database_url, COPY_EVENTS, out / "events.csv")
        sql = _copy_in_process(stack.database_url, COPY_WITH_DETECTIONS, out / "full.csv")
        job = _export_job(stack, out, timeout=900)
    finally:
        stack.stop()
    for measured in (floor, sql, job):
        measured["rows_per_s"] = round(measured["rows"] / measured["seconds"])
    return {
        "events": rows,
        "copy_events": floor,
        "copy_with_detections": sql,
        "export_job": job,
        "ratio_job_to_copy_with_detections": round(job["rows_per_s"] / sql["rows_per_s"], 3),
        "ratio_job_to_copy_events": round(job["rows_per_s"] / floor["rows_per_s"], 3),
    }


def main(state_dir: Path, rows: int) -> None:
    print(json.dumps(run(state_dir, rows), indent=2))


if __name__ == "__main__":
    if sys.argv[1:2] == ["copy"]:
        _, _, url, statement, out = sys.argv
        print(json.dumps(copy_to_file(url, statement, Path(out))))
    else:
        raise SystemExit("usage: python -m bench.export copy DATABASE_URL STATEMENT OUT")
