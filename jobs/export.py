"""The export job's work: security events, with their detections and enrichments, to a file.

Events are read in pages (keyset on start time and id, so memory stays constant however
many rows match) and written as CSV or JSON Lines, one row per event; the detections, each
with its enrichments, go in the row (a JSON column in CSV). The file is written beside its
final name and renamed into place only when complete: an export stopped midway (aborted,
failed, its runner killed) leaves no partial file behind.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import ColumnElement, Engine, Text, cast, func, select, text, tuple_
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm import Session

from api.queries.events import EventFilter, filtered
from jobs.context import Aborted, JobContext
from jobs.job_type import JobType
from projections.tables import (
    BatchMember,
    DetectionRow,
    EnrichmentRow,
    SecurityEventRow,
    own_detection,
)
from schemas.analysis import RiskLevel

ExportFormat = Literal["csv", "jsonl"]

EVENT_COLUMNS = (
    "id",
    "batch_id",
    "camera_id",
    "analysis_version",
    "risk_score",
    "risk_level",
    "summary",
    "reasoning",
    "started_at",
    "ended_at",
    "detection_count",
    "model_name",
    "model_version",
    "prompt_version",
    "created_at",
)
CSV_COLUMNS = (*EVENT_COLUMNS, "detections")


class ExportParams(BaseModel):
    """What `GET /api/events` filters by, and the file format."""

    model_config = ConfigDict(extra="forbid")

    camera_id: str | None = None
    risk_level: RiskLevel | None = None
    min_risk: int | None = Field(default=None, ge=0, le=100)
    start_date: datetime | None = None
    end_date: datetime | None = None
    format: ExportFormat = "csv"

    def event_filter(self) -> EventFilter:
        return EventFilter(
            camera_id=self.camera_id,
            risk_level=self.risk_level,
            min_risk=self.min_risk,
            start_date=self.start_date,
            end_date=self.end_date,
        )


@dataclass(frozen=True)
class Exported:
    path: Path
    rows: int
    size_bytes: int
    sha256: str

    def result(self) -> dict[str, Any]:
        return {
            "file_name": self.path.name,
            "rows": self.rows,
            "size_bytes": self.size_bytes,
            "sha256": self.sha256,
        }


# Called after each page with (rows written, rows to write); raising stops the export.
OnPage = Callable[[int, int], None]


def count_events(engine: Engine, params: ExportParams) -> int:
    with Session(engine) as session:
        query = filtered(select(func.count()).select_from(SecurityEventRow), params.event_filter())
        return session.scalar(query) or 0


def export_events(
    engine: Engine,
    params: ExportParams,
    path: Path,
    on_page: OnPage,
    *,
    page_size: int = 2000,
) -> Exported:
    """Write the matching events to `path`, oldest first; `on_page` after every page."""
    total = count_events(engine, params)
    partial = path.with_name(f".{path.name}.part")
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    rows = 0
    try:
        with partial.open("wb") as out:
            writer = _writer(params.format)
            header = writer.header()
            out.write(header)
            digest.update(header)
            for page in _pages(engine, params.event_filter(), page_size):
                chunk = writer.rows(page)
                out.write(chunk)
                digest.update(chunk)
                rows += len(page)
                on_page(rows, max(total, rows))
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return Exported(path, rows, path.stat().st_size, digest.hexdigest())


def _pages(engine: Engine, f: EventFilter, page_size: int) -> Iterator[list[dict[str, Any]]]:
    """The events in pages, each row its event columns and `detections`, the JSON text of
    its detections with their enrichments, built by Postgres in the page's one query."""
    columns = [getattr(SecurityEventRow, column) for column in EVENT_COLUMNS]
    after: tuple[datetime, int] | None = None
    while True:
        with Session(engine) as session, session.begin():
            # Times in the JSON Postgres builds and in the columns read back, alike.
            session.execute(text("SET LOCAL TimeZone = 'UTC'"))
            query = filtered(select(*columns, _detections_json().label("detections")), f)
            if after is not None:
                query = query.where(
                    tuple_(SecurityEventRow.started_at, SecurityEventRow.id) > tuple_(*after)
                )
            page = session.execute(
                query.order_by(SecurityEventRow.started_at, SecurityEventRow.id).limit(page_size)
            ).all()
        if not page:
            return
        yield [row._asdict() for row in page]
        after = (page[-1].started_at, page[-1].id)


def _json_array(value, *order_by) -> ColumnElement[Any]:
    return func.coalesce(func.json_agg(aggregate_order_by(value, *order_by)), text("'[]'::json"))


def _detections_json() -> ColumnElement[str]:
    """An event's detections (in the order detected) with their enrichments (in the order
    made), as JSON text."""
    e, d = EnrichmentRow, DetectionRow
    enrichments = (
        select(
            _json_array(
                func.json_build_object(
                    *("detection_type", e.detection_type, "description", e.description),
                    *("attributes", e.attributes, "confidence", e.confidence),
                    *("model_name", e.model_name, "model_version", e.model_version),
                    *("reprocessed", e.reprocessed, "created_at", e.created_at),
                ),
                e.created_at,
                e.id,
            )
        )
        .where(e.image_id == d.image_id, e.position == d.position)
        .scalar_subquery()
    )
    detection = func.json_build_object(
        *("image_id", d.image_id, "position", d.position, "file_path", d.file_path),
        *("label", d.label, "class_id", d.class_id, "confidence", d.confidence),
        "bbox",
        func.json_build_object("x1", d.x1, "y1", d.y1, "x2", d.x2, "y2", d.y2),
        *("model_name", d.model_name, "model_version", d.model_version),
        *("detected_at", d.detected_at, "enrichments", enrichments),
    )
    detections = (
        select(_json_array(detection, d.detected_at, d.image_id, d.position))
        .select_from(BatchMember)
        .join(d, own_detection(BatchMember.image_id, BatchMember.position))
        .where(BatchMember.batch_id == SecurityEventRow.batch_id)
        .scalar_subquery()
    )
    return cast(detections, Text)


def _json(value: Any) -> str:
    return json.dumps(value, default=_plain, ensure_ascii=False, separators=(",", ":"))


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


class _JsonLines:
    def header(self) -> bytes:
        return b""

    def rows(self, page: list[dict[str, Any]]) -> bytes:
        """Each event as a JSON object, `detections` (JSON already) spliced in as it is."""
        return "".join(
            _json({c: row[c] for c in EVENT_COLUMNS})[:-1]
            + ',"detections":'
            + row["detections"]
            + "}\n"
            for row in page
        ).encode()


class _Csv:
    def header(self) -> bytes:
        return self._lines([CSV_COLUMNS])

    def rows(self, page: list[dict[str, Any]]) -> bytes:
        return self._lines(
            [*(_cell(row[c]) for c in EVENT_COLUMNS), row["detections"]] for row in page
        )

    @staticmethod
    def _lines(rows) -> bytes:
        """The rows as CSV, with one writer for the page."""
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(rows)
        return buffer.getvalue().encode()


def _cell(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _writer(fmt: ExportFormat) -> _Csv | _JsonLines:
    return _Csv() if fmt == "csv" else _JsonLines()


def export_path(data_dir: Path, job_id: str, fmt: ExportFormat) -> Path:
    """Where a job's export is written: one file per job, so a second attempt replaces it."""
    return data_dir / "exports" / f"{job_id}.{fmt}"


def run_export(context: JobContext, params: ExportParams) -> dict[str, Any]:
    path = export_path(context.data_dir, context.job_id, params.format)
    context.log("INFO", f"Starting export of events to {params.format}")

    def on_page(written: int, total: int) -> None:
        context.progress(written, total, f"Exported {written} of {total} events")

    try:
        done = export_events(context.engine, params, path, on_page)
    except Aborted:
        context.log("WARNING", "Export aborted; the partial file was removed")
        raise
    context.log("INFO", f"Exported {done.rows} events ({done.size_bytes} bytes)")
    return {**done.result(), "format": params.format}


JOB = JobType(
    name="export",
    description="Export events with their detections and enrichments to CSV or JSON Lines",
    params=ExportParams,
    supports_abort=True,
    run=run_export,
)
