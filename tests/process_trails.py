"""What a test process that died was doing, and what the kernel saw kill it.

xdist reports a test process that died only as "node down: Not properly terminated". Each
process writes every test it starts, and Python's own traceback dump on a fatal signal
(faulthandler: SIGSEGV, SIGFPE, SIGABRT, SIGBUS, SIGILL, and SIGTERM, SIGHUP and SIGINT) to a
trail of its own, with every signal it sends and an os._exit. A SIGKILL leaves no dump, and a
signal another process sends or an exit from C code are not in the trail: the controller
also keeps the kernel's record of fatal signals and exits for the run, in a tracefs instance
of its own (where it may, as root), and prints what of it concerns the dead process.
"""

from __future__ import annotations

import faulthandler
import os
import re
import shutil
import signal
import subprocess
import time
import traceback
from pathlib import Path
from typing import ClassVar

import pytest

TRAILS = Path(__file__).resolve().parents[1] / ".cache" / "test-trails"
TRACING = Path("/sys/kernel/tracing")
# SIGHUP, SIGINT, SIGABRT, SIGKILL, SIGSEGV and SIGTERM; not the SIGCHLDs and SIGURGs of every
# run.
FATAL = (1, 2, 6, 9, 11, 15)
_trail = None
_kernel: KernelTrail | None = None


class KernelTrail:
    """A tracefs instance recording every fatal signal sent and every exit_group, with the
    sending task's process id."""

    EVENTS: ClassVar[dict[str, str]] = {
        "signal/signal_generate": " || ".join(f"sig == {sig}" for sig in FATAL),
        "syscalls/sys_enter_exit_group": "",
    }

    def __init__(self, path: Path) -> None:
        self.path = path
        # The trace's clock counts from boot, as /proc/uptime does.
        self.boot = time.time() - float(Path("/proc/uptime").read_text().split()[0])

    @classmethod
    def open(cls) -> KernelTrail | None:
        """None where tracefs cannot be used (not root, no tracing in this kernel)."""
        if not (TRACING / "instances").is_dir() and shutil.which("mount"):
            subprocess.run(
                ["mount", "-t", "tracefs", "nodev", str(TRACING)], capture_output=True, check=False
            )
        path = TRACING / "instances" / f"vigil-tests-{os.getpid()}"
        try:
            path.mkdir()
        except OSError:
            return None
        trail = cls(path)
        try:
            (path / "options" / "record-tgid").write_text("1")
            (path / "buffer_size_kb").write_text("8192")
            for event, condition in cls.EVENTS.items():
                if condition:
                    (path / "events" / event / "filter").write_text(condition)
                (path / "events" / event / "enable").write_text("1")
        except OSError:
            trail.close()
            return None
        return trail

    def about(self, pid: int) -> list[str]:
        """The signals sent to `pid` and the exits of its threads, and every SIGKILL sent to a
        Python process (a signal sent to one of its threads' ids names that thread)."""
        own = re.compile(rf"\(\s*{pid}\)|\bpid={pid}\b")
        found = []
        for line in (self.path / "trace").read_text(errors="replace").splitlines():
            if line.startswith("#"):
                continue
            if own.search(line) or ("sig=9 " in line and "comm=python" in line):
                found.append(self._wall_clock(line))
        return found

    def _wall_clock(self, line: str) -> str:
        stamp = re.search(r"\s(\d+\.\d+):", line)
        if stamp is None:
            return line
        at = time.strftime("%H:%M:%S", time.localtime(self.boot + float(stamp.group(1))))
        return f"{at} {line.strip()}"

    def close(self) -> None:
        for event in self.EVENTS:
            try:
                (self.path / "events" / event / "enable").write_text("0")
            except OSError:
                pass
        try:
            self.path.rmdir()  # tracefs removes an instance with everything in it
        except OSError:
            pass


@pytest.hookimpl(trylast=True)
def pytest_configure(config) -> None:
    global _trail, _kernel
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker is None:
        if getattr(config.option, "numprocesses", None):
            _kernel = KernelTrail.open()
        return
    TRAILS.mkdir(parents=True, exist_ok=True)
    # Open for the whole life of the process: the dump on a fatal signal is written to it.
    _trail = open(TRAILS / f"{worker}.log", "w", buffering=1)
    _trail.write(f"{time.strftime('%H:%M:%S')} pid {os.getpid()}\n")
    faulthandler.enable(file=_trail, all_threads=True)
    for caught in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        faulthandler.register(caught, file=_trail, all_threads=True, chain=True)
    # Every signal this process sends, and an os._exit, are written down with where from: a
    # process that SIGKILLs its own group, or exits without a word, says so in its trail.
    os.kill, os.killpg, os._exit = _noted(os.kill), _noted(os.killpg), _noted(os._exit)


def pytest_unconfigure(config) -> None:
    if _kernel is not None:
        _kernel.close()


def _noted(call):
    exits = call.__name__ == "_exit"

    def noted(*args):
        if exits or args[-1] != 0:  # a signal 0 only asks whether a process is alive
            caller = traceback.extract_stack(limit=2)[0]
            _trail.write(
                f"{time.strftime('%H:%M:%S')} {call.__name__}{args} from "
                f"{caller.filename}:{caller.lineno}\n"
            )
            if exits:
                faulthandler.dump_traceback(file=_trail, all_threads=True)
        return call(*args)

    return noted


def pytest_runtest_logstart(nodeid: str, location) -> None:
    if _trail is not None:
        _trail.write(f"{time.strftime('%H:%M:%S')} start {nodeid}\n")


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    if not error:
        return
    trail = TRAILS / f"{node.gateway.id}.log"
    lines = trail.read_text(errors="replace").splitlines() if trail.exists() else []
    reporter = node.config.pluginmanager.get_plugin("terminalreporter")
    reporter.write_line(f"test process {node.gateway.id} went down ({error}); its trail ends:")
    for line in lines[-120:] or ["(no trail written)"]:
        reporter.write_line(f"  {line}")
    started = re.match(r"\S+ pid (\d+)$", lines[0]) if lines else None
    if started is None:
        return
    if _kernel is None:
        reporter.write_line("  (no kernel trail: tracefs needs root)")
        return
    reporter.write_line(f"the kernel's record of fatal signals and exits for pid {started[1]}:")
    for line in _kernel.about(int(started[1]))[-60:] or ["(nothing)"]:
        reporter.write_line(f"  {line}")
