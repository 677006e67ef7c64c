"""schemas/asyncapi.yaml as another service's tooling reads it: the AsyncAPI initiative's own
parser (npm `@asyncapi/parser`, installed by the project into .cache/npm) finds no error in
it and every topic of schemas/topics.py as a channel; and it does report a broken document,
so a pass means something."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
import yaml

from schemas.topics import ALL_TOPICS
from vigil.devservices.npm import ensure_npm_package
from vigil.devservices.procs import REPO_ROOT

PARSER_VERSION = "3.6.6"
SCRIPT = REPO_ROOT / "tests" / "tools" / "validate_asyncapi.cjs"
DOCUMENT = REPO_ROOT / "schemas" / "asyncapi.yaml"


@pytest.fixture(scope="module")
def parse():
    package = ensure_npm_package("@asyncapi/parser", PARSER_VERSION)
    node = shutil.which("node")
    assert node, "Node.js is needed"

    def run(path) -> subprocess.CompletedProcess:
        return subprocess.run(
            [node, str(SCRIPT), str(path)],
            env={**os.environ, "ASYNCAPI_PARSER": str(package)},
            capture_output=True,
            text=True,
            timeout=120,
        )

    return run


def test_the_document_parses_without_errors_and_lists_every_topic(parse):
    done = parse(DOCUMENT)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert not [line for line in lines if line.get("severity") == 0]
    [found] = [line["channels"] for line in lines if "channels" in line]
    assert sorted(found) == sorted(t.name for t in ALL_TOPICS)


def test_a_broken_document_is_reported(parse, tmp_path):
    document = yaml.safe_load(DOCUMENT.read_text())
    del document["components"]["messages"]["ImageReceived"]
    broken = tmp_path / "asyncapi.yaml"
    broken.write_text(yaml.safe_dump(document, sort_keys=False))
    done = parse(broken)
    assert done.returncode == 1
    assert "error(s)" in done.stderr
