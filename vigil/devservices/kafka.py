"""A real single-node Apache Kafka 3.9.1 (KRaft, broker+controller) on 127.0.0.1.

The jars come from Maven Central through the checked-in `kafka/pom.xml`, fetched
once into `<cache>/kafka/libs` (Maven's local repository lives in `<cache>/m2`).
Each service keeps its config, data and log under its own state dir, so a
restart finds the same topics and messages.

Startup is about class loading, so the first broker that stops cleanly leaves an
AppCDS archive of the classes it loaded (`<cache>/kafka/cds/`); later JVMs map
it and start in about half the time. `VIGIL_KAFKA_CDS=0` turns this off.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vigil.devservices.procs import ManagedProcess, cache_dir, free_port, start_process, wait_until

KAFKA_VERSION = "3.9.1"
POM_PATH = Path(__file__).resolve().parent / "kafka" / "pom.xml"
READY_TIMEOUT = 90.0
JVM_OPTS = (
    "-Xms64m",
    "-Xmx512m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",  # C1 only: faster start, plenty for a dev broker
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)

LOG4J_PROPERTIES = """\
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.org.apache.kafka.raft=WARN
log4j.logger.kafka.server.metadata=WARN
log4j.logger.org.apache.kafka.common.config=WARN
"""


# --------------------------------------------------------------------------- jars and JVM


def kafka_libs() -> Path:
    """The folder of Kafka runtime jars, fetched with Maven on first use.

    A marker holding the pom's sha256 is written after a complete fetch; when it
    matches, this returns at once. A file lock keeps concurrent fetches apart.
    """
    base = cache_dir() / "kafka"
    libs = base / "libs"
    marker = base / "libs.complete"
    want = hashlib.sha256(POM_PATH.read_bytes()).hexdigest()
    if _read(marker) == want:
        return libs
    base.mkdir(parents=True, exist_ok=True)
    with open(base / ".fetch.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _read(marker) == want:
            return libs
        mvn = shutil.which("mvn")
        if mvn is None:
            raise RuntimeError("fetching the Kafka jars needs Maven: `mvn` is not on PATH")
        shutil.rmtree(libs, ignore_errors=True)
        argv = [
            mvn, "-B", "-q", "-f", str(POM_PATH), "dependency:copy-dependencies",
            "-DincludeScope=runtime", f"-DoutputDirectory={libs}",
            f"-Dmaven.repo.local={cache_dir() / 'm2'}",
        ]  # fmt: skip
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        if result.returncode != 0 or not (libs / f"kafka_2.13-{KAFKA_VERSION}.jar").exists():
            raise RuntimeError(
                f"mvn could not fetch the Kafka jars (exit {result.returncode}):\n"
                f"{(result.stdout + result.stderr)[-4000:]}"
            )
        marker.write_text(want + "\n")
    return libs


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return None


def _java() -> Path:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").exists():
        return Path(java_home) / "bin" / "java"
    java = shutil.which("java")
    if java is None:
        raise RuntimeError("Kafka needs a Java 17+ runtime: `java` is not on PATH")
    return Path(java).resolve()


def _classpath(libs: Path) -> str:
    # Explicit and sorted (not `libs/*`), so it is the same string an AppCDS archive recorded.
    return ":".join(str(jar) for jar in sorted(libs.glob("*.jar")))


def _cds_archive(java: Path, classpath: str) -> Path | None:
    """Where the AppCDS archive for this JVM build + classpath lives (None: disabled)."""
    if os.environ.get("VIGIL_KAFKA_CDS", "1") == "0":
        return None
    key = hashlib.sha256(classpath.encode())
    server = java.parent.parent / "lib" / "server"  # JVM build and its base CDS archive
    for part in (java, server / "libjvm.so", server / "classes.jsa"):
        try:
            stat = part.stat()
            key.update(f"{part}:{stat.st_size}:{stat.st_mtime_ns}".encode())
        except FileNotFoundError:
            key.update(str(part).encode())
    path = cache_dir() / "kafka" / "cds" / f"kafka-{key.hexdigest()[:16]}.jsa"
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob("*.tmp"):  # dumps of brokers that never stopped cleanly
        if stale.stat().st_mtime < time.time() - 600:
            stale.unlink(missing_ok=True)
    return path


@dataclass
class _JavaCmd:
    argv: list[str]
    cds_dump: Path | None = None  # archive this JVM writes at a clean exit
    cds_final: Path | None = None


def _java_cmd(state_dir: Path, main: str, *args: str) -> _JavaCmd:
    java = _java()
    classpath = _classpath(kafka_libs())
    archive = _cds_archive(java, classpath)
    extra: list[str] = []
    cmd = _JavaCmd(argv=[])
    if archive is not None and archive.exists():
        extra = [f"-XX:SharedArchiveFile={archive}"]
    elif archive is not None and main == "kafka.Kafka":
        cmd.cds_dump = archive.with_name(f"{archive.stem}.{uuid.uuid4().hex[:8]}.tmp")
        cmd.cds_final = archive
        extra = [f"-XX:ArchiveClassesAtExit={cmd.cds_dump}"]
    cmd.argv = [
        str(java),
        *JVM_OPTS,
        *extra,
        f"-Dlog4j.configuration=file:{state_dir / 'log4j.properties'}",
        f"-Dkafka.logs.dir={state_dir}",
        "-cp",
        classpath,
        main,
        *args,
    ]
    return cmd


# --------------------------------------------------------------------------- broker


def new_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, url-safe base64 without padding (22 chars)."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):  # Kafka's own generator avoids these too
            return cid


def _server_properties(state_dir: Path, port: int, controller_port: int) -> str:
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "inter.broker.listener.name": "PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(state_dir / "data"),
        "num.partitions": "1",
        "auto.create.topics.enable": "true",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "1",
        # A killed worker's open transaction is aborted once TRANSACTION_TIMEOUT_S is up;
        # the coordinator looks for such transactions this often (default 10 s).
        "transaction.abort.timed.out.transaction.cleanup.interval.ms": "1000",
        "group.initial.rebalance.delay.ms": "0",
        # After a crash the restarted broker must wait out its old incarnation's
        # session before it may register again (default 9 s; backoff makes it ~15 s).
        "broker.session.timeout.ms": "3000",
        "broker.heartbeat.interval.ms": "500",
        "num.network.threads": "2",
        "num.io.threads": "2",
        "num.recovery.threads.per.data.dir": "1",
        "background.threads": "2",
    }
    return "".join(f"{key}={value}\n" for key, value in settings.items())


def _quiet(conf: dict[str, Any]) -> dict[str, Any]:
    """librdkafka logs every refused connection while a broker starts; keep that out."""
    return {**conf, "log_level": 0, "error_cb": lambda _err: None}


def _cluster_ready(bootstrap: str) -> bool:
    from confluent_kafka.admin import AdminClient

    with AdminClient(_quiet({"bootstrap.servers": bootstrap, "socket.timeout.ms": 2000})) as admin:
        metadata = admin.list_topics(timeout=2)
    return bool(metadata.brokers) and metadata.controller_id >= 0


@dataclass
class KafkaService:
    """A running broker; `bootstrap` is what clients connect to."""

    bootstrap: str
    port: int
    controller_port: int
    state_dir: Path
    process: ManagedProcess
    startup_seconds: float = field(default=0.0, compare=False)
    _cmd: _JavaCmd | None = field(default=None, repr=False, compare=False)

    def stop(self, *, grace: float = 20.0) -> None:
        """Controlled shutdown (SIGTERM), SIGKILL after `grace` seconds."""
        self.process.stop(grace=grace)
        _keep_cds_archive(self._cmd)

    def kill(self) -> None:
        """SIGKILL the broker, as a crash would; `start()` recovers the logs."""
        self.process.kill()
        _keep_cds_archive(self._cmd)

    def start(self) -> None:
        """Start again on the same ports and data dir (no reformat)."""
        if self.process.alive():
            return
        self.process, self._cmd, self.startup_seconds = _launch(self.state_dir, self.bootstrap)

    def restart(self) -> None:
        self.stop()
        self.start()

    def alive(self) -> bool:
        return self.process.alive()


def start_kafka(state_dir: Path, *, port: int | None = None) -> KafkaService:
    """Format (first time only) and start a broker with its data under `state_dir`.

    A broker left running by a crashed run on the same state dir is stopped first.
    """
    state_dir = state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    _stop_leftover(state_dir)
    kafka_libs()
    port = port or free_port()
    controller_port = free_port()
    while controller_port == port:
        controller_port = free_port()
    (state_dir / "server.properties").write_text(
        _server_properties(state_dir, port, controller_port)
    )
    (state_dir / "log4j.properties").write_text(LOG4J_PROPERTIES)
    if not (state_dir / "data" / "meta.properties").exists():
        _format(state_dir)
    bootstrap = f"127.0.0.1:{port}"
    process, cmd, seconds = _launch(state_dir, bootstrap)
    return KafkaService(
        bootstrap=bootstrap,
        port=port,
        controller_port=controller_port,
        state_dir=state_dir,
        process=process,
        startup_seconds=seconds,
        _cmd=cmd,
    )


def _format(state_dir: Path) -> None:
    shutil.rmtree(state_dir / "data", ignore_errors=True)
    properties = str(state_dir / "server.properties")
    cmd = _java_cmd(state_dir, "kafka.tools.StorageTool", "format", "-t", new_cluster_id(),
                    "-c", properties)  # fmt: skip
    result = subprocess.run(cmd.argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"Kafka storage format failed:\n{result.stdout}{result.stderr}")


def _launch(state_dir: Path, bootstrap: str) -> tuple[ManagedProcess, _JavaCmd, float]:
    started = time.monotonic()
    cmd = _java_cmd(state_dir, "kafka.Kafka", str(state_dir / "server.properties"))
    process = start_process("kafka", cmd.argv, state_dir=state_dir, cwd=state_dir)
    try:
        wait_until(
            lambda: _cluster_ready(bootstrap),
            timeout=READY_TIMEOUT,
            what=f"kafka at {bootstrap}",
            interval=0.1,
            alive=process.alive,
        )
    except (TimeoutError, RuntimeError) as err:
        tail = process.log_tail(60)
        process.stop(grace=5)
        _discard_cds_dump(cmd)
        raise RuntimeError(f"{err}\n--- {process.log_path} ---\n{tail}") from err
    return process, cmd, time.monotonic() - started


def _stop_leftover(state_dir: Path, *, grace: float = 20.0) -> None:
    """Stop brokers that a crashed run left on this state dir, found by their command line.

    The pid file is removed afterwards: whatever pid it names now is not ours to signal.
    """
    config = str(state_dir / "server.properties").encode()
    pids = [pid for pid, argv in _processes() if b"kafka.Kafka" in argv and config in argv]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            running = {pid for pid, argv in _processes() if config in argv}
            pids = [pid for pid in pids if pid in running]
            if not pids:
                break
            time.sleep(0.1)
    (state_dir / "run" / "kafka.pid").unlink(missing_ok=True)


def _processes() -> list[tuple[int, list[bytes]]]:
    """(pid, argv) of every live process; zombies have an empty argv."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv != [b""]:
                found.append((int(entry.name), argv))
    return found


def _keep_cds_archive(cmd: _JavaCmd | None) -> None:
    """Publish the archive a cleanly stopped JVM wrote; the first one to finish wins."""
    if cmd is None or cmd.cds_dump is None or cmd.cds_final is None:
        return
    if cmd.cds_dump.exists() and cmd.cds_dump.stat().st_size > 0 and not cmd.cds_final.exists():
        os.replace(cmd.cds_dump, cmd.cds_final)
    _discard_cds_dump(cmd)


def _discard_cds_dump(cmd: _JavaCmd) -> None:
    if cmd.cds_dump is not None:
        cmd.cds_dump.unlink(missing_ok=True)
        cmd.cds_dump = None


# --------------------------------------------------------------------------- topics


def create_topics(
    bootstrap: str,
    specs: Iterable[tuple[str, int]],
    *,
    config: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> None:
    """Create topics with the given partition counts and topic config; existing ones stay as
    they are.

    Returns once every topic has a leader for each partition.
    """
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    new = [
        NewTopic(name, num_partitions=parts, replication_factor=1, config=dict(config or {}))
        for name, parts in specs
    ]
    if not new:
        return
    with AdminClient(_quiet({"bootstrap.servers": bootstrap})) as admin:
        futures = admin.create_topics(new, operation_timeout=timeout, request_timeout=timeout)
        for name, future in futures.items():
            try:
                future.result(timeout=timeout)
            except KafkaException as err:
                if err.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise RuntimeError(f"could not create topic {name}: {err}") from err
        names = {topic.topic for topic in new}
        wait_until(
            lambda: names <= _topics_with_leaders(admin),
            timeout=timeout,
            what=f"topics {sorted(names)} on {bootstrap}",
            interval=0.1,
        )


def _topics_with_leaders(admin: Any) -> set[str]:
    metadata = admin.list_topics(timeout=5)
    return {
        name
        for name, topic in metadata.topics.items()
        if topic.error is None and all(p.leader >= 0 for p in topic.partitions.values())
    }
