"""Every process's Prometheus metrics, read as Prometheus reads them: the worker, the projector
and the API run as processes; 3 photos go through; each `/metrics` parses with the Prometheus
text parser and its counters move by exactly what those photos did; and Debian's
`prometheus`, started on loopback with a generated scrape configuration, scrapes all three."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import DEPLOY, dashboard_expressions, drop, metric, new_camera_id, wait_for
from vigil.devservices.procs import free_port

PHOTOS = ("bus.jpg", "zidane.jpg", "person.jpg")
ENV = {
    "FILE_STABLE_S": "0.3",
    "WATCH_INTERVAL_S": "0.25",
    "RETRY_BASE_DELAY_S": "0.2",
    "RETRY_MAX_DELAY_S": "1",
    # Nothing here is about analyses: no batch closes.
    "BATCH_WINDOW_S": "3600",
    "BATCH_IDLE_S": "3600",
}


@pytest.fixture(scope="module")
def processes(own_stack, tmp_path_factory) -> Iterator[dict]:
    """The worker, the projector and the API as processes, each serving /metrics."""
    camera_root = tmp_path_factory.mktemp("observed-cameras")
    ports = {"worker": free_port(), "projector": free_port(), "api": free_port()}
    env = {
        "CAMERA_ROOT": str(camera_root),
        "WORKER_METRICS_PORT": str(ports["worker"]),
        "PROJECTOR_METRICS_PORT": str(ports["projector"]),
        "API_PORT": str(ports["api"]),
        **ENV,
    }
    stack = own_stack  # a broker of its own: other modules leave messages on the shared one
    started = {
        role: stack.start_app(role, name=f"observed-{role}", **env)
        for role in ("worker", "projector", "api")
    }
    targets = {role: f"127.0.0.1:{port}" for role, port in ports.items()}
    for role, target in targets.items():
        wait_for(
            lambda target=target: _scrape(target) is not None,
            timeout=60,
            what=f"the {role}'s /metrics",
        )
    yield {"camera_root": camera_root, "targets": targets}
    for role in ("api", "projector", "worker"):
        started[role].stop()
        stack.apps.remove(started[role])


def _scrape(target: str) -> str | None:
    try:
        reply = httpx.get(f"http://{target}/metrics", timeout=5, trust_env=False)
    except httpx.HTTPError:
        return None
    return reply.text if reply.status_code == 200 else None


def scrapes(targets: dict[str, str]) -> dict[str, str]:
    return {role: _scrape(target) or "" for role, target in targets.items()}


def test_each_process_counts_exactly_what_three_photos_did(processes, samples):
    targets = processes["targets"]
    before = scrapes(targets)
    camera_id = new_camera_id("observed")
    for name in PHOTOS:
        drop(processes["camera_root"], camera_id, name, samples[name].read_bytes())
    api = f"http://{targets['api']}"
    asked = 0

    def moved(role: str, name: str, **labels: str) -> float:
        now = _scrape(targets[role]) or ""
        return metric(now, name, **labels) - metric(before[role], name, **labels)

    def images_shown() -> bool:
        nonlocal asked
        asked += 1
        reply = httpx.get(
            f"{api}/api/detections", params={"camera_id": camera_id, "limit": 1000}, timeout=10
        )
        assert reply.status_code == 200, reply.text
        return len({d["image_id"] for d in reply.json()["detections"]}) == len(PHOTOS)

    wait_for(images_shown, timeout=120, what="the 3 photos' detections in the API")
    detection = {"stage": "detection"}
    wait_for(
        lambda: moved("worker", "vigil_stage_messages_total", direction="out", **detection) == 3,
        timeout=30,
        what="the detection stage's 3 outputs counted",
    )
    assert moved("worker", "vigil_stage_messages_total", direction="in", **detection) == 3
    assert (
        moved("worker", "vigil_stage_messages_total", direction="dead_lettered", **detection) == 0
    )
    assert moved("worker", "vigil_stage_decision_seconds_count", **detection) == 3
    assert moved("worker", "vigil_watcher_files_total", outcome="reported") == 3
    assert moved("worker", "vigil_model_call_seconds_count", model="centernet", outcome="ok") == 3
    wait_for(
        lambda: moved("projector", "vigil_projector_records_total", topic="vigil.detections") == 3,
        timeout=30,
        what="the projector's 3 detection records counted",
    )
    assert moved("projector", "vigil_projector_records_total", topic="vigil.images") == 3
    assert moved("projector", "vigil_projector_rejects_total") == 0
    route = {"method": "GET", "route": "/api/detections", "status": "200"}
    assert moved("api", "vigil_http_requests_total", **route) == asked
    assert (
        moved(
            "api",
            "vigil_http_request_duration_seconds_count",
            method="GET",
            route="/api/detections",
        )
        == asked
    )


def test_prometheus_scrapes_every_process(processes, tmp_path: Path):
    from vigil.devservices.prometheus import start_prometheus

    targets = processes["targets"]
    server = start_prometheus(
        tmp_path / "prometheus", {f"vigil-{r}": [t] for r, t in targets.items()}
    )
    try:

        def up() -> dict[str, str] | None:
            answer = {s["metric"]["job"]: s["value"][1] for s in server.query("up")}
            return answer if answer == {f"vigil-{role}": "1" for role in targets} else None

        wait_for(up, timeout=60, what="every process scraped and up")
        stages = {
            series["metric"]["stage"]
            for series in server.query('vigil_stage_messages_total{job="vigil-worker"}')
        }
        assert {"detection", "enrichment", "analysis"} <= stages, stages
        assert server.query('vigil_projector_transaction_seconds_count{job="vigil-projector"}')
        assert server.query('vigil_http_requests_total{job="vigil-api"}')
        # The Grafana dashboard's queries are PromQL this Prometheus accepts (400 otherwise).
        for expression in dashboard_expressions():
            server.query(expression)
    finally:
        server.stop()


def test_the_compose_prometheus_configuration_is_valid():
    import subprocess

    from vigil.devservices.debian import ensure_programs

    promtool = ensure_programs(("prometheus",), ("promtool",))["promtool"]
    config = DEPLOY / "prometheus" / "prometheus.yml"
    checked = subprocess.run(
        [str(promtool), "check", "config", str(config)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
