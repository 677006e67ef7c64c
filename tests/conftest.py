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

# Triton models used for fault injection only (a model that answers badly or errors).
FAULT_MODELS = Path(__file__).with_name("triton_models")


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
    from vigil.devservices.stack import LOCAL_MODELS, start_stack

    started = start_stack(
        tmp_path_factory.mktemp("services"),
        triton_models=(*LOCAL_MODELS, "scripted-analyst"),
        extra_model_repositories=(FAULT_MODELS,),
    )
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="session")
def samples() -> dict[str, Path]:
    from vigil.models import sample_images

    return {path.name: path for path in sample_images()}


@pytest.fixture(scope="session")
def engine(stack: Stack):
    from projections.db import make_engine

    engine = make_engine(stack.database_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def producer(stack: Stack):
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": stack.kafka_bootstrap, "acks": "all"})
    yield producer
    producer.flush(10)


def publish(producer, topic: str, key: str | None, value: bytes) -> None:
    """Produce one message and wait until the broker has it."""
    errors = []
    producer.produce(
        topic,
        key=key.encode() if key else None,
        value=value,
        on_delivery=lambda e, _m: errors.append(e),
    )
    producer.flush(10)
    assert errors == [None], f"delivery failed: {errors}"


@pytest.fixture(scope="session")
def api_client(stack: Stack):
    from fastapi.testclient import TestClient

    from api.main import create_app

    with TestClient(create_app(stack.settings())) as client:
        yield client
