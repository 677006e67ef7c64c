"""`vigil replay-topic` on the real broker: another service's stopped consumer group is moved
to the offsets of a time (or an offset, or the earliest) on every partition, and then reads
again exactly the messages after it; a group with a live member is refused."""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from schemas.topics import client_settings
from vigil.group_replay import Moved, ReplayRefused, Target, replay_group

PARTITIONS, PER_PARTITION, BEFORE = 3, 10, 4
# Every message carries its own time: the first BEFORE of each partition an hour before T1.
T1 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@pytest.fixture
def topic(stack) -> str:
    """A topic of its own, PARTITIONS partitions of PER_PARTITION messages each (keys
    "p<partition>-<n>"), read and committed by a group of its own."""
    name = f"replay-{uuid.uuid4().hex[:8]}"
    with AdminClient(client_settings(stack.kafka_bootstrap)) as admin:
        admin.create_topics([NewTopic(name, PARTITIONS, 1)])[name].result(30)
    producer = Producer(client_settings(stack.kafka_bootstrap))
    for partition in range(PARTITIONS):
        for n in range(PER_PARTITION):
            at = T1 - timedelta(hours=1) if n < BEFORE else T1 + timedelta(seconds=n)
            producer.produce(
                name,
                key=f"p{partition}-{n}".encode(),
                value=b"{}",
                partition=partition,
                timestamp=int(at.timestamp() * 1000),
            )
    assert producer.flush(30) == 0
    return name


def consumer_of(stack, group: str, topic: str) -> Consumer:
    consumer = Consumer(
        client_settings(
            stack.kafka_bootstrap,
            {"group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False},
        )
    )
    consumer.subscribe([topic])
    return consumer


def read_all(stack, group: str, topic: str) -> list[str]:
    """Every key the group reads from where it stands, committed; its consumer then leaves."""
    consumer = consumer_of(stack, group, topic)
    keys: list[str] = []
    idle = 0
    try:
        while idle < 3 or not consumer.assignment():
            message = consumer.poll(1.0)
            if message is None:
                idle += 1
                continue
            assert message.error() is None, message.error()
            keys.append(message.key().decode())
            idle = 0
        if keys:
            consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    return keys


def test_a_stopped_group_reads_again_exactly_what_came_after_the_time(stack, topic):
    group = f"other-service-{uuid.uuid4().hex[:6]}"
    assert len(read_all(stack, group, topic)) == PARTITIONS * PER_PARTITION

    moves = replay_group(stack.kafka_bootstrap, topic, group, Target(since=T1))

    assert moves == [Moved(p, PER_PARTITION, BEFORE) for p in range(PARTITIONS)]
    again = read_all(stack, group, topic)
    assert sorted(again) == sorted(
        f"p{p}-{n}" for p in range(PARTITIONS) for n in range(BEFORE, PER_PARTITION)
    )


def test_a_group_with_a_live_member_is_refused_and_left_where_it_was(stack, topic):
    group = f"busy-service-{uuid.uuid4().hex[:6]}"
    read_all(stack, group, topic)
    live = consumer_of(stack, group, topic)
    try:
        while not live.assignment():
            live.poll(0.5)
        with pytest.raises(ReplayRefused, match=f"group {group} has 1 live member"):
            replay_group(stack.kafka_bootstrap, topic, group, Target(earliest=True))
        committed = live.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], 10)
        assert [tp.offset for tp in committed] == [PER_PARTITION] * PARTITIONS
    finally:
        live.close()


def test_earliest_and_an_offset_capped_to_each_partition(stack, topic):
    group = f"offset-service-{uuid.uuid4().hex[:6]}"
    read_all(stack, group, topic)
    earliest = replay_group(stack.kafka_bootstrap, topic, group, Target(earliest=True))
    assert [m.offset for m in earliest] == [0] * PARTITIONS
    seventh = replay_group(stack.kafka_bootstrap, topic, group, Target(offset=7))
    assert [(m.previous, m.offset) for m in seventh] == [(0, 7)] * PARTITIONS
    beyond = replay_group(stack.kafka_bootstrap, topic, group, Target(offset=10_000))
    assert [m.offset for m in beyond] == [PER_PARTITION] * PARTITIONS
    assert read_all(stack, group, topic) == []


def test_a_time_after_every_message_moves_to_the_end(stack, topic):
    group = f"late-service-{uuid.uuid4().hex[:6]}"
    later = Target(since=T1 + timedelta(days=1))
    assert [m.offset for m in replay_group(stack.kafka_bootstrap, topic, group, later)] == [
        PER_PARTITION
    ] * PARTITIONS


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ({}, "exactly one of --since, --to-offset and --earliest"),
        ({"earliest": True, "offset": 3}, "exactly one of"),
        ({"since": datetime(2026, 11, 30, 12, 0)}, "has no time zone"),
        ({"offset": -1}, "--to-offset must be 0 or more"),
    ],
)
def test_a_target_that_is_not_one_place_is_refused(target, reason):
    with pytest.raises(ReplayRefused, match=reason):
        Target(**target)


def test_an_unknown_topic_is_refused_naming_it(stack):
    with pytest.raises(ReplayRefused, match=r"no topic vigil\.no-such-topic"):
        replay_group(stack.kafka_bootstrap, "vigil.no-such-topic", "g", Target(earliest=True))


def test_the_command_prints_each_partitions_move_and_refuses_a_bad_time(stack, topic):
    group = f"cli-service-{uuid.uuid4().hex[:6]}"
    read_all(stack, group, topic)

    def vigil(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "vigil.cli", "replay-topic", topic, "--group", group, *args],
            env=stack.env(),
            capture_output=True,
            text=True,
            timeout=120,
        )

    done = vigil("--since", T1.isoformat())
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"{topic}[{p}] {group}: {PER_PARTITION} -> {BEFORE}" for p in range(PARTITIONS)
    ]
    refused = vigil("--since", "yesterday")
    assert refused.returncode == 2
    assert "--since 'yesterday' is no ISO 8601 time" in refused.stderr
