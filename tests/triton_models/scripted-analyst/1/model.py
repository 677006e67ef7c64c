"""Fault-injection analyst speaking the CPU `nemotron` contract (SYSTEM_PROMPT, PROMPT ... ->
TEXT, TOKENS_IN, TOKENS_OUT); its answers are scripted by the camera id in the prompt
(`tests/triton_models/scripted_answers.py`). A PROMPT that is not UTF-8 gets INVALID_ARG, as
`nemotron` answers it.
"""

import json
import sys
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils
from vigil_triton.requests import error_response

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/triton_models
from scripted_answers import scripted


def _text(request, name: str) -> str:
    return pb_utils.get_input_tensor_by_name(request, name).as_numpy().reshape(-1)[0].decode()


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                prompt = _text(request, "PROMPT")
            except UnicodeDecodeError as exc:
                responses.append(error_response(f"PROMPT is not valid UTF-8 ({exc})"))
                continue
            schema_input = pb_utils.get_input_tensor_by_name(request, "JSON_SCHEMA")
            schema = json.loads(_text(request, "JSON_SCHEMA")) if schema_input is not None else {}
            try:
                text = scripted(prompt, schema)
            except RuntimeError as exc:
                responses.append(error_response(str(exc), internal=True))
                continue
            responses.append(
                pb_utils.InferenceResponse(
                    output_tensors=[
                        pb_utils.Tensor("TEXT", np.array([text.encode()], dtype=np.object_)),
                        pb_utils.Tensor("TOKENS_IN", np.array([len(prompt.split())], np.int32)),
                        pb_utils.Tensor("TOKENS_OUT", np.array([len(text.split())], np.int32)),
                    ]
                )
            )
        return responses
