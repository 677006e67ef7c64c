"""The launcher's real Kafka and Postgres: start, round trip, restart, crash, leftovers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient

from vigil.devservices.kafka import KafkaService, create_topics, start_kafka
from vigil.devservices.postgres import PostgresService, start_postgres

pytestmark = pytest.mark.services

QUIET = {"log_level": 0, "error_cb": lambda _err: None}


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _wait_gone(pid: int, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not _alive(pid)


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _start_and_abandon(code: str) -> int:
    """Start a service in another Python that exits without stopping it (a crashed run)."""
    code += "\nprint(svc.process.pid, flush=True)\nimport os; os._exit(0)"
    argv = [sys.executable, "-c", code]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=180)
    return int(out.stdout.split()[-1])


# --------------------------------------------------------------------------- Kafka


@pytest.fixture(scope="module")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaService]:
    service = start_kafka(tmp_path_factory.mktemp("kafka"))
    try:
        yield service
    finally:
        service.stop()


def _produce(
    bootstrap: str, topic: str, values: list[str], producer: Producer | None = None
) -> None:
    producer = producer or Producer({"bootstrap.servers": bootstrap, **QUIET})
    errors: list[KafkaError] = []
    for value in values:
        producer.produce(
            topic,
            value=value.encode(),
            key=b"k",
            on_delivery=lambda err, _m: err and errors.append(err),
        )
    assert producer.flush(60) == 0, "messages still queued after 60 s"
    assert not errors, errors


def _consume(consumer: Consumer, count: int, timeout: float = 30.0) -> list[str]:
    got: list[str] = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None or msg.error():
            continue
        got.append(msg.value().decode())
    return got


def _consumer(bootstrap: str, topic: str) -> Consumer:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"g-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            **QUIET,
        }
    )
    consumer.subscribe([topic])
    return consumer


def test_kafka_round_trip(kafka: KafkaService) -> None:
    topic = f"roundtrip-{uuid.uuid4().hex[:8]}"  # auto-created on first produce
    _produce(kafka.bootstrap, topic, ["hello", "world"])
    consumer = _consumer(kafka.bootstrap, topic)
    try:
        assert _consume(consumer, 2) == ["hello", "world"]
    finally:
        consumer.close()
    assert kafka.bootstrap.startswith("127.0.0.1:")


def test_create_topics_is_idempotent(kafka: KafkaService) -> None:
    a, b = f"t3-{uuid.uuid4().hex[:8]}", f"t1-{uuid.uuid4().hex[:8]}"
    create_topics(kafka.bootstrap, [(a, 3), (b, 1)])
    create_topics(kafka.bootstrap, [(a, 3), (b, 1)])
    with AdminClient({"bootstrap.servers": kafka.bootstrap}) as admin:
        metadata = admin.list_topics(timeout=10)
    assert len(metadata.topics[a].partitions) == 3
    assert len(metadata.topics[b].partitions) == 1


def test_kafka_restart_keeps_data_and_clients_reconnect(kafka: KafkaService) -> None:
    topic = f"restart-{uuid.uuid4().hex[:8]}"
    create_topics(kafka.bootstrap, [(topic, 2)])
    producer = Producer({"bootstrap.servers": kafka.bootstrap, **QUIET})
    consumer = _consumer(kafka.bootstrap, topic)
    try:
        _produce(kafka.bootstrap, topic, ["before"], producer)
        assert _consume(consumer, 1) == ["before"]
        bootstrap, pid = kafka.bootstrap, kafka.process.pid

        kafka.restart()
        assert kafka.bootstrap == bootstrap and kafka.process.pid != pid

        _produce(kafka.bootstrap, topic, ["after"], producer)  # the same producer
        assert _consume(consumer, 1, timeout=60) == ["after"]  # the same consumer
    finally:
        consumer.close()
    fresh = _consumer(kafka.bootstrap, topic)
    try:
        assert sorted(_consume(fresh, 2)) == ["after", "before"]
    finally:
        fresh.close()
    with AdminClient({"bootstrap.servers": kafka.bootstrap}) as admin:
        metadata = admin.list_topics(timeout=10)
    assert len(metadata.topics[topic].partitions) == 2

    kafka.kill()  # a crash: the broker recovers its logs on the next start
    kafka.start()
    again = _consumer(kafka.bootstrap, topic)
    try:
        assert sorted(_consume(again, 2)) == ["after", "before"]
    finally:
        again.close()


def test_kafka_leftover_from_crashed_run_is_reaped(tmp_path: Path) -> None:
    state = tmp_path / "kafka"
    old_pid = _start_and_abandon(
        "from pathlib import Path\nfrom vigil.devservices.kafka import start_kafka\n"
        f"svc = start_kafka(Path({str(state)!r}))"
    )
    assert _alive(old_pid)
    service = start_kafka(state)
    try:
        assert _wait_gone(old_pid), "the abandoned broker is still running"
        create_topics(service.bootstrap, [("after-crash", 1)])
        _produce(service.bootstrap, "after-crash", ["ok"])
    finally:
        service.stop()
    assert not _alive(service.process.pid)
    assert not (state / "run" / "kafka.pid").exists()


# --------------------------------------------------------------------------- Postgres


@pytest.fixture()
def postgres(tmp_path: Path) -> Iterator[PostgresService]:
    service = start_postgres(tmp_path / "pg")
    try:
        yield service
    finally:
        service.stop()


def _rows(dsn: str) -> list[tuple[int, str]]:
    with psycopg.connect(dsn, connect_timeout=5) as conn:
        return conn.execute("SELECT id, note FROM kept ORDER BY id").fetchall()


def test_postgres_select_and_table_survives_restart(postgres: PostgresService) -> None:
    assert postgres.url.startswith("postgresql+psycopg://vigil:")
    assert "@127.0.0.1:" in postgres.url
    with psycopg.connect(postgres.dsn) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        who = conn.execute("SELECT current_database(), current_user").fetchone()
        assert who == ("vigil", "vigil")
        conn.execute("CREATE TABLE kept (id int PRIMARY KEY, note text)")
        conn.execute("INSERT INTO kept VALUES (1, 'one')")
    port = postgres.port

    postgres.restart()
    assert postgres.port == port
    assert _rows(postgres.dsn) == [(1, "one")]

    postgres.stop()  # down for a while: connections are refused
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(postgres.dsn, connect_timeout=2)
    postgres.start()
    with psycopg.connect(postgres.dsn) as conn:
        conn.execute("INSERT INTO kept VALUES (2, 'two')")

    postgres.kill()  # a crash: committed rows survive crash recovery
    postgres.start()
    assert _rows(postgres.dsn) == [(1, "one"), (2, "two")]


def test_sqlalchemy_url_works(postgres: PostgresService) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(postgres.url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 41 + 1")).scalar() == 42
    finally:
        engine.dispose()


def test_postgres_leftover_from_crashed_run_is_reaped(tmp_path: Path) -> None:
    state = tmp_path / "pg"
    old_pid = _start_and_abandon(
        "from pathlib import Path\nfrom vigil.devservices.postgres import start_postgres\n"
        f"svc = start_postgres(Path({str(state)!r}))\n"
        "import psycopg\n"
        "with psycopg.connect(svc.dsn) as c: c.execute('CREATE TABLE kept (id int, note text)')"
    )
    assert _alive(old_pid)
    service = start_postgres(state)
    try:
        assert _wait_gone(old_pid), "the abandoned server is still running"
        assert service.process.pid != old_pid
        assert _rows(service.dsn) == []
    finally:
        service.stop()
    assert not _alive(service.process.pid)


def test_dead_pid_files_do_not_block_start(tmp_path: Path) -> None:
    state = tmp_path / "pg"
    service = start_postgres(state)
    service.kill()  # leaves PostgreSQL's own postmaster.pid behind
    assert (service.data_dir / "postmaster.pid").exists()
    (state / "run").mkdir(exist_ok=True)
    (state / "run" / "postgres.pid").write_text(str(_dead_pid()))
    service = start_postgres(state)
    try:
        with psycopg.connect(service.dsn) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert (state / "run" / "postgres.pid").read_text().split()[0] == str(service.process.pid)
    finally:
        service.stop()


def test_nothing_left_running(tmp_path: Path) -> None:
    service = start_postgres(tmp_path / "pg")
    pid = service.process.pid
    service.stop()
    assert _wait_gone(pid, 1.0)
    assert os.path.exists(tmp_path / "pg" / "pgdata" / "PG_VERSION")
