"""npm packages that tests run with the machine's Node.js (the AsyncAPI parser, the example
consumer's dependencies), installed by the project under `.cache/npm/` on first use and
reused afterwards."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

from vigil.devservices.procs import cache_dir
from vigil.models import locked


class NpmUnavailable(RuntimeError):
    pass


def _install(home: Path, *packages: str) -> None:
    """`npm install` in `home` (its package.json, or `packages`), once; a marker says done."""
    done_marker = home / ".installed"
    if done_marker.is_file():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise NpmUnavailable(f"npm is needed to install into {home}")
    with locked(f"npm-{home.name}"):
        if done_marker.is_file():
            return
        home.mkdir(parents=True, exist_ok=True)
        argv = [npm, "install", "--no-audit", "--no-fund", "--prefix", str(home), *packages]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise NpmUnavailable(f"{' '.join(argv)} failed: {done.stderr[-2000:]}")
        done_marker.touch()


def ensure_npm_package(name: str, version: str) -> Path:
    """The folder of `name` at `version` (its package.json inside), installed if missing."""
    home = cache_dir() / "npm" / f"{name.replace('/', '+')}@{version}"
    _install(home, f"{name}@{version}")
    return home / "node_modules" / name


def ensure_npm_dependencies(package_json: Path) -> Path:
    """The node_modules folder of the dependencies `package_json` pins (for NODE_PATH),
    installed once per version of the file."""
    digest = hashlib.sha256(package_json.read_bytes()).hexdigest()[:12]
    home = cache_dir() / "npm" / f"{package_json.parent.name}-{digest}"
    if not (home / ".installed").is_file():
        home.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(package_json, home / "package.json")
    _install(home)
    return home / "node_modules"
