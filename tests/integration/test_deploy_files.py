"""The deploy files, read as a person deploying Vigil would run them: `docker-compose.yml`
validates (Debian's `docker-compose`, installed by the test when missing: no Docker daemon is
needed), and in each profile the Triton it runs loads every model a service names, each
with a configuration, and no service waits for one the profile leaves out."""

from __future__ import annotations

import copy
import subprocess

import pytest
import yaml

from vigil import deploy_check
from vigil.devservices.debian import ensure_programs
from vigil.devservices.procs import REPO_ROOT

MODELS = REPO_ROOT / "triton_models"
PROFILES = ("gpu", "cpu")


@pytest.fixture(scope="module")
def compose_binary():
    return ensure_programs(("docker-compose",), ("docker-compose",))["docker-compose"]


@pytest.fixture(scope="module")
def resolved(compose_binary) -> dict:
    """docker-compose.yml as docker-compose resolves it (anchors, merges, variables)."""
    done = subprocess.run(
        [str(compose_binary), "--profile", "gpu", "--profile", "cpu", "config"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


def test_the_compose_file_validates(compose_binary):
    done = subprocess.run(
        [str(compose_binary), "config", "-q"], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("profile", PROFILES)
def test_each_profile_loads_every_model_its_services_name(resolved, profile):
    assert deploy_check.problems(resolved, MODELS, profile) == []


def test_the_profiles_serve_the_models_the_issue_names(resolved):
    worker = {
        profile: {
            name: service["environment"]
            for name, service in deploy_check.enabled(resolved, profile).items()
            if service.get("command") == ["worker"]
        }
        for profile in PROFILES
    }
    [gpu] = worker["gpu"].values()
    [cpu] = worker["cpu"].values()
    models = ("DETECTOR_MODEL", "ENRICHER_MODEL", "ANALYST_MODEL")
    assert [gpu[m] for m in models] == ["yolo26", "florence-2", "nemotron"]
    assert [cpu[m] for m in models] == ["centernet", "crop-attributes", "nemotron"]
    assert "--model-config-name=gpu" in resolved["services"]["triton"]["command"]
    assert (MODELS / "nemotron" / "configs" / "gpu.pbtxt").is_file()


@pytest.mark.parametrize("profile", PROFILES)
def test_removing_the_load_of_a_called_model_is_caught(resolved, profile):
    [triton] = [
        name
        for name, service in deploy_check.enabled(resolved, profile).items()
        if service.get("command", [])[:1] == ["tritonserver"]
    ]
    loads = [p for p in resolved["services"][triton]["command"] if p.startswith("--load-model=")]
    assert len(loads) == 3
    for load in loads:
        broken = copy.deepcopy(resolved)
        broken["services"][triton]["command"].remove(load)
        model = load.split("=", 1)[1]
        found = deploy_check.problems(broken, MODELS, profile)
        assert any(f"calls {model}, which {triton} does not load" in p for p in found), found


def test_a_loaded_model_without_configuration_is_caught(resolved):
    broken = copy.deepcopy(resolved)
    broken["services"]["triton-cpu"]["command"].append("--load-model=no-such-model")
    assert deploy_check.problems(broken, MODELS, "cpu") == [
        "cpu: triton-cpu loads no-such-model, which has no configuration"
    ]


def test_waiting_for_a_service_of_another_profile_is_caught(resolved):
    broken = copy.deepcopy(resolved)
    broken["services"]["worker-cpu"]["depends_on"]["triton"] = {"condition": "service_healthy"}
    assert "cpu: worker-cpu depends on triton, which it does not run" in (
        deploy_check.problems(broken, MODELS, "cpu")
    )


def test_the_compose_file_is_yaml_this_checker_reads(tmp_path):
    # The check reads what docker-compose resolved; the raw file must parse too (no tabs,
    # anchors defined before use), or a person's editor and Compose v2 disagree with it.
    raw = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    assert {"gpu", "cpu"} <= {p for s in raw["services"].values() for p in s.get("profiles", [])}
