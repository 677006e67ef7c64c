"""The health monitor hands out its latest check with its age, and says so when it cannot
vouch: no check completed yet, or the last one went stale (fault injection: checks that
hang)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from concurrent.futures import Future
from contextlib import asynccontextmanager
from types import SimpleNamespace

import pytest

from api.health_monitor import HealthMonitor, has_unhealthy_part
from api.models import HealthResponse, ServiceHealth
from api.queries import health
from schemas.envelope import utcnow
from schemas.topics import IMAGES


def _healthy() -> HealthResponse:
    return HealthResponse(
        status="healthy",
        services={"kafka": ServiceHealth(status="healthy")},
        consumer_lag={},
        checked_at=utcnow(),
    )


@asynccontextmanager
async def running(monitor: HealthMonitor):
    task = asyncio.create_task(monitor.run())
    try:
        yield monitor
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_the_latest_check_is_answered_with_its_age():
    async with running(HealthMonitor(lambda: asyncio.sleep(0, _healthy()), 0.05)) as monitor:
        health = await monitor.current()
    assert health.status == "healthy" and health.error is None
    assert 0 <= health.age_s <= 0.25
    assert not has_unhealthy_part(health)


async def test_a_check_that_never_completes_leaves_the_answer_unhealthy():
    async with running(HealthMonitor(lambda: asyncio.sleep(60), 0.05, 0.2)) as monitor:
        health = await monitor.current()
    assert health.status == "unhealthy"
    assert health.error == "no health check has completed in 0.2 s"
    assert has_unhealthy_part(health)


async def test_an_answer_older_than_stale_after_is_unhealthy_with_its_age():
    calls = 0

    async def first_then_hang() -> HealthResponse:
        nonlocal calls
        calls += 1
        if calls > 1:
            await asyncio.sleep(60)
        return _healthy()

    async with running(HealthMonitor(first_then_hang, 0.05, 0.2)) as monitor:
        assert (await monitor.current()).status == "healthy"
        await asyncio.sleep(0.4)
        health = await monitor.current()
    assert health.status == "unhealthy"
    assert health.age_s > 0.2
    assert health.error.startswith(f"the last health check completed {health.age_s:g} s ago")
    assert health.services["kafka"].status == "healthy"  # what it last saw, kept
    assert has_unhealthy_part(health)


class _SilentAdmin:
    """An admin client whose offset requests are never answered (fault injection: seen
    across a broker restart), over a cluster of one single-partition topic."""

    def list_topics(self, timeout):
        return SimpleNamespace(topics={"vigil.images": SimpleNamespace(partitions={0: None})})

    def list_offsets(self, requests, request_timeout):
        return {tp: Future() for tp in requests}


def test_an_admin_request_never_answered_gives_up_instead_of_holding_its_thread(monkeypatch):
    monkeypatch.setattr(health, "ANSWER_TIMEOUT_S", 0.1)
    started = time.monotonic()
    with pytest.raises(concurrent.futures.TimeoutError):
        health.group_lag(_SilentAdmin(), None, "vigil-detect", [IMAGES])
    assert time.monotonic() - started < 5
