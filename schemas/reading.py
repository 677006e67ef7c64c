"""Reading one of our topics back by message time, outside any consumer group.

`read_range` finds the range by message timestamp (`offsets_for_times`, with some slack
either side) and reads each partition from there to where it ended when the read began.
The reprocessing jobs read their ranges with it, and the watcher what it announced before
a restart. `take` is how every consumer loop of ours takes its next messages.
`GroupOffsets` reads what consumer groups have committed.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from schemas.codec import UndecodableMessage, decode
from schemas.topics import TopicSpec, client_settings

# A message is produced right after its event is made; this much either side covers clocks
# and queues when a range is looked up by message time.
SLACK = timedelta(minutes=5)
READ_TIMEOUT_S = 120.0


def take(consumer: Consumer, most: int, timeout: float) -> list[Message]:
    """Up to `most` messages (or events): waits up to `timeout` for the first, then takes only
    what is fetched already. `consume(most, timeout)` would wait until `most` arrived or the
    timeout passed, holding a message that arrives alone for the whole timeout."""
    first = consumer.poll(timeout)
    if first is None:
        return []
    return [first, *consumer.consume(num_messages=most - 1, timeout=0)] if most > 1 else [first]


@dataclass
class Read:
    undecodable: int = 0


def read_range(
    bootstrap_servers: str, topic: TopicSpec, start: datetime, end: datetime, read: Read
) -> Iterator[Any]:
    """The decoded messages of `topic` produced around [start, end], in order per partition,
    up to where each partition ended when the read began; `read` counts those that could
    not be decoded."""
    consumer = Consumer(
        {
            **client_settings(bootstrap_servers),
            "group.id": f"vigil-replay-{uuid.uuid4().hex}",  # assigned, never committed
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    try:
        partitions = consumer.list_topics(topic.name, timeout=10).topics[topic.name].partitions
        since = int((start - SLACK).timestamp() * 1000)
        until = int((end + SLACK).timestamp() * 1000)
        starts = consumer.offsets_for_times(
            [TopicPartition(topic.name, p, since) for p in partitions], timeout=10
        )
        ends: dict[int, int] = {}
        assigned = []
        for tp in starts:
            _low, high = consumer.get_watermark_offsets(tp, timeout=10)
            if 0 <= tp.offset < high:  # -1: nothing at or after `since`
                ends[tp.partition] = high
                assigned.append(tp)
        consumer.assign(assigned)
        deadline = time.monotonic() + READ_TIMEOUT_S
        while ends:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic.name} partitions {sorted(ends)} not read in time")
            for message in take(consumer, 500, 1.0):
                error = message.error()
                if error is not None:
                    # A transactional topic's last record is a commit marker, never handed
                    # out: the partition's end is where the consumer says it is.
                    if error.code() == KafkaError._PARTITION_EOF:
                        ends.pop(message.partition(), None)
                    continue
                if message.partition() not in ends:
                    continue
                if message.offset() + 1 >= ends[message.partition()]:
                    del ends[message.partition()]
                if message.timestamp()[1] > until:
                    ends.pop(message.partition(), None)
                    continue
                try:
                    yield decode(topic, message.value())
                except UndecodableMessage:
                    read.undecodable += 1
    finally:
        consumer.close()


class GroupOffsets:
    """The offsets consumer groups have committed, read by a consumer with each group's id
    that never joins the group (one per group, kept until `close`; usable from any thread).

    Not the admin client's `list_consumer_group_offsets`: when the group's coordinator
    answers with an error that calls for a new coordinator (as a broker does for seconds
    after it starts), librdkafka (2.16) handles it with the consumer-group state only a
    consumer has, and an admin client's process dies: SIGSEGV in `rd_kafka_cgrp_op`, called
    from `rd_kafka_handle_OffsetFetch`, in the `rdk:main` thread. A consumer has that state.
    """

    def __init__(self, bootstrap_servers: str) -> None:
        self._bootstrap_servers = bootstrap_servers
        self._readers: dict[str, Consumer] = {}
        self._lock = threading.Lock()

    def committed(
        self, group: str, partitions: list[TopicPartition], timeout_s: float
    ) -> list[TopicPartition]:
        """`partitions` with the group's committed offsets (a negative offset: none)."""
        with self._lock:
            reader = self._readers.get(group)
            if reader is None:
                # read_uncommitted: not waiting out the offsets of open transactions
                # (librdkafka re-asks while the broker calls them unstable, for as long as
                # the stages keep transactions open).
                settings = {
                    "group.id": group,
                    "enable.auto.commit": False,
                    "isolation.level": "read_uncommitted",
                }
                reader = self._readers[group] = Consumer(
                    client_settings(self._bootstrap_servers, settings)
                )
        # Hands its queued log lines to logging (`client_settings`' logger): never polled
        # otherwise, they would pile up while the broker is away.
        reader.poll(0)
        return reader.committed(partitions, timeout=timeout_s)

    def close(self) -> None:
        with self._lock:
            readers, self._readers = list(self._readers.values()), {}
        for reader in readers:
            reader.close()

    def __enter__(self) -> GroupOffsets:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
