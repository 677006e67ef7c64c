"""WS /ws/jobs on a real server, fed by the real jobs topic once the real projector applied
each step (a broker and a database of this module's own, so its projector sees only these
jobs)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from schemas.codec import encode
from schemas.jobs import JobEvent
from schemas.topics import JOBS
from tests.factories import job_requested, job_run
from tests.support import LiveApi, live_api_of, publish

TIMEOUT_S = 20.0
QUIET_S = 2.0


@pytest.fixture(scope="module")
def live_api(own_stack) -> Iterator[LiveApi]:
    projector = own_stack.start_app("projector", name="ws-jobs-projector")
    try:
        with live_api_of(own_stack.settings()) as live:
            yield live
    finally:
        projector.stop()


def jobs_url(live_api: LiveApi) -> str:
    return f"{live_api.base_url}/ws/jobs"


async def next_job_message(ws: ClientConnection, job_id: str) -> dict[str, Any]:
    async with asyncio.timeout(TIMEOUT_S):
        while True:
            message = json.loads(await ws.recv())
            assert set(message) == {"type", "job"} and message["type"] == "job"
            if message["job"]["job_id"] == job_id:
                return message


async def nothing_more(ws: ClientConnection, job_id: str) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(QUIET_S):
            while True:
                message = json.loads(await ws.recv())
                assert message["job"]["job_id"] != job_id, f"pushed: {message}"


async def step(own_producer, ws: ClientConnection, event: JobEvent) -> dict[str, Any]:
    await asyncio.to_thread(publish, own_producer, JOBS.name, event.job_id, encode(event))
    return (await next_job_message(ws, event.job_id))["job"]


async def test_each_state_change_and_progress_step_is_pushed_as_rest_shows_the_job(
    live_api, own_producer, own_api_client
):
    requested = job_requested("export", params={"format": "csv"})
    started, progressed, logged, *_, completed = job_run(requested, steps=1)
    assert type(logged).__name__ == "JobLogged"
    async with connect(jobs_url(live_api)) as ws:
        seen = []
        for event in (requested, started, progressed):
            job = await step(own_producer, ws, event)
            assert job == own_api_client.get(f"/api/jobs/{requested.job_id}").json()
            seen.append((job["status"], job["progress"]))
        # A log line changes nothing a job message shows: nothing is pushed for it.
        await asyncio.to_thread(publish, own_producer, JOBS.name, logged.job_id, encode(logged))
        await nothing_more(ws, requested.job_id)
        job = await step(own_producer, ws, completed)
        assert job == own_api_client.get(f"/api/jobs/{requested.job_id}").json()
        seen.append((job["status"], job["progress"]))
    assert seen == [("pending", 0), ("running", 0), ("running", 50), ("completed", 100)]
    assert job["result"] == {"rows": 30}


async def test_a_client_of_events_hears_no_jobs(live_api, own_producer):
    requested = job_requested("export")
    async with (
        connect(f"{live_api.base_url}/ws/events") as events,
        connect(jobs_url(live_api)) as jobs,
    ):
        await asyncio.to_thread(
            publish, own_producer, JOBS.name, requested.job_id, encode(requested)
        )
        await next_job_message(jobs, requested.job_id)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(QUIET_S):
                message = await events.recv()
                pytest.fail(f"an events client was sent {message}")
