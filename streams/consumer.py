"""The worker's Kafka consumer: Faust's aiokafka consumer, with the seek after a rebalance
made safe. Without it a message can be lost for good when a worker takes partitions over.

What goes wrong in Faust (faust-streaming 0.15, `Recovery.on_recovery_completed`): once the
tables are restored, recovery resumes the stream partitions and only then seeks them to
their committed offsets, while the flow into the agents is already open. Records fetched
during that seek reach the agents' queues; the first may be taken by its agent at once,
and `flow_control.resume()` just after empties the queues of the rest. The seek is meant to
fetch those again, but aiokafka's `seek_to_committed` does not move a partition whose
committed offset is missing or 0, so the records that were emptied out are never fetched
again. Seen as a batch audit that stalled: a worker killed before its first commit, the
worker that took over evaluated the first command of the partition and never saw the
second, whose offset was committed past once the next one was acked.

`perform_seek` here closes the flow before seeking (so nothing fetched before the seek is
delivered; recovery opens it again afterwards, as it always does), and `seek_to_committed`
moves a stream partition without a committed offset to its beginning (the group's
`auto_offset_reset` is "earliest"), so every record after the seek is fetched from where
the group really stands.
"""

from __future__ import annotations

from collections.abc import Mapping

import faust
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.drivers.aiokafka import Consumer as AIOKafkaConsumer
from faust.types import TP


class ReadCommittedThread(AIOKafkaConsumerThread):
    """Faust's consumer reads only committed transactions (Faust sets `read_committed` only
    under its own exactly-once mode): the transactional stages' outputs are read once their
    transaction commits, and never when it is aborted."""

    def _create_worker_consumer(self, transport):
        consumer = super()._create_worker_consumer(transport)
        consumer._isolation_level = "read_committed"
        return consumer


class RecoverySafeConsumer(AIOKafkaConsumer):
    def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
        return ReadCommittedThread(self, loop=self.loop, beacon=self.beacon)

    async def perform_seek(self) -> None:
        self.app.flow_control.suspend()
        self.stop_flow()
        await super().perform_seek()

    async def seek_to_committed(self) -> Mapping[TP, int]:
        committed = await super().seek_to_committed()
        for tp, offset in committed.items():
            if not offset and not self._is_changelog_tp(tp):
                await self.seek(tp, 0)
        return committed


def use_recovery_safe_consumer(app: faust.App) -> None:
    """Make `app` consume with `RecoverySafeConsumer`; before its consumer is first made."""
    if app._consumer is not None:
        raise RuntimeError("the app's consumer exists already")
    app.transport.Consumer = RecoverySafeConsumer
