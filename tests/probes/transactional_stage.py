"""A transactional stage alone, run as its own process for tests of exactly-once delivery:
`python -m tests.probes.transactional_stage BOOTSTRAP GROUP INPUT OUTPUT WORKER_ID [FAULT]`.

It is `streams.transactional.TransactionalStage` as the detection stage runs it (several
messages in flight, state per image), on topics of the test's own: every `ImageReceived` on
INPUT is answered, after a pause that keeps several in flight, with one `DetectionsProduced`
on OUTPUT, unless the image was answered before. A partition without an offset starts
where the group GROUP-before had got to.

FAULT `lost-commit-replies`: the process's 3rd and 8th commits are done and then reported
as timed out (a retriable error), as when the coordinator's reply is lost on the way back.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import signal
import sys

from confluent_kafka import KafkaError, KafkaException

from schemas.images import ImageReceived
from schemas.topics import DETECTIONS, IMAGES
from streams.stage import Outcome, Publish, Stage
from streams.transactional import TransactionalStage
from tests.factories import detections_event
from vigil.settings import Settings

IN_FLIGHT = 4


LOST_REPLIES = (3, 8)


class LostCommitReplies:
    """A transactional producer whose commits numbered in `LOST_REPLIES` (counted over the
    process's producers) succeed and then raise a retriable timeout (fault injection: the
    reply lost, not the commit)."""

    commits = 0

    def __init__(self, producer) -> None:
        self._producer = producer

    def __getattr__(self, name: str):
        return getattr(self._producer, name)

    def commit_transaction(self, *args) -> None:
        self._producer.commit_transaction(*args)
        LostCommitReplies.commits += 1
        if LostCommitReplies.commits in LOST_REPLIES:
            logging.info("commit %d done; reporting it timed out", LostCommitReplies.commits)
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "reply lost", retriable=True))


class FaultyStage(TransactionalStage):
    def _open_producer(self) -> None:
        super()._open_producer()
        self._producer = LostCommitReplies(self._producer)


def topics(input_name: str, output_name: str):
    return dataclasses.replace(IMAGES, name=input_name), dataclasses.replace(
        DETECTIONS, name=output_name
    )


async def main(
    bootstrap: str, group: str, input_name: str, output_name: str, worker: str, fault: str = ""
) -> None:
    source, target = topics(input_name, output_name)
    settings = Settings(
        kafka_bootstrap_servers=bootstrap,
        worker_id=worker,
        worker_session_timeout_s=6,
        transaction_timeout_s=5,
    )

    async def answer(image: ImageReceived, answered: bool) -> Outcome:
        if answered:
            return Outcome()
        await asyncio.sleep(random.uniform(0.05, 0.2))
        produced = detections_event(image, ["person"]).model_copy(update={"producer": worker})
        return Outcome(publish=(Publish(target, image.camera_id, produced),), state=True)

    def route(message, state):
        if not isinstance(message, ImageReceived):
            return None
        return message.image_id, lambda: answer(message, bool(state(message.image_id)))

    kinds = {"": TransactionalStage, "lost-commit-replies": FaultyStage}
    stage = kinds[fault](
        Stage("detection", f"{worker}/probe"),
        group,
        {source: route},
        settings,
        limit=IN_FLIGHT,
        once_per_key=True,
        continues=f"{group}-before",
    )
    running = asyncio.ensure_future(stage.run_forever())
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, running.cancel)
    try:
        await running
    except asyncio.CancelledError:
        logging.info("stopped")


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    asyncio.run(main(*sys.argv[1:7]))
