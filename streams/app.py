"""The Faust application: one app per worker process, built from settings.

Nothing connects at import time; `create_worker_app` makes the app and its `Wiring`,
the model clients and the retry policy, and registers every stage on them. It is the only
module that imports the stages; each stage imports the wiring, never this module.
"""

from __future__ import annotations

import faust

from schemas.topics import WORKER_GROUP
from streams import (
    analysis_agent,
    batch_agent,
    breaker_board,
    detection_agent,
    enrichment_agent,
    evaluator_agent,
    watcher_task,
)
from streams.models import Models
from streams.retry import RetryPolicy
from streams.wiring import Wiring
from vigil.settings import Settings


def create_worker_app(settings: Settings, models: Models | None = None) -> faust.App:
    return wire_worker(settings, models).app


def wire_worker(settings: Settings, models: Models | None = None) -> Wiring:
    """The worker's app with every stage registered on it; nothing connects yet."""
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
        broker_session_timeout=settings.worker_session_timeout_s,
    )
    wiring = Wiring(app, settings)
    models = models or Models.on_triton(settings)
    policy = RetryPolicy.from_settings(settings)
    breaker_board.register(wiring, models)
    watcher_task.register(wiring)
    detection_agent.register(wiring, models.detector, policy, models.detector_for)
    enrichment_agent.register(wiring, models.enricher, policy)
    batch_agent.register(wiring)
    analysis = analysis_agent.register(wiring, models.analyst, policy)
    evaluator_agent.register(wiring, analysis)

    @app.on_before_shutdown.connect
    async def close_models(app: faust.App, **_: object) -> None:
        await models.close()

    return wiring
