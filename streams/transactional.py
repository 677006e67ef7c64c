"""A stage whose every output is published exactly once: Kafka transactions, fenced by the
consumer group (KIP-447).

A `TransactionalStage` consumes its input topics in a consumer group of its own and writes,
in one Kafka transaction: the messages each input's outcome publishes (dead letters
included), the stage's state changes (a compacted changelog topic) and the input offsets
they advance to. A consumer reading our topics with `isolation.level=read_committed` sees
the outputs of an input exactly when its offset is committed, so whatever a kill, a restart
or a rebalance interrupts is either all there or not at all, and is done again from the
committed offset. The group's generation goes with the offsets into the transaction: a
worker that lost its partitions (paused, cut off) can no longer commit its transaction,
which is then aborted with its outputs.

How it runs: the consumer is polled on one thread, the transactional producer written on
another (librdkafka blocks); messages are decided several at a time (`InFlight`) and their
outcomes written into the open transaction strictly in arrival order, which a committer
commits as soon as it has something (a transaction per few messages under load, per
message when idle, so a downstream stage waits a commit, a few milliseconds, not an
interval). `_lock` keeps the transaction whole: writing an outcome, committing, and the
rebalance callbacks each hold it.

Every rebalance or failed commit starts an epoch: what the previous epoch had in flight is
dropped, the transaction is committed (on a revoke) or aborted (on a failure or a lost
partition), and the consumer is sent back to the committed offsets. A commit that failed
after the coordinator may have done it (its outcome unknown) ends the run instead: the next
run takes its offsets and state from the broker, where a rewind to the ones held here could
publish again what was committed. A worker killed with a
transaction open leaves it to the transaction coordinator, which aborts it after
`TRANSACTION_TIMEOUT_S`; until then read-committed consumers of the partitions it wrote
wait at that transaction.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, TypeVar

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

from schemas.envelope import Message as Event
from schemas.reading import take
from schemas.topics import WORKER_GROUP, TopicSpec, client_settings, producer_settings
from streams.in_flight import InFlight, Pending
from streams.stage import Handle, Outcome, Publish, Received, Stage
from vigil import tracing
from vigil.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

# A commit not done in this long is stuck (the calls in it time out after 10 s each, but
# librdkafka 2.16 can block past that after a broker restart: librdkafka #5456, #5511).
COMMIT_DEADLINE_S = 25.0
# A transactional call's own timeout; how long leaving the group may take.
CALL_TIMEOUT_S = 10.0
CLOSE_WAIT_S = 20.0
# How long a revoke waits for a commit in progress. A commit that started while the group
# was beginning to rebalance can be held by the group coordinator until this member has
# rejoined, which it does only once the revoke returns: waiting longer only stalls the whole
# group (seen: every commit in progress at a rebalance held 15 s, the longest it was waited
# for). Given up, such a commit then fails on the new generation and is aborted.
REVOKE_WAIT_S = 2.0
# How long a poll waits for a first message (then the feeder checks its epoch).
POLL_S = 0.2
# The longest a written outcome waits for the ones decided after it before its commit.
COMMIT_WAIT_S = 0.05

# What a stage does with one decoded input: the state key its outcome records under (None:
# none) and the handler deciding it; None to pass over the message (a type it does not act on).
# `state` reads the stage's state as committed or written in the open transaction. A route is
# called when its message's turn to be decided comes, after every message before it that was
# not in flight with it has recorded its state.
Route = Callable[[Event, Callable[[str], Any]], tuple[str | None, Handle] | None]


def changelog_topic(group: str) -> str:
    """The compacted topic holding a stage's state."""
    return f"{group}-state-changelog"


@dataclass(frozen=True)
class _Keyed:
    """An outcome's state with the key it is recorded under."""

    key: str
    value: Any


class ChangelogState:
    """A stage's state: key -> JSON value, written in the transaction that publishes the
    outcome it belongs to. Partition p of the changelog holds the keys of the inputs'
    partition p (the inputs are co-partitioned), restored when that partition is assigned."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self._committed: dict[str, tuple[int, Any]] = {}
        self._written: dict[str, tuple[int, Any]] = {}

    def get(self, key: str) -> Any:
        if key in self._written:
            return self._written[key][1]
        found = self._committed.get(key)
        return found[1] if found else None

    def write(self, key: str, value: Any, partition: int) -> tuple[bytes, bytes]:
        if hasattr(value, "model_dump"):
            value = value.model_dump(mode="json")
        self._written[key] = (partition, value)
        return key.encode(), json.dumps(value).encode()

    def values(self) -> list[Any]:
        """Every key's value, as committed or written."""
        merged = {**self._committed, **self._written}
        return [value for _, value in merged.values()]

    def commit(self) -> None:
        self._committed.update(self._written)
        self._written.clear()

    def abort(self) -> None:
        self._written.clear()

    def restore(self, partition: int, records: list[tuple[bytes, bytes | None]]) -> None:
        for key, value in records:
            if value is None:
                self._committed.pop(key.decode(), None)
            else:
                self._committed[key.decode()] = (partition, json.loads(value))

    def forget(self, partitions: set[int]) -> None:
        self._committed = {k: v for k, v in self._committed.items() if v[0] not in partitions}

    def clear(self) -> None:
        self._committed.clear()
        self._written.clear()


class TransactionalStage:
    def __init__(
        self,
        stage: Stage,
        group: str,
        routes: Mapping[TopicSpec, Route],
        settings: Settings,
        *,
        limit: int = 1,
        stateful: bool = True,
        once_per_key: bool = False,
        continues: str | None = WORKER_GROUP,
        linger_s: float = 0.0,
    ) -> None:
        """`limit`: messages decided at once. `stateful`: whether outcomes record state.
        `once_per_key`: a key's outcome is published once (a second message of a key in
        flight with the first is decided, and its outcome dropped at its turn).
        `continues`: the group that consumed the inputs before this stage had a group of its
        own (the Faust worker's): a partition without an offset in `group` starts where that
        group had got to, so an upgraded deployment handles nothing twice. `linger_s`: how
        long a transaction takes in more outcomes after its first before it commits."""
        self.stage = stage
        self.group = group
        self.continues = continues
        self.settings = settings
        self.limit = limit
        self.once_per_key = once_per_key
        self.linger_s = linger_s
        counts = {spec.partitions or settings.topic_partitions for spec in routes}
        if len(counts) != 1:
            raise ValueError(f"{group}: inputs {[s.name for s in routes]} are not co-partitioned")
        self.partitions = counts.pop()
        self._inputs = {spec.name: (spec, route) for spec, route in routes.items()}
        self.state = ChangelogState(changelog_topic(group)) if stateful else None
        self._run = 0
        self._reset()

    def _reset(self) -> None:
        """What one run of the stage holds; a run that failed leaves nothing to the next."""
        if self.state is not None:
            self.state.clear()
        # A call left stuck by an earlier run must change nothing of this one when it returns.
        self._run += 1
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self._polling = ThreadPoolExecutor(1, thread_name_prefix=f"{self.group}-poll")
        self._writing = ThreadPoolExecutor(1, thread_name_prefix=f"{self.group}-txn")
        self._lock = threading.Lock()
        self._epoch = 0
        self._in_transaction = False
        # Set when a commit ended unknown: the run is over (see `_commit_or_abort`).
        self._unknown: Exception | None = None
        # Per assigned input partition: the committed offset (where a rewind goes back to),
        # and the offsets written in the open transaction.
        self._committed: dict[tuple[str, int], int] = {}
        self._uncommitted: dict[tuple[str, int], int] = {}
        self._written = asyncio.Event()

    @property
    def inputs(self) -> tuple[TopicSpec, ...]:
        return tuple(spec for spec, _ in self._inputs.values())

    async def values(self) -> list[Any]:
        """Every value of the state this worker holds (its partitions'), as committed or
        written in the open transaction; read under `_lock`, between two writes."""
        if self.state is None:
            raise TypeError(f"{self.group} keeps no state")
        state = self.state

        def snapshot() -> list[Any]:
            with self._lock:
                return state.values()

        return await asyncio.to_thread(snapshot)

    # -- the loop -------------------------------------------------------------------------

    async def run_forever(self) -> None:
        """`run` again and again until cancelled: a run that fails is logged, and the next
        starts a second later with new clients."""
        while True:
            try:
                await self.run()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s stopped; starting it again in 1 s", self.group)
            await asyncio.sleep(1.0)

    async def run(self) -> None:
        """Consume, decide and publish until cancelled; then commit what is written. What
        fails stops the run (its transaction is aborted by its coordinator); the caller
        starts another."""
        self._reset()
        try:
            await self._on(self._writing, self._open_producer)
            await self._on(self._polling, self._open_consumer)
            while True:
                await self._run_epoch(self._epoch)
                await self._on(self._polling, self._rewind)
        finally:
            try:
                await within(asyncio.shield(self._on(self._polling, self._close)), CLOSE_WAIT_S)
            except TimeoutError:
                log.error("%s: leaving the group took too long; left behind", self.group)

    async def _run_epoch(self, epoch: int) -> None:
        """Feed the window until the epoch ends; what stops the feeder, the committer or
        the window's emitter first ends the epoch (and is raised, if it failed)."""
        complete = partial(self._complete, epoch)
        async with InFlight(self.stage, self.limit, complete) as window:
            tasks = [
                asyncio.create_task(self._feed(epoch, window)),
                asyncio.create_task(self._commit_when_written(epoch, window)),
                asyncio.create_task(window.stopped()),
            ]
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    async def _feed(self, epoch: int, window: InFlight) -> None:
        while epoch == self._epoch:
            messages = await self._on(self._polling, self._poll)
            for message in messages:
                if epoch != self._epoch:
                    break  # dropped: the rewind fetches them again
                await self._submit(window, message)

    async def _submit(self, window: InFlight, message: Message) -> None:
        if message.error() is not None:  # the end of a partition: its offset, at its turn
            end = Received(message.topic(), message.partition(), message.offset() - 1, None, None)
            await window.submit(end, None, Outcome)
            return
        source = Received(
            topic=message.topic(),
            partition=message.partition(),
            offset=message.offset(),
            key=message.key(),
            value=message.value(),
            headers=message.headers(),
        )
        spec, route = self._inputs[source.topic]
        parsed = self.stage.parse(source, spec)
        if isinstance(parsed, Publish):  # undecodable: its dead letter is its outcome
            await window.submit(source, None, partial(Outcome, (parsed,)))
            return
        await window.submit(source, parsed, partial(self._decide, route, parsed))

    async def _decide(self, route: Route, message: Event) -> Outcome:
        """Route the message and run its handler; its state comes back keyed."""
        routed = route(message, self.state.get if self.state is not None else _no_state)
        if routed is None:
            return Outcome()
        key, handle = routed
        outcome = await self.stage.decide(message, handle)
        if key is not None and outcome.state is not None:
            outcome = replace(outcome, state=_Keyed(key, outcome.state))
        return outcome

    async def _complete(self, epoch: int, pending: Pending, outcome: Outcome) -> None:
        if pending.message is None:
            items = list(outcome.publish)
        else:
            items = self.stage.publications(pending.received, pending.message, outcome)
        record = outcome.state if isinstance(outcome.state, _Keyed) else None
        if await self._on_writer(self._write, epoch, pending.received, items, record):
            self._written.set()

    async def _commit_when_written(self, epoch: int, window: InFlight) -> None:
        """Commit what is written once the window has written every outcome decided by
        then (or after `COMMIT_WAIT_S` under a steady flow), `linger_s` after the first:
        one transaction for all that was decided meanwhile."""
        while True:
            await self._written.wait()
            if self.linger_s:
                await asyncio.sleep(self.linger_s)
            try:
                await within(window.settled.wait(), COMMIT_WAIT_S)
            except TimeoutError:
                pass
            self._written.clear()
            await self._on_writer(self._commit, epoch)

    async def _on_writer(self, call: Callable[..., T], *args: Any) -> T:
        """`call` on the producer's thread. One not done within `COMMIT_DEADLINE_S` (or
        waiting behind one that is not) is stuck in librdkafka: the run is given up, and the
        next run's producer fences this one's transaction."""
        try:
            return await within(self._on(self._writing, call, *args), COMMIT_DEADLINE_S)
        except TimeoutError:
            stuck = f"{self.group}: the producer's thread is stuck over {COMMIT_DEADLINE_S} s"
            raise RuntimeError(stuck) from None

    async def _on(self, thread: ThreadPoolExecutor, call: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(thread, call, *args)

    # -- the producer's thread ------------------------------------------------------------

    def _open_producer(self) -> None:
        self._producer = Producer(
            producer_settings(
                self.settings.kafka_bootstrap_servers,
                {
                    "transactional.id": f"{self.group}-{self.settings.worker_id}",
                    "transaction.timeout.ms": int(self.settings.transaction_timeout_s * 1000),
                    "linger.ms": 1,
                    # A transaction begun while the last one's markers are being written is
                    # refused (CONCURRENT_TRANSACTIONS) and retried after this.
                    "retry.backoff.ms": 5,
                    # librdkafka (2.16) can lose its group coordinator for good when the
                    # broker restarts, `send_offsets_to_transaction` then blocking past its
                    # timeout (librdkafka #5456, #5511); a metadata refresh finds it again.
                    "topic.metadata.refresh.interval.ms": 2000,
                },
            )
        )
        self._producer.init_transactions(30)

    def _write(
        self,
        epoch: int,
        source: Received,
        items: list[Publish],
        record: _Keyed | None,
    ) -> bool:
        """Write an input's outcome into the open transaction; False if its epoch is over."""
        assert self._producer is not None
        with self._lock:
            if epoch != self._epoch:
                return False
            tp, offset = (source.topic, source.partition), source.offset + 1
            if not items and record is None:
                # Nothing to publish: worth a transaction only to move the offset on (past a
                # transaction's marker, at the end of a partition).
                if offset <= max(self._uncommitted.get(tp, self._committed.get(tp, 0)), 0):
                    return False
            state = self.state
            if self.once_per_key and record and state is not None and state.get(record.key):
                log.info(
                    "%s: %s was handled by an earlier message; not published again",
                    self.stage.name,
                    record.key,
                )
                items, record = [], None
            if not self._in_transaction:
                self._producer.begin_transaction()
                self._in_transaction = True
            for item in items:
                self._produce(
                    item.topic.name,
                    item.key.encode() if item.key is not None else None,
                    item.topic.encode(item.message),
                    headers=tracing.headers_for(item.traceparent),
                )
            if record is not None and state is not None:
                key, value = state.write(record.key, record.value, source.partition)
                self._produce(state.topic, key, value, source.partition)
            self._uncommitted[tp] = offset
            return True

    def _produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        partition: int = -1,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        assert self._producer is not None
        while True:
            try:
                self._producer.produce(
                    topic, value=value, key=key, partition=partition, headers=headers
                )
                return
            except BufferError:
                self._producer.poll(0.05)  # the local queue is full: let it drain

    def _commit(self, epoch: int) -> None:
        with self._lock:
            if epoch == self._epoch:
                self._commit_or_abort()

    def _commit_or_abort(self) -> None:
        """Commit the open transaction with its input offsets; abort it (and start a new
        epoch) if that fails before the commit. Holds `_lock`.

        A commit whose outcome is unknown (it failed for good once the coordinator may have
        had it) leaves this run nothing it can trust: its offsets and state may be behind
        what the broker holds, and a rewind to them would publish outcomes again. The run
        is then ended (`_unknown`), and the next one reads offsets and state afresh."""
        assert self._producer is not None and self._consumer is not None
        if not self._uncommitted:
            return
        offsets = [TopicPartition(t, p, o) for (t, p), o in self._uncommitted.items()]
        began, run, producer = time.monotonic(), self._run, self._producer
        metadata = self._consumer.consumer_group_metadata()
        try:
            self._retrying(producer.send_offsets_to_transaction, offsets, metadata, CALL_TIMEOUT_S)
        except KafkaException as exc:
            if run == self._run:  # nothing is committed yet: aborting loses nothing
                log.warning("%s: transaction aborted: %s", self.group, exc.args[0])
                self._abort(fatal=exc.args[0].fatal())
            return
        try:
            # Retried alone: once asked to commit, the transaction is past its offsets.
            self._retrying(producer.commit_transaction, CALL_TIMEOUT_S)
        except KafkaException as exc:
            if run != self._run:
                return
            error: KafkaError = exc.args[0]
            if error.txn_requires_abort():  # refused before it committed anything
                log.warning("%s: transaction aborted: %s", self.group, error)
                self._abort()
                return
            log.error("%s: commit of %s ended unknown: %s", self.group, offsets, error)
            self._unknown = RuntimeError(f"{self.group}: a commit ended unknown ({error})")
            self._abort(fatal=True)
            return
        if run != self._run:
            return
        took = time.monotonic() - began
        (log.warning if took > 1.0 else log.debug)(
            "%s: committed %s in %.1f ms", self.group, offsets, took * 1000
        )
        self._in_transaction = False
        # Partitions given up while this commit was held (a revoke that did not wait for it)
        # stay given up.
        self._committed.update(
            {tp: offset for tp, offset in self._uncommitted.items() if tp in self._committed}
        )
        self._uncommitted.clear()
        if self.state is not None:
            self.state.commit()

    def _retrying(self, call: Callable[..., None], *args: Any) -> None:
        """`call`, again after a retriable error (librdkafka lets either transactional call
        be made again then), at most five times."""
        for attempt in range(5):
            try:
                call(*args)
                return
            except KafkaException as exc:
                error: KafkaError = exc.args[0]
                if not error.retriable() or attempt == 4:
                    raise
                log.warning("%s: %s failed (%s); retrying", self.group, call.__name__, error)
                time.sleep(0.2)

    def _abort(self, fatal: bool = False) -> None:
        """Throw the open transaction away and start a new epoch. Holds `_lock`."""
        assert self._producer is not None
        if fatal:  # fenced or broken for good: a new producer fences this one's id
            self._producer = None
            self._open_producer()
        elif self._in_transaction:
            try:
                self._producer.abort_transaction(CALL_TIMEOUT_S)
            except KafkaException as exc:
                log.error("%s: abort failed (%s); starting a new producer", self.group, exc)
                self._producer = None
                self._open_producer()
        self._in_transaction = False
        self._uncommitted.clear()
        if self.state is not None:
            self.state.abort()
        self._epoch += 1

    # -- the consumer's thread ------------------------------------------------------------

    def _open_consumer(self) -> None:
        self._create_changelog()
        self._consumer = Consumer(
            {
                **client_settings(self.settings.kafka_bootstrap_servers),
                "group.id": self.group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                # The end of a partition is where its offset goes once everything before is
                # done: past the marker of the transaction that wrote its last record, which
                # offset + 1 of that record is not (its lag would never reach 0).
                "enable.partition.eof": True,
                # A camera's partition of every input goes to the same worker.
                "partition.assignment.strategy": "range",
                "session.timeout.ms": int(self.settings.worker_session_timeout_s * 1000),
                "topic.metadata.refresh.interval.ms": 5000,
            }
        )
        self._consumer.subscribe(
            list(self._inputs),
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )

    def _create_changelog(self) -> None:
        if self.state is None:
            return
        wanted = NewTopic(
            self.state.topic,
            num_partitions=self.partitions,
            replication_factor=1,
            config={"cleanup.policy": "compact"},
        )
        with AdminClient(client_settings(self.settings.kafka_bootstrap_servers)) as admin:
            try:
                admin.create_topics([wanted])[self.state.topic].result(30)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise

    def _poll(self) -> list[Message]:
        assert self._consumer is not None
        messages = take(self._consumer, max(self.limit, 16), POLL_S)
        live = []
        for message in messages:
            error = message.error()
            if error is None or error.code() == KafkaError._PARTITION_EOF:
                live.append(message)
            else:
                log.warning("%s: consumer error: %s", self.group, error)
        return live

    def _rewind(self) -> None:
        """Send every assigned partition back to its committed offset (a new epoch began);
        raise if a commit ended unknown (the offsets here may be behind)."""
        assert self._consumer is not None
        if self._unknown is not None:
            raise self._unknown
        for (topic, partition), offset in self._committed.items():
            try:
                self._consumer.seek(TopicPartition(topic, partition, offset))
            except KafkaException as exc:
                log.error("%s: rewinding %s[%d] failed: %s", self.group, topic, partition, exc)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        try:
            # With read_committed this waits out offsets a transaction still holds.
            committed = consumer.committed(partitions, timeout=120)
            self._continue_where_left(consumer, committed)
            self._restore(committed)
            # A commit a revoke gave up waiting for can stay stuck in librdkafka (seen: over
            # five minutes, its calls' timeouts notwithstanding) with nothing else watching
            # it: past the deadline the run is ended, and the next run's producer fences it.
            if not self._lock.acquire(timeout=COMMIT_DEADLINE_S):
                raise RuntimeError(f"{self.group}: a commit is stuck over {COMMIT_DEADLINE_S} s")
            try:
                for tp in committed:
                    offset = tp.offset if tp.offset >= 0 else OFFSET_BEGINNING
                    self._committed[(tp.topic, tp.partition)] = offset
                    tp.offset = offset
                self._epoch += 1
            finally:
                self._lock.release()
            consumer.assign(committed)
            log.info(
                "%s: assigned %s", self.group, [(p.topic, p.partition, p.offset) for p in committed]
            )
        except Exception:
            log.exception("%s: taking partitions %s failed", self.group, partitions)
            raise

    def _continue_where_left(self, consumer: Consumer, committed: list[TopicPartition]) -> None:
        """Partitions without an offset in the group take the offset `continues` committed
        (and commit it as the group's own)."""
        missing = [tp for tp in committed if tp.offset < 0]
        if self.continues is None or not missing:
            return
        reader = Consumer(
            {
                **client_settings(self.settings.kafka_bootstrap_servers),
                "group.id": self.continues,
                "enable.auto.commit": False,
            }
        )
        try:
            earlier = reader.committed(
                [TopicPartition(tp.topic, tp.partition) for tp in missing], 30
            )
        finally:
            reader.close()
        found = {(tp.topic, tp.partition): tp.offset for tp in earlier if tp.offset > 0}
        if not found:
            return
        consumer.commit(
            offsets=[TopicPartition(t, p, offset) for (t, p), offset in found.items()],
            asynchronous=False,
        )
        for tp in missing:
            tp.offset = found.get((tp.topic, tp.partition), tp.offset)
        log.info("%s: %s continue where %s had got to", self.group, found, self.continues)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._give_up(partitions, commit=True)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._give_up(partitions, commit=False)

    def _give_up(self, partitions: list[TopicPartition], *, commit: bool) -> None:
        """Partitions leave: commit what is written (revoked) or abort it (lost), and end
        the epoch."""
        if not self._lock.acquire(timeout=REVOKE_WAIT_S):
            # A commit is held: leave without it (it fails on the new generation, or the
            # next producer fences this one).
            log.warning("%s: partitions left while a commit is held", self.group)
            self._epoch += 1
            self._forget(partitions)
            return
        try:
            if commit:
                self._commit_or_abort()
                self._epoch += 1
            else:
                self._abort()
            self._forget(partitions)
        finally:
            self._lock.release()

    def _forget(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self._committed.pop((tp.topic, tp.partition), None)
        kept = {partition for _, partition in self._committed}
        if self.state is not None:
            self.state.forget({tp.partition for tp in partitions} - kept)

    def _restore(self, partitions: list[TopicPartition]) -> None:
        """Read the state's changelog to its end for each assigned partition."""
        if self.state is None:
            return
        held = {partition for _, partition in self._committed}
        wanted = {tp.partition for tp in partitions} - held
        if not wanted:
            return
        reader = Consumer(
            {
                **client_settings(self.settings.kafka_bootstrap_servers),
                "group.id": f"{self.group}-restore",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
            }
        )
        topic = self.state.topic
        try:
            remaining = set()
            for partition in wanted:
                low, high = reader.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=30
                )
                if high > low:
                    remaining.add(partition)
            reader.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in remaining])
            records: dict[int, list[tuple[bytes, bytes | None]]] = {p: [] for p in remaining}
            while remaining:
                for message in take(reader, 1000, 1.0):
                    error = message.error()
                    if error is not None:
                        if error.code() == KafkaError._PARTITION_EOF:
                            remaining.discard(message.partition())
                        else:
                            log.warning("%s: restoring its state: %s", self.group, error)
                        continue
                    records[message.partition()].append((message.key(), message.value()))
            for partition, found in records.items():
                self.state.restore(partition, found)
                log.info(
                    "%s: restored %d records of partition %d", self.group, len(found), partition
                )
        finally:
            reader.close()

    def _close(self) -> None:
        """Leave the group (the revoke commits what is written) and stop the threads."""
        if self._consumer is not None:
            try:
                self._consumer.close()
            except Exception:
                log.exception("%s: closing the consumer failed", self.group)
        self._writing.shutdown(wait=False)
        self._polling.shutdown(wait=False)


def _no_state(key: str) -> None:
    return None


async def within(awaitable: Awaitable[T], seconds: float) -> T:
    """`awaitable`'s result, or TimeoutError after `seconds`. Not `asyncio.wait_for`: on
    Python 3.11 a cancel that meets the awaited call finishing is swallowed there (CPython
    gh-86296), and a stage's epoch, cancelling its tasks, then waited forever for one that
    went on (seen: a commit finishing as a revoke ended the epoch left the enrichment stage
    polling nothing until Kafka's poll interval put it out of the group)."""
    async with asyncio.timeout(seconds):
        return await awaitable
