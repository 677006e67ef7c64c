"""The export job's writer against the real Postgres: what it writes parses back to the
events of the filter, page by page, and an export stopped midway leaves no file."""

from __future__ import annotations

import csv
import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest

from jobs.export import CSV_COLUMNS, ExportParams, export_events
from tests.factories import (
    apply,
    closed,
    detections,
    enriched,
    enrichment,
    members,
    opened,
    recorded,
)
from tests.support import new_camera_id

BASE = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def seeded(engine) -> dict:
    """Camera A: three analysed batches an hour apart (the first reanalysed), the first with
    two described detections; camera B: one batch in between."""
    cam_a, cam_b = new_camera_id("exp"), new_camera_id("exp")
    first_images = detections(cam_a, ["person", "car"], BASE)
    hours = [BASE + timedelta(hours=h) for h in (1, 2)]
    later = [detections(cam_a, ["dog"], at) for at in hours]
    other = detections(cam_b, ["person"], BASE + timedelta(minutes=30))
    described = enriched(
        first_images,
        [enrichment(0, "person", 0.9), enrichment(1, "vehicle", 0.8)],
        BASE + timedelta(minutes=1),
        1200,
    )
    batches = [closed(opened(cam_a, BASE), members(first_images), "idle_timeout", 60)]
    batches += [
        closed(opened(cam_a, at), members(image), "max_size", 30)
        for at, image in zip(hours, later, strict=True)
    ]
    b_batch = closed(opened(cam_b, BASE + timedelta(minutes=30)), members(other), "time_window", 90)
    apply(engine, first_images, *later, other, described, *batches, b_batch)
    apply(engine, recorded(batches[0], 20), recorded(batches[0], 70, version=2))
    apply(engine, *(recorded(b, 40 + i) for i, b in enumerate(batches[1:])), recorded(b_batch, 90))
    return {"camera": cam_a, "batches": [b.batch_id for b in batches], "other": b_batch.batch_id}


def _export(engine, tmp_path, page_size: int = 500, **params):
    pages: list[tuple[int, int]] = []
    path = tmp_path / f"export.{params.get('format', 'csv')}"
    done = export_events(
        engine, ExportParams(**params), path, lambda n, t: pages.append((n, t)), page_size=page_size
    )
    return done, pages


def test_csv_holds_every_event_of_the_camera_oldest_first_with_detections(engine, seeded, tmp_path):
    done, pages = _export(engine, tmp_path, camera_id=seeded["camera"])
    with done.path.open(newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == CSV_COLUMNS
        rows = list(reader)
    assert [r["batch_id"] for r in rows] == seeded["batches"]
    assert [(r["risk_score"], r["analysis_version"]) for r in rows] == [
        ("70", "2"),
        ("40", "1"),
        ("41", "1"),
    ]
    first = json.loads(rows[0]["detections"])
    assert [(d["label"], d["position"]) for d in first] == [("person", 0), ("car", 1)]
    assert [[e["detection_type"] for e in d["enrichments"]] for d in first] == [
        ["person"],
        ["vehicle"],
    ]
    assert [d["label"] for d in json.loads(rows[1]["detections"])] == ["dog"]
    assert rows[0]["started_at"] == BASE.isoformat()
    assert (done.rows, pages) == (3, [(3, 3)])
    assert done.sha256 == hashlib.sha256(done.path.read_bytes()).hexdigest()
    assert done.size_bytes == done.path.stat().st_size


def test_jsonl_carries_the_same_rows_as_csv(engine, seeded, tmp_path):
    as_csv, _ = _export(engine, tmp_path, camera_id=seeded["camera"])
    as_jsonl, _ = _export(engine, tmp_path, camera_id=seeded["camera"], format="jsonl")
    with as_csv.path.open(newline="") as f:
        csv_rows = list(csv.DictReader(f))
    lines = [json.loads(line) for line in as_jsonl.path.read_text().splitlines()]
    assert len(lines) == as_jsonl.rows == 3
    for line, row in zip(lines, csv_rows, strict=True):
        assert line["detections"] == json.loads(row["detections"])
        assert {k: str(v) for k, v in line.items() if k != "detections"} == {
            k: v for k, v in row.items() if k != "detections"
        }


def test_small_pages_write_the_same_file(engine, seeded, tmp_path):
    whole, _ = _export(engine, tmp_path, camera_id=seeded["camera"])
    whole_bytes = whole.path.read_bytes()
    paged, pages = _export(engine, tmp_path, page_size=1, camera_id=seeded["camera"])
    assert paged.path.read_bytes() == whole_bytes
    assert pages == [(1, 3), (2, 3), (3, 3)]


def test_filters_select_the_events_as_the_events_api_does(engine, seeded, tmp_path):
    done, _ = _export(
        engine,
        tmp_path,
        format="jsonl",
        min_risk=41,
        start_date=BASE,
        end_date=BASE + timedelta(hours=3),
    )
    ours = {seeded["other"], *seeded["batches"]}
    batch_ids = [json.loads(line)["batch_id"] for line in done.path.read_text().splitlines()]
    assert [b for b in batch_ids if b in ours] == [
        seeded["batches"][0],
        seeded["other"],
        seeded["batches"][2],
    ]


def test_an_export_stopped_midway_leaves_no_file(engine, seeded, tmp_path):
    class Stop(Exception):
        pass

    def stop_after_two(written: int, total: int) -> None:
        if written == 2:
            raise Stop

    path = tmp_path / "stopped.csv"
    with pytest.raises(Stop):
        export_events(
            engine, ExportParams(camera_id=seeded["camera"]), path, stop_after_two, page_size=1
        )
    assert list(tmp_path.iterdir()) == []


def test_parameters_are_checked():
    with pytest.raises(ValueError, match="format"):
        ExportParams(format="xml")
    with pytest.raises(ValueError, match="min_risk"):
        ExportParams(min_risk=101)
    with pytest.raises(ValueError, match="camera"):
        ExportParams(camera="a")
