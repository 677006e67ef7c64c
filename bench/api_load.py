"""Load held (`vigil bench load`): the API serving a paced mix of reads on the seeded read
models while the pipeline runs and writes go through it, errors and latency.

On the benchmark's seeded read models (`bench.api`; the projector's offsets are handed the
end of the topics when the read models were built by another consumer), with a worker, a
projector and the API (API_WORKERS processes) running:

- reads: `rate` requests/s for `duration_s`, open loop (each sent at its time whether or not
  the earlier ones have answered, its latency counted from that time, so a stall shows), the
  read cases of `bench.api` in turn;
- every `WRITE_EVERY_S`: a flush (an enriched image is published for a camera of the
  bench's own, the worker's batching stage opens its batch, the bench waits for
  `/api/batches/active` to show it and flushes it) and a DLQ requeue of the oldest detection
  letter (its image is gone, so the worker dead-letters it again).

Reports per kind: requests, answers by status, errors (a 5xx, a transport error, a write
answered other than 200/202), p50 and p99.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import Consumer, Producer, TopicPartition

from bench.api import API_WORKERS, cases, seed_read_models, start_api, wait_answering
from bench.load import summary
from bench.replay import partition_ends
from bench.seed import live_image
from projections.db import make_engine
from schemas.topics import ENRICHMENTS, STAGE_INPUTS, producer_settings
from vigil.devservices.stack import start_stack

WRITE_EVERY_S = 5.0
CLIENT_CONNECTIONS = 64


def _hand_stage_offsets(bootstrap: str) -> list[str]:
    """The seeded history is what the pipeline already processed: each stage group that has
    no committed offsets gets the end of its inputs, so the worker starts on new messages
    (not on a million seeded ones, whose images are not on disk). The groups given them."""
    ends = partition_ends(bootstrap)
    handed = []
    for group, topics in STAGE_INPUTS.items():
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
        try:
            names = {topic.name for topic in topics}
            positions = [TopicPartition(t, p, end) for (t, p), end in ends.items() if t in names]
            if not positions:
                continue
            committed = consumer.committed(positions, timeout=10)
            if all(position.offset < 0 for position in committed):
                consumer.commit(offsets=positions, asynchronous=False)
                handed.append(group)
        finally:
            consumer.close()
    return handed


class _Tally:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.statuses: Counter[str] = Counter()
        self.errors = 0
        self.wall_s: float | None = None  # sent until the last answer

    def add(self, status: str, latency: float, ok: bool) -> None:
        self.statuses[status] += 1
        if ok:
            self.latencies.append(latency)
        else:
            self.errors += 1

    def report(self, seconds: float) -> dict[str, Any]:
        report = {**summary(self.latencies, self.errors, seconds), "statuses": dict(self.statuses)}
        if self.wall_s is not None:  # what the server got through: answers/s until the last
            report["wall_s"] = round(self.wall_s, 1)
            report["answered_per_s"] = round(len(self.latencies) / self.wall_s, 1)
        return report


async def _timed(tally: _Tally, send, since: float, writes: bool) -> Any:
    try:
        reply = await send()
    except httpx.HTTPError as exc:
        tally.add(type(exc).__name__, time.perf_counter() - since, False)
        return None
    ok = reply.status_code in (200, 202) if writes else reply.status_code < 500
    tally.add(str(reply.status_code), time.perf_counter() - since, ok)
    return reply


async def _reads(client, requests: list[str], rate: float, duration_s: float) -> _Tally:
    tally = _Tally()
    started = time.perf_counter()
    tasks = []
    for n in range(int(rate * duration_s)):
        due = started + n / rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        request = requests[n % len(requests)]
        send = partial(client.get, request)
        tasks.append(asyncio.create_task(_timed(tally, send, due, False)))
    await asyncio.gather(*tasks)
    tally.wall_s = time.perf_counter() - started
    return tally


async def _writes(client, producer: Producer, duration_s: float) -> dict[str, _Tally]:
    flushes, requeues = _Tally(), _Tally()
    until = time.perf_counter() + duration_s
    n = 0
    while time.perf_counter() < until:
        began = time.perf_counter()
        camera = f"bench-load-{n % 4}"
        image = live_image(camera, seed=random.getrandbits(64))  # a new image every time
        producer.produce(ENRICHMENTS.name, ENRICHMENTS.encode(image), key=camera.encode())
        producer.flush(10)
        requeue = partial(client.post, "/api/dlq/requeue/dlq:detection_queue")
        await _timed(requeues, requeue, time.perf_counter(), True)
        batch = None
        while batch is None and time.perf_counter() < began + 30:
            active = (await client.get("/api/batches/active", params={"camera_id": camera})).json()
            batch = next(iter(active.get("batches") or []), None)
            await asyncio.sleep(0.1)
        if batch is None:
            flushes.add("batch never opened", 0.0, False)
        else:
            flush = partial(client.post, f"/api/batches/{batch['batch_id']}/flush")
            await _timed(flushes, flush, time.perf_counter(), True)
        n += 1
        await asyncio.sleep(max(0.0, began + WRITE_EVERY_S - time.perf_counter()))
    return {"flush": flushes, "dlq_requeue": requeues}


async def _run(base: str, bootstrap: str, requests, rate, duration_s) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=CLIENT_CONNECTIONS)
    producer = Producer(producer_settings(bootstrap))
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30, trust_env=False) as c:
        reads, writes = await asyncio.gather(
            _reads(c, requests, rate, duration_s), _writes(c, producer, duration_s)
        )
    return {
        "reads": reads.report(duration_s),
        **{kind: tally.report(duration_s) for kind, tally in writes.items()},
    }


def main(state_dir: Path, detections: int, rate: float, duration_s: float) -> dict[str, Any]:
    stack = start_stack(state_dir)
    try:
        engine = make_engine(stack.database_url)
        try:
            seeding = seed_read_models(stack, engine, detections)
            stages = _hand_stage_offsets(stack.kafka_bootstrap)
            requests = list(cases(engine).values())
        finally:
            engine.dispose()
        stack.start_app("projector")
        stack.start_app("worker")
        base = start_api(stack)
        wait_answering(base + "/api/system/health")
        measured = asyncio.run(_run(base, stack.kafka_bootstrap, requests, rate, duration_s))
        report = {
            "seeding": seeding,
            "offsets_handed_to_stages": stages,
            "api_workers": API_WORKERS, "rate_per_s": rate, "duration_s": duration_s,
            **measured,
        }  # fmt: skip
        print(json.dumps(report, indent=1))
        return report
    finally:
        stack.stop()
