"""The `vigil` command line."""

from __future__ import annotations

import logging
import logging.config
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from vigil.devservices.procs import REPO_ROOT, cache_dir
from vigil.jobs_cli import export as export_events
from vigil.jobs_cli import jobs_app
from vigil.settings import get_settings

app = typer.Typer(
    help="Vigil: camera images in, risk-assessed security events out.", no_args_is_help=True
)
schemas_app = typer.Typer(help="Event contracts.", no_args_is_help=True)
app.add_typer(schemas_app, name="schemas")
app.add_typer(jobs_app, name="jobs")
app.command("export")(export_events)


def _logging(level: str = "INFO") -> None:
    from vigil.logs import logging_config

    logging.config.dictConfig(logging_config(get_settings().log_format, level))


def _serve_metrics(host: str, port: int) -> None:
    """Serve this process's Prometheus metrics at http://host:port/metrics (port 0: not)."""
    if port:
        from prometheus_client import start_http_server

        start_http_server(port, addr=host)


def _tracing(service: str) -> None:
    """This process's traces, exported as the OTEL_* variables say (vigil.tracing)."""
    from vigil import tracing

    tracing.configure(service)


def _state_dir() -> Path:
    return Path(os.environ.get("VIGIL_STATE_DIR", cache_dir() / "state"))


@app.command()
def worker() -> None:
    """Run the Faust worker: watcher, detection, enrichment, batching and analysis agents."""
    import faust

    from streams.app import create_worker_app
    from vigil.logs import logging_config

    settings = get_settings()
    _serve_metrics(settings.metrics_host, settings.worker_metrics_port)
    _tracing("vigil-worker")
    faust.Worker(
        create_worker_app(settings),
        loglevel="INFO",
        logging_config=logging_config(settings.log_format),
        quiet=settings.log_format == "json",  # Faust's start-up banner is no log line
    ).execute_from_commandline()


@app.command()
def projector() -> None:
    """Project the topics into the Postgres read models until stopped."""
    from projections.db import make_engine
    from projections.runner import Projector, settle_heap

    _logging()
    settings = get_settings()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    runner = Projector(
        engine=make_engine(settings.database_url),
        bootstrap_servers=settings.kafka_bootstrap_servers,
        consumer_name=settings.projector_group,
        session_timeout_s=settings.projector_session_timeout_s,
    )
    _serve_metrics(settings.metrics_host, settings.projector_metrics_port)
    _tracing("vigil-projector")
    settle_heap()
    runner.run(stop)


@app.command()
def runner() -> None:
    """Run background jobs (export ...) from vigil.jobs until stopped."""
    from jobs.runner import JobRunner
    from projections.db import make_engine
    from streams.retry import RetryPolicy

    _logging()
    settings = get_settings()
    _tracing("vigil-runner")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    JobRunner(
        engine=make_engine(settings.database_url),
        bootstrap_servers=settings.kafka_bootstrap_servers,
        worker_id=settings.worker_id,
        data_dir=settings.data_dir,
        camera_root=settings.camera_root,
        concurrency=settings.job_concurrency,
        policy=RetryPolicy.from_settings(settings),
        group=settings.job_runner_group,
    ).run(stop)


@app.command()
def api(
    host: Annotated[str | None, typer.Option(help="Bind address")] = None,
    port: Annotated[int | None, typer.Option(help="Port")] = None,
) -> None:
    """Serve the REST API (API_WORKERS processes, each building the app from the environment)."""
    import uvicorn

    from vigil.logs import logging_config

    settings = get_settings()
    counted = None
    if settings.api_workers > 1:
        # Each worker counts in files of its own there; /metrics adds them up.
        from vigil.metrics import fresh_multiprocess_dir

        counted = settings.data_dir / "api-metrics" / str(os.getpid())
        fresh_multiprocess_dir(counted)
    try:
        uvicorn.run(
            "api.main:create_app",
            factory=True,
            workers=settings.api_workers,
            host=host or settings.api_host,
            port=port or settings.api_port,
            log_level="info",
            log_config=logging_config(settings.log_format),
        )
    finally:
        if counted is not None:
            shutil.rmtree(counted, ignore_errors=True)


@app.command()
def init() -> None:
    """Prepare a deployment: create the topics and bring the read-model schema up to date."""
    from vigil.bootstrap import initialize

    _logging()
    initialize(get_settings())


@app.command()
def replay(
    yes: Annotated[bool, typer.Option("--yes", help="Confirm emptying the read models")] = False,
) -> None:
    """Empty the read models so the (stopped) projector rebuilds them from the topics."""
    from projections.db import make_engine, reset_read_models

    if not yes:
        typer.echo("this empties every read model; run again with --yes", err=True)
        raise typer.Exit(2)
    settings = get_settings()
    engine = make_engine(settings.database_url)
    emptied = reset_read_models(engine, settings.projector_group)
    typer.echo(f"emptied {', '.join(emptied)}; start the projector to replay")


@app.command("replay-topic")
def replay_topic(
    topic: Annotated[str, typer.Argument(help="The topic to read again, e.g. vigil.events")],
    group: Annotated[str, typer.Option("--group", help="The consumer group to move")],
    since: Annotated[
        str | None,
        typer.Option(help="From the first message at or after this time (ISO 8601, with zone)"),
    ] = None,
    to_offset: Annotated[
        int | None, typer.Option("--to-offset", help="From this offset on every partition")
    ] = None,
    earliest: Annotated[bool, typer.Option("--earliest", help="From the first message")] = False,
) -> None:
    """Move another service's consumer group back on TOPIC so that it reads again from there
    (the group must be stopped); prints each partition's move."""
    from vigil.group_replay import ReplayRefused, Target, replay_group

    try:
        moment = None if since is None else datetime.fromisoformat(since)
    except ValueError:
        typer.echo(f"refused: --since {since!r} is no ISO 8601 time", err=True)
        raise typer.Exit(2) from None
    try:
        target = Target(since=moment, offset=to_offset, earliest=earliest)
        moves = replay_group(get_settings().kafka_bootstrap_servers, topic, group, target)
    except ReplayRefused as exc:
        typer.echo(f"refused: {exc}", err=True)
        raise typer.Exit(1) from None
    for move in moves:
        before = "none" if move.previous is None else str(move.previous)
        typer.echo(f"{topic}[{move.partition}] {group}: {before} -> {move.offset}")


@app.command()
def models(force: Annotated[bool, typer.Option(help="Rebuild even if cached")] = False) -> None:
    """Build the Triton model files (cached under .cache/)."""
    from vigil.models import ensure_models

    _logging()
    for name, path in ensure_models(force=force).items():
        typer.echo(f"{name}: {path}")


@app.command()
def apikey() -> None:
    """Make a new API key: the key goes to clients, its digest into API_KEY_HASHES."""
    from api.security import new_api_key

    key, digest = new_api_key()
    typer.echo(f"key:    {key}")
    typer.echo(f"digest: {digest}")
    typer.echo(
        "Add the digest to API_KEY_HASHES (comma-separated) and give the key to clients as "
        "X-API-Key; the key itself is stored nowhere.",
        err=True,
    )


@schemas_app.command("export")
def schemas_export(
    out: Annotated[Path, typer.Option(help="Folder for the JSON Schema files")] = Path(
        "schemas/json"
    ),
    asyncapi: Annotated[Path, typer.Option(help="The AsyncAPI document")] = Path(
        "schemas/asyncapi.yaml"
    ),
) -> None:
    """Write JSON Schema for every topic, and the AsyncAPI document of them all."""
    from schemas.export import export_asyncapi, export_schemas

    for path in export_schemas(out):
        typer.echo(str(path))
    typer.echo(str(export_asyncapi(asyncapi)))


@app.command()
def up(
    demo: Annotated[bool, typer.Option(help="Drop the sample photos and show detections")] = True,
    exit_after_demo: Annotated[
        bool, typer.Option("--exit", help="Stop everything once the sample run is done")
    ] = False,
) -> None:
    """Start Vigil end to end on local defaults: Kafka, Postgres, Triton, workers, API."""
    from vigil.demo import run_up

    _logging()
    raise typer.Exit(run_up(_state_dir(), demo=demo, exit_after_demo=exit_after_demo))


@app.command()
def demo() -> None:
    """The sample run alone: start everything, show detections and events, stop everything."""
    from vigil.demo import run_up

    _logging()
    raise typer.Exit(run_up(_state_dir(), demo=True, exit_after_demo=True))


@app.command()
def down() -> None:
    """Stop every process a previous `vigil up` left running (by its pid files)."""
    from vigil.devservices.procs import reap_leftover

    run = _state_dir() / "run"
    for pid_file in sorted(run.glob("*.pid")) if run.is_dir() else []:
        typer.echo(f"stopping {pid_file.stem}")
        reap_leftover(pid_file)


bench_app = typer.Typer(help="Benchmarks, each a ratio against a baseline in the same run.")
app.add_typer(bench_app, name="bench")


@bench_app.callback(invoke_without_command=True)
def bench(
    ctx: typer.Context,
    images: Annotated[int, typer.Option(help="How many images to send")] = 60,
) -> None:
    """Detector throughput through Triton alone vs the whole path, and end-to-end latency
    (`vigil bench export` for the export job)."""
    if ctx.invoked_subcommand is not None:
        return
    from bench.detection_pipeline import main

    _logging("WARNING")
    main(cache_dir() / "bench-state", images)


@bench_app.command("export")
def bench_export(
    rows: Annotated[int, typer.Option(help="How many events to seed and export")] = 100_000,
) -> None:
    """The export job through the runner vs a bare COPY of the same rows: rows/s, peak RSS."""
    from bench.export import main

    _logging("WARNING")
    main(cache_dir() / "bench-export-state", rows)


@bench_app.command("seed")
def bench_seed(
    detections: Annotated[int, typer.Option(help="How many detections to generate")] = 1_000_000,
    cameras: Annotated[int, typer.Option(help="Over this many cameras")] = 50,
    days: Annotated[int, typer.Option(help="Over this many days, ending now")] = 30,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed, the same data")] = 0,
) -> None:
    """Publish realistic history (images, detections, enrichments, batches, events with 1-3
    analysis versions, audits, dead letters) straight to the topics of KAFKA_BOOTSTRAP_SERVERS,
    no model called; the projector builds the read models from it."""
    import json

    from bench.seed import publish
    from vigil.bootstrap import ensure_topics

    _logging("WARNING")
    settings = get_settings()
    ensure_topics(settings)
    seeded = publish(
        settings.kafka_bootstrap_servers, detections, cameras=cameras, days=days, seed=seed
    )
    rate = round(seeded.detections / max(seeded.seconds, 0.001))
    report = {**vars(seeded), "detections_per_s": rate}
    typer.echo(json.dumps(report, indent=1))


@bench_app.command("replay")
def bench_replay(
    detections: Annotated[int, typer.Option(help="How many detections to seed")] = 1_000_000,
) -> None:
    """The projector rebuilding every read model from seeded topics vs a bare consumer that
    decodes and discards the same records: messages/s, wall time, ratio."""
    from bench.replay import main

    _logging("WARNING")
    main(cache_dir() / "bench-replay-state", detections)


@bench_app.command("api")
def bench_api(
    detections: Annotated[int, typer.Option(help="How many detections to seed")] = 1_000_000,
    only_health: Annotated[bool, typer.Option(help="Load only the health probe")] = False,
) -> None:
    """Every read endpoint on seeded read models against the same SQL run bare, and the
    health probe against a constant (loaded by the Python client and by wrk), at 1 and 16
    connections: requests/s, p50, p99, errors. The read models are seeded on the first run
    and reused after."""
    from bench.api import main

    _logging("WARNING")
    main(cache_dir() / "bench-api-state", detections, only_health)


@bench_app.command("load")
def bench_load(
    detections: Annotated[int, typer.Option(help="How many detections to seed")] = 1_000_000,
    rate: Annotated[float, typer.Option(help="Read requests per second")] = 200.0,
    seconds: Annotated[float, typer.Option(help="For this long")] = 60.0,
) -> None:
    """A paced mix of reads on the seeded read models, with a flush and a DLQ requeue every
    few seconds, while a worker and a projector run: errors and p50/p99 per kind."""
    from bench.api_load import main

    _logging("WARNING")
    main(cache_dir() / "bench-api-state", detections, rate, seconds)


def _test_processes() -> list[str]:
    """pytest-xdist's arguments: one test process per core (at most 4, or
    VIGIL_TEST_PROCESSES), each with its own Kafka, Postgres and Triton, a module's tests
    kept in one process (their module-scoped services are started once). Most of a test's
    time is spent waiting on those services, so two processes on two cores take about 0.7
    of the time of one."""
    processes = int(os.environ.get("VIGIL_TEST_PROCESSES") or min(os.cpu_count() or 1, 4))
    if processes == 1:
        return []
    # A test process that dies fails the run at once, naming the test it was running:
    # xdist's replacement of a dead process has left the run waiting forever with
    # loadfile, both processes idle.
    return ["-n", str(processes), "--dist", "loadfile", "--max-worker-restart=0"]


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def test(ctx: typer.Context) -> None:
    """Lint, then run the whole test suite against real services; extra arguments go to pytest.

    `ruff check` and `ruff format --check` run first and fail the command on their own.
    Tests run in a random order: pytest-randomly prints the seed, and
    `vigil test --randomly-seed=N` replays that order. pytest's exit 5 (no tests
    collected) counts as a failure.
    """
    from vigil.devservices.triton import ensure_triton_venv
    from vigil.models import ensure_models

    _logging()
    for check in (["check", "."], ["format", "--check", "."]):
        code = subprocess.call([sys.executable, "-m", "ruff", *check], cwd=REPO_ROOT)
        if code != 0:
            typer.echo(f"ruff {check[0]} failed: fix it before the tests run", err=True)
            raise typer.Exit(code)
    ensure_models()
    ensure_triton_venv()
    args = list(ctx.args)
    if not any(arg.startswith(("--randomly-seed", "-p")) for arg in args):
        # pytest -q hides the header where pytest-randomly names its seed: choose it here.
        seed = random.randrange(2**32)
        typer.echo(f"random test order, seed {seed} (replay: vigil test --randomly-seed={seed})")
        args.insert(0, f"--randomly-seed={seed}")
    if not any(arg.startswith(("-n", "--numprocesses", "--dist")) for arg in args):
        args[:0] = _test_processes()
    # The slowest tests are listed at the end: the suite is kept well under 15 minutes.
    pytest = [sys.executable, "-m", "pytest", "-q", "--durations=20", *args]
    code = subprocess.call(pytest, cwd=REPO_ROOT)
    if code == 5:
        typer.echo("pytest collected no tests: failing", err=True)
        code = 1
    raise typer.Exit(code)


if __name__ == "__main__":
    app()
