"""`GroupOffsets` reads what consumer groups committed, on the real broker, without joining
them: what a group's own consumer committed, per partition, and nothing (a negative offset)
where it committed nothing or for a group that never existed."""

from __future__ import annotations

import uuid

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from schemas.reading import GroupOffsets
from schemas.topics import client_settings


def test_the_offsets_a_group_committed_are_read_without_joining_it(stack):
    topic, group = f"offsets-{uuid.uuid4().hex[:8]}", f"group-{uuid.uuid4().hex[:8]}"
    with AdminClient(client_settings(stack.kafka_bootstrap)) as admin:
        admin.create_topics([NewTopic(topic, 3, 1)])[topic].result(30)
    committer = Consumer(client_settings(stack.kafka_bootstrap, {"group.id": group}))
    try:
        committed = [TopicPartition(topic, 0, 7), TopicPartition(topic, 2, 42)]
        committer.commit(offsets=committed, asynchronous=False)
    finally:
        committer.close()
    partitions = [TopicPartition(topic, p) for p in range(3)]
    with GroupOffsets(stack.kafka_bootstrap) as offsets:
        read = offsets.committed(group, partitions, 10)
        never = offsets.committed(f"never-{uuid.uuid4().hex[:8]}", partitions, 10)
        again = offsets.committed(group, partitions, 10)  # the group's reader, kept
    assert [(tp.partition, tp.offset) for tp in read] == [(0, 7), (1, -1001), (2, 42)]
    assert [tp.offset for tp in never] == [-1001, -1001, -1001]
    assert [(tp.partition, tp.offset) for tp in again] == [(0, 7), (1, -1001), (2, 42)]


def test_reading_joins_no_group(stack):
    """The reader is no member: the group stays empty, so its offsets can still be moved."""
    group = f"group-{uuid.uuid4().hex[:8]}"
    with GroupOffsets(stack.kafka_bootstrap) as offsets:
        offsets.committed(group, [TopicPartition("vigil.images", 0)], 10)
        with AdminClient(client_settings(stack.kafka_bootstrap)) as admin:
            [described] = admin.describe_consumer_groups([group]).values()
            assert described.result(10).members == []
