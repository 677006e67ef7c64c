"""A transactional stage on a broker of its own: killed (SIGKILL) and stopped (SIGTERM)
while messages are in flight, its partitions moving between two processes, it still answers
every input exactly once as a read-committed consumer sees the output topic, and its state,
restored from its changelog by whichever process takes a partition, keeps the same input
sent again from being answered twice. A broker restart mid-stream changes none of that."""

from __future__ import annotations

import sys
import uuid
from collections import Counter
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from schemas.images import ImageReceived
from schemas.topics import TopicSpec
from tests.factories import image_event
from tests.probes.transactional_stage import topics
from tests.support import read_records, wait_for
from vigil.devservices.kafka import create_topics
from vigil.devservices.procs import REPO_ROOT, ManagedProcess, start_process
from vigil.devservices.stack import Stack

IMAGES_PER_CAMERA = 50
CAMERAS = [f"cam-{n}" for n in range(6)]


def start_probe(
    stack, tmp_path: Path, names: tuple[str, str, str], worker: str, *fault: str
) -> ManagedProcess:
    group, input_name, output_name = names
    return start_process(
        worker,
        [
            sys.executable,
            "-m",
            "tests.probes.transactional_stage",
            stack.kafka_bootstrap,
            group,
            input_name,
            output_name,
            worker,
            *fault,
        ],
        state_dir=tmp_path,
        cwd=REPO_ROOT,
    )


def answered(stack, output, committed: bool = True) -> Counter[str]:
    """How often each image is answered on `output` (`committed`: as read-committed)."""
    records = read_records(stack.kafka_bootstrap, output, committed=committed)
    return Counter(message.image_id for _, message in records)


def answering(stack, output, worker: str) -> bool:
    """Whether `worker` has answered (written, committed or not) at least a few images."""
    records = read_records(stack.kafka_bootstrap, output, committed=False)
    return sum(message.producer == worker for _, message in records) >= 10


def holds_partitions(process: ManagedProcess) -> bool:
    """Whether the probe `process` has been assigned partitions of its input (it logs each
    assignment, and the last one it logged is not empty)."""
    assigned = [line for line in process.log_tail(200).splitlines() if " assigned [" in line]
    return bool(assigned) and not assigned[-1].endswith("assigned []")


def caught_up(stack, group: str, topic: str) -> bool:
    """Whether `group` has committed every partition of `topic` to its end."""
    consumer = Consumer({"bootstrap.servers": stack.kafka_bootstrap, "group.id": group})
    try:
        partitions = [TopicPartition(topic, p) for p in range(3)]
        try:
            committed = consumer.committed(partitions, timeout=10)
        except KafkaException as exc:  # the broker is still coming back
            print(f"committed offsets not read: {exc}")
            return False
        return all(
            tp.offset == consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in committed
        )
    finally:
        consumer.close()


@dataclass
class Probe:
    """Names of the topics and group of one test's stage, and the images it is sent."""

    stack: Stack
    producer: Any
    names: tuple[str, str, str]
    source: TopicSpec
    output: TopicSpec
    images: list[ImageReceived]

    @classmethod
    def make(cls, stack: Stack, producer) -> Probe:
        tag = uuid.uuid4().hex[:8]
        source, output = topics(f"probe-{tag}-in", f"probe-{tag}-out")
        create_topics(stack.kafka_bootstrap, [(source.name, 3), (output.name, 3)])
        images = [
            image_event(camera, digest=uuid.uuid4().hex * 2)
            for _ in range(IMAGES_PER_CAMERA)
            for camera in CAMERAS
        ]
        return cls(
            stack, producer, (f"probe-{tag}", source.name, output.name), source, output, images
        )

    def send_all(self) -> None:
        for image in self.images:
            self.producer.produce(
                self.source.name, key=image.camera_id.encode(), value=self.source.encode(image)
            )
        assert self.producer.flush(30) == 0

    def once_each(self) -> Counter[str]:
        return Counter({image.image_id: 1 for image in self.images})

    def wait_committed(self, what: str) -> None:
        wait_for(
            lambda: caught_up(self.stack, self.names[0], self.source.name),
            timeout=120,
            what=what,
        )


def test_kills_and_stops_in_flight_leave_every_input_answered_exactly_once(
    own_stack, own_producer, tmp_path
):
    stack = own_stack
    probe = Probe.make(stack, own_producer)
    names, output = probe.names, probe.output
    first = start_probe(stack, tmp_path, names, "probe-a")
    second = start_probe(stack, tmp_path, names, "probe-b")
    try:
        # Sent once both hold partitions, so that each has inputs left to answer (a first
        # process alone for a few seconds could answer a whole partition before the split).
        for process in (first, second):
            wait_for(partial(holds_partitions, process), timeout=60, what=process.name)
        probe.send_all()
        for worker in ("probe-a", "probe-b"):
            wait_for(partial(answering, stack, output, worker), timeout=60, what=worker)
        first.kill()  # mid-transaction, with messages in flight
        first = start_probe(stack, tmp_path, names, "probe-a2")
        # Some progress after the kill (from whichever process has the partitions left).
        so_far = len(answered(stack, output, committed=False))
        wait_for(
            lambda: (
                len(answered(stack, output, committed=False)) >= min(so_far + 20, len(probe.images))
            ),
            timeout=90,
            what="answers after the kill",
        )
        second.stop(grace=30)  # SIGTERM: commits what it wrote and leaves the group
        probe.wait_committed("the stage to commit every input")
        assert answered(stack, output) == probe.once_each()
        written = answered(stack, output, committed=False)
        print(f"written {sum(written.values())} answers for {len(probe.images)} images")

        # The same images again, to a process that restored the state from the changelog.
        second = start_probe(stack, tmp_path, names, "probe-b2")
        first.kill()
        probe.send_all()
        probe.wait_committed("the stage to commit the images sent again")
        assert answered(stack, output) == probe.once_each()
    finally:
        first.stop()
        second.stop()


def test_a_broker_restart_mid_stream_loses_and_repeats_nothing(own_stack, own_producer, tmp_path):
    probe = Probe.make(own_stack, own_producer)
    probe.send_all()
    stage = start_probe(own_stack, tmp_path, probe.names, "probe-r")
    try:
        wait_for(partial(answering, own_stack, probe.output, "probe-r"), timeout=60, what="answers")
        own_stack.kafka.restart()
        probe.wait_committed("the stage to commit every input after the restart")
        assert answered(own_stack, probe.output) == probe.once_each()
        assert stage.alive()
    finally:
        stage.stop()


def test_a_commit_reported_failed_after_it_was_done_is_not_done_again(
    own_stack, own_producer, tmp_path
):
    """The 3rd and 8th commits' replies are lost (done, reported timed out): the stage asks
    for the commit again rather than rewinding to offsets the broker has moved past, and
    what it cannot be sure of it reads again from the broker."""
    probe = Probe.make(own_stack, own_producer)
    probe.send_all()
    stage = start_probe(own_stack, tmp_path, probe.names, "probe-l", "lost-commit-replies")
    try:
        probe.wait_committed("the stage to commit every input")
        assert answered(own_stack, probe.output) == probe.once_each()
        assert stage.alive()
    finally:
        stage.stop()
    assert "reporting it timed out" in stage.log_path.read_text()


def test_a_partition_without_offsets_starts_where_the_earlier_group_had_got_to(
    own_stack, own_producer, tmp_path
):
    """An upgraded deployment: the Faust worker's group had consumed partition 0 to its end;
    the stage's new group answers only what the earlier group had not, and keeps the
    offset as its own."""
    probe = Probe.make(own_stack, own_producer)
    probe.send_all()
    group, source = probe.names[0], probe.source.name
    on_first = {
        m.image_id for p, m in read_records(own_stack.kafka_bootstrap, probe.source) if p == 0
    }
    assert 0 < len(on_first) < len(probe.images)
    earlier = Consumer(
        {"bootstrap.servers": own_stack.kafka_bootstrap, "group.id": f"{group}-before"}
    )
    try:
        _, end = earlier.get_watermark_offsets(TopicPartition(source, 0), timeout=10)
        earlier.commit(offsets=[TopicPartition(source, 0, end)], asynchronous=False)
    finally:
        earlier.close()
    stage = start_probe(own_stack, tmp_path, probe.names, "probe-u")
    try:
        probe.wait_committed("the stage to commit every input")
        expected = Counter({i.image_id: 1 for i in probe.images if i.image_id not in on_first})
        assert answered(own_stack, probe.output) == expected
    finally:
        stage.stop()
