"""Rules for the confluent-kafka clients, read from the code: no admin client asks for a
group's committed offsets (`list_consumer_group_offsets`). librdkafka answers a coordinator
error there with consumer-group state an admin client does not have, and the process dies
(SIGSEGV in `rd_kafka_cgrp_op`, from `rd_kafka_handle_OffsetFetch`): `GroupOffsets` reads
them with a consumer."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CODE = ("api", "bench", "jobs", "projections", "schemas", "streams", "tests", "vigil")


def _calls_of(method: str) -> list[str]:
    found = []
    for package in CODE:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr == method
                ):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_no_admin_client_lists_a_groups_committed_offsets():
    assert _calls_of("list_consumer_group_offsets") == []


def test_the_rule_finds_such_a_call():
    assert _calls_of("committed")  # GroupOffsets' own call, found the same way
