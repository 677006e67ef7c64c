"""The `nemotron` model (CPU config: SmolLM2-135M via llama.cpp) on a real tritonserver.

No mocks: the packages are installed into the Triton venv by the project's own
installer, the server is started by the launcher, requests go through
`tritonclient.http`. SmolLM2's judgement is poor, so these tests check the contract
(schema-constrained decoding, token counts, reproducibility, errors), not the
quality of the risk assessment.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import jsonschema
import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from schemas.analysis import RiskAssessment, risk_json_schema
from vigil.devservices.triton import TritonService, ensure_triton_venv, start_triton
from vigil.devservices.triton_llm import ensure_llm_packages

pytestmark = pytest.mark.services

MODEL = "nemotron"
N_CTX = 4096  # config.pbtxt parameter n_ctx

RISK_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["risk_score", "risk_level", "summary", "reasoning"],
    "properties": {
        "risk_score": {"type": "integer", "minimum": 0, "maximum": 100},
        "risk_level": {"type": "string", "enum": ["low", "medium", "high", "critical"]},
        "summary": {"type": "string", "minLength": 1, "maxLength": 300},
        "reasoning": {"type": "string", "minLength": 1, "maxLength": 1000},
    },
}
SYSTEM = (
    "You are a security analyst. Assess the risk of the camera events you are given "
    "and answer with a JSON object with risk_score (0-100), risk_level "
    "(low, medium, high or critical), summary and reasoning."
)
EVENTS = (
    "Camera gate-1, 02:14 at night. Detections: person (0.91) at the fence, "
    "person (0.88) climbing the gate, car (0.75) parked outside with lights off. "
    "No badge swipe recorded."
)


@dataclass(frozen=True)
class Answer:
    text: str
    tokens_in: int
    tokens_out: int


@pytest.fixture(scope="module")
def triton(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonService]:
    ensure_llm_packages(ensure_triton_venv())
    service = start_triton(tmp_path_factory.mktemp("triton"), [MODEL])
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="module")
def client(triton: TritonService) -> Iterator[httpclient.InferenceServerClient]:
    client = httpclient.InferenceServerClient(triton.http_url, network_timeout=300)
    try:
        yield client
    finally:
        client.close()


def _input(name: str, value: object, datatype: str) -> httpclient.InferInput:
    tensor = httpclient.InferInput(name, [1], datatype)
    if datatype == "BYTES":
        array = np.array([str(value).encode("utf-8")], dtype=np.object_)
    elif datatype == "FP32":
        array = np.array([value], dtype=np.float32)
    else:
        array = np.array([value], dtype=np.int32)
    tensor.set_data_from_numpy(array)
    return tensor


def ask(
    client: httpclient.InferenceServerClient,
    prompt: str = EVENTS,
    *,
    system: str = SYSTEM,
    temperature: float = 0.0,
    max_tokens: int = 256,
    schema: dict | str | None = None,
    skip: tuple[str, ...] = (),
) -> Answer:
    inputs = {
        "SYSTEM_PROMPT": _input("SYSTEM_PROMPT", system, "BYTES"),
        "PROMPT": _input("PROMPT", prompt, "BYTES"),
        "TEMPERATURE": _input("TEMPERATURE", temperature, "FP32"),
        "MAX_TOKENS": _input("MAX_TOKENS", max_tokens, "INT32"),
    }
    if schema is not None:
        text = schema if isinstance(schema, str) else json.dumps(schema)
        inputs["JSON_SCHEMA"] = _input("JSON_SCHEMA", text, "BYTES")
    result = client.infer(
        MODEL,
        [tensor for name, tensor in inputs.items() if name not in skip],
        outputs=[httpclient.InferRequestedOutput(n) for n in ("TEXT", "TOKENS_IN", "TOKENS_OUT")],
    )
    return Answer(
        text=result.as_numpy("TEXT").reshape(-1)[0].decode("utf-8"),
        tokens_in=int(result.as_numpy("TOKENS_IN").reshape(-1)[0]),
        tokens_out=int(result.as_numpy("TOKENS_OUT").reshape(-1)[0]),
    )


def rejection(client: httpclient.InferenceServerClient, **kwargs: object) -> str:
    with pytest.raises(InferenceServerException) as caught:
        ask(client, **kwargs)  # type: ignore[arg-type]
    return caught.value.message()


def test_risk_answer_follows_the_schema(client: httpclient.InferenceServerClient) -> None:
    answer = ask(client, schema=RISK_SCHEMA)
    risk = json.loads(answer.text)
    jsonschema.validate(risk, RISK_SCHEMA)
    assert isinstance(risk["risk_score"], int) and 0 <= risk["risk_score"] <= 100
    assert risk["risk_level"] in ("low", "medium", "high", "critical")
    assert risk["summary"].strip() and risk["reasoning"].strip()
    assert answer.tokens_in > 0 and answer.tokens_out > 0


def test_the_analysis_agents_banded_schema_gives_a_valid_assessment(
    client: httpclient.InferenceServerClient,
) -> None:
    # The schema the analysis agent sends: one object per risk band (oneOf), the score
    # range of each band bound to its level.
    for temperature in (0.0, 0.8):
        answer = ask(client, temperature=temperature, max_tokens=1500, schema=risk_json_schema())
        RiskAssessment.model_validate_json(answer.text)


def test_sampled_risk_answer_follows_the_schema(client: httpclient.InferenceServerClient) -> None:
    # Room for the longest answer the schema allows (1300 characters of strings), so
    # the token limit cannot cut it short whatever the sampler picks.
    answer = ask(client, temperature=0.8, max_tokens=1500, schema=RISK_SCHEMA)
    jsonschema.validate(json.loads(answer.text), RISK_SCHEMA)


def test_token_counts_follow_the_request(client: httpclient.InferenceServerClient) -> None:
    short = ask(client, "Gate camera: nothing moving.", max_tokens=8)
    longer = ask(client, "Gate camera: nothing moving. " * 20, max_tokens=8)
    assert 0 < short.tokens_in < longer.tokens_in
    assert 0 < short.tokens_out <= 8


def test_temperature_zero_is_reproducible(client: httpclient.InferenceServerClient) -> None:
    first = ask(client, schema=RISK_SCHEMA)
    ask(client, "Something else entirely, to change the server's state.", max_tokens=16)
    second = ask(client, schema=RISK_SCHEMA)
    assert first == second


def test_without_schema_the_answer_is_free_text(client: httpclient.InferenceServerClient) -> None:
    answer = ask(
        client,
        "In one sentence: why do security cameras record at night?",
        system="You are a helpful assistant.",
        max_tokens=48,
    )
    assert answer.text.strip()
    assert not answer.text.lstrip().startswith("{")
    assert 0 < answer.tokens_out <= 48


def test_answer_cut_by_max_tokens_is_returned_as_generated(
    client: httpclient.InferenceServerClient,
) -> None:
    answer = ask(client, schema=RISK_SCHEMA, max_tokens=6)
    assert answer.tokens_out == 6
    assert answer.text.startswith("{")
    with pytest.raises(json.JSONDecodeError):
        json.loads(answer.text)


def test_empty_prompt_is_refused(client: httpclient.InferenceServerClient) -> None:
    assert "PROMPT is empty" in rejection(client, prompt="   \n")


def test_max_tokens_must_be_positive(client: httpclient.InferenceServerClient) -> None:
    assert "MAX_TOKENS must be > 0" in rejection(client, max_tokens=0)
    assert "MAX_TOKENS must be > 0" in rejection(client, max_tokens=-5)


def test_negative_temperature_is_refused(client: httpclient.InferenceServerClient) -> None:
    assert "TEMPERATURE" in rejection(client, temperature=-1.0)


def test_prompt_beyond_the_context_is_refused(client: httpclient.InferenceServerClient) -> None:
    message = rejection(client, prompt="camera event " * 3000)
    assert "context length exceeded" in message
    assert f"> {N_CTX}" in message


def test_prompt_plus_max_tokens_beyond_the_context_is_refused(
    client: httpclient.InferenceServerClient,
) -> None:
    assert "context length exceeded" in rejection(client, max_tokens=N_CTX)


def test_bad_schemas_are_refused(client: httpclient.InferenceServerClient) -> None:
    assert "JSON_SCHEMA is not valid JSON" in rejection(client, schema="{not json")
    assert "JSON_SCHEMA is empty" in rejection(client, schema=" ")
    unbounded = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 0}}}
    assert "closed range" in rejection(client, schema=unbounded)


def test_missing_input_is_refused(client: httpclient.InferenceServerClient) -> None:
    message = rejection(client, skip=("PROMPT",))
    assert "PROMPT" in message


def test_model_still_answers_after_errors(client: httpclient.InferenceServerClient) -> None:
    rejection(client, prompt="")
    rejection(client, prompt="camera event " * 3000)
    rejection(client, schema="[")
    risk = json.loads(ask(client, schema=RISK_SCHEMA).text)
    jsonschema.validate(risk, RISK_SCHEMA)
