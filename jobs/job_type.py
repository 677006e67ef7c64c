"""What a job type declares: its description, parameters, abort support and its work."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from sqlalchemy.exc import InterfaceError, OperationalError

from jobs.context import JobContext

# Failures a new attempt can fix: the database or the disk was away for a while.
RETRYABLE: tuple[type[BaseException], ...] = (OperationalError, InterfaceError, OSError)


@dataclass(frozen=True)
class JobType:
    name: str
    description: str
    params: type[BaseModel]
    supports_abort: bool
    run: Callable[[JobContext, Any], dict[str, Any]]
    retryable: tuple[type[BaseException], ...] = RETRYABLE

    @property
    def queue(self) -> str:
        return self.name
