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
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine, and_, func, select, tuple_
from sqlalchemy.orm import Session

from api.queries.events import EventFilter, filtered
from jobs.context import Aborted, JobContext
from jobs.job_type import JobType
from projections.tables import BatchMember, DetectionRow, EnrichmentRow, SecurityEventRow
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
    page_size: int = 500,
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
    after: tuple[datetime, int] | None = None
    while True:
        with Session(engine) as session:
            query = filtered(select(SecurityEventRow), f)
            if after is not None:
                query = query.where(
                    tuple_(SecurityEventRow.started_at, SecurityEventRow.id) > tuple_(*after)
                )
            events = session.scalars(
                query.order_by(SecurityEventRow.started_at, SecurityEventRow.id).limit(page_size)
            ).all()
            if not events:
                return
            detections = _detections_of(session, [e.batch_id for e in events])
            yield [
                {
                    **{column: getattr(event, column) for column in EVENT_COLUMNS},
                    "detections": detections[event.batch_id],
                }
                for event in events
            ]
            after = (events[-1].started_at, events[-1].id)


def _detections_of(session: Session, batch_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    rows = session.execute(
        select(BatchMember.batch_id, DetectionRow)
        .join(
            DetectionRow,
            and_(
                BatchMember.image_id == DetectionRow.image_id,
                BatchMember.position == DetectionRow.position,
            ),
        )
        .where(BatchMember.batch_id.in_(batch_ids))
        .order_by(DetectionRow.detected_at, DetectionRow.image_id, DetectionRow.position)
    ).all()
    keys = {(d.image_id, d.position) for _, d in rows}
    enrichments: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    if keys:
        for e in session.scalars(
            select(EnrichmentRow)
            .where(tuple_(EnrichmentRow.image_id, EnrichmentRow.position).in_(keys))
            .order_by(EnrichmentRow.created_at, EnrichmentRow.id)
        ):
            enrichments[(e.image_id, e.position)].append(
                {
                    "detection_type": e.detection_type,
                    "description": e.description,
                    "attributes": e.attributes,
                    "confidence": e.confidence,
                    "model_name": e.model_name,
                    "model_version": e.model_version,
                    "reprocessed": e.reprocessed,
                    "created_at": e.created_at,
                }
            )
    by_batch: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for batch_id, d in rows:
        by_batch[batch_id].append(
            {
                "image_id": d.image_id,
                "position": d.position,
                "file_path": d.file_path,
                "label": d.label,
                "class_id": d.class_id,
                "confidence": d.confidence,
                "bbox": {"x1": d.x1, "y1": d.y1, "x2": d.x2, "y2": d.y2},
                "model_name": d.model_name,
                "model_version": d.model_version,
                "detected_at": d.detected_at,
                "enrichments": enrichments[(d.image_id, d.position)],
            }
        )
    return by_batch


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
        return "".join(_json(row) + "\n" for row in page).encode()


class _Csv:
    def header(self) -> bytes:
        return self._lines([CSV_COLUMNS])

    def rows(self, page: list[dict[str, Any]]) -> bytes:
        return self._lines(
            [*(_cell(row[c]) for c in EVENT_COLUMNS), _json(row["detections"])] for row in page
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
