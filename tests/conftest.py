"""Fixtures that give tests the real services.

One Kafka broker, one Postgres and one Triton server are started per test process (pytest-xdist)
by the project's own launcher (or taken from KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL /
TRITON_URL when those are set). Tests stay independent on these shared services through
random camera ids; a module whose commands act on a whole queue, or that publishes streams
of events other modules' workers would have to process, takes services of its own
(`own_stack` and its `own_*` clients: a broker and a database no other module sees).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import api_client_of, engine_of, own_services, producer_of
from vigil.devservices.stack import Stack

# A test process that dies: what it was doing, and what the kernel saw kill it.
pytest_plugins = ["tests.process_trails"]

# A worker or projector a test kills hands its partitions on after this long, not after
# Kafka's usual minute, and the transaction it left open is aborted after 5 s (every process
# the tests start inherits it).
os.environ.setdefault("WORKER_SESSION_TIMEOUT_S", "8")
os.environ.setdefault("PROJECTOR_SESSION_TIMEOUT_S", "8")
os.environ.setdefault("TRANSACTION_TIMEOUT_S", "5")

# Triton models of the tests: fault injection (a model that answers badly or errors, in the
# CPU analyst's contract and in the vLLM backend's) and
# `centernet-strict`, a second real detector configuration to reprocess images with.
FAULT_MODELS = Path(__file__).with_name("triton_models")


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    from vigil.devservices.stack import LOCAL_MODELS, start_stack

    started = start_stack(
        tmp_path_factory.mktemp("services"),
        triton_models=(
            *LOCAL_MODELS,
            "scripted-analyst",
            "vllm-analyst",
            "faulty-detector",
            "faulty-enricher",
            "centernet-strict",
        ),
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
    with engine_of(stack) as engine:
        yield engine


@pytest.fixture(scope="session")
def producer(stack: Stack):
    with producer_of(stack) as producer:
        yield producer


@pytest.fixture(scope="session")
def api_client(stack: Stack):
    with api_client_of(stack) as client:
        yield client


@pytest.fixture(scope="module")
def own_stack(stack: Stack, tmp_path_factory, request) -> Iterator[Stack]:
    prefix = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    with own_services(stack, tmp_path_factory.mktemp(f"own-{prefix}"), prefix) as own:
        yield own


@pytest.fixture(scope="module")
def own_engine(own_stack: Stack):
    with engine_of(own_stack) as engine:
        yield engine


@pytest.fixture(scope="module")
def own_producer(own_stack: Stack):
    with producer_of(own_stack) as producer:
        yield producer


@pytest.fixture(scope="module")
def own_api_client(own_stack: Stack):
    with api_client_of(own_stack) as client:
        yield client


# -- where the suite's time goes (it is kept well under 15 minutes) ------------------------

_MODULE_SECONDS: dict[str, float] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    module = report.nodeid.split("::", 1)[0]
    _MODULE_SECONDS[module] = _MODULE_SECONDS.get(module, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter) -> None:
    """The 15 test modules that took longest, setup and teardown included."""
    slowest = sorted(_MODULE_SECONDS.items(), key=lambda item: -item[1])[:15]
    if not slowest:
        return
    terminalreporter.section("slowest modules (setup, calls and teardown)")
    for module, seconds in slowest:
        terminalreporter.write_line(f"{seconds:8.1f}s  {module}")


@pytest.fixture(scope="session")
def span_exporter():
    """Every span this test process records, in memory (the exporter is added to the process's
    tracer provider once; `spans` clears it per test)."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from vigil import tracing

    tracing.configure("vigil-tests")
    exporter = InMemorySpanExporter()
    trace.get_tracer_provider().add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


@pytest.fixture
def spans(span_exporter):
    span_exporter.clear()
    return span_exporter
