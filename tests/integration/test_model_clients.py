"""The worker's model clients against the session's real Triton: good input, input the
model refuses, and a model that fails (the `faulty-*` fault models, a model that is not
loaded, a server that is not there). Refused input is permanent and never counts against
the model's breaker; a failing model is transient and does.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from schemas.analysis import RiskAssessment
from schemas.detections import BoundingBox
from streams.analysis_agent import AnalysisDeps, analyst_request, on_batch_closed
from streams.analyst import AnalystRequest, AnalystUnavailable, PromptRejected, TritonAnalyst
from streams.breaker import BreakerConfig
from streams.breaker_board import BreakerBoard
from streams.detector import DetectorUnavailable, TritonDetector
from streams.enricher import EnricherUnavailable, TritonEnricher
from streams.errors import InvalidImage
from streams.prompts import PromptBook
from streams.retry import RetryPolicy
from tests.factories import closed_batch, detection
from vigil.devservices.procs import free_port

pytestmark = pytest.mark.services

NO_WAIT = RetryPolicy(max_attempts=3, base_delay_s=0, jitter=0)
T0 = datetime(2026, 6, 1, 23, 15, tzinfo=UTC)


@pytest.fixture
def board() -> BreakerBoard:
    return BreakerBoard("contract-tests", BreakerConfig(failure_threshold=5))


@pytest.fixture
async def clients(stack, board):
    """Make a client of any class for any model, its calls under `board`; closed after."""
    made = []

    def make(cls, model: str, url: str | None = None, **options):
        client = cls(url or stack.triton_url, model, timeout_s=120, **options)
        client.breaker = board.breaker(model)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()


def _counts(board: BreakerBoard, name: str) -> tuple[str, int, int]:
    breaker = board.breakers[name]
    return breaker.state, breaker.failure_count, breaker.total_calls


# --- detector -----------------------------------------------------------------------------


async def test_detector_finds_the_people_and_the_bus(clients, board, samples):
    result = await clients(TritonDetector, "centernet").detect(samples["bus.jpg"].read_bytes())
    labels = [d.label for d in result.detections]
    assert labels.count("person") >= 2 and "bus" in labels
    assert (result.image_width, result.image_height) == (810, 1080)
    assert (result.model_name, result.model_version) == ("centernet", "1")
    assert all(0.3 <= d.confidence <= 1 for d in result.detections)
    assert _counts(board, "centernet") == ("closed", 0, 1)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"this is a text file", "invalid image: not a decodable image"),
        (b"", "invalid image: empty payload (0 bytes)"),
    ],
)
async def test_detector_refuses_what_is_not_an_image_without_blaming_the_model(
    clients, board, data, reason
):
    detector = clients(TritonDetector, "centernet")
    for _ in range(6):  # past the breaker's threshold of 5
        with pytest.raises(InvalidImage, match=re.escape(reason)):
            await detector.detect(data)
    assert _counts(board, "centernet") == ("closed", 0, 6)


async def test_a_failing_detector_is_unavailable_and_opens_its_breaker(clients, board, samples):
    detector = clients(TritonDetector, "faulty-detector")
    for _ in range(5):
        with pytest.raises(DetectorUnavailable, match=r"faulty-detector is failing \(status 500\)"):
            await detector.detect(samples["bus.jpg"].read_bytes())
    assert _counts(board, "faulty-detector") == ("open", 5, 5)


async def test_a_model_that_is_not_loaded_is_unavailable(clients, board, samples):
    detector = clients(TritonDetector, "no-such-detector")
    with pytest.raises(DetectorUnavailable, match=r"is not found \(status 404\)"):
        await detector.detect(samples["bus.jpg"].read_bytes())
    assert _counts(board, "no-such-detector")[:2] == ("closed", 1)


async def test_a_server_that_is_not_there_is_unavailable(clients, board, samples):
    detector = clients(TritonDetector, "centernet", url=f"127.0.0.1:{free_port()}")
    with pytest.raises(DetectorUnavailable, match="centernet: "):
        await detector.detect(samples["bus.jpg"].read_bytes())
    assert _counts(board, "centernet")[:2] == ("closed", 1)


# --- enricher -----------------------------------------------------------------------------


async def test_enricher_describes_a_person(clients, board, samples):
    person = detection("person", bbox=BoundingBox(x1=50, y1=400, x2=245, y2=905))
    result = await clients(TritonEnricher, "crop-attributes").describe(
        samples["bus.jpg"].read_bytes(), [person]
    )
    [crop] = result.crops
    assert crop.description.startswith("Person")
    assert crop.attributes["kind"] == "person"
    assert 0 <= crop.confidence <= 1
    assert (result.model_name, result.model_version) == ("crop-attributes", "1")
    assert _counts(board, "crop-attributes") == ("closed", 0, 1)


async def test_enricher_refuses_a_box_outside_the_image(clients, board, samples):
    outside = detection("person", bbox=BoundingBox(x1=5000, y1=5000, x2=5100, y2=5200))
    with pytest.raises(InvalidImage, match=r"invalid request: box 0 .* is empty after clipping"):
        await clients(TritonEnricher, "crop-attributes").describe(
            samples["bus.jpg"].read_bytes(), [outside]
        )
    assert _counts(board, "crop-attributes") == ("closed", 0, 1)


async def test_a_failing_enricher_is_unavailable(clients, board, samples):
    enricher = clients(TritonEnricher, "faulty-enricher")
    with pytest.raises(EnricherUnavailable, match=r"faulty-enricher is failing \(status 500\)"):
        await enricher.describe(samples["bus.jpg"].read_bytes(), [detection("person")])
    assert _counts(board, "faulty-enricher")[:2] == ("closed", 1)


# --- analyst ------------------------------------------------------------------------------


async def test_analyst_answers_a_batch_with_a_valid_assessment(clients, board):
    request = analyst_request(
        closed_batch(["person", "car"], at=T0), PromptBook().current("nemotron")
    )
    answer = await clients(TritonAnalyst, "nemotron").answer(request)
    RiskAssessment.model_validate_json(answer.text)
    assert answer.tokens_in > 0 and answer.tokens_out > 0
    assert (answer.model_name, answer.model_version) == ("nemotron", "1")
    assert _counts(board, "nemotron") == ("closed", 0, 1)


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ({"prompt": "   "}, "PROMPT is empty"),
        ({"max_tokens": 0}, "MAX_TOKENS must be > 0, got 0"),
        ({"json_schema": {"type": "frobnicate"}}, "JSON_SCHEMA cannot be turned into a grammar"),
    ],
    ids=["empty-prompt", "no-tokens", "bad-schema"],
)
async def test_a_request_the_analyst_refuses_is_dead_lettered_after_one_attempt(
    clients, board, bad, reason
):
    analyst = clients(TritonAnalyst, "nemotron")

    def refused_request(batch, prompt) -> AnalystRequest:
        return replace(analyst_request(batch, prompt), **bad)

    deps = AnalysisDeps(analyst, NO_WAIT, PromptBook(), "nemotron", "contract", refused_request)
    outcome = await on_batch_closed(closed_batch(["person"], at=T0), 0, deps)
    failure = outcome.failure
    assert (type(failure.error), failure.attempts) == (PromptRejected, 1)
    assert reason in str(failure.error)
    [audit] = [item.message for item in outcome.publish]
    assert (audit.outcome, audit.attempt) == ("error", 1)
    assert outcome.state is None
    assert _counts(board, "nemotron") == ("closed", 0, 1)


async def test_a_failing_analyst_is_unavailable_after_every_attempt(clients, board):
    analyst = clients(TritonAnalyst, "scripted-analyst")
    deps = AnalysisDeps(analyst, NO_WAIT, PromptBook(), "nemotron", "contract")
    batch = closed_batch(["person"], at=T0, camera_id="cam-unavailable")
    outcome = await on_batch_closed(batch, 0, deps)
    assert (type(outcome.failure.error), outcome.failure.attempts) == (AnalystUnavailable, 3)
    assert "scripted failure: model unavailable (status 500)" in str(outcome.failure.error)
    assert _counts(board, "scripted-analyst") == ("closed", 3, 3)


# --- the analyst over the vLLM backend's contract (the `vllm-analyst` stand-in) --------------


@pytest.fixture
def vllm_analyst(clients, stack):
    return clients(TritonAnalyst, "vllm-analyst", grpc_url=stack.triton_grpc_url)


async def test_the_vllm_contract_is_read_from_the_models_configuration(vllm_analyst, clients):
    contract = await vllm_analyst.contract()
    assert contract is not None
    assert (contract.bos_token, contract.schema_parameter) == ("<s>", "guided_decoding")
    assert await clients(TritonAnalyst, "scripted-analyst").contract() is None


async def test_the_vllm_analyst_answers_over_the_grpc_stream(vllm_analyst, board):
    request = analyst_request(
        closed_batch(["person", "car"], at=T0, camera_id="cam-vllm"),
        PromptBook().current("nemotron"),
    )
    answer = await vllm_analyst.answer(request)
    assessment = RiskAssessment.model_validate_json(answer.text)
    assert (assessment.risk_score, assessment.risk_level) == (42, "medium")
    # The stand-in counts words: the rendered prompt's, and the answer's.
    assert answer.tokens_in > len(request.prompt.split()) and answer.tokens_out == len(
        answer.text.split()
    )
    assert (answer.model_name, answer.model_version) == ("vllm-analyst", "1")
    assert _counts(board, "vllm-analyst") == ("closed", 0, 1)


async def test_a_failing_vllm_analyst_is_unavailable_and_counts_against_its_breaker(
    vllm_analyst, board
):
    deps = AnalysisDeps(vllm_analyst, NO_WAIT, PromptBook(), "nemotron", "contract")
    batch = closed_batch(["person"], at=T0, camera_id="cam-unavailable")
    outcome = await on_batch_closed(batch, 0, deps)
    assert (type(outcome.failure.error), outcome.failure.attempts) == (AnalystUnavailable, 3)
    assert "vllm-analyst: scripted failure: model unavailable" in str(outcome.failure.error)
    assert _counts(board, "vllm-analyst") == ("closed", 3, 3)


async def test_a_vllm_analyst_whose_grpc_endpoint_is_not_there_is_unavailable(clients, board):
    nowhere = clients(TritonAnalyst, "vllm-analyst", grpc_url=f"127.0.0.1:{free_port()}")
    request = analyst_request(closed_batch(["person"], at=T0), PromptBook().current("nemotron"))
    with pytest.raises(AnalystUnavailable, match=r"gRPC StatusCode\.UNAVAILABLE"):
        await nowhere.answer(request)
    assert _counts(board, "vllm-analyst") == ("closed", 1, 1)
