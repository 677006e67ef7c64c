"""What tests do with the real services: wait for a condition, produce, read a topic back,
drop a file into a camera folder, and stand up services of a test module's own.

Builders of events and rows are in `tests/factories.py`; fixtures in `tests/conftest.py`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, TopicPartition
from sqlalchemy import text
from sqlalchemy.engine import make_url

from schemas.codec import decode
from schemas.reading import take
from schemas.topics import TopicSpec, producer_settings
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


def json_log_lines(path: Path) -> list[dict]:
    """Every line of a process's log (LOG_FORMAT=json) as the JSON object it must be."""
    lines = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        try:
            lines.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise AssertionError(f"{path.name}:{number} is no JSON line: {line!r}") from exc
    assert lines, f"{path.name} is empty"
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    return lines


def metric(exposition: str, name: str, **labels: str) -> float:
    """The value of the sample `name` with `labels` (among others) in a Prometheus text
    exposition, summed over the samples that match; 0 when none does."""
    from prometheus_client.parser import text_string_to_metric_families

    return sum(
        sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


def new_camera_id(prefix: str = "cam") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


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


def drop(camera_root: Path, camera_id: str, name: str, data: bytes) -> Path:
    """Upload a file the way a camera does: written under a temporary name, then renamed."""
    folder = camera_root / camera_id
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f".{name}.part"
    partial.write_bytes(data)
    return partial.rename(folder / name)


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file's content, as the watcher announces it."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def variant(samples: dict[str, Path], name: str, n: int) -> bytes:
    """A distinct file with the same picture (bytes after the JPEG end marker are ignored)."""
    return samples[name].read_bytes() + f"\n#variant-{n}".encode()


class TopicWatcher:
    """Reads a topic from its current end: sees only what is produced after it was made."""

    def __init__(self, bootstrap: str, topic: TopicSpec) -> None:
        self.topic = topic
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"test-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
            }
        )
        partitions = self._consumer.list_topics(topic.name, timeout=10).topics[topic.name]
        ends = []
        for partition in partitions.partitions:
            _low, high = self._consumer.get_watermark_offsets(
                TopicPartition(topic.name, partition), timeout=10
            )
            ends.append(TopicPartition(topic.name, partition, high))
        self._consumer.assign(ends)

    def find(self, matches, timeout: float = 15.0) -> tuple[str | None, Any]:
        """The key and decoded value of the first message for which `matches(value)` holds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = self._consumer.poll(0.2)
            if message is None or message.error():
                continue
            value = decode(self.topic, message.value())
            if matches(value):
                key = message.key()
                return (key.decode() if key else None), value
        raise AssertionError(f"nothing matching on {self.topic.name} within {timeout}s")

    def close(self) -> None:
        self._consumer.close()


def read_back(bootstrap: str, topic: str, partition: int, offset: int) -> tuple[str, bytes]:
    """Key and value of one message, read at its offset (no subscription, nothing committed)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(topic, partition, offset)])

    def next_message():
        message = consumer.poll(0.5)
        return message if message is not None and not message.error() else None

    try:
        message = wait_for(next_message, timeout=15, what=f"{topic}[{partition}]@{offset}")
    finally:
        consumer.close()
    assert message.offset() == offset
    return message.key().decode(), message.value()


def read_topic(
    bootstrap: str, topic: TopicSpec, key: str | Collection[str] | None = None
) -> list[Any]:
    """Every message on `topic` up to its current end (of `key` only, or of the keys, when
    given: only those are decoded), as an outside consumer sees them: in order per partition."""
    return [message for _, message in read_records(bootstrap, topic, key)]


def read_records(
    bootstrap: str,
    topic: TopicSpec,
    key: str | Collection[str] | None = None,
    *,
    committed: bool = True,
    decoded: bool = True,
) -> list[tuple[int, Any]]:
    """`read_topic`, each message with the partition it is on. `committed`: read as a
    read-committed consumer does (False: aborted transactions' messages too). `decoded`: each
    message as the codec reads it (False: its bytes as written)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed" if committed else "read_uncommitted",
        }
    )
    keys = None if key is None else {key} if isinstance(key, str) else set(key)
    found: list[tuple[int, Any]] = []
    try:
        partitions = consumer.list_topics(topic.name, timeout=10).topics[topic.name].partitions
        unread = set()
        starts = []
        for partition in partitions:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic.name, partition), timeout=10
            )
            if high > low:
                unread.add(partition)
                starts.append(TopicPartition(topic.name, partition, low))
        consumer.assign(starts)
        deadline = time.monotonic() + 30
        # The end of a partition is where the consumer says so: a transaction's last record
        # is its commit marker, which is never handed out.
        while unread and time.monotonic() < deadline:
            for message in take(consumer, 1000, 0.5):
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        unread.discard(message.partition())
                    continue
                if keys is None or (message.key() or b"").decode() in keys:
                    value = message.value()
                    found.append((message.partition(), decode(topic, value) if decoded else value))
        assert not unread, f"{topic.name} partitions {sorted(unread)} not read to their end"
    finally:
        consumer.close()
    return found


@contextmanager
def engine_of(stack: Stack):
    from projections.db import make_engine

    engine = make_engine(stack.database_url)
    try:
        yield engine
    finally:
        engine.dispose()


@contextmanager
def producer_of(stack: Stack):
    from confluent_kafka import Producer

    producer = Producer(producer_settings(stack.kafka_bootstrap, {"acks": "all"}))
    try:
        yield producer
    finally:
        producer.flush(10)


@dataclass
class LiveApi:
    app: Any
    base_url: str  # ws://127.0.0.1:<port>
    loop: asyncio.AbstractEventLoop


@contextmanager
def live_api_of(settings) -> Iterator[LiveApi]:
    """The app served by uvicorn on a free port, in its own thread and loop, once it serves
    and its feeds have a position at the end of their topics."""
    import uvicorn

    from api.main import create_app
    from vigil.devservices.procs import free_port

    app = create_app(settings)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(
        target=loop.run_until_complete, args=(server.serve(),), name="live-api", daemon=True
    )
    thread.start()
    wait_for(
        lambda: server.started and app.state.event_feed.ready and app.state.job_feed.ready,
        timeout=30,
        what="the API to serve with its feeds at the end of their topics",
    )
    try:
        yield LiveApi(app=app, base_url=f"ws://127.0.0.1:{port}", loop=loop)
    finally:
        server.should_exit = True
        thread.join(15)
        loop.close()


@contextmanager
def api_client_of(stack: Stack):
    from fastapi.testclient import TestClient

    from api.main import create_app

    with TestClient(create_app(stack.settings())) as client:
        yield client


def _in_database(database_url: str, statement: str) -> None:
    from projections.db import make_engine

    admin = make_engine(database_url)
    try:
        with admin.begin() as connection:
            connection.execute(text(statement))
    finally:
        admin.dispose()


def new_schema(database_url: str, name: str) -> str:
    """An empty schema in the database; the URL whose connections use it."""
    _in_database(database_url, f'CREATE SCHEMA "{name}"')
    url = make_url(database_url).update_query_dict({"options": f"-csearch_path={name}"})
    return url.render_as_string(hide_password=False)


def drop_schema(database_url: str, name: str) -> None:
    _in_database(database_url, f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@contextmanager
def own_services(stack: Stack, state_dir: Path, prefix: str) -> Iterator[Stack]:
    """A Kafka broker and a database of a test module's own (a schema of the session's
    database), initialised like a deployment (topics, tables, seed prompt), beside the
    session's Triton.

    For tests whose commands act on a whole queue or whose events every projection would
    see: what they publish reaches no other module, and no other module's events reach them.
    """
    from vigil.bootstrap import initialize
    from vigil.devservices.kafka import start_kafka

    kafka = start_kafka(state_dir / "kafka")
    own = Stack(
        state_dir=state_dir,
        kafka_bootstrap=kafka.bootstrap,
        database_url="",
        triton_url=stack.triton_url,
        triton_grpc_url=stack.triton_grpc_url,
        kafka=kafka,
    )
    schema = f"{prefix}_{uuid.uuid4().hex[:8]}"
    try:
        own.database_url = new_schema(stack.database_url, schema)
        initialize(own.settings())
        yield own
    finally:
        own.stop()
        drop_schema(stack.database_url, schema)


def letters_stored(engine, ids: list[str]) -> bool:
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from projections.tables import DeadLetterRow

    with Session(engine) as session:
        found = session.scalars(
            select(DeadLetterRow.dead_letter_id).where(DeadLetterRow.dead_letter_id.in_(ids))
        ).all()
    return len(found) == len(ids)


def seed_letters(producer, engine, *letters) -> list[str]:
    """Publish dead letters to their dead-letter topics and wait until they are projected."""
    from schemas.codec import encode
    from schemas.topics import DEAD_LETTER_TOPICS

    for letter in letters:
        publish(producer, DEAD_LETTER_TOPICS[letter.stage].name, letter.camera_id, encode(letter))
    ids = [str(letter.event_id) for letter in letters]
    wait_for(lambda: letters_stored(engine, ids), timeout=30, what=f"{len(ids)} letters projected")
    return ids


def collect_about_letters(
    watcher: TopicWatcher, ids: set[str], count: int
) -> list[tuple[str | None, Any]]:
    """The next `count` messages on a watched dead-letter topic about these letters."""
    from schemas.dead_letters import DeadLettered
    from schemas.system import DeadLetterRequeued

    def about(event: Any) -> bool:
        if isinstance(event, DeadLettered):
            return str(event.event_id) in ids
        if isinstance(event, DeadLetterRequeued):
            return event.dead_letter_id in ids
        return bool(ids & set(event.dead_letter_ids))

    return [watcher.find(about) for _ in range(count)]


def finished_job(engine, job_id: str, timeout: float = 180):
    """The job's read-model row once it has finished (completed, failed, cancelled, aborted)."""
    from sqlalchemy.orm import Session

    from projections.tables import JobRow
    from schemas.jobs import FINISHED

    def done():
        with Session(engine) as session:
            job = session.get(JobRow, job_id)
            return job if job is not None and job.status in FINISHED else None

    return wait_for(done, timeout=timeout, what=f"job {job_id} to finish")


@dataclass
class Record:
    """What the projector reads of a Kafka message (partition 0), for `Projector.apply`."""

    _topic: str
    _offset: int
    _value: bytes

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def value(self) -> bytes:
        return self._value

    def error(self) -> None:
        return None


# Every read model's columns that a projection decides (not serial ids or the projection's
# clock), for comparing two databases built from the same history.
READ_MODEL_COLUMNS = {
    "images": "image_id, camera_id, file_path, sha256, size_bytes, file_modified_at, "
    "received_at, status, width, height, detection_count, detected_at, error",
    "detections": "image_id, position, camera_id, label, confidence, x1, y1, x2, y2, "
    "model_name, detected_at, reprocessed",
    "enrichments": "source_event_id, image_id, position, detection_type, description, "
    "confidence, created_at",
    "batches": "batch_id, camera_id, status, started_at, completed_at, detection_count, "
    "last_activity_at, trigger, event_id IS NOT NULL, error",
    "batch_detections": "batch_id, image_id, position",
    "events": "batch_id, camera_id, analysis_version, risk_score, risk_level, summary, "
    "prompt_version, audit_id, started_at, ended_at, detection_count, created_at, updated_at",
    "event_analyses": "batch_id, analysis_version, risk_score, summary, audit_id, created_at",
    "ai_audit": "audit_id, model_name, batch_id, tokens_in, tokens_out, outcome, created_at",
    "projection_rejects": "topic, error",
}


def read_model_contents(engine) -> dict[str, list[tuple]]:
    """Each read model's rows (`READ_MODEL_COLUMNS`), sorted."""
    from sqlalchemy import text

    with engine.connect() as connection:
        return {
            table: sorted(connection.execute(text(f"SELECT {columns} FROM {table}")).all())
            for table, columns in READ_MODEL_COLUMNS.items()
        }


@contextmanager
def fresh_read_models(database_url: str, prefix: str, count: int) -> Iterator[list[Any]]:
    """`count` empty read-model databases (schemas of the test database, migrated to head),
    their engines; dropped afterwards."""
    from projections.db import make_engine, migrate

    schemas = [f"{prefix}_{uuid.uuid4().hex[:8]}" for _ in range(count)]
    engines = []
    try:
        for schema in schemas:
            url = new_schema(database_url, schema)
            migrate(url)
            engines.append(make_engine(url))
        yield engines
    finally:
        for fresh in engines:
            fresh.dispose()
        for schema in schemas:
            drop_schema(database_url, schema)


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str | None
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]


class OtlpReceiver:
    """An OTLP/HTTP traces endpoint on loopback (what a collector is to the processes that
    export to it): keeps every span it is sent. `endpoint` goes in
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
            ExportTraceServiceResponse,
        )

        self.spans: list[ReceivedSpan] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = ExportTraceServiceRequest.FromString(body)
                receiver._keep(request)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}/v1/traces"

    def _keep(self, request) -> None:
        def value(any_value):
            return getattr(any_value, any_value.WhichOneof("value"))

        for resource_spans in request.resource_spans:
            resource = {a.key: value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.spans.append(
                        ReceivedSpan(
                            service=resource.get("service.name", ""),
                            name=span.name,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex() or None,
                            start_ns=span.start_time_unix_nano,
                            end_ns=span.end_time_unix_nano,
                            attributes={a.key: value(a.value) for a in span.attributes},
                        )
                    )

    def of_trace(self, trace_id: str) -> list[ReceivedSpan]:
        return [span for span in list(self.spans) if span.trace_id == trace_id]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def otlp_env(receiver: OtlpReceiver) -> dict[str, str]:
    """What makes a process export its spans to `receiver`, promptly."""
    return {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": receiver.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }


DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


def dashboard_expressions() -> list[str]:
    """The PromQL of every panel of the Grafana dashboard docker-compose.yml ships."""
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "vigil.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
