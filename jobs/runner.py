"""The job runner (`vigil runner`): takes requested jobs off `vigil.jobs` and runs them.

The topic is the runner's state. On every partition it is assigned, the runner reads the
partition from the start and folds each job's events (`JobBook`); only once it has caught
up with the end does it act on that partition's jobs, so a job finished before a restart is
never run again. Then, per job:

- pending: start the next attempt (at most JOB_CONCURRENCY at once), after the retry
  policy's delay when an attempt failed; a pending job asked to cancel is cancelled;
- running, but not here: its runner died mid-attempt; start the next attempt (the dead
  attempt counts), or fail the job when it was the last; an abort asked meanwhile aborts it;
- running here and asked to abort: the job stops at its next check.

Each attempt runs in a thread with a `JobContext`; what it reports goes on the topic. A job
type's result is idempotent per job (an export rewrites its own file), so an attempt that
repeats a dead one's work completes the job once. Partitions taken away stop their jobs
without an outcome: the new owner starts the next attempt.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from sqlalchemy import Engine

from api.commands import CommandSender, NotDelivered, outgoing
from jobs.context import Aborted, JobContext, Outgoing, Stopped
from jobs.job_type import JobType
from jobs.registry import JOB_TYPES
from schemas.codec import UndecodableMessage, decode
from schemas.jobs import (
    JobAborted,
    JobAbortRequested,
    JobCancelled,
    JobCancelRequested,
    JobCompleted,
    JobEvent,
    JobFailed,
    JobRequested,
    JobStarted,
    JobStatus,
)
from schemas.topics import JOBS, client_settings, producer_settings
from streams.retry import RetryPolicy

log = logging.getLogger(__name__)

# How long a job event or command may wait for the broker's acknowledgement.
PUBLISH_TIMEOUT_S = 30.0


@dataclass
class JobState:
    """A job as its events so far leave it."""

    job_id: str
    partition: int
    job_type: str
    params: dict[str, Any]
    max_attempts: int
    requested_at: datetime
    status: JobStatus = "pending"
    attempt: int = 0
    cancel_requested_by: str | None = None
    abort_requested_by: str | None = None
    # After a failed attempt, the next one waits for the retry delay.
    not_before: float = 0.0


@dataclass
class JobBook:
    """Every unfinished job of the assigned partitions, folded from the topic."""

    policy: RetryPolicy
    jobs: dict[str, JobState] = field(default_factory=dict)

    def apply(self, event: JobEvent, partition: int) -> None:
        if isinstance(event, JobRequested):
            self.jobs.setdefault(
                event.job_id,
                JobState(
                    event.job_id,
                    partition,
                    event.job_type,
                    event.params,
                    event.max_attempts,
                    event.occurred_at,
                ),
            )
            return
        job = self.jobs.get(event.job_id)
        if job is None:
            return
        if isinstance(event, JobStarted):
            job.status, job.attempt = "running", max(job.attempt, event.attempt)
        elif isinstance(event, JobFailed) and event.will_retry:
            job.status = "pending"
            job.not_before = time.monotonic() + self.policy.delay_after(event.attempt)
        elif isinstance(event, JobCancelRequested):
            job.cancel_requested_by = event.requested_by
        elif isinstance(event, JobAbortRequested):
            job.abort_requested_by = event.requested_by
        elif isinstance(event, (JobCompleted, JobFailed, JobCancelled, JobAborted)):
            del self.jobs[event.job_id]  # finished: nothing more to do for it

    def drop_partitions(self, partitions: set[int]) -> None:
        self.jobs = {k: j for k, j in self.jobs.items() if j.partition not in partitions}


def _abortable(job: JobState | None) -> bool:
    job_type = JOB_TYPES.get(job.job_type) if job is not None else None
    return job_type is not None and job_type.supports_abort


@dataclass
class Running:
    context: JobContext
    future: Future


class JobRunner:
    def __init__(
        self,
        *,
        engine: Engine,
        bootstrap_servers: str,
        worker_id: str,
        data_dir: Path,
        camera_root: Path,
        concurrency: int,
        policy: RetryPolicy,
        group: str = "vigil-job-runner",
    ) -> None:
        self.engine = engine
        self.worker_id = worker_id
        self.data_dir = data_dir
        self.camera_root = camera_root
        self.bootstrap_servers = bootstrap_servers
        self.concurrency = concurrency
        self.book = JobBook(policy)
        self.running: dict[str, Running] = {}
        # Jobs whose attempt ended here, until its outcome comes back through the topic.
        self._ended: set[str] = set()
        self._catching_up: dict[int, int] = {}  # partition -> end offset still to reach
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="job")
        self._producer = Producer(
            producer_settings(
                bootstrap_servers,
                {
                    "client.id": f"vigil-runner-{worker_id}",
                    "acks": "all",
                    "enable.idempotence": True,
                    "message.timeout.ms": int(PUBLISH_TIMEOUT_S * 1000),
                    "linger.ms": 5,
                },
            )
        )
        self._sender = CommandSender(self._producer, ack_timeout_s=PUBLISH_TIMEOUT_S)
        self._consumer = Consumer(
            {
                **client_settings(bootstrap_servers),
                "group.id": group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "enable.partition.eof": False,
                "topic.metadata.refresh.interval.ms": 5000,
                # A runner that dies hands its jobs on after this long without a heartbeat.
                "session.timeout.ms": 10_000,
            }
        )

    # --- the loop --------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        self._consumer.subscribe([JOBS.name], on_assign=self._on_assign, on_revoke=self._on_revoke)
        try:
            while not stop.is_set():
                for message in self._consumer.consume(num_messages=500, timeout=0.5):
                    if message.error() is None:
                        self._fold(message)
                self._reap()
                self._act()
        finally:
            for running in self.running.values():
                running.context.stop_requested.set()
            self._pool.shutdown(wait=True)
            self._producer.flush(10)
            self._consumer.close()

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            _low, high = consumer.get_watermark_offsets(tp, timeout=10)
            if high > 0:
                self._catching_up[tp.partition] = high
            tp.offset = OFFSET_BEGINNING
        consumer.assign(partitions)
        log.info("assigned partitions %s", [tp.partition for tp in partitions])

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        gone = {tp.partition for tp in partitions}
        for job_id, running in self.running.items():
            job = self.book.jobs.get(job_id)
            if job is not None and job.partition in gone:
                running.context.stop_requested.set()
        self.book.drop_partitions(gone)
        for partition in gone:
            self._catching_up.pop(partition, None)

    def _fold(self, message) -> None:
        partition = message.partition()
        end = self._catching_up.get(partition)
        if end is not None and message.offset() + 1 >= end:
            del self._catching_up[partition]
        try:
            event = decode(JOBS, message.value())
        except UndecodableMessage as exc:
            log.warning("skipping undecodable job message at %d: %s", message.offset(), exc)
            return
        self.book.apply(event, partition)
        if isinstance(event, (JobCompleted, JobFailed, JobAborted, JobCancelled)):
            self._ended.discard(event.job_id)
        running = self.running.get(event.job_id)
        if running is not None and isinstance(event, JobAbortRequested):
            if _abortable(self.book.jobs.get(event.job_id)):
                running.context.abort_requested.set()
                heard = f"Abort requested by {event.requested_by}; stopping at the next check"
                running.context.log("WARNING", heard)

    # --- deciding --------------------------------------------------------------------------

    def _act(self) -> None:
        now = time.monotonic()
        for job in list(self.book.jobs.values()):
            if job.partition in self._catching_up or job.job_id in self.running:
                continue
            if job.job_id in self._ended:
                continue
            if job.status == "pending" and job.cancel_requested_by is not None:
                self._emit(
                    JobCancelled(
                        job_id=job.job_id, reason=f"Cancelled by {job.cancel_requested_by}"
                    )
                )
                job.status = "cancelled"
            elif job.status == "running" and _abortable(job) and job.abort_requested_by:
                # Its runner died with an abort in flight: nothing is running to stop.
                self._emit(
                    JobAborted(
                        job_id=job.job_id,
                        attempt=job.attempt,
                        reason=f"Aborted by {job.abort_requested_by} (its runner had stopped)",
                    )
                )
                job.status = "aborted"
            elif job.status == "running" and job.attempt >= job.max_attempts:
                self._emit(
                    JobFailed(
                        job_id=job.job_id,
                        attempt=job.attempt,
                        error="the runner stopped during the last attempt",
                        error_type="RunnerStopped",
                        will_retry=False,
                    )
                )
                job.status = "failed"
            elif job.status in ("pending", "running") and job.not_before <= now:
                if len(self.running) >= self.concurrency:
                    return
                self._start(job)

    def _start(self, job: JobState) -> None:
        job_type = JOB_TYPES.get(job.job_type)
        attempt = job.attempt + 1
        self._emit(JobStarted(job_id=job.job_id, worker_id=self.worker_id, attempt=attempt))
        job.status, job.attempt = "running", attempt
        context = JobContext(
            job_id=job.job_id,
            attempt=attempt,
            requested_at=job.requested_at,
            engine=self.engine,
            data_dir=self.data_dir,
            camera_root=self.camera_root,
            bootstrap_servers=self.bootstrap_servers,
            emit=self._emit,
            publish=self._publish,
        )
        if _abortable(job) and job.abort_requested_by is not None:
            context.abort_requested.set()
        future = self._pool.submit(self._attempt, job_type, job, context)
        self.running[job.job_id] = Running(context, future)

    def _attempt(self, job_type: JobType | None, job: JobState, context: JobContext) -> bool:
        """One attempt, in a pool thread: its outcome goes on the topic as an event.

        False when it stopped without one (its partition went to another runner)."""
        base = {"job_id": job.job_id, "attempt": context.attempt}
        try:
            if job_type is None:
                raise LookupError(f"unknown job type {job.job_type!r}")
            params = job_type.params.model_validate(job.params)
            result = job_type.run(context, params)
        except Stopped:
            log.info("job %s handed over mid-attempt %d", job.job_id, context.attempt)
            return False
        except Aborted as exc:
            self._emit(JobAborted(**base, reason=str(exc)))
        except Exception as exc:  # noqa: BLE001 - every failure is recorded as the attempt's
            retry = (
                job_type is not None
                and isinstance(exc, job_type.retryable)
                and context.attempt < job.max_attempts
            )
            log.warning("job %s attempt %d failed: %s", job.job_id, context.attempt, exc)
            context.log("ERROR", f"Attempt {context.attempt} failed: {type(exc).__name__}: {exc}")
            self._emit(
                JobFailed(**base, error=str(exc), error_type=type(exc).__name__, will_retry=retry)
            )
        else:
            self._emit(JobCompleted(**base, result=result))
        return True

    def _reap(self) -> None:
        for job_id, running in list(self.running.items()):
            if running.future.done():
                del self.running[job_id]
                error = running.future.exception()
                if error is not None:
                    # Not even a failure could be recorded (the broker is away): the job stays
                    # running on the topic, and is taken up again like a dead runner's.
                    log.error("job %s attempt ended unrecorded: %s", job_id, error)
                elif running.future.result() and job_id in self.book.jobs:
                    self._ended.add(job_id)

    # --- producing -------------------------------------------------------------------------

    def _emit(self, event: JobEvent) -> None:
        """Produce one job event and wait for the broker: the next step builds on it."""
        self._publish([(JOBS, event.job_id, event)])

    def _publish(self, items: Sequence[Outgoing]) -> None:
        """Produce the messages and wait until the broker stored every one (each waits for
        its own acknowledgement, not for what other job threads have in flight)."""
        results = self._sender.deliver(
            [outgoing(topic, key, message) for topic, key, message in items]
        )
        refused = [r.reason for r in results if isinstance(r, NotDelivered)]
        if refused:
            kinds = sorted({type(message).__name__ for _, _, message in items})
            raise RuntimeError(f"{len(refused)} of {len(items)} {kinds} not stored: {refused}")
