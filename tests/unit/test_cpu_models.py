"""The CPU models' configuration for the machine: the plan from the core count and its
overrides, and the repository served with the CPU models' configurations rewritten."""

from __future__ import annotations

import re

import pytest

from vigil.devservices.cpu_models import (
    CPU_MODELS,
    CpuPlan,
    configure,
    configured_repository,
    cpu_plan,
)
from vigil.devservices.triton import MODEL_REPOSITORY


@pytest.mark.parametrize(
    ("cores", "instances", "threads"),
    [(1, 1, 1), (2, 2, 1), (3, 3, 1), (8, 8, 1), (12, 8, 1), (16, 8, 2), (64, 8, 8)],
)
def test_the_plan_follows_the_core_count(cores, instances, threads):
    assert cpu_plan(cores, env={}) == CpuPlan(cores=cores, instances=instances, threads=threads)


def test_the_environment_overrides_the_plan():
    env = {"TRITON_CPU_INSTANCES": "3", "TRITON_CPU_THREADS": "1"}
    assert cpu_plan(2, env=env) == CpuPlan(cores=2, instances=3, threads=1)
    assert cpu_plan(8, env={"TRITON_CPU_THREADS": "4"}) == CpuPlan(8, instances=8, threads=4)


@pytest.mark.parametrize("raw", ["0", "-1", "two", "1.5"])
def test_an_override_that_is_not_a_positive_whole_number_is_refused(raw):
    with pytest.raises(ValueError, match=f"TRITON_CPU_INSTANCES must be .* not '{raw}'"):
        cpu_plan(2, env={"TRITON_CPU_INSTANCES": raw})


def _settings(config: str) -> tuple[list[str], list[str]]:
    counts = re.findall(r"count:\s*(\d+)", config)
    threads = re.findall(r'"intra_op_threads"\s*value:\s*\{\s*string_value:\s*"(\d+)"', config)
    return counts, threads


def test_configure_rewrites_the_instance_count_and_the_threads_and_nothing_else():
    template = (MODEL_REPOSITORY / "centernet" / "config.pbtxt").read_text()
    configured = configure(template, CpuPlan(cores=8, instances=3, threads=4))
    assert _settings(configured) == (["3"], ["4"])
    assert configured.replace("count: 3", "count: 1").replace('"4"', '"1"') == template


def test_a_configuration_without_the_settings_is_refused():
    with pytest.raises(ValueError, match="found 1 and 0"):
        configure("instance_group [ { count: 1 kind: KIND_CPU } ]", CpuPlan(2, 1, 2))


def test_the_configured_repository_links_the_models_and_rewrites_the_cpu_ones(tmp_path):
    plan = CpuPlan(cores=4, instances=2, threads=2)
    target = configured_repository(MODEL_REPOSITORY, tmp_path / "repo", plan)
    assert sorted(p.name for p in target.iterdir()) == sorted(
        p.name for p in MODEL_REPOSITORY.iterdir()
    )
    for entry in target.iterdir():
        if entry.name in CPU_MODELS:
            config = entry / "config.pbtxt"
            assert not config.is_symlink() and _settings(config.read_text()) == (["2"], ["2"])
            assert (entry / "1").resolve() == (MODEL_REPOSITORY / entry.name / "1").resolve()
        else:
            assert entry.resolve() == (MODEL_REPOSITORY / entry.name).resolve()
    # The template stays as it is, and a second call starts over.
    assert _settings((MODEL_REPOSITORY / "centernet" / "config.pbtxt").read_text()) == (
        ["1"],
        ["1"],
    )
    configured_repository(MODEL_REPOSITORY, target, CpuPlan(cores=2, instances=1, threads=2))
    assert _settings((target / "centernet" / "config.pbtxt").read_text()) == (["1"], ["2"])
