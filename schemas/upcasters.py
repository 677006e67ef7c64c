"""Upcasters: each turns a message of one event type from one `schema_version` into the next.

Every reader decodes through `schemas.codec.decode`, which runs a message written under an
older version through each upcaster from its version to the current one before validating it,
so agents, the projector, the API's live feed and a replay all read every version a topic
holds as the current one. An upcaster is kept for as long as a topic may hold its version
(Vigil's topics are never deleted: that is forever). It works on the message's JSON document
and must derive what it adds from what the older version carried, so that a history read
through it is the history the newer producer would have written.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Document = dict[str, Any]
Upcaster = Callable[[Document], Document]

# (event_type, version it reads) -> the upcaster to the version after it.
UPCASTERS: dict[tuple[str, int], Upcaster] = {}


def upcaster(event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
    def keep(step: Upcaster) -> Upcaster:
        if (event_type, from_version) in UPCASTERS:
            raise ValueError(f"two upcasters from {event_type} v{from_version}")
        UPCASTERS[(event_type, from_version)] = step
        return step

    return keep


@upcaster("BatchClosed", 1)
def batch_closed_counts_its_images(document: Document) -> Document:
    """v2 adds `image_count`: how many images the batch's detections came from, so that a
    consumer sizing the work a batch makes (the vision model sees each image once) need not
    walk `detections`."""
    images = {detection["image_id"] for detection in document["detections"]}
    return {**document, "image_count": len(images)}


def _closed_batch_v2(batch: Document) -> Document:
    if batch.get("schema_version", 1) >= 2:
        return batch
    return {**batch_closed_counts_its_images(batch), "schema_version": 2}


def _carried_batch_v2(document: Document) -> Document:
    """The commands that carry a closed batch (to analyse, replay, evaluate or test it again)
    went to v2 with BatchClosed: their batch is upcast the same way."""
    return {**document, "batch": _closed_batch_v2(document["batch"])}


for _command in ("ReanalyseBatch", "ReplayPrompt", "EvaluateEvent", "TestPrompt"):
    upcaster(_command, 1)(_carried_batch_v2)
