"""`vigil api` served by API_WORKERS processes: each one a uvicorn worker with its own app,
a worker that dies replaced, and the whole set stopped with the server."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx

from tests.support import json_log_lines, metric, wait_for
from vigil.devservices.procs import free_port


def _children(pid: int) -> set[int]:
    """The processes whose parent is `pid`."""
    children = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.add(int(stat.parent.name))
    return children


def _workers(pid: int) -> set[int]:
    """`pid`'s children that are uvicorn workers (multiprocessing's spawned processes; the
    resource tracker is a child too, and is not one)."""
    return {
        child
        for child in _children(pid)
        if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()
    }


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _two_workers(pid: int) -> set[int] | None:
    workers = _workers(pid)
    return workers if len(workers) == 2 else None


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


def test_api_workers_serve_and_a_dead_one_is_replaced(stack):
    port = free_port()
    process = stack.start_app(
        "api", name="api-workers", API_PORT=str(port), API_WORKERS="2", LOG_FORMAT="json"
    )
    url = f"http://127.0.0.1:{port}/api/events?limit=1"
    try:
        wait_for(lambda: _answers(url), timeout=60, what="the API")
        first = wait_for(lambda: _two_workers(process.pid), timeout=30, what="two workers")
        killed = min(first)
        os.kill(killed, signal.SIGKILL)
        replaced = wait_for(
            lambda: (w := _two_workers(process.pid)) and killed not in w and w,
            timeout=30,
            what="the killed worker to be replaced",
        )
        assert replaced - first, "a new worker process"
        scrape = f"http://127.0.0.1:{port}/metrics"
        before = httpx.get(scrape, timeout=5, trust_env=False).text
        assert all(_answers(url) for _ in range(20))
        # Every worker's requests are counted, whichever worker answers the scrape: each
        # counts in files of its own in the server's folder (tests/unit/
        # test_metrics_multiprocess.py adds such files up).
        after = httpx.get(scrape, timeout=5, trust_env=False).text
        counted = stack.state_dir / "data" / "api-metrics" / str(process.pid)
        assert {p.name for p in counted.glob("counter_*.db")} & {
            f"counter_{worker}.db" for worker in first | replaced
        }
        events = {"route": "/api/events", "status": "200"}
        assert (
            metric(after, "vigil_http_requests_total", **events)
            - metric(before, "vigil_http_requests_total", **events)
            == 20
        )
    finally:
        process.stop()
    # A worker may still be on its way out (or a zombie for init to reap) as the server's
    # own process ends; none may go on running.
    wait_for(
        lambda: not any(_running(worker) for worker in first | replaced),
        timeout=10,
        what="no worker to outlive the server",
    )
    assert not counted.exists(), "the workers' metric files are removed with the server"
    # Every process of the server logged JSON lines, uvicorn's own access lines too.
    lines = json_log_lines(process.log_path)
    assert {line["process"] for line in lines} >= {process.pid, *first}
    assert any(
        line["logger"] == "uvicorn.access" and "/api/events?limit=1" in line["message"]
        for line in lines
    )
