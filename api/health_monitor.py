"""The API's health, checked in the background so that a probe is answered from memory.

`GET /api/system/health` used to run every check per request: with 16 probes at once it
took over a second and timed out. The monitor runs `check_all` every `interval_s` and keeps
the latest answer; `current` hands it out with its age. An answer older than `stale_after_s`
(the checks hang or fail) cannot vouch for anything and says so: unhealthy, with the reason.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from api.models import HealthResponse
from schemas.envelope import utcnow

log = logging.getLogger(__name__)

STALE_AFTER_REFRESHES = 5


class HealthMonitor:
    def __init__(
        self,
        check: Callable[[], Awaitable[HealthResponse]],
        interval_s: float,
        stale_after_s: float | None = None,
    ) -> None:
        self._check = check
        self.interval_s = interval_s
        self.stale_after_s = stale_after_s or STALE_AFTER_REFRESHES * interval_s
        self._latest: HealthResponse | None = None
        self._first = asyncio.Event()

    async def run(self) -> None:
        """Check, keep the answer, wait `interval_s`; until cancelled. A check that takes
        longer than `stale_after_s` is given up (the answer it would replace goes stale)."""
        while True:
            try:
                async with asyncio.timeout(self.stale_after_s):
                    self._latest = await self._check()
                self._first.set()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("health check failed; the last answer ages")
            await asyncio.sleep(self.interval_s)

    async def current(self) -> HealthResponse:
        """The latest answer with its age; the first one is waited for (up to
        `stale_after_s`)."""
        try:
            async with asyncio.timeout(self.stale_after_s):
                await self._first.wait()
        except TimeoutError:
            pass
        latest = self._latest
        now = utcnow()
        if latest is None:
            return HealthResponse(
                status="unhealthy",
                services={},
                consumer_lag={},
                checked_at=now,
                error=f"no health check has completed in {self.stale_after_s:g} s",
            )
        age_s = round((now - latest.checked_at).total_seconds(), 3)
        if age_s <= self.stale_after_s:
            return latest.model_copy(update={"age_s": age_s})
        return latest.model_copy(
            update={
                "age_s": age_s,
                "status": "unhealthy",
                "error": f"the last health check completed {age_s:g} s ago: checks are not "
                f"completing (every {self.interval_s:g} s is the rule)",
            }
        )


def has_unhealthy_part(health: HealthResponse) -> bool:
    """Whether any part of `health` is unhealthy, or the answer itself cannot vouch."""
    return health.error is not None or any(
        service.status == "unhealthy" for service in health.services.values()
    )
