"""JSON Schema for every topic and for every version of each event type it carries, and the
AsyncAPI document of them all, for stream consumers in other services.

`schemas/json/<topic>.schema.json` is a topic's current schema (every type it carries).
`schemas/json/<topic>/<EventType>.v<N>.schema.json` is one type's schema at `schema_version` N:
each version ever published is kept, and `vigil schemas export` refuses to rewrite a kept
version with a change a consumer would notice (`schemas.compat`); such a change raises the
type's `schema_version` and keeps an upcaster (`schemas.upcasters`) from the version before.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from schemas.asyncapi import asyncapi_document
from schemas.compat import changes
from schemas.envelope import Message, version_of
from schemas.topics import ALL_TOPICS, TopicSpec
from schemas.upcasters import UPCASTERS

_KEPT = re.compile(r"^(?P<type>\w+)\.v(?P<version>[1-9][0-9]*)\.schema\.json$")


class IncompatibleSchemaChange(ValueError):
    """A kept schema version would be rewritten with a change its consumers would notice."""


def topic_schemas() -> dict[str, dict[str, Any]]:
    schemas = {}
    for topic in ALL_TOPICS:
        schema = topic.adapter.json_schema()
        schema["$id"] = f"urn:vigil:topic:{topic.name}"
        schema["title"] = schema.get("title", topic.name)
        schema["description"] = topic.description
        schema["x-kafka-key"] = topic.key
        schemas[topic.name] = schema
    return schemas


def type_schema(topic: TopicSpec, model: type[Message]) -> dict[str, Any]:
    """One event type's schema as `topic` carries it, at the model's `schema_version`."""
    version = version_of(model)
    schema = model.model_json_schema()
    schema["$id"] = f"urn:vigil:topic:{topic.name}:{model.__name__}:v{version}"
    schema["x-kafka-topic"] = topic.name
    schema["x-kafka-key"] = topic.key
    schema["x-schema-version"] = version
    return schema


def kept_versions(out_dir: Path, topic: TopicSpec, model: type[Message]) -> dict[int, Any]:
    """The versions of `model` kept under `out_dir`, by `schema_version`."""
    kept = {}
    for path in (out_dir / topic.name).glob(f"{model.__name__}.v*.schema.json"):
        if found := _KEPT.match(path.name):
            kept[int(found["version"])] = json.loads(path.read_text())
    return kept


def version_problems(out_dir: Path, topics: Iterable[TopicSpec] = ALL_TOPICS) -> list[str]:
    """What breaks the compatibility rules between the kept versions under `out_dir` and the
    models: a kept version changed in anything a validator checks, a kept version newer than
    the model's, or an older version with no upcaster chain to the current one."""
    problems = []
    for topic in topics:
        for model in topic.value_types:
            name, current = f"{topic.name} {model.__name__}", version_of(model)
            kept = kept_versions(out_dir, topic, model)
            if kept and max(kept) > current:
                problems.append(
                    f"{name}: v{max(kept)} is kept but the model's schema_version is {current}"
                )
            if current in kept:
                problems.extend(
                    f"{name}: {change}: raise schema_version to {current + 1} and keep an "
                    f"upcaster from {current} (schemas/upcasters.py)"
                    for change in changes(kept[current], type_schema(topic, model), model.__name__)
                )
            problems.extend(
                f"{name}: no upcaster from v{version} to v{version + 1} (schemas/upcasters.py)"
                for version in range(1, current)
                if (model.model_fields["event_type"].default, version) not in UPCASTERS
            )
    return problems


def export_schemas(out_dir: Path) -> list[Path]:
    """Write every topic's schema and each type's current version, refusing (before writing
    anything) a change to a kept version that its consumers would notice."""
    if problems := version_problems(out_dir):
        raise IncompatibleSchemaChange("\n".join(problems))
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in topic_schemas().items():
        written.append(_write(out_dir / f"{name}.schema.json", schema))
    for topic in ALL_TOPICS:
        for model in topic.value_types:
            path = out_dir / topic.name / f"{model.__name__}.v{version_of(model)}.schema.json"
            written.append(_write(path, type_schema(topic, model)))
    return written


def _write(path: Path, schema: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
    return path


def export_asyncapi(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(asyncapi_document(), sort_keys=False, width=100))
    return path
