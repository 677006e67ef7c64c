"""Exact counts of detections and enrichments without scanning a million rows: whole UTC
days are summed from `read_counts` (kept exact by triggers), only the partial days at the
edges of a date range are counted in the table itself.

A filter the rollup does not key on (a minimum confidence, an event) is counted in the
table: the caller passes no `keys` then.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, time, timedelta

from sqlalchemy import ColumnElement, func, select
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
    first = None if start is None else _midnight(start)
    if first is not None and first < start:
        first += timedelta(days=1)  # the first whole day starts at the midnight after start
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
