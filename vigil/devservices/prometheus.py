"""A Prometheus server on loopback (Debian's `prometheus`, installed when missing) scraping the
targets it is given: what the tests use to check that every Vigil process is scrapeable by
the real thing, not only parseable."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from vigil.devservices.debian import ensure_programs
from vigil.devservices.procs import ManagedProcess, free_port, start_process, wait_until


def scrape_config(jobs: Mapping[str, Sequence[str]], interval_s: float = 1.0) -> str:
    """A Prometheus configuration scraping `/metrics` of each job's `host:port` targets. JSON,
    which is YAML too."""
    return json.dumps(
        {
            "global": {"scrape_interval": f"{interval_s:g}s", "scrape_timeout": f"{interval_s:g}s"},
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": list(targets)}]}
                for job, targets in jobs.items()
            ],
        },
        indent=2,
    )


@dataclass
class PrometheusServer:
    process: ManagedProcess
    url: str

    def query(self, expression: str) -> list[dict[str, Any]]:
        """The instant vector `expression` gives now: [{"metric": {labels}, "value": [t, v]}]."""
        reply = httpx.get(
            f"{self.url}/api/v1/query", params={"query": expression}, timeout=10, trust_env=False
        )
        reply.raise_for_status()
        return reply.json()["data"]["result"]

    def stop(self) -> None:
        self.process.stop()


def start_prometheus(state_dir: Path, jobs: Mapping[str, Sequence[str]]) -> PrometheusServer:
    binary = ensure_programs(("prometheus",), ("prometheus",))["prometheus"]
    state_dir.mkdir(parents=True, exist_ok=True)
    config = state_dir / "prometheus.yml"
    config.write_text(scrape_config(jobs))
    port = free_port()
    process = start_process(
        "prometheus",
        [
            str(binary),
            f"--config.file={config}",
            f"--storage.tsdb.path={state_dir / 'prometheus-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        state_dir=state_dir,
    )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        return httpx.get(f"{url}/-/ready", timeout=2, trust_env=False).status_code == 200

    try:
        wait_until(ready, timeout=60, what="Prometheus to be ready", alive=process.alive)
    except BaseException:
        process.stop()
        raise
    return PrometheusServer(process, url)
