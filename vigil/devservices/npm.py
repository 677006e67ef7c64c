"""npm packages that tests run with the machine's Node.js (the AsyncAPI parser), installed by
the project into `.cache/npm/<name>@<version>/` on first use and reused afterwards."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from vigil.devservices.procs import cache_dir
from vigil.models import locked


class NpmUnavailable(RuntimeError):
    pass


def ensure_npm_package(name: str, version: str) -> Path:
    """The folder of `name` at `version` (its package.json inside), installed if missing."""
    home = cache_dir() / "npm" / f"{name.replace('/', '+')}@{version}"
    package = home / "node_modules" / name
    if (package / "package.json").is_file():
        return package
    npm = shutil.which("npm")
    if npm is None:
        raise NpmUnavailable(f"npm is needed to install {name}@{version}")
    with locked(f"npm-{name.replace('/', '+')}"):
        if not (package / "package.json").is_file():
            home.mkdir(parents=True, exist_ok=True)
            done = subprocess.run(
                [
                    npm,
                    "install",
                    "--no-audit",
                    "--no-fund",
                    "--prefix",
                    str(home),
                    f"{name}@{version}",
                ],
                capture_output=True,
                text=True,
                timeout=600,
            )
            if done.returncode != 0:
                raise NpmUnavailable(f"npm install {name}@{version} failed: {done.stderr[-2000:]}")
    return package
