"""Pid files: a leftover from a crashed run is stopped, a reused pid is left alone."""

from __future__ import annotations

import subprocess

from vigil.devservices.procs import _start_time, reap_leftover, start_process


def test_leftover_process_is_stopped_on_the_next_start(tmp_path):
    first = start_process("sleeper", ["sleep", "60"], state_dir=tmp_path)
    assert first.alive()
    second = start_process("sleeper", ["sleep", "60"], state_dir=tmp_path)
    try:
        assert not first.alive()
        assert second.alive()
        assert (tmp_path / "run" / "sleeper.pid").read_text().split()[0] == str(second.pid)
    finally:
        second.stop()


def test_pid_reused_by_another_process_is_not_signalled(tmp_path):
    stranger = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        pid_file = tmp_path / "run" / "old.pid"
        pid_file.parent.mkdir()
        pid_file.write_text(f"{stranger.pid} 1")  # same pid, another start time
        reap_leftover(pid_file)
        assert stranger.poll() is None
        assert not pid_file.exists()
        pid_file.write_text(f"{stranger.pid} {_start_time(stranger.pid)}")
        reap_leftover(pid_file)
        assert stranger.wait(timeout=10) is not None
    finally:
        stranger.kill()
