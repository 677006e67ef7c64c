"""Vigil's topics as an AsyncAPI 3.0 document (`schemas/asyncapi.yaml`, written by `vigil
schemas export`), generated from the topic declarations: each topic a channel with its key,
partitions, retention and cleanup policy, each message type with its payload schema (the
same JSON Schema as `schemas/json/`, its shared definitions under `components/schemas`),
the Kafka headers we set, and which Vigil process sends and receives it."""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from schemas.envelope import version_of
from schemas.topics import ALL_TOPICS, TOPIC_CONFIG, TopicSpec

VERSION = "0.1.0"
REF = "#/components/schemas/{model}"

# Which Vigil process sends to a topic and which reads it ("worker" holds the watcher and
# every stage; "init" seeds the prompts; other services are not listed: they only receive).
SENDERS: dict[str, tuple[str, ...]] = {
    "vigil.images": ("worker",),
    "vigil.detections": ("worker",),
    "vigil.commands.detection": ("runner",),
    "vigil.dlq.detection": ("worker", "api"),
    "vigil.enrichments": ("worker",),
    "vigil.commands.enrichment": ("api", "runner"),
    "vigil.dlq.enrichment": ("worker", "api"),
    "vigil.batches": ("worker",),
    "vigil.commands.batch": ("api",),
    "vigil.commands.analysis": ("runner",),
    "vigil.events": ("worker",),
    "vigil.ai-audit": ("worker",),
    "vigil.commands.evaluation": ("api", "runner"),
    "vigil.dlq.analysis": ("worker", "api"),
    "vigil.prompts": ("api", "init"),
    "vigil.system": ("worker",),
    "vigil.commands.system": ("api",),
    "vigil.jobs": ("api", "runner"),
}
RECEIVERS: dict[str, tuple[str, ...]] = {
    "vigil.images": ("worker", "projector"),
    "vigil.detections": ("worker", "projector"),
    "vigil.commands.detection": ("worker",),
    "vigil.dlq.detection": ("projector",),
    "vigil.enrichments": ("worker", "projector"),
    "vigil.commands.enrichment": ("worker",),
    "vigil.dlq.enrichment": ("projector",),
    "vigil.batches": ("worker", "projector"),
    "vigil.commands.batch": ("worker",),
    "vigil.commands.analysis": ("worker",),
    "vigil.events": ("projector", "api"),
    "vigil.ai-audit": ("projector",),
    "vigil.commands.evaluation": ("worker",),
    "vigil.dlq.analysis": ("projector",),
    "vigil.prompts": ("worker", "projector"),
    "vigil.system": ("projector",),
    "vigil.commands.system": ("worker",),
    "vigil.jobs": ("runner", "projector", "api"),
}
HEADERS = {
    "type": "object",
    "properties": {
        "traceparent": {
            "type": "string",
            "description": "W3C trace context of the span that produced the message (absent on "
            "messages produced before traces existed); its trace id is the envelope's trace_id",
            "pattern": "^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
        }
    },
}


def _payloads() -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Every message type's schema reference, and the shared definitions."""
    types = {t for topic in ALL_TOPICS for t in topic.value_types}
    keyed = [(t, "validation") for t in sorted(types, key=lambda t: t.__name__)]
    refs, top = models_json_schema(keyed, ref_template=REF)
    return {t.__name__: refs[(t, "validation")] for t in types}, top.get("$defs", {})


def _channel(topic: TopicSpec, partitions: int) -> dict[str, Any]:
    return {
        "address": topic.name,
        "description": topic.description,
        "messages": {
            t.__name__: {"$ref": f"#/components/messages/{t.__name__}"} for t in topic.value_types
        },
        "bindings": {
            "kafka": {
                "topic": topic.name,
                "partitions": topic.partitions or partitions,
                "topicConfiguration": {
                    "cleanup.policy": ["delete"],
                    "retention.ms": int(TOPIC_CONFIG["retention.ms"]),
                    "retention.bytes": int(TOPIC_CONFIG["retention.bytes"]),
                },
                "bindingVersion": "0.5.0",
            }
        },
    }


def _operations(topic: TopicSpec) -> dict[str, Any]:
    channel = {"$ref": f"#/channels/{topic.name}"}
    messages = [
        {"$ref": f"#/channels/{topic.name}/messages/{t.__name__}"} for t in topic.value_types
    ]
    operations = {}
    for action, processes in (("send", SENDERS[topic.name]), ("receive", RECEIVERS[topic.name])):
        for process in processes:
            operations[f"{process}-{action}s-{topic.name}"] = {
                "action": action,
                "channel": channel,
                "messages": messages,
                "summary": f"vigil {process} {action}s {topic.name}",
                "tags": [{"name": process}],
            }
    return operations


def asyncapi_document(default_partitions: int = 3) -> dict[str, Any]:
    payloads, definitions = _payloads()
    messages: dict[str, Any] = {}
    for topic in ALL_TOPICS:
        for t in topic.value_types:
            messages[t.__name__] = {
                "name": t.__name__,
                "title": t.__name__,
                "summary": (t.__doc__ or t.__name__).strip().splitlines()[0],
                "contentType": "application/json",
                "x-schema-version": version_of(t),
                "headers": HEADERS,
                "payload": payloads[t.__name__],
                "bindings": {
                    "kafka": {
                        "key": {"type": "string", "description": f"the {topic.key}"},
                        "bindingVersion": "0.5.0",
                    }
                },
            }
    channels, operations = {}, {}
    for topic in ALL_TOPICS:
        channels[topic.name] = _channel(topic, default_partitions)
        operations.update(_operations(topic))
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Vigil topics",
            "version": VERSION,
            "description": "Every fact Vigil records, as Kafka topics that other services "
            "consume and replay. Each message is a JSON envelope (`event_type`, "
            "`schema_version`, `event_id`, `occurred_at`, `producer`, `trace_id`) around its "
            "payload; read with isolation.level=read_committed.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": "127.0.0.1:9092",
                "protocol": "kafka",
                "description": "KAFKA_BOOTSTRAP_SERVERS",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": definitions},
    }
