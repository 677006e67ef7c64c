"""The LLM that assesses a batch's risk, and its Triton client.

Contract of the `nemotron` model on Triton: inputs `SYSTEM_PROMPT`, `PROMPT`,
`TEMPERATURE`, `MAX_TOKENS`, optionally `JSON_SCHEMA` (which constrains the
output) and `SEED` (the request's sampling seed); outputs `TEXT` (the raw answer,
never repaired), `TOKENS_IN`, `TOKENS_OUT`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import tritonclient.http.aio as triton_http

from streams.errors import InvalidModelInput, ModelUnavailable
from streams.triton import TritonModel, bytes_input


class AnalystUnavailable(ModelUnavailable):
    error_type = "AnalystUnavailable"


class PromptRejected(InvalidModelInput):
    error_type = "PromptRejected"


@dataclass(frozen=True)
class AnalystRequest:
    system_prompt: str
    prompt: str
    temperature: float
    max_tokens: int
    json_schema: dict | None = None
    # Sampling seed for this request (None: the model's configured one); an evaluation's
    # repeated runs each take their own.
    seed: int | None = None


@dataclass(frozen=True)
class AnalystAnswer:
    text: str
    tokens_in: int
    tokens_out: int
    model_name: str
    model_version: str
    latency_ms: float


class Analyst(Protocol):
    model_name: str

    async def answer(self, request: AnalystRequest) -> AnalystAnswer: ...

    async def close(self) -> None: ...


def _scalar(name: str, value: float | int, datatype: str, dtype: type) -> triton_http.InferInput:
    tensor = triton_http.InferInput(name, [1], datatype)
    tensor.set_data_from_numpy(np.array([value], dtype=dtype))
    return tensor


class TritonAnalyst(TritonModel):
    invalid_input_error = PromptRejected
    unavailable_error = AnalystUnavailable

    async def answer(self, request: AnalystRequest) -> AnalystAnswer:
        inputs = [
            bytes_input("SYSTEM_PROMPT", [request.system_prompt.encode()]),
            bytes_input("PROMPT", [request.prompt.encode()]),
            _scalar("TEMPERATURE", request.temperature, "FP32", np.float32),
            _scalar("MAX_TOKENS", request.max_tokens, "INT32", np.int32),
        ]
        if request.json_schema is not None:
            inputs.append(bytes_input("JSON_SCHEMA", [json.dumps(request.json_schema).encode()]))
        if request.seed is not None:
            inputs.append(_scalar("SEED", request.seed, "INT32", np.int32))
        result, version, latency_ms = await self.infer(inputs, ("TEXT", "TOKENS_IN", "TOKENS_OUT"))
        return AnalystAnswer(
            text=result.as_numpy("TEXT").reshape(-1)[0].decode(errors="replace"),
            tokens_in=int(result.as_numpy("TOKENS_IN").reshape(-1)[0]),
            tokens_out=int(result.as_numpy("TOKENS_OUT").reshape(-1)[0]),
            model_name=self.model_name,
            model_version=version,
            latency_ms=latency_ms,
        )
