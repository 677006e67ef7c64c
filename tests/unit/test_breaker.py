import asyncio

import pytest

from streams.breaker import BreakerConfig, CircuitBreaker, CircuitOpen
from streams.errors import PermanentError


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def breaker(changes=None, name: str = "yolo26") -> tuple[CircuitBreaker, Clock]:
    clock = Clock()
    b = CircuitBreaker(
        name,
        BreakerConfig(failure_threshold=3, recovery_timeout_s=30, success_threshold=2),
        clock=clock,
        on_change=(lambda br, prev: changes.append((prev, br.state)))
        if changes is not None
        else None,
    )
    return b, clock


async def ok():
    return "ok"


async def down():
    raise ConnectionError("refused")


async def corrupt():
    raise PermanentError("invalid image")


def run(b: CircuitBreaker, call):
    return asyncio.run(b.call(call))


def test_opens_after_threshold_consecutive_failures():
    changes = []
    b, _ = breaker(changes)
    for _ in range(2):
        with pytest.raises(ConnectionError):
            run(b, down)
    assert b.state == "closed"
    with pytest.raises(ConnectionError):
        run(b, down)
    assert (b.state, b.failure_count, b.total_calls) == ("open", 3, 3)
    assert changes == [("closed", "open")]


def test_success_in_between_resets_the_count():
    b, _ = breaker()
    for call in (down, down, ok, down, down):
        try:
            run(b, call)
        except ConnectionError:
            pass
    assert (b.state, b.failure_count) == ("closed", 2)


def test_open_breaker_fails_fast_without_calling():
    b, clock = breaker()
    for _ in range(3):
        with pytest.raises(ConnectionError):
            run(b, down)
    called = []

    async def spy():
        called.append(1)
        return "ok"

    clock.now += 29
    with pytest.raises(CircuitOpen, match="is open after 3 failures; next try in 1s"):
        run(b, spy)
    assert called == []
    assert b.total_calls == 3


def test_half_open_closes_after_success_threshold():
    changes = []
    b, clock = breaker(changes)
    for _ in range(3):
        with pytest.raises(ConnectionError):
            run(b, down)
    clock.now += 30
    assert run(b, ok) == "ok"
    assert b.state == "half_open"
    run(b, ok)
    assert (b.state, b.failure_count) == ("closed", 0)
    assert changes == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]


def test_failure_while_half_open_opens_again():
    b, clock = breaker()
    for _ in range(3):
        with pytest.raises(ConnectionError):
            run(b, down)
    clock.now += 31
    with pytest.raises(ConnectionError):
        run(b, down)
    assert b.state == "open"
    assert b.opened_at == clock.now


def test_bad_input_does_not_count_against_the_model():
    b, _ = breaker()
    for _ in range(5):
        with pytest.raises(PermanentError):
            run(b, corrupt)
    assert (b.state, b.failure_count) == ("closed", 0)


def test_reset_closes_at_once():
    changes = []
    b, _ = breaker(changes)
    for _ in range(3):
        with pytest.raises(ConnectionError):
            run(b, down)
    b.reset()
    assert (b.state, b.failure_count) == ("closed", 0)
    assert changes[-1] == ("open", "closed")


def _metrics() -> str:
    from vigil.metrics import exposition

    return exposition()[0].decode()


def test_every_call_is_timed_by_outcome_and_the_state_is_exported():
    from tests.support import metric

    b, clock = breaker(name="metered")  # series of its own in this process's registry
    assert metric(_metrics(), "vigil_circuit_breaker_state", model=b.name) == 0
    run(b, ok)
    with pytest.raises(PermanentError):
        run(b, corrupt)
    for _ in range(3):
        with pytest.raises(ConnectionError):
            run(b, down)
    with pytest.raises(CircuitOpen):
        run(b, ok)
    exported = _metrics()
    counts = {
        outcome: metric(exported, "vigil_model_call_seconds_count", model=b.name, outcome=outcome)
        for outcome in ("ok", "bad_input", "error", "circuit_open")
    }
    assert counts == {"ok": 1, "bad_input": 1, "error": 3, "circuit_open": 1}
    assert metric(exported, "vigil_circuit_breaker_state", model=b.name) == 2
    clock.now += 31
    run(b, ok)  # half-open, one success of two
    assert metric(_metrics(), "vigil_circuit_breaker_state", model=b.name) == 1
