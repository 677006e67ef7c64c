"""Replay benchmark: how fast the projector rebuilds the read models from the topics, against
how fast the same topics can merely be read, in one run (`vigil bench replay`).

Starts Kafka and Postgres of its own, seeds N detections' history (`bench.seed`), then:

- the baseline: a bare consumer, assigned every partition of every projected topic from the
  beginning, decodes each record with the topic's schema and discards it, until every
  partition has reached its end;
- the projector (`projections.runner.Projector`, a fresh consumer name, so it starts from
  empty read models and offsets) until its stored offsets reach the end of every partition.

Both run in this process, one after the other; it reports the messages, each one's
messages/s and wall time, their ratio, and the rows the projector wrote.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from bench.seed import publish
from projections.db import make_engine, migrate
from projections.runner import Projector, settle_heap
from projections.tables import ProjectionOffset
from schemas.codec import decode
from schemas.topics import EVENT_TOPICS
from vigil.bootstrap import ensure_topics
from vigil.devservices.kafka import start_kafka
from vigil.devservices.postgres import start_postgres
from vigil.settings import Settings

TABLES = ("images", "detections", "enrichments", "batches", "events", "event_analyses",
          "ai_audit", "dead_letters", "projection_rejects")  # fmt: skip


def partition_ends(bootstrap: str) -> dict[tuple[str, int], int]:
    """The end offset of every non-empty partition of the projected topics."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-ends"})
    try:
        metadata = consumer.list_topics(timeout=10)
        ends = {}
        for topic in EVENT_TOPICS:
            for partition in metadata.topics[topic.name].partitions:
                _, high = consumer.get_watermark_offsets(
                    TopicPartition(topic.name, partition), timeout=10
                )
                if high > 0:
                    ends[(topic.name, partition)] = high
        return ends
    finally:
        consumer.close()


def bare_consume(bootstrap: str, ends: dict[tuple[str, int], int]) -> dict[str, Any]:
    """Read and decode every record up to `ends`; messages, seconds, messages/s."""
    by_name = {topic.name: topic for topic in EVENT_TOPICS}
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-bare-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "fetch.max.bytes": 52_428_800,
        }
    )
    consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t, p in ends])
    left = set(ends)
    count = 0
    started = time.perf_counter()
    try:
        while left:
            for message in consumer.consume(5000, 1.0):
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        left.discard((message.topic(), message.partition()))
                    continue
                decode(by_name[message.topic()], message.value())
                count += 1
    finally:
        consumer.close()
    seconds = time.perf_counter() - started
    return {"messages": count, "seconds": round(seconds, 1), "per_s": round(count / seconds)}


def _caught_up(engine: Engine, consumer: str, ends: dict[tuple[str, int], int]) -> bool:
    with Session(engine) as session:
        rows = session.execute(
            select(ProjectionOffset).where(ProjectionOffset.consumer == consumer)
        ).scalars()
        done = {(r.topic, r.partition): r.next_offset for r in rows}
    return all(done.get(key, 0) >= end for key, end in ends.items())


def project(
    engine: Engine, bootstrap: str, ends: dict[tuple[str, int], int], consumer: str | None = None
) -> dict[str, Any]:
    """The projector (`consumer`, by default a fresh name: from empty read models) until its
    offsets reach `ends`."""
    consumer = consumer or f"bench-replay-{uuid.uuid4().hex[:8]}"
    projector = Projector(engine, bootstrap, consumer_name=consumer)
    settle_heap()  # as the projector's process does
    stop = threading.Event()
    thread = threading.Thread(target=projector.run, args=(stop,), name="projector")
    started = time.perf_counter()
    thread.start()
    try:
        while not _caught_up(engine, consumer, ends):
            if not thread.is_alive():
                raise RuntimeError("the projector stopped before it caught up")
            time.sleep(0.5)
        seconds = time.perf_counter() - started
    finally:
        stop.set()
        thread.join(60)
    messages = sum(ends.values())
    return {"messages": messages, "seconds": round(seconds, 1), "per_s": round(messages / seconds)}


def row_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {
            t: connection.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TABLES
        }


def main(state_dir: Path, detections: int) -> dict[str, Any]:
    kafka = start_kafka(state_dir / "kafka")
    postgres = None
    try:
        postgres = start_postgres(state_dir / "postgres")
        migrate(postgres.url)
        ensure_topics(Settings(kafka_bootstrap_servers=kafka.bootstrap))
        seeded = publish(kafka.bootstrap, detections)
        ends = partition_ends(kafka.bootstrap)
        bare = bare_consume(kafka.bootstrap, ends)
        engine = make_engine(postgres.url)
        try:
            projected = project(engine, kafka.bootstrap, ends)
            rows = row_counts(engine)
        finally:
            engine.dispose()
        report = {
            "detections": seeded.detections,
            "seed_seconds": seeded.seconds,
            "messages": sum(ends.values()),
            "bare_consumer": bare,
            "projector": projected,
            "ratio_projector_to_bare": round(projected["per_s"] / bare["per_s"], 3),
            "rows": rows,
        }
        print(json.dumps(report, indent=1))
        return report
    finally:
        if postgres is not None:
            postgres.stop()
        kafka.stop()
