import asyncio

import pytest

from streams.breaker import BreakerConfig, CircuitBreaker, CircuitOpen
from streams.errors import PermanentError


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def breaker(changes=None) -> tuple[CircuitBreaker, Clock]:
    clock = Clock()
    b = CircuitBreaker(
        "yolo26",
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
