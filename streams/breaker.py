"""Circuit breakers around model calls (the spec's "Circuit Breaker Protection").

closed: calls pass; `failure_threshold` failures in a row open the breaker.
open: calls fail at once with CircuitOpen until `recovery_timeout_s` has passed.
half_open: calls pass as probes; `success_threshold` successes close the breaker,
one failure opens it again. Plain code with an injected clock; every state change
is reported to `on_change` so the worker can publish it as an event.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from opentelemetry.trace import SpanKind

from streams.errors import ModelUnavailable, PermanentError
from vigil import tracing
from vigil.metrics import BREAKER_STATE, BREAKER_STATES, MODEL_CALLS

T = TypeVar("T")
State = Literal["closed", "open", "half_open"]


class CircuitOpen(ModelUnavailable):
    """The breaker is open: the model was not called."""

    error_type = "CircuitOpen"


@dataclass(frozen=True)
class BreakerConfig:
    failure_threshold: int = 5
    recovery_timeout_s: float = 30.0
    success_threshold: int = 2


@dataclass
class CircuitBreaker:
    name: str
    config: BreakerConfig = field(default_factory=BreakerConfig)
    clock: Callable[[], float] = time.monotonic
    on_change: Callable[[CircuitBreaker, State], None] | None = None
    state: State = "closed"
    failure_count: int = 0
    success_count: int = 0
    total_calls: int = 0
    opened_at: float | None = None

    def __post_init__(self) -> None:
        BREAKER_STATE.labels(self.name).set(BREAKER_STATES[self.state])

    def _move(self, state: State) -> None:
        previous, self.state = self.state, state
        BREAKER_STATE.labels(self.name).set(BREAKER_STATES[state])
        if state == "open":
            self.opened_at = self.clock()
        if state != "half_open":
            self.success_count = 0
        if self.on_change is not None and previous != state:
            self.on_change(self, previous)

    def before_call(self) -> None:
        """Raise CircuitOpen, or let the call through (moving open -> half_open when due)."""
        if self.state == "open":
            waited = self.clock() - (self.opened_at or 0.0)
            if waited < self.config.recovery_timeout_s:
                raise CircuitOpen(
                    f"circuit breaker {self.name!r} is open after {self.failure_count} failures; "
                    f"next try in {self.config.recovery_timeout_s - waited:.0f}s"
                )
            self._move("half_open")
        self.total_calls += 1

    def record_success(self) -> None:
        if self.state == "half_open":
            self.success_count += 1
            if self.success_count >= self.config.success_threshold:
                self.failure_count = 0
                self._move("closed")
        else:
            self.failure_count = 0

    def record_failure(self) -> None:
        self.failure_count += 1
        if self.state == "half_open" or (
            self.state == "closed" and self.failure_count >= self.config.failure_threshold
        ):
            self._move("open")

    def reset(self) -> None:
        self.failure_count = 0
        self._move("closed")

    async def call(self, call: Callable[[], Awaitable[T]]) -> T:
        """Run `call` under the breaker. Bad input (PermanentError) says nothing about the
        model's health and does not count as a failure."""
        timed = MODEL_CALLS.labels
        try:
            self.before_call()
        except CircuitOpen:
            timed(self.name, "circuit_open").observe(0)
            raise
        started = time.perf_counter()
        try:
            with tracing.tracer().start_as_current_span(
                f"infer {self.name}", kind=SpanKind.CLIENT, attributes={"vigil.model": self.name}
            ):
                result = await call()
        except PermanentError:
            timed(self.name, "bad_input").observe(time.perf_counter() - started)
            self.record_success()
            raise
        except Exception:
            timed(self.name, "error").observe(time.perf_counter() - started)
            self.record_failure()
            raise
        timed(self.name, "ok").observe(time.perf_counter() - started)
        self.record_success()
        return result
