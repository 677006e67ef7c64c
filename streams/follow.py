"""Following a topic outside any consumer group: every worker sees every message.

For the few topics every worker must read whole (prompt configurations, system
commands), not share out among the group's members.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from schemas.codec import UndecodableMessage, decode
from schemas.topics import TopicSpec

log = logging.getLogger(__name__)


async def follow_topic(
    bootstrap: str,
    spec: TopicSpec,
    on_message: Callable[[Any], Awaitable[None] | None],
    stop: asyncio.Event,
    *,
    from_beginning: bool,
    caught_up: asyncio.Event | None = None,
) -> None:
    """Apply each message of `spec` to `on_message` until `stop` is set.

    `from_beginning` replays the whole topic first (state such as prompts); otherwise
    only messages produced from now on are seen (commands). `caught_up` is set once every
    message the topic held when following began has been applied. Undecodable records are
    logged and skipped; a lost broker connection is retried, resuming where it was.
    """
    positions: dict[int, int] = {}
    while not stop.is_set():
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        try:
            await consumer.start()
            partitions = [
                TopicPartition(spec.name, p)
                for p in sorted(consumer.partitions_for_topic(spec.name) or {0})
            ]
            consumer.assign(partitions)
            for tp in partitions:
                if tp.partition in positions:
                    consumer.seek(tp, positions[tp.partition])
                elif from_beginning:
                    await consumer.seek_to_beginning(tp)
                else:
                    await consumer.seek_to_end(tp)
                    positions[tp.partition] = await consumer.position(tp)
            ends = {
                tp.partition: end for tp, end in (await consumer.end_offsets(partitions)).items()
            }
            while not stop.is_set():
                if caught_up is not None and not caught_up.is_set():
                    if all(positions.get(p, 0) >= end for p, end in ends.items()):
                        log.info("%s: caught up at %s", spec.name, ends)
                        caught_up.set()
                batches = await consumer.getmany(timeout_ms=500)
                for tp, records in batches.items():
                    for record in records:
                        positions[tp.partition] = record.offset + 1
                        try:
                            message = decode(spec, record.value)
                        except UndecodableMessage as exc:
                            log.warning("%s@%d skipped: %s", spec.name, record.offset, exc)
                            continue
                        result = on_message(message)
                        if asyncio.iscoroutine(result):
                            await result
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("following %s failed; again in 2s", spec.name)
            await asyncio.sleep(2)
        finally:
            await consumer.stop()
