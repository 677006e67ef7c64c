"""Everything a fresh deployment needs before the workers start: topics, schema, seed prompts."""

from __future__ import annotations

import time

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)

from projections.db import migrate
from schemas.codec import UndecodableMessage, decode, encode
from schemas.topics import (
    ALL_TOPICS,
    PROMPTS,
    TOPIC_CONFIG,
    client_settings,
    producer_settings,
)
from vigil.settings import Settings


def ensure_topics(settings: Settings) -> None:
    from vigil.devservices.kafka import create_topics

    create_topics(
        settings.kafka_bootstrap_servers,
        [(t.name, t.partitions or settings.topic_partitions) for t in ALL_TOPICS],
        config=TOPIC_CONFIG,
    )


# A topic just created can be listed with its leader before that broker leads it.
_LEADER_MOVING = (KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE)


def _end_offset(consumer: Consumer, partition: TopicPartition, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return consumer.get_watermark_offsets(partition, timeout=timeout)[1]
        except KafkaException as exc:
            if exc.args[0].code() not in _LEADER_MOVING or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def configured_models(bootstrap: str, timeout: float = 10.0) -> set[str]:
    """Models that already have a prompt configuration on the prompts topic."""
    consumer = Consumer(
        client_settings(bootstrap, {"group.id": "vigil-init", "enable.auto.commit": False})
    )
    try:
        end = _end_offset(consumer, TopicPartition(PROMPTS.name, 0), timeout)
        consumer.assign([TopicPartition(PROMPTS.name, 0, OFFSET_BEGINNING)])
        models: set[str] = set()
        position = 0
        while position < end:
            message = consumer.poll(timeout)
            if message is None:
                raise TimeoutError(f"reading {PROMPTS.name} stalled at offset {position}/{end}")
            if message.error():
                continue
            position = message.offset() + 1
            try:
                models.add(decode(PROMPTS, message.value()).model)
            except UndecodableMessage:
                continue
        return models
    finally:
        consumer.close()


def seed_prompts(settings: Settings) -> list[str]:
    """Publish the default prompt (version 1) of each model that has none yet."""
    from schemas.prompts import DEFAULT_PROMPTS

    missing = [
        m for m in DEFAULT_PROMPTS if m not in configured_models(settings.kafka_bootstrap_servers)
    ]
    if missing:
        producer = Producer(producer_settings(settings.kafka_bootstrap_servers, {"acks": "all"}))
        for model in missing:
            producer.produce(PROMPTS.name, key=model.encode(), value=encode(DEFAULT_PROMPTS[model]))
        if producer.flush(30):
            raise RuntimeError("default prompts were not acknowledged by Kafka")
    return missing


def initialize(settings: Settings) -> None:
    ensure_topics(settings)
    migrate(settings.database_url)
    seed_prompts(settings)
