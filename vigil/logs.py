"""How every Vigil process logs: text for a person, or with LOG_FORMAT=json one JSON object per
line for a log pipeline.

A JSON line holds `time` (UTC, ISO 8601), `level`, `logger`, `message`, `process` (the pid),
`exception` when there is one, and `trace_id`, `camera_id` and `image_id` when known: from the
record's `extra`, or else from the message being handled (`message_context`, which the stages
enter around each handler).
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

LogFormat = Literal["text", "json"]
CONTEXT_FIELDS = ("trace_id", "camera_id", "image_id")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# librdkafka's own lines (a broker unreachable, a rebalance), through logging rather than
# written to stderr by the C library: a client's configuration names it as its "logger"
# (they are handed over when the client is polled).
KAFKA_LOG = logging.getLogger("rdkafka")
# A confluent-kafka client's settings for that. Levels below notice are left out: among them
# is the line a client closing with log lines still queued writes straight to stderr
# ("Purging 1 unserved events from background queue").
KAFKA_LOGGING = {"logger": KAFKA_LOG, "log_level": 5}

_context: ContextVar[dict[str, str]] = ContextVar("vigil_log_context", default={})  # noqa: B039


def context_of(message: object) -> dict[str, str]:
    """The context fields `message` (an event or command) carries."""
    fields = {}
    for name in CONTEXT_FIELDS:
        value = getattr(message, name, None)
        if isinstance(value, str) and value:
            fields[name] = value
    return fields


@contextlib.contextmanager
def message_context(message: object) -> Iterator[None]:
    """Log records made inside carry `message`'s trace, camera and image (in this task or
    thread only: a context variable)."""
    token = _context.set({**_context.get(), **context_of(message)})
    try:
        yield
    finally:
        _context.reset(token)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        known = _context.get()
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None) or known.get(name)
            if value:
                line[name] = str(value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class StderrHandler(logging.StreamHandler):
    """The one handler: stderr. Made by `logging_config`'s document in every process that
    applies it (uvicorn's workers too), it also takes Python's warnings into logging, so that
    they come out in the same format rather than as bare lines."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)
        logging.captureWarnings(True)


def logging_config(log_format: LogFormat, level: str = "INFO") -> dict[str, Any]:
    """A `logging.config.dictConfig` document: one stderr handler on the root logger, in
    `log_format`; uvicorn's and Faust's loggers go through it too."""
    formatter: dict[str, Any] = (
        {"()": f"{__name__}.JsonFormatter"} if log_format == "json" else {"format": TEXT_FORMAT}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"vigil": formatter},
        "handlers": {"stderr": {"()": f"{__name__}.StderrHandler", "formatter": "vigil"}},
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {
            # uvicorn's own configuration gives these handlers of their own; here they go
            # to the root's.
            **{
                name: {"level": level, "handlers": [], "propagate": True}
                for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
            },
            "httpx": {"level": "WARNING"},  # one line per request drowns the rest
        },
    }
