"""What `docker-compose.yml` must hold for each profile to work: the Triton it runs loads every
model the services name, each loaded model has a configuration, and no service waits for one
the profile does not run. Read from the file as `docker-compose config` resolves it (anchors,
merges, variables); checked by tests/integration/test_deploy_files.py."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vigil.settings import Settings

# The settings that name a model on Triton (a service that leaves one out gets its default).
MODEL_SETTINGS = ("DETECTOR_MODEL", "ENRICHER_MODEL", "ANALYST_MODEL")
# The Vigil processes that call those models (the worker) or report on them (the API: its
# health, its default detector filter). The projector, the runner and init call none.
CALLERS = ("worker", "api")


def enabled(compose: Mapping[str, Any], profile: str) -> dict[str, dict[str, Any]]:
    """The services `docker compose --profile <profile> up` starts."""
    return {
        name: service
        for name, service in compose["services"].items()
        if not service.get("profiles") or profile in service["profiles"]
    }


def _command(service: Mapping[str, Any]) -> list[str]:
    command = service.get("command") or []
    return command.split() if isinstance(command, str) else [str(part) for part in command]


def _flags(command: list[str], flag: str) -> list[str]:
    return [part.split("=", 1)[1] for part in command if part.startswith(f"{flag}=")]


def _called(environment: Mapping[str, Any]) -> set[str]:
    defaults = Settings.model_fields
    return {str(environment.get(name) or defaults[name.lower()].default) for name in MODEL_SETTINGS}


def problems(compose: Mapping[str, Any], models: Path, profile: str) -> list[str]:
    """Everything wrong with `profile` of the resolved compose file; [] when nothing is."""
    services = enabled(compose, profile)
    found: list[str] = []
    for name, service in services.items():
        for needed in service.get("depends_on") or {}:
            if needed not in services:
                found.append(f"{profile}: {name} depends on {needed}, which it does not run")
    tritons = [name for name, s in services.items() if _command(s)[:1] == ["tritonserver"]]
    if len(tritons) != 1:
        return [*found, f"{profile}: runs {len(tritons)} Triton services {tritons}, not one"]
    [triton] = tritons
    command = _command(services[triton])
    loaded = set(_flags(command, "--load-model"))
    config_name = next(iter(_flags(command, "--model-config-name")), None)
    for model in sorted(loaded):
        named = models / model / "configs" / f"{config_name}.pbtxt" if config_name else None
        if (
            not (named is not None and named.is_file())
            and not (models / model / "config.pbtxt").is_file()
        ):
            found.append(f"{profile}: {triton} loads {model}, which has no configuration")
    for name, service in services.items():
        if next(iter(_command(service)), None) not in CALLERS:
            continue
        for model in sorted(_called(service.get("environment") or {}) - loaded):
            found.append(f"{profile}: {name} calls {model}, which {triton} does not load")
    return found
