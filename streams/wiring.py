"""The Faust side every stage shares: publishing outside a transaction (the watcher, the
timers, the breaker reports) and the app's tasks.

A leaf module: stages import it, it imports no stage. The Faust app itself is made in
`streams.app`, which registers every stage on one `Wiring`.
"""

from __future__ import annotations

import faust

from schemas.topics import TopicSpec
from streams.stage import Publish
from streams.transactional import TransactionalStage
from vigil import tracing
from vigil.settings import Settings


class Wiring:
    def __init__(self, app: faust.App, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self._topics: dict[str, faust.TopicT] = {}
        self.stages: list[TransactionalStage] = []

    def topic(self, spec: TopicSpec) -> faust.TopicT:
        """One of our topics as a Faust topic, to send to."""
        if spec.name not in self._topics:
            self._topics[spec.name] = self.app.topic(
                spec.name,
                partitions=spec.partitions or self.settings.topic_partitions,
                key_serializer="raw",
                value_serializer="raw",
            )
        return self._topics[spec.name]

    async def publish(self, item: Publish) -> None:
        """Send and wait for the broker's acknowledgement."""
        value = item.topic.encode(item.message)
        key = item.key.encode() if item.key is not None else None
        headers = tracing.headers_for(item.traceparent)
        pending = await self.topic(item.topic).send(
            key=key, value=value, headers=headers, force=True
        )
        await pending

    def run_stage(self, stage: TransactionalStage) -> None:
        """Run `stage` for as long as the app runs (a run that fails starts again)."""

        async def task() -> None:
            await stage.run_forever()

        task.__name__ = task.__qualname__ = f"run_{stage.group}"
        self.app.task(task)
        self.stages.append(stage)
