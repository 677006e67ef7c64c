"""API_WORKERS > 1: each uvicorn worker counts in files of its own under
PROMETHEUS_MULTIPROC_DIR, and /metrics, whichever worker answers it, adds every worker's
counts up. Here three processes stand for two workers and the one answering the scrape."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support import metric

COUNT = """
from vigil.metrics import HTTP_REQUESTS
for _ in range({n}):
    HTTP_REQUESTS.labels("GET", "/api/events", "200").inc()
"""
SCRAPE = (
    "import sys; from vigil.metrics import exposition; sys.stdout.write(exposition()[0].decode())"
)


def _python(code: str, env: dict[str, str]) -> str:
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout


def test_the_scrape_adds_up_every_workers_counts(tmp_path):
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    _python(COUNT.format(n=3), env)
    _python(COUNT.format(n=4), env)
    served = _python(SCRAPE, env)
    labels = {"method": "GET", "route": "/api/events", "status": "200"}
    assert metric(served, "vigil_http_requests_total", **labels) == 7
    alone = _python(SCRAPE, {k: v for k, v in env.items() if k != "PROMETHEUS_MULTIPROC_DIR"})
    assert metric(alone, "vigil_http_requests_total", **labels) == 0


def test_a_fresh_directory_removes_those_of_servers_no_longer_running(tmp_path, monkeypatch):
    import os
    import subprocess

    from vigil.metrics import MULTIPROC_ENV, fresh_multiprocess_dir

    # Recorded, so that the variable fresh_multiprocess_dir sets is undone after the test
    # (delenv of an unset variable records nothing: the API's in-process /metrics of later
    # tests then read the empty folder).
    monkeypatch.setenv(MULTIPROC_ENV, "")
    finished = subprocess.Popen(["true"])
    finished.wait()
    dead = tmp_path / str(finished.pid)
    alive = tmp_path / str(os.getppid())
    other = tmp_path / "notes"
    for folder in (dead, alive, other):
        folder.mkdir()
        (folder / "counter_1.db").write_bytes(b"")
    fresh_multiprocess_dir(tmp_path / str(os.getpid()))
    assert not dead.exists()
    assert alive.exists() and other.exists()
    assert os.environ[MULTIPROC_ENV] == str(tmp_path / str(os.getpid()))
