"""A replay of topics holding two versions of an event type gives the same read models as
topics holding only the current one: the projector reads BatchClosed v1 (written before
image_count) through its upcaster.

One history is published twice to the module's own broker: first every message at its
current version, then again with every other BatchClosed as v1. The projector builds one
fresh database from the first copy and another from the second (its stored offsets start
where the first copy ends), each through a real consumer."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from bench.replay import partition_ends, project
from bench.seed import history, publish_facts
from projections.tables import ProjectionOffset
from schemas.batches import BatchClosed
from schemas.envelope import Message
from schemas.topics import BATCHES, TopicSpec
from tests.factories import v1_document
from tests.support import fresh_read_models, read_model_contents, read_records


def _written(older: set[str]):
    """Each message at its current version, the BatchClosed of `older` batches as v1."""

    def write(topic: TopicSpec, message: Message) -> bytes:
        if isinstance(message, BatchClosed) and message.batch_id in older:
            return json.dumps(v1_document(message)).encode()
        return topic.encode(message)

    return write


def _versions_on_topic(bootstrap: str) -> Counter:
    """The BatchClosed on vigil.batches by schema_version, as written (an outside reader)."""
    documents = [json.loads(raw) for _, raw in read_records(bootstrap, BATCHES, decoded=False)]
    return Counter(d["schema_version"] for d in documents if d["event_type"] == "BatchClosed")


def test_a_replay_of_both_versions_gives_the_read_models_of_the_current_one(own_stack):
    end = datetime(2026, 11, 30, tzinfo=UTC)
    facts = list(history(1200, cameras=3, days=1, seed=23, end=end))
    closed = [m.batch_id for _, m in facts if isinstance(m, BatchClosed)]
    older = set(closed[::2])
    bootstrap = own_stack.kafka_bootstrap

    with fresh_read_models(own_stack.database_url, "versions", 2) as (current, mixed):
        publish_facts(bootstrap, facts)
        first = partition_ends(bootstrap)
        assert _versions_on_topic(bootstrap) == {2: len(closed)}
        project(current, bootstrap, first, consumer="current-only")

        publish_facts(bootstrap, facts, written=_written(older))
        assert _versions_on_topic(bootstrap) == {1: len(older), 2: 2 * len(closed) - len(older)}
        with Session(mixed) as session, session.begin():
            session.add_all(
                ProjectionOffset(consumer="mixed", topic=t, partition=p, next_offset=offset)
                for (t, p), offset in first.items()
            )
        project(mixed, bootstrap, partition_ends(bootstrap), consumer="mixed")

        got, want = read_model_contents(mixed), read_model_contents(current)
    assert want["projection_rejects"] == [] and len(older) >= 5
    assert {t: len(rows) for t, rows in got.items()} == {t: len(rows) for t, rows in want.items()}
    assert got == want
    assert {batch[0] for batch in want["batches"] if batch[2] != "aggregating"} >= older
