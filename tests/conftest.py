"""Fixtures that give tests the real services.

One Kafka broker, one Postgres and one Triton server are started for the
whole session by the project's own launcher (or taken from
KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL / TRITON_URL when those are set).
Tests stay independent on these shared services through random camera ids.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from vigil.devservices.stack import Stack


def wait_for(condition: Callable[[], object], *, timeout: float, what: str, interval=0.2):
    """Poll until `condition()` is truthy and return its value; fail naming `what`."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def new_camera_id(prefix: str = "cam") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    from vigil.devservices.stack import start_stack

    started = start_stack(tmp_path_factory.mktemp("services"))
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="session")
def samples() -> dict[str, Path]:
    from vigil.models import sample_images

    return {path.name: path for path in sample_images()}
