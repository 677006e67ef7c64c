"""A minimal Faust worker for tests of the worker's consumer, run as its own process:
`python -m tests.probes.faust_offsets BOOTSTRAP TOPIC GROUP OUT SAFE`.

It has one table (so a start goes through table recovery, as a worker's does after a
rebalance, when the table's changelog has records), one
agent that appends the offset of every record of TOPIC it is given to OUT, one per line,
and one that follows an idle topic of IDLE_PARTITIONS partitions, so that, as in the worker,
the seek after a rebalance has as many partitions to look up.
SAFE=1 consumes with the worker's `RecoverySafeConsumer`, SAFE=0 with Faust's own.
"""

from __future__ import annotations

import sys

import faust

from streams.consumer import use_recovery_safe_consumer

IDLE_PARTITIONS = 48
TABLE = "probe-seen"


def changelog_of(group: str) -> str:
    return f"{group}-{TABLE}-changelog"


def main(bootstrap: str, topic: str, group: str, out: str, safe: str) -> None:
    app = faust.App(
        group,
        broker=f"kafka://{bootstrap}",
        store="memory://",
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        topic_partitions=1,
        topic_replication_factor=1,
        key_serializer="raw",
        value_serializer="raw",
    )
    if safe == "1":
        use_recovery_safe_consumer(app)
    # Only restored, never written: its changelog is filled by the test before the start.
    app.Table(TABLE, partitions=1)
    source = app.topic(topic, partitions=1, key_serializer="raw", value_serializer="raw")
    idle = app.topic(
        f"{topic}-idle", partitions=IDLE_PARTITIONS, key_serializer="raw", value_serializer="raw"
    )

    @app.agent(idle)
    async def ignore(stream: faust.StreamT) -> None:
        async for _ in stream:
            pass

    @app.agent(source)
    async def record(stream: faust.StreamT) -> None:
        with open(out, "a") as offsets:
            async for event in stream.events():
                offsets.write(f"{event.message.offset}\n")
                offsets.flush()

    faust.Worker(app, loglevel="INFO").execute_from_commandline()


if __name__ == "__main__":
    main(*sys.argv[1:6])
