"""The worker's circuit breakers, one per model, and how they are reported and reset.

State changes and (every few seconds, when they moved) counters become
`CircuitBreakerChanged` events on the system topic; `ResetCircuitBreaker`
commands on the system command topic, which every worker follows, close them.
"""

from __future__ import annotations

import asyncio
import time

import faust

from schemas.system import CircuitBreakerChanged, ResetCircuitBreaker
from schemas.topics import SYSTEM, SYSTEM_COMMANDS
from streams.breaker import BreakerConfig, CircuitBreaker, State
from streams.follow import follow_topic
from streams.models import Models
from streams.stage import Publish
from streams.wiring import Wiring

SNAPSHOT_INTERVAL_S = 5.0
# A breaker is reported at least this often, moved or not, so its report never goes stale.
HEARTBEAT_S = 20.0


class BreakerBoard:
    def __init__(self, worker_id: str, config: BreakerConfig) -> None:
        self.worker_id = worker_id
        self.config = config
        self.breakers: dict[str, CircuitBreaker] = {}
        self.outbox: asyncio.Queue[CircuitBreakerChanged] = asyncio.Queue()
        self._reported: dict[str, tuple[str, int, int]] = {}
        self._reported_at: dict[str, float] = {}

    def breaker(self, name: str) -> CircuitBreaker:
        if name not in self.breakers:
            self.breakers[name] = CircuitBreaker(name, self.config, on_change=self._changed)
            self._report(self.breakers[name], "closed")
        return self.breakers[name]

    def _report(self, breaker: CircuitBreaker, previous: State) -> None:
        self._reported[breaker.name] = (breaker.state, breaker.failure_count, breaker.total_calls)
        self._reported_at[breaker.name] = time.monotonic()
        self.outbox.put_nowait(
            CircuitBreakerChanged(
                worker_id=self.worker_id,
                name=breaker.name,
                state=breaker.state,
                previous_state=previous,
                failure_count=breaker.failure_count,
                total_calls=breaker.total_calls,
                producer=f"{self.worker_id}/breakers",
            )
        )

    def _changed(self, breaker: CircuitBreaker, previous: State) -> None:
        self._report(breaker, previous)

    def report_counters(self, heartbeat_s: float = HEARTBEAT_S) -> None:
        """Report each breaker whose counters moved, or that was last reported `heartbeat_s` ago."""
        for breaker in self.breakers.values():
            now = (breaker.state, breaker.failure_count, breaker.total_calls)
            quiet_for = time.monotonic() - self._reported_at.get(breaker.name, 0.0)
            if self._reported.get(breaker.name) != now or quiet_for >= heartbeat_s:
                self._report(breaker, breaker.state)

    def reset(self, command: ResetCircuitBreaker) -> None:
        """Close this worker's breaker of that name (every worker follows the commands)."""
        breaker = self.breakers.get(command.name)
        if breaker is not None:
            breaker.reset()
            self.report_counters(heartbeat_s=0)


def change_report(change: CircuitBreakerChanged) -> Publish:
    return Publish(SYSTEM, change.name, change)


def register(wiring: Wiring, models: Models) -> BreakerBoard:
    settings = wiring.settings
    board = BreakerBoard(
        settings.worker_id,
        BreakerConfig(
            failure_threshold=settings.circuit_breaker_failure_threshold,
            recovery_timeout_s=settings.circuit_breaker_recovery_timeout,
            success_threshold=settings.circuit_breaker_success_threshold,
        ),
    )
    for model in models.all():
        if hasattr(model, "breaker"):
            model.breaker = board.breaker(model.model_name)
    stop = asyncio.Event()

    @wiring.app.task
    async def publish_breaker_changes() -> None:
        while True:
            await wiring.publish(change_report(await board.outbox.get()))

    @wiring.app.timer(SNAPSHOT_INTERVAL_S)
    async def report_breaker_counters() -> None:
        board.report_counters()

    @wiring.app.task
    async def obey_system_commands() -> None:
        await follow_topic(
            settings.kafka_bootstrap_servers,
            SYSTEM_COMMANDS,
            board.reset,
            stop,
            from_beginning=False,
        )

    @wiring.app.on_before_shutdown.connect
    async def stop_following(app: faust.App, **_: object) -> None:
        stop.set()

    return board
