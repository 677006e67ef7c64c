"""GET /api/system/health answers from the background check: with its age, refreshed while
the app runs, and with `?strict=true` 503 when a part is unhealthy (a Triton that is not
there), the same body either way."""

from __future__ import annotations

from datetime import datetime

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from tests.support import wait_for
from vigil.devservices.procs import free_port


def _checked_at(client) -> datetime:
    return datetime.fromisoformat(client.get("/api/system/health").json()["checked_at"])


def test_health_is_answered_from_a_check_refreshed_in_the_background(stack):
    with TestClient(create_app(stack.settings(health_refresh_s=0.5))) as client:
        first = client.get("/api/system/health")
        assert first.status_code == 200
        body = first.json()
        assert body["status"] == "healthy" and body["error"] is None, body
        assert 0 <= body["age_s"] <= 2.5, body  # five refreshes: past that it is stale
        strict = client.get("/api/system/health", params={"strict": "true"})
        assert strict.status_code == 200, strict.json()
        seen = datetime.fromisoformat(body["checked_at"])
        wait_for(lambda: _checked_at(client) > seen, timeout=10, what="a newer check")


def test_strict_answers_503_when_a_part_is_unhealthy(stack):
    nowhere = f"127.0.0.1:{free_port()}"
    with TestClient(create_app(stack.settings(triton_url=nowhere))) as client:
        relaxed = client.get("/api/system/health")
        strict = client.get("/api/system/health", params={"strict": "true"})
    assert relaxed.status_code == 200
    assert strict.status_code == 503
    for body in (relaxed.json(), strict.json()):
        assert body["status"] == "degraded", body
        assert {name: s["status"] for name, s in body["services"].items()} == {
            "kafka": "healthy",
            "postgres": "healthy",
            "triton": "unhealthy",
        }


def test_the_admin_client_of_the_checks_is_destroyed_when_the_app_stops(stack):
    """Destroyed by the app, not left to the garbage collector (which may run in one of
    librdkafka's own threads: a test process died of that, SIGSEGV in `rdk:main`)."""
    with TestClient(create_app(stack.settings(health_refresh_s=0.2))) as client:
        admin = client.app.state.services.kafka_admin
        assert admin.list_topics(timeout=10).brokers
        seen = _checked_at(client)
        wait_for(lambda: _checked_at(client) > seen, timeout=10, what="a check in between")
    with pytest.raises(RuntimeError, match="Handle has been closed"):
        admin.list_topics(timeout=1)
