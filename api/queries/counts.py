"""Exact counts of detections and enrichments without scanning a million rows: whole UTC
days are summed from `read_counts` (kept exact by triggers), only the partial days at the
edges of a date range are counted in the table itself.

A filter the rollup does not key on (a minimum confidence, an event) is counted in the
table: the caller passes no `keys` then.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, time, timedelta

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from projections.tables import ReadCountRow

# Counts the table's rows matching the filter and the extra conditions on its time column.
CountRows = Callable[..., int]


def _midnight(at: datetime) -> datetime:
    at = at.astimezone(UTC)
    return datetime.combine(at.date(), time(0), tzinfo=UTC)


def rollup_count(
    session: Session,
    kind: str,
    keys: Mapping[str, str],
    at: InstrumentedAttribute,
    start: datetime | None,
    end: datetime | None,
    count_rows: CountRows,
) -> int:
    """The rows of `kind` with the rollup's `keys` (column -> value) whose `at` is within
    [start, end]: whole days from the rollup, the edges by `count_rows(*conditions)`."""
    first = None if start is None else _first_midnight(start)
    last = None if end is None else _midnight(end)  # whole days end before this midnight
    if first is not None and last is not None and first >= last:
        return count_rows(at >= start, at <= end)  # no whole day in the range
    conditions: list[ColumnElement[bool]] = [ReadCountRow.kind == kind]
    conditions += [getattr(ReadCountRow, column) == value for column, value in keys.items()]
    if first is not None:
        conditions.append(ReadCountRow.day >= first.date())
    if last is not None:
        conditions.append(ReadCountRow.day < last.date())
    total = session.scalar(select(func.coalesce(func.sum(ReadCountRow.n), 0)).where(*conditions))
    if first is not None and start < first:
        total += count_rows(at >= start, at < first)
    if last is not None:
        total += count_rows(at >= last, at <= end)
    return int(total)


def _first_midnight(start: datetime) -> datetime:
    """The first midnight at or after `start`: where the whole days from `start` begin."""
    first = _midnight(start)
    return first if first >= start else first + timedelta(days=1)


def calls_since(
    session: Session,
    count_kind: str,
    latency_kind: str,
    start: datetime,
    camera_id: str | None,
    edge: Callable[[datetime], Select],
) -> dict[str, tuple[int, float | None]]:
    """Per model since `start` (of the camera): how many rows of `count_kind`, and the mean
    latency of the rows of `latency_kind`; whole days from the rollup, the partial first day
    from `edge(first_midnight)`: rows (model, count, latencies counted, latency sum)."""
    first = _first_midnight(start)
    conditions = [
        ReadCountRow.kind.in_((count_kind, latency_kind)),
        ReadCountRow.day >= first.date(),
    ]
    if camera_id is not None:
        conditions.append(ReadCountRow.camera_id == camera_id)
    totals: dict[str, list] = defaultdict(lambda: [0, 0, 0.0])
    for model, kind, n, latency_n, latency_sum in session.execute(
        select(
            ReadCountRow.model_name,
            ReadCountRow.kind,
            func.sum(ReadCountRow.n),
            func.sum(ReadCountRow.latency_n),
            func.sum(ReadCountRow.latency_sum),
        )
        .where(*conditions)
        .group_by(ReadCountRow.model_name, ReadCountRow.kind)
    ):
        if kind == count_kind:
            totals[model][0] += int(n)
        if kind == latency_kind:
            totals[model][1] += int(latency_n)
            totals[model][2] += latency_sum
    if start < first:
        for model, n, latency_n, latency_sum in session.execute(edge(first)):
            totals[model][0] += n
            totals[model][1] += latency_n
            totals[model][2] += latency_sum
    return {
        model: (n, latency_sum / latency_n if latency_n else None)
        for model, (n, latency_n, latency_sum) in totals.items()
        if n
    }
