"""The inputs that once answered 500, tried on every operation of the OpenAPI document: an
integer past Postgres's bigint in any integer parameter, and a NUL character or a lone
surrogate in any text parameter or JSON body string, each answer 422 naming the parameter.

The operations and their parameters come from the app's own document, so a new route is
covered the day it is added; the fuzz test (`test_fuzz.py`) looks further at random."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import pytest

from api.main import create_app

DOCUMENT = create_app().openapi()
TOO_BIG = [2**63, 10**30]
# A lone surrogate cannot be put in a URL at all (a URL is UTF-8 bytes); it is tried in a body.
NUL = ["a\x00b"]
# Path parameters not under test: a queue that exists, so that the parameter under test is
# the one checked.
FILLED = {"queue_name": "dlq:detection_queue"}


def _operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in DOCUMENT["paths"].items()
        for method, operation in item.items()
        if method in {"get", "post", "put", "delete"}
    ]


def _type(parameter: dict[str, Any]) -> str | None:
    schema = parameter.get("schema", {})
    kinds = [schema.get("type")] + [s.get("type") for s in schema.get("anyOf", [])]
    return next((kind for kind in kinds if kind in {"integer", "string"}), None)


def _cases(kind: str, values: list[Any]) -> list[Any]:
    return [
        pytest.param(method, path, parameter, value, id=f"{method} {path} {parameter['name']}")
        for method, path, operation in _operations()
        for parameter in operation.get("parameters", [])
        if parameter["in"] in {"path", "query"}
        and _type(parameter) == kind
        # enum and date-time strings are refused by their format before any text check
        and "enum" not in parameter.get("schema", {})
        and parameter.get("schema", {}).get("format") != "date-time"
        for value in values
    ]


def _call(api_client, method: str, path: str, parameter: dict[str, Any], value: Any):
    filled = path.replace("{" + parameter["name"] + "}", quote(str(value), safe=""))
    filled = re.sub(r"\{([^}]+)\}", lambda m: FILLED.get(m.group(1), "1"), filled)
    params = {parameter["name"]: str(value)} if parameter["in"] == "query" else None
    return api_client.request(method, filled, params=params)


def _refused_naming(response, where: str, name: str) -> bool:
    return response.status_code == 422 and any(
        error["loc"][:2] == [where, name] for error in response.json()["detail"]
    )


@pytest.mark.parametrize(("method", "path", "parameter", "value"), _cases("integer", TOO_BIG))
def test_an_integer_past_bigint_is_refused_naming_it(api_client, method, path, parameter, value):
    response = _call(api_client, method, path, parameter, value)
    assert _refused_naming(response, parameter["in"], parameter["name"]), response.text


@pytest.mark.parametrize(("method", "path", "parameter", "value"), _cases("string", NUL))
def test_a_nul_character_in_a_parameter_is_refused_naming_it(
    api_client, method, path, parameter, value
):
    response = _call(api_client, method, path, parameter, value)
    assert _refused_naming(response, parameter["in"], parameter["name"]), response.text


def test_the_cases_cover_the_routes_that_answered_500():
    integer_ids = {case.id for case in _cases("integer", [0])}
    text_ids = {case.id for case in _cases("string", [""])}
    assert {
        "GET /api/detections/{detection_id} detection_id",
        "POST /api/enrichment/reprocess/{detection_id} detection_id",
        "GET /api/events offset",
        "GET /api/enrichment event_id",
    } <= integer_ids
    assert {"GET /api/ai-audit/stats camera_id", "GET /api/events camera_id"} <= text_ids


@pytest.mark.parametrize("text", ["a\x00b", "\ud800"])
def test_unstorable_text_in_a_json_body_is_refused_naming_where(api_client, text):
    body = {"system_prompt": f"you watch cameras {text}", "expected_version": 1}
    response = api_client.put(
        "/api/ai-audit/prompts/nemotron",
        content=_json(body),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "system_prompt"]


def test_an_integer_past_bigint_in_a_json_body_is_refused(api_client):
    response = api_client.post("/api/ai-audit/batch", json={"event_ids": [1, 2**63]})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "event_ids", 1]


def _json(body: dict[str, Any]) -> bytes:
    """JSON with lone surrogates written as escapes (as a client in another language might)."""
    import json

    return json.dumps(body, ensure_ascii=True).encode()
