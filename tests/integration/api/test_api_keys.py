"""X-API-Key: once keys are configured every mutating route needs one; reads never do.

The routes come from the app itself, so a new mutating route without the key check
fails here. Path parameters are filled with "0", which names no batch, detection or
queue: with the right key the call goes past the check (to a 404), changing nothing.
"""

from __future__ import annotations

import re

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from api.main import create_app
from api.security import hash_api_key, new_api_key

MUTATING_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def _routes(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path) of every HTTP route of the app, those of included routers too."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # FastAPI before lazily included routers: app.routes is flat
        found = [(route, route.path, route.methods) for route in app.routes]
    else:
        found = [(c.original_route, c.path, c.methods) for c in iter_route_contexts(app.routes)]
    return sorted(
        (method, path)
        for route, path, methods in found
        if isinstance(route, APIRoute)
        for method in methods - {"HEAD"}
    )


APP = create_app()
ROUTES = _routes(APP)
MUTATING = [(method, path) for method, path in ROUTES if method in MUTATING_METHODS]
# Camera images: reads that need the key, or a signed URL (tests/integration/api/test_images.py).
IMAGES = [(method, path) for method, path in ROUTES if path.startswith("/api/images/")]
READING = [(m, p) for m, p in ROUTES if m == "GET" and (m, p) not in IMAGES]
# Of those, the ones in the OpenAPI document (not the console's page at `/`).
DOCUMENTED = [(m, p) for m, p in READING if p in APP.openapi()["paths"]]
MISSING = "missing X-API-Key header: this endpoint changes state and needs an API key"


def _call(client: TestClient, method: str, path: str, **headers: str):
    return client.request(method, re.sub(r"\{[^}]+\}", "0", path), headers=headers)


@pytest.fixture(scope="module")
def keyed(stack):
    """An app with two keys configured, and one of the keys."""
    key, digest = new_api_key()
    settings = stack.settings(api_key_hashes=f"{hash_api_key('another key')},{digest.upper()}")
    with TestClient(create_app(settings)) as client:
        yield client, key


def test_every_known_mutating_route_is_enumerated():
    assert {
        ("POST", "/api/batches/{batch_id}/flush"),
        ("POST", "/api/enrichment/reprocess/{detection_id}"),
        ("POST", "/api/dlq/requeue/{queue_name}"),
        ("POST", "/api/dlq/requeue-all/{queue_name}"),
        ("DELETE", "/api/dlq/{queue_name}"),
        ("POST", "/api/system/circuit-breakers/{name}/reset"),
        ("POST", "/api/jobs"),
        ("POST", "/api/jobs/bulk-cancel"),
        ("POST", "/api/jobs/{job_id}/cancel"),
        ("POST", "/api/jobs/{job_id}/abort"),
        ("DELETE", "/api/jobs/{job_id}"),
        ("POST", "/api/events/export"),
        ("POST", "/api/ai-audit/events/{event_id}/evaluate"),
        ("POST", "/api/ai-audit/batch"),
    } <= set(MUTATING)
    assert ("GET", "/api/dlq/stats") in READING
    assert {("GET", "/api/jobs/types"), ("GET", "/api/jobs/{job_id}/download")} <= set(READING)
    assert set(READING) - set(DOCUMENTED) == {("GET", "/")}  # the console, keyless too


def _operation(method: str, path: str) -> dict:
    return APP.openapi()["paths"][path][method.lower()]


def _asks_for_the_key(operation: dict) -> bool:
    return {"name": "x-api-key", "in": "header"} in [
        {"name": p["name"], "in": p["in"]} for p in operation.get("parameters", [])
    ]


@pytest.mark.parametrize(("method", "path"), MUTATING)
def test_mutating_route_documents_the_key_and_its_401(method, path):
    operation = _operation(method, path)
    assert _asks_for_the_key(operation)
    assert operation["responses"]["401"] == {
        "description": "Missing or invalid X-API-Key (once keys are configured)",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}},
    }


@pytest.mark.parametrize(("method", "path"), IMAGES)
def test_image_route_documents_the_key_and_its_401_and_403(method, path):
    operation = _operation(method, path.replace(":path", ""))
    assert _asks_for_the_key(operation)
    assert {"401", "403"} <= set(operation["responses"])


def test_the_image_routes_are_the_only_reads_with_a_key():
    assert sorted(IMAGES) == [
        ("GET", "/api/images/{image_id:path}"),
        ("GET", "/api/images/{image_id}/annotated"),
    ]


@pytest.mark.parametrize(("method", "path"), DOCUMENTED)
def test_reading_route_documents_no_key(method, path):
    operation = _operation(method, path)
    assert not _asks_for_the_key(operation)
    assert "401" not in operation["responses"]


@pytest.mark.parametrize(("method", "path"), MUTATING)
def test_mutating_route_without_key_is_401(keyed, method, path):
    client, _ = keyed
    reply = _call(client, method, path)
    assert reply.status_code == 401, reply.text
    assert reply.json() == {"detail": MISSING, "error": "Unauthorized"}
    assert reply.headers["www-authenticate"] == "ApiKey"


@pytest.mark.parametrize(("method", "path"), MUTATING)
def test_mutating_route_with_wrong_key_is_401(keyed, method, path):
    client, key = keyed
    reply = _call(client, method, path, **{"X-API-Key": key + "x"})
    assert reply.status_code == 401, reply.text
    assert reply.json() == {"detail": "invalid API key", "error": "Unauthorized"}
    assert reply.headers["www-authenticate"] == "ApiKey"


@pytest.mark.parametrize(("method", "path"), MUTATING)
def test_mutating_route_with_the_key_goes_through(keyed, method, path):
    client, key = keyed
    reply = _call(client, method, path, **{"X-API-Key": key})
    assert reply.status_code != 401, reply.text


@pytest.mark.parametrize(("method", "path"), READING)
def test_reading_route_needs_no_key(keyed, method, path):
    client, _ = keyed
    assert _call(client, method, path).status_code != 401


@pytest.mark.parametrize(("method", "path"), MUTATING)
def test_mutating_route_needs_no_key_when_none_is_configured(api_client, method, path):
    reply = _call(api_client, method, path)
    assert reply.status_code != 401, reply.text
