"""A consumer in another language (examples/node-consumer: Node.js, kafkajs and Ajv, its
packages installed by the project into .cache/npm) reads what the pipeline produced on
`vigil.events` and `vigil.detections` from the earliest offset, on the real broker, and
validates every message against the JSON Schema Vigil publishes. The module has a broker of
its own: other modules put poison on the shared one on purpose."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from schemas.topics import DETECTIONS, SECURITY_EVENTS
from tests.support import drop, new_camera_id, read_topic, wait_for
from vigil.devservices.npm import ensure_npm_dependencies
from vigil.devservices.procs import REPO_ROOT

EXAMPLE = REPO_ROOT / "examples" / "node-consumer"
ENV = {
    "FILE_STABLE_S": "0.3",
    "WATCH_INTERVAL_S": "0.25",
    "RETRY_BASE_DELAY_S": "0.2",
    "RETRY_MAX_DELAY_S": "1",
    "BATCH_WINDOW_S": "20",
    "BATCH_IDLE_S": "2",
    "BATCH_CHECK_INTERVAL_S": "0.5",
}


@pytest.fixture(scope="module")
def produced(own_stack, tmp_path_factory, samples) -> str:
    """A camera whose photo went through the whole pipeline to a security event; the
    pipeline stopped after it (so the topics hold still while they are read)."""
    camera_root: Path = tmp_path_factory.mktemp("node-cameras")
    env = {"CAMERA_ROOT": str(camera_root), **ENV}
    worker = own_stack.start_app("worker", name="node-worker", **env)
    camera_id = new_camera_id("node")
    try:
        drop(camera_root, camera_id, "bus.jpg", samples["bus.jpg"].read_bytes())
        wait_for(
            lambda: read_topic(own_stack.kafka_bootstrap, SECURITY_EVENTS, camera_id),
            timeout=180,
            what="the security event on vigil.events",
        )
    finally:
        worker.stop()
        own_stack.apps.remove(worker)
    return camera_id


def test_the_node_consumer_validates_every_message_the_pipeline_produced(own_stack, produced):
    node = shutil.which("node")
    assert node, "Node.js is needed"
    modules = ensure_npm_dependencies(EXAMPLE / "package.json")
    on_topics = {
        topic.name: len(read_topic(own_stack.kafka_bootstrap, topic))
        for topic in (SECURITY_EVENTS, DETECTIONS)
    }
    done = subprocess.run(
        [node, str(EXAMPLE / "consume.js"), "--idle-ms", "4000"],
        env={
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": own_stack.kafka_bootstrap,
            "NODE_PATH": str(modules),
        },
        capture_output=True,
        text=True,
        timeout=180,
    )
    lines = done.stdout.splitlines()
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    counted = json.loads(lines[-1])
    assert counted["invalid"] == []
    assert counted["validated"] == on_topics
    assert counted["events"] == on_topics[SECURITY_EVENTS.name]
    [ours] = [line for line in lines if line.startswith(f"EVENT {produced} ")]
    assert ours.split()[2] in {"low", "medium", "high", "critical"}


def test_a_message_that_breaks_the_schema_fails_the_consumer(own_stack, tmp_path, produced):
    """With a schema that no real detection meets, the consumer says so and exits 1."""
    schemas = tmp_path / "schemas"
    shutil.copytree(REPO_ROOT / "schemas" / "json", schemas)
    kept = schemas / DETECTIONS.name / "DetectionsProduced.v1.schema.json"
    strict = json.loads(kept.read_text())
    strict["required"] = [*strict.get("required", []), "no_such_field"]
    kept.write_text(json.dumps(strict))
    done = subprocess.run(
        [shutil.which("node") or "node", str(EXAMPLE / "consume.js"), "--idle-ms", "4000"],
        env={
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": own_stack.kafka_bootstrap,
            "NODE_PATH": str(ensure_npm_dependencies(EXAMPLE / "package.json")),
            "VIGIL_SCHEMAS": str(schemas),
        },
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    counted = json.loads(done.stdout.splitlines()[-1])
    assert counted["invalid"] and {i["topic"] for i in counted["invalid"]} == {DETECTIONS.name}
