"""The retry policy every model call runs under (the spec's "Retry Behavior")."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from schemas.envelope import utcnow
from streams.errors import PermanentError
from vigil.settings import Settings

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3
    base_delay_s: float = 1.0
    max_delay_s: float = 30.0
    exponential_base: float = 2.0
    jitter: float = 0.25

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(
            max_attempts=settings.retry_max_attempts,
            base_delay_s=settings.retry_base_delay_s,
            max_delay_s=settings.retry_max_delay_s,
            exponential_base=settings.retry_exponential_base,
            jitter=settings.retry_jitter,
        )

    def delay_after(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        delay = min(self.base_delay_s * self.exponential_base ** (attempt - 1), self.max_delay_s)
        return delay * (1 + self.jitter * rand())


@dataclass
class RetryExhausted(Exception):
    """Every attempt failed (or one failed permanently); carries what a dead letter needs."""

    last_error: BaseException
    attempts: int
    first_failed_at: datetime
    last_failed_at: datetime = field(default_factory=utcnow)

    def __str__(self) -> str:
        return (
            f"{type(self.last_error).__name__} after {self.attempts} attempt(s): {self.last_error}"
        )


async def call_with_retry(
    call: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    first_failed_at: datetime | None = None
    for attempt in range(1, policy.max_attempts + 1):
        try:
            return await call()
        except Exception as exc:
            first_failed_at = first_failed_at or utcnow()
            if isinstance(exc, PermanentError) or attempt == policy.max_attempts:
                raise RetryExhausted(exc, attempt, first_failed_at) from exc
            await sleep(policy.delay_after(attempt))
    raise AssertionError("unreachable")
