"""Programs from Debian's packages that some tests need (Chromium for the console, Prometheus
for a real scrape), installed by the project with apt-get when the machine lacks them, as the
Kafka launcher fetches its jars. One install at a time across test processes (apt's own lock
refuses a second)."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from vigil.devservices.procs import cache_dir


class PackageUnavailable(RuntimeError):
    """A package could not be found or installed; the message says why."""


def _found(programs: Sequence[str]) -> dict[str, Path] | None:
    paths = {program: shutil.which(program) for program in programs}
    if all(paths.values()):
        return {program: Path(path) for program, path in paths.items() if path}
    return None


def _apt(*args: str) -> None:
    # Waits for another apt (another checkout's tests installing too) rather than failing.
    command = ["apt-get", "-o", "DPkg::Lock::Timeout=600", *args]
    if os.geteuid() != 0:
        if shutil.which("sudo") is None:
            raise PackageUnavailable(f"`{' '.join(command)}` needs root (or sudo): run it once")
        command = ["sudo", "-n", *command]
    # A package whose service would start on install (prometheus) is not started: no init
    # system here, and the tests start what they need themselves.
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "RUNLEVEL": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise PackageUnavailable(f"{' '.join(command)} failed: {done.stderr.strip()[-2000:]}")


def ensure_programs(packages: Sequence[str], programs: Sequence[str]) -> dict[str, Path]:
    """The paths of `programs`, installing `packages` (with apt-get) first if one is missing."""
    if (found := _found(programs)) is not None:
        return found
    lock_path = cache_dir() / "apt-install.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (found := _found(programs)) is not None:
            return found
        _apt("update", "-q")
        _apt("install", "-y", "-q", "--no-install-recommends", *packages)
    if (found := _found(programs)) is None:
        raise PackageUnavailable(
            f"{' '.join(packages)} installed, yet {' or '.join(programs)} is not on PATH"
        )
    return found
