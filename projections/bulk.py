"""Many rows written by one statement over column arrays (`INSERT ... SELECT FROM unnest`).

A replay writes a million rows; each one compiled and bound by the ORM cost the projector
more than Postgres took to store it. Here a run of rows is one statement of fixed text
(prepared by psycopg after a few uses) with one array per column, in binary, so the
rows cost a list comprehension each, the statement triggers fire once, and the database
is asked once.

An `ON CONFLICT DO UPDATE` tail must not see one key twice in a statement: the callers
give such statements rows with distinct keys.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from psycopg.types.json import Jsonb
from sqlalchemy import Enum, Result, String, Table
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeEngine

_DIALECT = postgresql.dialect()


def _element_type(column_type: TypeEngine) -> str:
    """The arrays' element type: a string without its length (a cast to VARCHAR(64) would cut
    an overlong value short, where the column refuses it)."""
    if isinstance(column_type, String) and not isinstance(column_type, Enum):
        return "TEXT"
    return column_type.compile(dialect=_DIALECT)


@dataclass(frozen=True)
class Unnest:
    """`INSERT INTO table (columns) SELECT FROM unnest(arrays) <tail>`."""

    table: Table
    columns: tuple[str, ...]
    # What follows the SELECT: ON CONFLICT ..., RETURNING ...
    tail: str = ""
    _statement: str = field(init=False, repr=False)
    _json: frozenset[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        types = {name: self.table.c[name].type for name in self.columns}
        # %(name)b: the arrays go in Postgres's binary format (a tenth of the text format's
        # cost for timestamps and floats).
        arrays = ", ".join(
            f"CAST(%({name})b AS {_element_type(types[name])}[])" for name in self.columns
        )
        sql = (
            f"INSERT INTO {self.table.name} ({', '.join(self.columns)}) "
            f"SELECT * FROM unnest({arrays}) {self.tail}"
        )
        object.__setattr__(self, "_statement", sql)
        json = frozenset(n for n, t in types.items() if isinstance(t, postgresql.JSONB))
        object.__setattr__(self, "_json", json)

    def execute(self, session: Session, rows: Sequence[Mapping[str, Any]]) -> Result:
        """Insert `rows` (each with every column); the statement's result (its RETURNING)."""
        arrays: dict[str, list] = {name: [row[name] for row in rows] for name in self.columns}
        for name in self._json:
            arrays[name] = [None if v is None else Jsonb(v) for v in arrays[name]]
        return session.connection().exec_driver_sql(self._statement, arrays)
