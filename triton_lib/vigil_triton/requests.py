"""Reading a request's image and answering requests, inside Triton.

`triton_python_backend_utils` exists only in the Python backend's stub, so this
module imports only there. The error code is the contract with the callers: bad
input answers INVALID_ARG (HTTP 400: permanent, do not retry) and the model's own
failures INTERNAL (HTTP 500: transient, retry). `answer_each` is the one place
that decides which is which.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

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


def answer_each(
    requests: Iterable[pb_utils.InferenceRequest],
    answer: Callable[[pb_utils.InferenceRequest], list[pb_utils.Tensor]],
    *,
    refused: Mapping[type[Exception], str | None],
    failure: str,
) -> list[pb_utils.InferenceResponse]:
    """One response per request, in order: `answer(request)`'s output tensors, or an error.

    An exception of a type in `refused` (the first that matches, in the mapping's
    order, as `except` clauses would) is input the model refuses: INVALID_ARG
    "<prefix>: <message>", or the message as is when its prefix is None. Any other
    exception is the model's own failure: INTERNAL "<failure> failed: <Type>: <message>".
    Either way the other requests are answered as if it had not happened.
    """
    kinds = tuple(refused)
    responses = []
    for request in requests:
        try:
            response = pb_utils.InferenceResponse(output_tensors=answer(request))
        except kinds as exc:
            prefix = next(p for kind, p in refused.items() if isinstance(exc, kind))
            response = error_response(str(exc) if prefix is None else f"{prefix}: {exc}")
        except Exception as exc:  # noqa: BLE001 - one bad request must not fail the model
            message = f"{failure} failed: {type(exc).__name__}: {exc}"
            response = error_response(message, internal=True)
        responses.append(response)
    return responses
