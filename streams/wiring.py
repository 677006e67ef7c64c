"""The Faust side every agent shares: our topics as Faust topics, publishing, and tables.

A leaf module: agents import it, it imports no agent. The Faust app itself is made in
`streams.app`, which registers every stage on one `Wiring`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import faust
from faust.types.tuples import FutureMessage

from schemas.topics import TopicSpec
from streams.stage import Publish, Received
from vigil.settings import Settings


class Wiring:
    def __init__(self, app: faust.App, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self._topics: dict[tuple[str, ...], faust.TopicT] = {}

    def topic(self, *specs: TopicSpec) -> faust.TopicT:
        """One Faust topic over one or more of ours (co-partitioned: same key, same count)."""
        names = tuple(spec.name for spec in specs)
        if names not in self._topics:
            partitions = {spec.partitions or self.settings.topic_partitions for spec in specs}
            if len(partitions) != 1:
                raise ValueError(f"topics {list(names)} are not co-partitioned")
            self._topics[names] = self.app.topic(
                *names,
                partitions=partitions.pop(),
                key_serializer="raw",
                value_serializer="raw",
            )
        return self._topics[names]

    async def publish(self, item: Publish) -> None:
        """Send and wait for the broker's acknowledgement before the source offset can commit."""
        value = item.topic.encode(item.message)
        key = item.key.encode() if item.key is not None else None
        pending = await self.topic(item.topic).send(key=key, value=value, force=True)
        await pending

    def run_forever(self, run: Callable[[], Awaitable[None]], *, name: str) -> None:
        """Run `run` (a stage that is not a Faust agent) for as long as the app runs."""

        async def task() -> None:
            await run()

        task.__name__ = task.__qualname__ = f"run_{name}"
        self.app.task(task)

    def table(self, name: str, *, default=None) -> DurableTable:
        """A JSON table keyed by a string, co-partitioned with the topics, backed by its changelog.

        No key or value *types* are given: Faust's recovery expects Record types there and
        fails on plain ones (`type object 'bool' has no attribute 'from_data'`).
        """
        table = DurableTable(
            self.app,
            name=name,
            default=default,
            beacon=self.app.tables.beacon,
            partitions=self.settings.topic_partitions,
            schema=faust.Schema(key_serializer="json", value_serializer="json"),
        )
        return self.app.tables.add(table)


class DurableTable(faust.Table):
    """A Faust table whose writes an agent can wait for: `await table.put(key, value)`.

    Faust sends a table's changelog records through a buffer and, before it commits the
    source offsets, flushes that buffer for at most 0.1 s per record. A worker killed
    after such a commit loses the write while its input counts as processed: a batch
    restored without an image that was added to it. `put` returns once the broker has
    acknowledged the record, so the source offset never commits ahead of the state.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._unacknowledged: list[FutureMessage] = []

    def send_changelog(self, *args, **kwargs) -> FutureMessage:
        sent = super().send_changelog(*args, **kwargs)
        self._unacknowledged.append(sent)
        return sent

    async def put(self, key: str, value, partition: int | None = None) -> None:
        """Set `key` and wait for its changelog record. `partition`: the source partition
        the key belongs to, for a write made outside the agent's stream iteration (Faust
        otherwise takes it from the event being iterated)."""
        if partition is None:
            self[key] = value
        else:
            self.data[key] = value
            self.send_changelog(partition, key, value)
        pending, self._unacknowledged = self._unacknowledged, []
        for sent in pending:
            await sent


def received(event: faust.EventT) -> Received:
    message = event.message
    return Received(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value,
    )
