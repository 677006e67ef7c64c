"""POST /api/system/circuit-breakers/{name}/reset against the real Postgres and Kafka.

The breakers are worker reports projected into the read model (`apply`); a test plays
the workers (`consumer_of`), and names its breaker at random so that the shared database's
other breakers do not count.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from schemas.envelope import utcnow
from schemas.system import ResetCircuitBreaker
from schemas.topics import SYSTEM_COMMANDS
from tests.factories import apply, breaker_changed


def _open_breaker(engine) -> str:
    name = f"model-{uuid.uuid4().hex[:8]}"
    apply(engine, breaker_changed(name, "open", "closed"))
    return name


def test_reset_answers_once_every_worker_reports_it_closed(api_client, engine, consumer_of):
    name = _open_breaker(engine)

    def close(_command) -> None:  # the worker's breaker, closed on the command
        apply(engine, breaker_changed(name, "closed", "open"))

    with consumer_of(SYSTEM_COMMANDS, lambda c: c.name == name, close) as seen:
        reply = api_client.post(f"/api/system/circuit-breakers/{name}/reset")
    assert reply.status_code == 200, reply.text
    assert reply.json() == {
        "name": name,
        "status": "reset",
        "state": "closed",
        "message": "Circuit breaker reset",
    }
    [(key, command)] = seen
    assert (key, type(command), command.name) == (name, ResetCircuitBreaker, name)


def test_reset_answers_202_while_a_worker_still_reports_it_open(
    api_client, engine, consumer_of, short_wait
):
    name = _open_breaker(engine)
    with consumer_of(SYSTEM_COMMANDS, lambda c: c.name == name, lambda _: None) as seen:
        reply = api_client.post(f"/api/system/circuit-breakers/{name}/reset")
    assert reply.status_code == 202, reply.text
    assert reply.json() == {
        "name": name,
        "status": "queued",
        "state": "open",
        "message": f"Reset sent; not every worker reported it closed after {short_wait:g}s",
    }
    assert [key for key, _ in seen] == [name]


def test_reset_of_a_breaker_whose_worker_goes_quiet_meanwhile_answers_its_last_state(
    api_client, engine, consumer_of
):
    services = api_client.app.state.services
    stale_s = services.settings.circuit_breaker_stale_s
    name = f"model-{uuid.uuid4().hex[:8]}"
    # Its one report turns stale 1 s from now, while the reset waits (2 s) for it to close.
    apply(
        engine,
        breaker_changed(name, "open", "closed", at=utcnow() - timedelta(seconds=stale_s - 1)),
    )
    saved, services.read_your_writes_wait_s = services.read_your_writes_wait_s, 2.0
    try:
        with consumer_of(SYSTEM_COMMANDS, lambda c: c.name == name, lambda _: None):
            reply = api_client.post(f"/api/system/circuit-breakers/{name}/reset")
    finally:
        services.read_your_writes_wait_s = saved
    assert reply.status_code == 202, reply.text
    assert (reply.json()["status"], reply.json()["state"]) == ("queued", "open")
    listed = api_client.get("/api/system/circuit-breakers").json()["circuit_breakers"]
    assert name not in listed


def test_reset_unknown_breaker_not_found(api_client, engine):
    known = _open_breaker(engine)
    reply = api_client.post("/api/system/circuit-breakers/no-such-model/reset")
    assert reply.status_code == 404
    body = reply.json()
    assert body["error"] == "NotFound"
    assert body["detail"].startswith("circuit breaker 'no-such-model' not found; known: [")
    assert repr(known) in body["detail"]
