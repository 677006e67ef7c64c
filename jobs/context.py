"""What a running job sees: its id and attempt, the database, where to write, and the
three things it tells the runner (progress, log lines) or asks it (has an abort come?)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine

from schemas.envelope import Message
from schemas.jobs import JobEvent, JobLogged, JobProgressed, LogLevel
from schemas.topics import TopicSpec

# A message for a topic, under its key.
Outgoing = tuple[TopicSpec, str, Message]

# Progress is reported at least this often, or on every 5 percent, whichever comes first.
PROGRESS_EVERY_S = 2.0
PROGRESS_STEP = 5


class Aborted(Exception):
    """The job was asked to abort and stopped at a check."""


class Stopped(Exception):
    """The runner gave the job up (its partition moved elsewhere); another attempt follows."""


@dataclass
class JobContext:
    job_id: str
    attempt: int
    # When the job was asked for: what a job derives from "now" it derives from this, so
    # every attempt derives the same.
    requested_at: datetime
    engine: Engine
    data_dir: Path
    # The camera folders, for a job that deletes image files (never anything outside them).
    camera_root: Path
    # Kafka, for a job that reads a topic back (a reprocess job reads the images topic).
    bootstrap_servers: str
    emit: Callable[[JobEvent], None]
    # Sends messages to the workers (commands), waiting for the broker to store them all.
    publish: Callable[[Sequence[Outgoing]], None]
    abort_requested: threading.Event = field(default_factory=threading.Event)
    stop_requested: threading.Event = field(default_factory=threading.Event)
    _last_progress: int = -PROGRESS_STEP
    _last_progress_at: float = 0.0

    def check(self) -> None:
        """Raise if the job should stop now: at least every PROGRESS_EVERY_S while working."""
        if self.stop_requested.is_set():
            raise Stopped(f"job {self.job_id} was handed to another runner")
        if self.abort_requested.is_set():
            raise Aborted("Aborted on request")

    def progress(self, processed: int, total: int | None, message: str) -> None:
        """Report how far the job is (throttled), then check for an abort."""
        percent = min(100, processed * 100 // total) if total else 0
        now = time.monotonic()
        due = (
            percent - self._last_progress >= PROGRESS_STEP
            or now - self._last_progress_at >= PROGRESS_EVERY_S
        )
        if due:
            self._last_progress, self._last_progress_at = percent, now
            self.emit(
                JobProgressed(
                    job_id=self.job_id,
                    attempt=self.attempt,
                    progress=percent,
                    processed=processed,
                    total=total,
                    message=message,
                )
            )
        self.check()

    def log(self, level: LogLevel, message: str) -> None:
        self.emit(JobLogged(job_id=self.job_id, attempt=self.attempt, level=level, message=message))
