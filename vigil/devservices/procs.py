"""Process plumbing shared by the local service launchers.

Every service the launcher starts is a child process on loopback with a log
file and a pid file under the run directory. A pid file left behind by a run
that crashed is found on the next start and its process group is stopped
before anything new is started.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def cache_dir() -> Path:
    """Ignored folder for venvs, jars, models and service data (VIGIL_CACHE_DIR overrides)."""
    path = Path(os.environ.get("VIGIL_CACHE_DIR", REPO_ROOT / ".cache"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(
    condition: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    interval: float = 0.2,
    alive: Callable[[], bool] | None = None,
) -> None:
    """Poll `condition` until it holds; raise TimeoutError naming `what` otherwise.

    `alive` lets the caller fail fast when the process being waited on has died.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except Exception:  # noqa: BLE001 - readiness probes fail in many ways while starting
            pass
        if alive is not None and not alive():
            raise RuntimeError(f"{what}: process exited before it was ready")
        time.sleep(interval)
    raise TimeoutError(f"{what}: not ready after {timeout:.0f}s")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def kill_process_group(pid: int, *, grace: float = 10.0) -> None:
    """SIGTERM the process group led by `pid`, then SIGKILL what is left after `grace`."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            finished, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # not our child: poll the pid instead
            finished = 0 if pid_alive(pid) else pid
        if finished == pid:
            return
        time.sleep(0.1)
    try:
        os.killpg(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


@dataclass
class ManagedProcess:
    """A child process started in its own session, tracked by a pid file."""

    name: str
    pid: int
    log_path: Path
    pid_path: Path
    popen: subprocess.Popen | None = field(default=None, repr=False)

    def alive(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is None
        return pid_alive(self.pid)

    def stop(self, *, grace: float = 10.0) -> None:
        kill_process_group(self.pid, grace=grace)
        if self.popen is not None:
            try:
                self.popen.wait(timeout=1)
            except subprocess.TimeoutExpired:
                pass
        self.pid_path.unlink(missing_ok=True)

    def kill(self) -> None:
        """SIGKILL at once, as a crash would."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self.popen is not None:
            self.popen.wait()
        self.pid_path.unlink(missing_ok=True)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


def run_dir(base: Path) -> Path:
    path = base / "run"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _start_time(pid: int) -> str | None:
    """Start time of `pid` (field 22 of /proc/<pid>/stat): tells a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def reap_leftover(pid_path: Path) -> None:
    """Stop the process group recorded in a pid file from a run that did not stop cleanly.

    The file holds the pid and its start time; a pid now used by another process is left alone.
    """
    try:
        pid_text, _, started = pid_path.read_text().strip().partition(" ")
        pid = int(pid_text)
    except (FileNotFoundError, ValueError):
        pid_path.unlink(missing_ok=True)
        return
    if pid_alive(pid) and started and _start_time(pid) == started:
        kill_process_group(pid, grace=5.0)
    pid_path.unlink(missing_ok=True)


def start_process(
    name: str,
    argv: Sequence[str],
    *,
    state_dir: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> ManagedProcess:
    """Start `argv` in a new session with output to `<state_dir>/<name>.log`.

    The pid file is `<state_dir>/run/<name>.pid`; a leftover one is reaped first.
    """
    pid_path = run_dir(state_dir) / f"{name}.pid"
    reap_leftover(pid_path)
    log_path = state_dir / f"{name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    with open(log_path, "ab") as log:
        popen = subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=full_env,
            cwd=cwd,
            start_new_session=True,
        )
    pid_path.write_text(f"{popen.pid} {_start_time(popen.pid) or ''}")
    return ManagedProcess(
        name=name, pid=popen.pid, log_path=log_path, pid_path=pid_path, popen=popen
    )
