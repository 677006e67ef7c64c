"""POST /api/system/circuit-breakers/{name}/reset against the real Postgres and Kafka.

The breakers are worker reports projected into the read model (`apply`); a test plays
the workers (`consumer_of`), and names its breaker at random so that the shared database's
other breakers do not count.
"""

from __future__ import annotations

import uuid

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


def test_reset_unknown_breaker_not_found(api_client, engine):
    known = _open_breaker(engine)
    reply = api_client.post("/api/system/circuit-breakers/no-such-model/reset")
    assert reply.status_code == 404
    body = reply.json()
    assert body["error"] == "NotFound"
    assert body["detail"].startswith("circuit breaker 'no-such-model' not found; known: [")
    assert repr(known) in body["detail"]
