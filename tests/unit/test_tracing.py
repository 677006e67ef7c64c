"""Traces across the topics: a stage's decision continues the trace its message names (its
`traceparent` header, or else its envelope's trace id), model calls nest in it, and what the
decision publishes names it. Spans are read from the in-memory exporter."""

from __future__ import annotations

import pytest
from opentelemetry.trace import SpanKind

from schemas.codec import encode
from schemas.topics import DETECTIONS, IMAGES
from streams.breaker import CircuitBreaker
from streams.errors import InvalidImage
from streams.stage import Failure, Outcome, Publish, Received, Stage
from tests.factories import detections_event, image_event
from vigil import tracing

STAGE = Stage("detection", "worker-1/detection")
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


def _received(image, headers=None) -> Received:
    return Received(IMAGES.name, 0, 7, image.camera_id.encode(), encode(image), headers)


async def test_a_decision_continues_the_trace_of_its_traceparent_header(spans):
    image = image_event()  # its envelope names another trace: the header wins
    published = Publish(DETECTIONS, image.camera_id, detections_event(image, ["person"]))
    breaker = CircuitBreaker("yolo26")

    async def infer() -> None:
        return None

    async def handle() -> Outcome:
        await breaker.call(infer)
        return Outcome(publish=(published,))

    header = [("traceparent", f"00-{TRACE}-{PARENT}-01".encode())]
    outcome = await STAGE.decide(image, handle, _received(image, header))

    model_call, decision = spans.get_finished_spans()
    assert (decision.name, decision.kind) == ("detection vigil.images", SpanKind.CONSUMER)
    assert format(decision.context.trace_id, "032x") == TRACE
    assert format(decision.parent.span_id, "016x") == PARENT
    assert (model_call.name, model_call.kind) == ("infer yolo26", SpanKind.CLIENT)
    assert model_call.parent.span_id == decision.context.span_id
    span_id = format(decision.context.span_id, "016x")
    assert outcome.traceparent == f"00-{TRACE}-{span_id}-01"
    [sent] = STAGE.publications(_received(image), image, outcome)
    assert sent.traceparent == outcome.traceparent
    assert tracing.headers_for(sent.traceparent) == [("traceparent", outcome.traceparent.encode())]


async def test_a_message_without_the_header_joins_its_envelope_trace(spans):
    image = image_event()
    outcome = await STAGE.decide(
        image, lambda: Outcome(failure=Failure(InvalidImage("bad"))), _received(image)
    )
    [decision] = spans.get_finished_spans()
    assert format(decision.context.trace_id, "032x") == image.trace_id
    assert decision.parent.is_remote
    [letter] = STAGE.publications(_received(image), image, outcome)
    assert letter.message.trace_id == image.trace_id
    assert letter.traceparent == outcome.traceparent
    assert image.trace_id in outcome.traceparent


async def test_a_header_that_is_no_traceparent_falls_back_to_the_envelope(spans):
    image = image_event()
    garbled = [("traceparent", b"00-not-a-trace-01"), ("other", None)]
    await STAGE.decide(image, Outcome, _received(image, garbled))
    [decision] = spans.get_finished_spans()
    assert format(decision.context.trace_id, "032x") == image.trace_id


def test_an_envelope_trace_id_that_is_no_w3c_id_starts_a_new_trace():
    assert tracing.parent_of(None, "not-hex") is None
    assert tracing.parent_of(None, "0" * 32) is None
    assert tracing.parent_of(None, None) is None


async def test_an_item_that_names_its_own_span_keeps_it(spans):
    image = image_event()
    own = f"00-{TRACE}-{PARENT}-01"
    item = Publish(IMAGES, image.camera_id, image, traceparent=own)
    outcome = await STAGE.decide(image, lambda: Outcome(publish=(item,)), _received(image))
    [sent] = STAGE.publications(_received(image), image, outcome)
    assert sent.traceparent == own != outcome.traceparent


async def test_without_the_received_message_no_span_is_made(spans):
    image = image_event()
    outcome = await STAGE.decide(image, Outcome)
    assert spans.get_finished_spans() == () and outcome.traceparent is None


async def test_the_end_of_a_partition_is_no_span(spans):
    # What the transactional stage submits to move an offset past a partition's end.
    end = Received(IMAGES.name, 0, 7, None, None)
    await STAGE.decide(None, Outcome, end)
    assert spans.get_finished_spans() == ()


def test_an_unknown_exporter_is_refused_naming_it():
    with pytest.raises(tracing.UnknownExporter, match="'jaeger'"):
        tracing._exporter("jaeger")
