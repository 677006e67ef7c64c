"""JSON Schema for every topic, and the AsyncAPI document of them all, for stream consumers in
other services."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from schemas.asyncapi import asyncapi_document
from schemas.topics import ALL_TOPICS


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


def export_schemas(out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in topic_schemas().items():
        path = out_dir / f"{name}.schema.json"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written


def export_asyncapi(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(asyncapi_document(), sort_keys=False, width=100))
    return path
