"""Fixtures that give tests the real services.

One Kafka broker, one Postgres and one Triton server are started per test process (pytest-xdist)
by the project's own launcher (or taken from KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL /
TRITON_URL when those are set). Tests stay independent on these shared services through
random camera ids; a module whose commands act on a whole queue, or that publishes streams
of events other modules' workers would have to process, takes services of its own
(`own_stack` and its `own_*` clients: a broker and a database no other module sees).
"""

from __future__ import annotations

import faulthandler
import os
import signal
import time
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import api_client_of, engine_of, own_services, producer_of
from vigil.devservices.stack import Stack

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


# -- a test process that dies: what it was doing -------------------------------------------
# xdist reports a test process that died only as "node down: Not properly terminated". Each
# process writes every test it starts, and Python's own traceback dump on a fatal signal
# (faulthandler: SIGSEGV, SIGFPE, SIGABRT, SIGBUS, SIGILL, and SIGTERM, SIGHUP and SIGINT) to a
# trail of its own; when one goes down, the controller prints the end of its trail. (A SIGKILL
# leaves no dump: the last test started is then all there is. execnet, when its channel to
# the controller fails, sends its own process a SIGINT and calls os._exit 10 s later: the
# SIGINT's dump shows its receiver thread doing so.)

TRAILS = Path(__file__).resolve().parents[1] / ".cache" / "test-trails"
_trail = None


@pytest.hookimpl(trylast=True)
def pytest_configure(config) -> None:
    global _trail
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker is None:
        return
    TRAILS.mkdir(parents=True, exist_ok=True)
    # Open for the whole life of the process: the dump on a fatal signal is written to it.
    _trail = open(TRAILS / f"{worker}.log", "w", buffering=1)
    _trail.write(f"{time.strftime('%H:%M:%S')} pid {os.getpid()}\n")
    faulthandler.enable(file=_trail, all_threads=True)
    for caught in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        faulthandler.register(caught, file=_trail, all_threads=True, chain=True)
    # Every signal this process sends, and an os._exit, are written down with where from: a
    # process that SIGKILLs its own group, or exits without a word, says so in its trail.
    os.kill, os.killpg, os._exit = _noted(os.kill), _noted(os.killpg), _noted(os._exit)


def _noted(call):
    exits = call.__name__ == "_exit"

    def noted(*args):
        if exits or args[-1] != 0:  # a signal 0 only asks whether a process is alive
            caller = traceback.extract_stack(limit=2)[0]
            _trail.write(
                f"{time.strftime('%H:%M:%S')} {call.__name__}{args} from "
                f"{caller.filename}:{caller.lineno}\n"
            )
            if exits:
                faulthandler.dump_traceback(file=_trail, all_threads=True)
        return call(*args)

    return noted


def pytest_runtest_logstart(nodeid: str, location) -> None:
    if _trail is not None:
        _trail.write(f"{time.strftime('%H:%M:%S')} start {nodeid}\n")


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    if not error:
        return
    trail = TRAILS / f"{node.gateway.id}.log"
    lines = trail.read_text(errors="replace").splitlines()[-120:] if trail.exists() else []
    reporter = node.config.pluginmanager.get_plugin("terminalreporter")
    reporter.write_line(f"test process {node.gateway.id} went down ({error}); its trail ends:")
    for line in lines or ["(no trail written)"]:
        reporter.write_line(f"  {line}")
