"""The LLM that assesses a batch's risk, and its Triton client, which speaks either of the two
contracts `nemotron` is served with (triton_models/nemotron/README.md):

- `python` (the CPU model): inputs `SYSTEM_PROMPT`, `PROMPT`, `TEMPERATURE`, `MAX_TOKENS`,
  optionally `JSON_SCHEMA` (which constrains the output) and `SEED` (the request's sampling
  seed); outputs `TEXT` (the raw answer, never repaired), `TOKENS_IN`, `TOKENS_OUT`; one
  HTTP infer.
- `vllm` (Triton's vLLM backend, on a GPU): `text_input` is the messages rendered with the
  chat template the model's configuration carries (parameter `chat_template`, with
  `bos_token`), `sampling_parameters` a JSON object with the temperature, the token limit,
  the seed and the schema (as a JSON string, under the key the configuration names in
  `json_schema_parameter`: `structured_outputs` for the backend of Triton 25.11 on,
  `guided_decoding` for 25.01 to 25.10); the model is
  decoupled, so the request goes over a gRPC stream and its answer is the `text_output` of
  the responses that come back before the stream ends, with `num_input_tokens` and
  `num_output_tokens`.

Which one a model speaks is read from its configuration (backend `vllm`, or a decoupled
transaction) unless ANALYST_PROTOCOL says. Both go through the same breaker, and their
answers through the same strict parsing downstream.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal, Protocol

import grpc
import numpy as np
import tritonclient.grpc.aio as triton_grpc
import tritonclient.http.aio as triton_http
from jinja2 import Template, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tritonclient.utils import InferenceServerException

from streams.errors import InvalidModelInput, ModelUnavailable
from streams.triton import UNANSWERED, TritonModel, bytes_input, input_refused


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


Protocol_ = Literal["auto", "python", "vllm"]
# What vLLM says of a prompt it will never take (beyond the model's context): a refusal of the
# input, not a failure of the model. Its other errors may pass on a later try.
_PROMPT_REFUSALS = ("maximum model length", "maximum context length", "longer than the maximum")


@dataclass(frozen=True)
class VllmContract:
    """What a vLLM-backend analyst's configuration tells its caller."""

    chat_template: str
    bos_token: str
    schema_parameter: str

    @classmethod
    def of(cls, config: dict[str, Any], model_name: str) -> VllmContract:
        parameters = {
            key: value.get("string_value", "")
            for key, value in config.get("parameters", {}).items()
        }
        template = parameters.get("chat_template", "")
        if not template:
            raise AnalystUnavailable(
                f"{model_name} is served by the vLLM backend, but its configuration has no "
                "chat_template parameter to render the messages with"
            )
        schema_parameter = parameters.get("json_schema_parameter", "structured_outputs")
        if schema_parameter not in ("structured_outputs", "guided_decoding"):
            raise AnalystUnavailable(
                f"{model_name}: json_schema_parameter {schema_parameter!r} is neither "
                "structured_outputs nor guided_decoding"
            )
        return cls(template, parameters.get("bos_token", ""), schema_parameter)

    def render(self, request: AnalystRequest) -> str:
        """The system prompt and the prompt as the model's chat template writes them, with the
        assistant's turn opened. A template that fails is the model's configuration at fault."""
        messages = [
            {"role": "system", "content": request.system_prompt},
            {"role": "user", "content": request.prompt},
        ]
        try:
            return self._template.render(
                messages=messages, add_generation_prompt=True, bos_token=self.bos_token
            )
        except TemplateError as exc:
            raise AnalystUnavailable(f"the chat template does not render: {exc}") from exc

    @cached_property
    def _template(self) -> Template:
        """The chat template, compiled once (as transformers compiles chat templates)."""
        environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        try:
            return environment.from_string(self.chat_template)
        except TemplateError as exc:
            raise AnalystUnavailable(f"the chat template does not render: {exc}") from exc

    def sampling_parameters(self, request: AnalystRequest) -> str:
        parameters: dict[str, Any] = {
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
        }
        if request.seed is not None:
            parameters["seed"] = request.seed
        if request.json_schema is not None:
            # Both keys take the constraint as a JSON string inside the JSON: the backend
            # builds StructuredOutputsParams (Triton 25.11 on) or GuidedDecodingParams (25.01
            # to 25.10) from json.loads of it.
            parameters[self.schema_parameter] = json.dumps({"json": request.json_schema})
        return json.dumps(parameters)


def _grpc_input(name: str, value: bytes | bool) -> triton_grpc.InferInput:
    if isinstance(value, bool):
        tensor = triton_grpc.InferInput(name, [1], "BOOL")
        tensor.set_data_from_numpy(np.array([value], dtype=bool))
    else:
        tensor = triton_grpc.InferInput(name, [1], "BYTES")
        tensor.set_data_from_numpy(np.array([value], dtype=np.object_))
    return tensor


def _count(result: triton_grpc.InferResult, name: str, last: int) -> int:
    """A token count a response carries; `last` (the one before) when it carries none."""
    counted = result.as_numpy(name)
    return int(counted.reshape(-1)[0]) if counted is not None else last


class TritonAnalyst(TritonModel):
    invalid_input_error = PromptRejected
    unavailable_error = AnalystUnavailable

    def __init__(
        self,
        url: str,
        model_name: str,
        model_version: str = "",
        timeout_s: float = 30.0,
        *,
        grpc_url: str = "",
        protocol: Protocol_ = "auto",
    ) -> None:
        super().__init__(url, model_name, model_version, timeout_s)
        self._grpc_url = grpc_url
        self._protocol = protocol
        self._contract: VllmContract | None = None
        self._contract_read = protocol == "python"
        self._grpc_client: triton_grpc.InferenceServerClient | None = None

    async def answer(self, request: AnalystRequest) -> AnalystAnswer:
        """The model's answer; raises PromptRejected for a prompt the model refused and
        AnalystUnavailable when it could not answer (CircuitOpen while its breaker is open)."""
        if self.breaker is None:
            return await self._answer(request)
        return await self.breaker.call(lambda: self._answer(request))

    async def _answer(self, request: AnalystRequest) -> AnalystAnswer:
        contract = await self.contract()
        if contract is None:
            return await self._infer_python(request)
        return await self._stream_vllm(request, contract)

    async def contract(self) -> VllmContract | None:
        """The model's vLLM contract; None when it speaks the Python one."""
        if not self._contract_read:
            try:
                config = await self._client.get_model_config(self.model_name)
            except UNANSWERED as exc:
                raise self._unavailable(exc) from exc
            decoupled = config.get("model_transaction_policy", {}).get("decoupled", False)
            speaks_vllm = config.get("backend") == "vllm" or decoupled
            if self._protocol == "vllm" or speaks_vllm:
                self._contract = VllmContract.of(config, self.model_name)
            self._contract_read = True
        return self._contract

    async def _infer_python(self, request: AnalystRequest) -> AnalystAnswer:
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
        result, version, latency_ms = await self._infer(inputs, ("TEXT", "TOKENS_IN", "TOKENS_OUT"))
        return AnalystAnswer(
            text=result.as_numpy("TEXT").reshape(-1)[0].decode(errors="replace"),
            tokens_in=int(result.as_numpy("TOKENS_IN").reshape(-1)[0]),
            tokens_out=int(result.as_numpy("TOKENS_OUT").reshape(-1)[0]),
            model_name=self.model_name,
            model_version=version,
            latency_ms=latency_ms,
        )

    @property
    def _grpc(self) -> triton_grpc.InferenceServerClient:
        if self._grpc_client is None:
            self._grpc_client = triton_grpc.InferenceServerClient(self._grpc_url)
        return self._grpc_client

    async def _stream_vllm(self, request: AnalystRequest, contract: VllmContract) -> AnalystAnswer:
        started = time.perf_counter()
        version = await self._version_or_unavailable()
        inputs = [
            _grpc_input("text_input", contract.render(request).encode()),
            _grpc_input("sampling_parameters", contract.sampling_parameters(request).encode()),
            _grpc_input("stream", False),
            _grpc_input("exclude_input_in_output", True),
            _grpc_input("return_num_input_tokens", True),
            _grpc_input("return_num_output_tokens", True),
        ]
        outputs = [
            triton_grpc.InferRequestedOutput(name)
            for name in ("text_output", "num_input_tokens", "num_output_tokens")
        ]

        async def one_request():
            yield {
                "model_name": self.model_name,
                "model_version": version,
                "inputs": inputs,
                "outputs": outputs,
                "request_id": uuid.uuid4().hex,
            }

        pieces: list[str] = []
        tokens_in = tokens_out = 0
        try:
            # The stream ends once the request's last response is sent (the client has
            # nothing more to ask), whether that one carries text or only the final flag.
            responses = self._grpc.stream_infer(one_request(), stream_timeout=self._timeout_s)
            async for result, error in responses:
                if error is not None:
                    raise self._stream_error(error)
                text = result.as_numpy("text_output")
                if text is not None:
                    pieces.extend(piece.decode(errors="replace") for piece in text.reshape(-1))
                tokens_in = _count(result, "num_input_tokens", tokens_in)
                tokens_out = _count(result, "num_output_tokens", tokens_out)
        except InferenceServerException as exc:
            if input_refused(exc):
                raise PromptRejected(exc.message() or str(exc)) from exc
            raise self._unavailable(exc) from exc
        except grpc.RpcError as exc:
            code = exc.code() if isinstance(exc, grpc.aio.AioRpcError) else None
            if code == grpc.StatusCode.INVALID_ARGUMENT:
                raise PromptRejected(exc.details() or str(exc)) from exc
            raise AnalystUnavailable(f"{self.model_name}: gRPC {code}: {exc}") from exc
        return AnalystAnswer(
            text="".join(pieces),
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            model_name=self.model_name,
            model_version=version,
            latency_ms=round((time.perf_counter() - started) * 1000, 3),
        )

    def _stream_error(self, error: InferenceServerException) -> Exception:
        """A response that is an error: the stream carries its text only, no status."""
        text = error.message() or str(error)
        if any(marker in text for marker in _PROMPT_REFUSALS):
            return PromptRejected(text)
        return AnalystUnavailable(f"{self.model_name}: {text}")

    async def close(self) -> None:
        await super().close()
        if self._grpc_client is not None:
            await self._grpc_client.close()
            self._grpc_client = None
