"""Everything a fresh deployment needs before the workers start: topics, schema, seed prompt."""

from __future__ import annotations

from projections.db import migrate
from schemas.topics import ALL_TOPICS
from vigil.settings import Settings

# Kafka is the system of record: topics keep every event (no time or size retention).
TOPIC_CONFIG = {"retention.ms": "-1", "retention.bytes": "-1"}


def ensure_topics(settings: Settings) -> None:
    from vigil.devservices.kafka import create_topics

    create_topics(
        settings.kafka_bootstrap_servers,
        [(t.name, t.partitions or settings.topic_partitions) for t in ALL_TOPICS],
        config=TOPIC_CONFIG,
    )


def initialize(settings: Settings) -> None:
    ensure_topics(settings)
    migrate(settings.database_url)
