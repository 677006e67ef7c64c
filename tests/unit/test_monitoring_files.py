"""The monitoring that docker-compose.yml ships agrees with the code: Prometheus scrapes the
ports the services serve their metrics on, and the Grafana dashboard asks only for metrics
Vigil exports. (That its queries are valid PromQL is checked against a real Prometheus in
tests/e2e/test_observability.py.)"""

from __future__ import annotations

import re

import yaml
from prometheus_client import REGISTRY

import vigil.metrics  # noqa: F401 - registers every metric Vigil exports
from tests.support import DEPLOY, dashboard_expressions
from vigil.devservices.procs import REPO_ROOT


def _compose() -> dict:
    return yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())


def _exported() -> set[str]:
    """Every sample name Vigil's processes can expose (histograms' _bucket, _count, _sum)."""
    names = set()
    for family in REGISTRY.collect():
        if family.name.startswith("vigil_"):
            names.add(family.name)
            suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
            names.update(family.name + suffix for suffix in suffixes.get(family.type, ()))
    return names


def test_the_dashboard_asks_only_for_exported_metrics():
    exported = _exported()
    asked = {name for expr in dashboard_expressions() for name in re.findall(r"vigil_\w+", expr)}
    assert asked, "the dashboard asks for no Vigil metric"
    assert asked <= exported, f"not exported: {sorted(asked - exported)}"
    # The panels: throughput, stage and model latency, dead letters, breakers, lag.
    for needed in (
        "vigil_stage_messages_total",
        "vigil_stage_decision_seconds_bucket",
        "vigil_model_call_seconds_bucket",
        "vigil_circuit_breaker_state",
        "vigil_projector_lag_records",
    ):
        assert needed in asked, needed


def test_prometheus_scrapes_the_ports_the_services_serve_metrics_on():
    compose = _compose()
    env = compose["x-vigil-env"]
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in scrape["scrape_configs"]}
    assert set(jobs) == {"vigil-api", "vigil-worker", "vigil-projector"}
    [worker] = jobs["vigil-worker"]["dns_sd_configs"]
    assert (worker["names"], worker["port"]) == (["worker"], int(env["WORKER_METRICS_PORT"]))
    [projector] = jobs["vigil-projector"]["static_configs"]
    assert projector["targets"] == [f"projector:{env['PROJECTOR_METRICS_PORT']}"]
    [api] = jobs["vigil-api"]["static_configs"]
    api_port = compose["services"]["api"]["command"][-1]
    assert api["targets"] == [f"api:{api_port}"]
    assert env["METRICS_HOST"] == "0.0.0.0"  # reachable from the prometheus container
    mounted = compose["services"]["prometheus"]["volumes"][0].split(":")[0]
    assert (REPO_ROOT / mounted).resolve() == DEPLOY / "prometheus" / "prometheus.yml"
