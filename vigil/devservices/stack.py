"""Starts (or adopts) Kafka, Postgres and Triton, and Vigil's own processes on top.

A service whose address is already in the environment (KAFKA_BOOTSTRAP_SERVERS,
DATABASE_URL, TRITON_URL) is used as it is; the others are started here on
loopback with free ports and stopped by process id.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from vigil.devservices.procs import ManagedProcess, start_process
from vigil.settings import Settings

log = logging.getLogger(__name__)


class Stoppable(Protocol):
    def stop(self) -> None: ...


@dataclass
class Stack:
    """Addresses of the running services, and what this process started and must stop."""

    state_dir: Path
    kafka_bootstrap: str
    database_url: str
    triton_url: str
    # Triton's gRPC endpoint (the analyst's vLLM contract streams over it); "": beside the HTTP one.
    triton_grpc_url: str = ""
    kafka: Stoppable | None = None
    postgres: Stoppable | None = None
    triton: Stoppable | None = None
    apps: list[ManagedProcess] = field(default_factory=list)

    def env(self, **overrides: str) -> dict[str, str]:
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap,
            "DATABASE_URL": self.database_url,
            "TRITON_URL": self.triton_url,
            "TRITON_GRPC_URL": self.triton_grpc_url,
            # Exports and the image-URL secret stay with the stack, not in the working folder.
            "DATA_DIR": str(self.state_dir / "data"),
            "PYTHONUNBUFFERED": "1",
        }
        env.update(overrides)
        return env

    def settings(self, **overrides: object) -> Settings:
        services = {
            "kafka_bootstrap_servers": self.kafka_bootstrap,
            "database_url": self.database_url,
            "triton_url": self.triton_url,
            "triton_grpc_url": self.triton_grpc_url,
            "data_dir": self.state_dir / "data",
        }
        return Settings(**{**services, **overrides})

    def start_app(self, role: str, name: str | None = None, **env: str) -> ManagedProcess:
        """Start `vigil <role>` (worker, projector, api) as a child process."""
        process = start_process(
            name or role,
            [sys.executable, "-m", "vigil.cli", role],
            state_dir=self.state_dir,
            env=self.env(**env),
        )
        self.apps.append(process)
        return process

    def stop(self) -> None:
        for process in reversed(self.apps):
            process.stop()
        self.apps.clear()
        for service in (self.triton, self.postgres, self.kafka):
            if service is not None:
                service.stop()


# What Vigil calls on Triton on these machines: detector, vision model, analyst.
LOCAL_MODELS = ("centernet", "crop-attributes", "nemotron")


def start_stack(
    state_dir: Path,
    *,
    triton_models: tuple[str, ...] = LOCAL_MODELS,
    extra_model_repositories: tuple[Path, ...] = (),
) -> Stack:
    from vigil.bootstrap import initialize
    from vigil.devservices.kafka import start_kafka
    from vigil.devservices.postgres import start_postgres
    from vigil.devservices.triton import start_triton
    from vigil.models import ensure_models

    state_dir.mkdir(parents=True, exist_ok=True)
    stack = Stack(state_dir=state_dir, kafka_bootstrap="", database_url="", triton_url="")
    try:
        if bootstrap := os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
            stack.kafka_bootstrap = bootstrap
        else:
            log.info("starting Kafka")
            stack.kafka = kafka = start_kafka(state_dir / "kafka")
            stack.kafka_bootstrap = kafka.bootstrap
        if url := os.environ.get("DATABASE_URL"):
            stack.database_url = url
        else:
            log.info("starting Postgres")
            stack.postgres = postgres = start_postgres(state_dir / "postgres")
            stack.database_url = postgres.url
        if url := os.environ.get("TRITON_URL"):
            stack.triton_url = url
            stack.triton_grpc_url = os.environ.get("TRITON_GRPC_URL", "")
        else:
            ensure_models()
            log.info("starting Triton")
            stack.triton = triton = start_triton(
                state_dir / "triton",
                list(triton_models),
                extra_repositories=extra_model_repositories,
            )
            stack.triton_url = triton.http_url
            stack.triton_grpc_url = triton.grpc_url
        initialize(stack.settings())
    except BaseException:
        stack.stop()
        raise
    return stack
