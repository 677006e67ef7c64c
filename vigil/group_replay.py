"""Replay for another service's consumer group: move the group's committed offsets on every
partition of a topic back (or forward) to a time, an offset or the earliest message, so that
the group reads again from there when its consumers next start. This is how a service that
is not Vigil reprocesses our topics (`vigil replay-topic`).

The group must have no live members: the offsets of a running consumer are its own (it would
overwrite them, and Kafka refuses to alter an active group's offsets anyway). The move is
one admin request for all partitions; what each moved from and to is returned for printing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from confluent_kafka import (
    OFFSET_END,
    Consumer,
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from schemas.reading import GroupOffsets
from schemas.topics import client_settings

TIMEOUT_S = 10.0


class ReplayRefused(Exception):
    """The move cannot be made; the message says why (live members, no such topic ...)."""


@dataclass(frozen=True)
class Moved:
    partition: int
    previous: int | None  # None: the group had no committed offset there
    offset: int


@dataclass(frozen=True)
class Target:
    """Where to move to: exactly one of `since` (the first message at or after that time),
    `offset` (the same offset on every partition, capped to what the partition holds) or
    `earliest`."""

    since: datetime | None = None
    offset: int | None = None
    earliest: bool = False

    def __post_init__(self) -> None:
        chosen = sum((self.since is not None, self.offset is not None, self.earliest))
        if chosen != 1:
            raise ReplayRefused("give exactly one of --since, --to-offset and --earliest")
        if self.since is not None and self.since.tzinfo is None:
            raise ReplayRefused(f"--since {self.since.isoformat()} has no time zone")
        if self.offset is not None and self.offset < 0:
            raise ReplayRefused(f"--to-offset must be 0 or more, not {self.offset}")


def _result(futures: dict, key: object) -> object:
    try:
        return futures[key].result(timeout=TIMEOUT_S)
    except Exception as exc:
        raise ReplayRefused(f"{type(exc).__name__}: {exc}") from exc


def _refuse_live_members(admin: AdminClient, group: str) -> None:
    description = _result(admin.describe_consumer_groups([group]), group)
    if description.members:
        ids = ", ".join(sorted(m.client_id or m.member_id for m in description.members))
        raise ReplayRefused(
            f"group {group} has {len(description.members)} live member(s) ({ids}): "
            "stop its consumers first"
        )
    if description.state not in (ConsumerGroupState.EMPTY, ConsumerGroupState.DEAD):
        raise ReplayRefused(f"group {group} is {description.state.name}, not empty")


def _targets(consumer: Consumer, topic: str, partitions: list[int], target: Target) -> list[int]:
    ends = [consumer.get_watermark_offsets(TopicPartition(topic, p), TIMEOUT_S) for p in partitions]
    if target.earliest:
        return [low for low, _ in ends]
    if target.offset is not None:
        return [min(max(target.offset, low), high) for low, high in ends]
    assert target.since is not None
    moment_ms = int(target.since.timestamp() * 1000)
    found = consumer.offsets_for_times(
        [TopicPartition(topic, p, moment_ms) for p in partitions], TIMEOUT_S
    )
    # No message at or after the time: the partition's end (nothing to read again there).
    return [
        high if tp.offset in (OFFSET_END, -1) else tp.offset
        for tp, (_, high) in zip(found, ends, strict=True)
    ]


def replay_group(bootstrap_servers: str, topic: str, group: str, target: Target) -> list[Moved]:
    """Move `group`'s committed offsets on every partition of `topic` to `target`."""
    with AdminClient(client_settings(bootstrap_servers)) as admin:
        return _replay_group(admin, bootstrap_servers, topic, group, target)


def _replay_group(
    admin: AdminClient, bootstrap_servers: str, topic: str, group: str, target: Target
) -> list[Moved]:
    # All topics: asking for the one by name would have a broker that creates topics on
    # demand make it.
    metadata = admin.list_topics(timeout=TIMEOUT_S)
    described = metadata.topics.get(topic)
    if described is None or described.error is not None or not described.partitions:
        raise ReplayRefused(f"no topic {topic} on {bootstrap_servers}")
    partitions = sorted(described.partitions)
    _refuse_live_members(admin, group)
    try:
        with GroupOffsets(bootstrap_servers) as offsets:
            wanted = [TopicPartition(topic, p) for p in partitions]
            committed = offsets.committed(group, wanted, TIMEOUT_S)
    except KafkaException as exc:
        raise ReplayRefused(f"{type(exc).__name__}: {exc}") from exc
    previous = {tp.partition: tp.offset for tp in committed}
    consumer = Consumer(client_settings(bootstrap_servers, {"group.id": f"{group}-replay-probe"}))
    try:
        offsets = _targets(consumer, topic, partitions, target)
    finally:
        consumer.close()
    moved = ConsumerGroupTopicPartitions(
        group, [TopicPartition(topic, p, o) for p, o in zip(partitions, offsets, strict=True)]
    )
    altered = _result(admin.alter_consumer_group_offsets([moved]), group)
    failed = [tp for tp in altered.topic_partitions if tp.error is not None]
    if failed:
        raise ReplayRefused(
            f"offsets not moved: {[(tp.partition, str(tp.error)) for tp in failed]}"
        )
    return [
        Moved(p, previous.get(p) if previous.get(p, -1) >= 0 else None, o)
        for p, o in zip(partitions, offsets, strict=True)
    ]
