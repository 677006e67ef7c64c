"""The Faust application: one app per worker process, built from settings.

Nothing connects at import time; `create_worker_app` wires the topics, the
model clients and the agents, and `vigil worker` runs the result.
"""

from __future__ import annotations

from dataclasses import dataclass

import faust

from schemas.codec import encode
from schemas.envelope import Message
from schemas.topics import (
    AI_AUDIT,
    BATCH_COMMANDS,
    BATCHES,
    DETECTIONS,
    DLQ_ANALYSIS,
    DLQ_DETECTION,
    DLQ_ENRICHMENT,
    ENRICHMENT_COMMANDS,
    ENRICHMENTS,
    IMAGES,
    PROMPTS,
    SECURITY_EVENTS,
    SYSTEM,
    TopicSpec,
)
from streams.analyst import Analyst, TritonAnalyst
from streams.detector import Detector, TritonDetector
from streams.enricher import Enricher, TritonEnricher
from streams.retry import RetryPolicy
from vigil.settings import Settings

# The Faust app id, which is also the worker's Kafka consumer group.
WORKER_GROUP = "vigil-worker"


@dataclass(frozen=True)
class Topics:
    images: faust.TopicT
    detections: faust.TopicT
    dlq_detection: faust.TopicT
    enrichment_input: faust.TopicT  # detections and reprocess commands
    enrichments: faust.TopicT
    dlq_enrichment: faust.TopicT
    batch_input: faust.TopicT  # enrichments and flush commands
    batches: faust.TopicT
    batch_commands: faust.TopicT
    events: faust.TopicT
    audit: faust.TopicT
    dlq_analysis: faust.TopicT
    prompts: faust.TopicT
    system: faust.TopicT


@dataclass
class Models:
    detector: Detector
    enricher: Enricher
    analyst: Analyst

    @classmethod
    def on_triton(cls, settings: Settings) -> Models:
        url, timeout = settings.triton_url, settings.triton_timeout_s
        return cls(
            detector=TritonDetector(
                url, settings.detector_model, settings.detector_model_version, timeout
            ),
            enricher=TritonEnricher(url, settings.enricher_model, timeout_s=timeout),
            analyst=TritonAnalyst(
                url, settings.analyst_model, timeout_s=settings.analyst_timeout_s
            ),
        )

    def all(self) -> tuple[Detector, Enricher, Analyst]:
        return (self.detector, self.enricher, self.analyst)

    async def close(self) -> None:
        for model in self.all():
            await model.close()


def faust_topic(app: faust.App, settings: Settings, *specs: TopicSpec) -> faust.TopicT:
    """One Faust topic over one or more of ours (co-partitioned: same key, same count)."""
    partitions = {spec.partitions or settings.topic_partitions for spec in specs}
    if len(partitions) != 1:
        raise ValueError(f"topics {[s.name for s in specs]} are not co-partitioned")
    return app.topic(
        *(spec.name for spec in specs),
        partitions=partitions.pop(),
        key_serializer="raw",
        value_serializer="raw",
    )


def changelog_table(app: faust.App, name: str, settings: Settings, *, default=None) -> faust.Table:
    """A JSON table keyed by a string, co-partitioned with the topics, backed by its changelog.

    No key or value *types* are given: Faust's recovery expects Record types there and
    fails on plain ones (`type object 'bool' has no attribute 'from_data'`).
    """
    return app.Table(
        name,
        default=default,
        partitions=settings.topic_partitions,
        schema=faust.Schema(key_serializer="json", value_serializer="json"),
    )


async def publish(topic: faust.TopicT, key: str | None, message: Message) -> None:
    """Send and wait for the broker's acknowledgement before the source offset can commit."""
    pending = await topic.send(
        key=key.encode() if key is not None else None, value=encode(message), force=True
    )
    await pending


def create_worker_app(settings: Settings, models: Models | None = None) -> faust.App:
    from streams import (
        analysis_agent,
        batch_agent,
        breaker_board,
        detection_agent,
        enrichment_agent,
        watcher_task,
    )

    app = faust.App(
        WORKER_GROUP,
        broker=settings.kafka_url,
        store="memory://",
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=1,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        web_enabled=False,
        table_cleanup_interval=60.0,
        broker_commit_every=100,
        broker_commit_interval=1.0,
    )

    def topic(*specs: TopicSpec) -> faust.TopicT:
        return faust_topic(app, settings, *specs)

    topics = Topics(
        images=topic(IMAGES),
        detections=topic(DETECTIONS),
        dlq_detection=topic(DLQ_DETECTION),
        enrichment_input=topic(DETECTIONS, ENRICHMENT_COMMANDS),
        enrichments=topic(ENRICHMENTS),
        dlq_enrichment=topic(DLQ_ENRICHMENT),
        batch_input=topic(ENRICHMENTS, BATCH_COMMANDS),
        batches=topic(BATCHES),
        batch_commands=topic(BATCH_COMMANDS),
        events=topic(SECURITY_EVENTS),
        audit=topic(AI_AUDIT),
        dlq_analysis=topic(DLQ_ANALYSIS),
        prompts=topic(PROMPTS),
        system=topic(SYSTEM),
    )
    models = models or Models.on_triton(settings)
    policy = RetryPolicy.from_settings(settings)
    breaker_board.register(app, topics, models, settings)
    watcher_task.register(app, topics, settings)
    detection_agent.register(app, topics, models.detector, policy, settings)
    enrichment_agent.register(app, topics, models.enricher, policy, settings)
    batch_agent.register(app, topics, settings)
    analysis_agent.register(app, topics, models.analyst, policy, settings)

    @app.on_before_shutdown.connect
    async def close_models(app: faust.App, **_: object) -> None:
        await models.close()

    return app
