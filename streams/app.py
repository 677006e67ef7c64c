"""The Faust application: one app per worker process, built from settings.

Nothing connects at import time; `create_worker_app` wires the topics, the
detector and the agents, and `vigil worker` runs the result.
"""

from __future__ import annotations

from dataclasses import dataclass

import faust

from schemas.codec import encode
from schemas.envelope import Message
from schemas.topics import DETECTIONS, DLQ_DETECTION, IMAGES, TopicSpec
from streams.detector import Detector, TritonDetector
from streams.retry import RetryPolicy
from vigil.settings import Settings

# The Faust app id, which is also the worker's Kafka consumer group.
WORKER_GROUP = "vigil-worker"


@dataclass(frozen=True)
class Topics:
    images: faust.TopicT
    detections: faust.TopicT
    dlq_detection: faust.TopicT


def faust_topic(app: faust.App, spec: TopicSpec, settings: Settings) -> faust.TopicT:
    return app.topic(
        spec.name,
        partitions=spec.partitions or settings.topic_partitions,
        key_serializer="raw",
        value_serializer="raw",
    )


async def publish(topic: faust.TopicT, key: str | None, message: Message) -> None:
    """Send and wait for the broker's acknowledgement before the source offset can commit."""
    pending = await topic.send(
        key=key.encode() if key is not None else None, value=encode(message), force=True
    )
    await pending


def create_worker_app(settings: Settings, detector: Detector | None = None) -> faust.App:
    from streams import detection_agent, watcher_task

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
    topics = Topics(
        images=faust_topic(app, IMAGES, settings),
        detections=faust_topic(app, DETECTIONS, settings),
        dlq_detection=faust_topic(app, DLQ_DETECTION, settings),
    )
    detector = detector or TritonDetector(
        settings.triton_url,
        settings.detector_model,
        settings.detector_model_version,
        settings.triton_timeout_s,
    )
    policy = RetryPolicy.from_settings(settings)
    watcher_task.register(app, topics, settings)
    detection_agent.register(app, topics, detector, policy, settings)

    @app.on_before_shutdown.connect
    async def close_detector(app: faust.App, **_: object) -> None:
        await detector.close()

    return app
