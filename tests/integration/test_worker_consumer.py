"""The worker's consumer on the real broker: a worker that restores a table and then starts
on a backlog it has never committed an offset for is given every record once, in order.

Faust's own consumer can drop every record fetched during its post-rebalance seek
(`streams.consumer`): with it (the probe's SAFE=0) this test saw none of the 300 records in
one of three runs on a loaded machine; the race needs the fetch to land during the seek, so
without the fix the test fails only sometimes, never with it."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

from tests.probes.faust_offsets import IDLE_PARTITIONS, changelog_of
from tests.support import wait_for
from vigil.devservices.kafka import create_topics
from vigil.devservices.procs import REPO_ROOT, start_process

BACKLOG = 300
CHANGELOG = 2000


def offsets_seen(out: Path) -> list[int]:
    return [int(line) for line in out.read_text().split()] if out.exists() else []


def test_a_worker_starting_on_an_uncommitted_backlog_is_given_every_record_once(
    stack, producer, tmp_path
):
    topic, group = f"probe-{uuid.uuid4().hex[:8]}", f"probe-{uuid.uuid4().hex[:8]}"
    create_topics(
        stack.kafka_bootstrap,
        [(topic, 1), (f"{topic}-idle", IDLE_PARTITIONS), (changelog_of(group), 1)],
    )
    # State to restore first, as a worker taking partitions over has: while it is restored,
    # the consumer fetches ahead on the backlog.
    for n in range(CHANGELOG):
        producer.produce(changelog_of(group), key=f'"k{n}"'.encode(), value=b"1")
    for n in range(BACKLOG):
        producer.produce(topic, key=b"k", value=str(n).encode())
    assert producer.flush(30) == 0
    out = tmp_path / "offsets"
    probe = start_process(
        "faust-probe",
        [
            sys.executable,
            "-m",
            "tests.probes.faust_offsets",
            stack.kafka_bootstrap,
            topic,
            group,
            str(out),
            "1",
        ],
        state_dir=tmp_path,
        cwd=REPO_ROOT,
    )
    try:
        wait_for(
            lambda: offsets_seen(out)[-1:] == [BACKLOG - 1],
            timeout=90,
            what="the probe to reach the end of the backlog",
        )
    finally:
        probe.stop()
    assert offsets_seen(out) == list(range(BACKLOG))
