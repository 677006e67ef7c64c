"""Headless Chromium and its driver for the console's browser tests, from Debian's packages
(`chromium`, `chromium-driver`), installed by the project when the machine lacks them, as the
Kafka launcher fetches its jars. One install at a time across test processes (apt's own lock
refuses a second)."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from vigil.devservices.procs import cache_dir

PACKAGES = ("chromium", "chromium-driver")


class BrowserUnavailable(RuntimeError):
    """Chromium could not be found or installed; the message says why."""


@dataclass(frozen=True)
class Chromium:
    binary: Path
    driver: Path


def _found() -> Chromium | None:
    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    return Chromium(Path(binary), Path(driver)) if binary and driver else None


def _apt(*args: str) -> None:
    command = ["apt-get", *args]
    if os.geteuid() != 0:
        if shutil.which("sudo") is None:
            raise BrowserUnavailable(
                f"installing {' '.join(PACKAGES)} needs root (or sudo): run "
                f"`apt-get install -y {' '.join(PACKAGES)}` once"
            )
        command = ["sudo", "-n", *command]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BrowserUnavailable(f"{' '.join(command)} failed: {done.stderr.strip()[-2000:]}")


def ensure_chromium() -> Chromium:
    """Chromium and chromedriver, installed with apt-get first if missing."""
    if (found := _found()) is not None:
        return found
    lock_path = cache_dir() / "chromium-install.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (found := _found()) is not None:
            return found
        _apt("update", "-q")
        _apt("install", "-y", "-q", "--no-install-recommends", *PACKAGES)
    if (found := _found()) is None:
        raise BrowserUnavailable(f"{' '.join(PACKAGES)} installed, yet chromium is not on PATH")
    return found
