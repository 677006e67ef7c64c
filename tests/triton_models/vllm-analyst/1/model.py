"""Fault-injection analyst speaking the vLLM backend's contract, decoupled: `text_input` (the
messages already rendered with the chat template of this model's configuration),
`sampling_parameters` (JSON: temperature, max_tokens, the JSON schema under the key the
configuration names, as a JSON string), `stream`, `exclude_input_in_output` and the
`return_num_*_tokens` flags in; `text_output` and the token counts out, as responses on the
request's response sender, the final flag on the last of them (errors included), as vLLM's
backend sends it.

It refuses what vLLM would not have been given by a correct client: a `text_input` not
rendered with the template, sampling parameters without the schema constraint, the input
echoed back (`exclude_input_in_output` false). With `stream` the answer comes in pieces.
Answers are scripted by the camera id in the prompt (../../scripted_answers.py).
"""

import json
import re
import sys
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/triton_models
from scripted_answers import scripted

RENDERED = re.compile(
    r"\A<s><\|system\|>\n(?P<system>.*)\n<\|user\|>\n(?P<user>.*)\n<\|assistant\|>\n\Z", re.S
)
PIECES = 4
FINAL = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL


class Refused(Exception):
    pass


def _value(request, name: str, default=None):
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None:
        return default
    value = tensor.as_numpy().reshape(-1)[0]
    return value.decode() if isinstance(value, bytes) else value


def _schema(parameters: dict, key: str) -> dict:
    """The JSON schema of the constraint, which the backend reads as a JSON string."""
    constraint = parameters.get(key)
    if not isinstance(constraint, str):
        raise Refused(f"sampling_parameters[{key!r}] is not a JSON string: {constraint!r}")
    constraint = json.loads(constraint)
    if not isinstance(constraint, dict) or not isinstance(constraint.get("json"), dict):
        raise Refused(f"sampling_parameters has no JSON schema under {key!r}: {parameters}")
    return constraint["json"]


def _response(text: str, tokens_in: int | None, tokens_out: int | None):
    tensors = [pb_utils.Tensor("text_output", np.array([text.encode()], dtype=np.object_))]
    if tokens_in is not None:
        tensors.append(pb_utils.Tensor("num_input_tokens", np.array([tokens_in], np.uint32)))
    if tokens_out is not None:
        tensors.append(pb_utils.Tensor("num_output_tokens", np.array([tokens_out], np.uint32)))
    return pb_utils.InferenceResponse(output_tensors=tensors)


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.schema_key = config["parameters"]["json_schema_parameter"]["string_value"]

    def execute(self, requests):
        for request in requests:
            sender = request.get_response_sender()
            try:
                self._answer(request, sender)
            except (Refused, RuntimeError, ValueError) as exc:
                failed = pb_utils.InferenceResponse(
                    output_tensors=[
                        pb_utils.Tensor("text_output", np.array([b"N/A"], dtype=np.object_))
                    ],
                    error=pb_utils.TritonError(str(exc)),
                )
                sender.send(failed, flags=FINAL)
        return None

    def _answer(self, request, sender) -> None:
        text_input = _value(request, "text_input")
        rendered = RENDERED.match(text_input)
        if rendered is None:
            raise Refused(f"text_input is not rendered with the chat template: {text_input!r}")
        parameters = json.loads(_value(request, "sampling_parameters", "{}"))
        for needed in ("temperature", "max_tokens"):
            if needed not in parameters:
                raise Refused(f"sampling_parameters has no {needed}: {parameters}")
        if not _value(request, "exclude_input_in_output", False):
            raise Refused("exclude_input_in_output is not set: the answer would echo the prompt")
        answer = scripted(rendered.group("user"), _schema(parameters, self.schema_key))
        tokens_in = len(text_input.split()) if _value(request, "return_num_input_tokens") else None
        tokens_out = len(answer.split()) if _value(request, "return_num_output_tokens") else None
        if not _value(request, "stream", False):
            sender.send(_response(answer, tokens_in, tokens_out), flags=FINAL)
            return
        size = max(1, -(-len(answer) // PIECES))
        starts = range(0, len(answer), size)
        for start in starts:
            piece = _response(answer[start : start + size], tokens_in, tokens_out)
            sender.send(piece, flags=FINAL if start == starts[-1] else 0)
