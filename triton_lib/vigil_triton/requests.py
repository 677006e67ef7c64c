"""Reading a request's image and answering a request with an error, inside Triton.

`triton_python_backend_utils` exists only in the Python backend's stub, so this
module imports only there. The error code is the contract with the callers: bad
input answers INVALID_ARG (HTTP 400: permanent, do not retry) and the model's own
failures INTERNAL (HTTP 500: transient, retry).
"""

from __future__ import annotations

import triton_python_backend_utils as pb_utils


def image_bytes(request: pb_utils.InferenceRequest, name: str = "IMAGE") -> bytes:
    """The encoded file sent in the string tensor `name` (shape [1]); b"" when it is empty."""
    payload = pb_utils.get_input_tensor_by_name(request, name).as_numpy()
    data = payload.reshape(-1)[0] if payload.size else b""
    return data.encode("latin-1") if isinstance(data, str) else bytes(data)


def error_response(message: str, *, internal: bool = False) -> pb_utils.InferenceResponse:
    """INVALID_ARG for a request the caller got wrong; INTERNAL (`internal`) for our failure."""
    code = pb_utils.TritonError.INTERNAL if internal else pb_utils.TritonError.INVALID_ARG
    return pb_utils.InferenceResponse(error=pb_utils.TritonError(message, code))
