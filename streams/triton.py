"""What every model client shares: one lazily made Triton HTTP client, version lookup,
the circuit breaker around each call, and the sorting of Triton's errors by status code.

Every model under `triton_models/` answers input it refuses with INVALID_ARG and its own
failures with INTERNAL. Triton's HTTP front end answers INVALID_ARG (and the codes it
folds in with it: UNKNOWN, ALREADY_EXISTS, CANCELLED) with 400, UNSUPPORTED with 501,
NOT_FOUND (no such model or version loaded) with 404, INTERNAL with 500 and UNAVAILABLE
with 503. 400 and 501 mean the request itself will never succeed: the input is refused,
never retried, and not counted against the model's breaker. Everything else (a model
missing, failing or overloaded, a timeout, a refused connection) may pass on a later try.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import aiohttp
import tritonclient.http.aio as triton_http
from tritonclient.utils import InferenceServerException

from streams.breaker import CircuitBreaker
from streams.errors import InvalidModelInput, ModelUnavailable

# The status of an InferenceServerException: the HTTP status code as text over HTTP, the
# gRPC code's name over gRPC (`StatusCode.INVALID_ARGUMENT`).
# What a call that got no answer from Triton raises (the server, the network or a timeout).
UNANSWERED = (InferenceServerException, OSError, TimeoutError, aiohttp.ClientError)
REFUSED_INPUT_STATUSES = frozenset(
    {"400", "501", "StatusCode.INVALID_ARGUMENT", "StatusCode.UNIMPLEMENTED"}
)


def input_refused(error: InferenceServerException) -> bool:
    """Whether Triton refused the request itself (bad input), not failed to answer it."""
    return error.status() in REFUSED_INPUT_STATUSES


class TritonModel:
    """One model on one Triton server."""

    invalid_input_error: type[InvalidModelInput] = InvalidModelInput
    unavailable_error: type[ModelUnavailable] = ModelUnavailable

    def __init__(self, url: str, model_name: str, model_version: str = "", timeout_s: float = 30.0):
        self.model_name = model_name
        self._url = url
        self._pinned_version = model_version
        self._timeout_s = timeout_s
        self._client_instance: triton_http.InferenceServerClient | None = None
        self._resolved_version: str | None = None
        # Set by the worker's wiring: every call then goes through this model's breaker.
        self.breaker: CircuitBreaker | None = None

    @property
    def _client(self) -> triton_http.InferenceServerClient:
        # aiohttp needs a running loop, so the client is made on first use, not at wiring time.
        if self._client_instance is None:
            self._client_instance = triton_http.InferenceServerClient(
                url=self._url, conn_timeout=self._timeout_s
            )
        return self._client_instance

    async def _version_or_unavailable(self) -> str:
        """`version()`, whatever keeps it from answering being about the model, not the input
        (nothing is sent yet)."""
        try:
            return await self.version()
        except UNANSWERED as exc:
            raise self._unavailable(exc) from exc

    async def version(self) -> str:
        if self._resolved_version is None:
            if self._pinned_version:
                self._resolved_version = self._pinned_version
            else:
                metadata = await self._client.get_model_metadata(self.model_name)
                self._resolved_version = str(max(int(v) for v in metadata["versions"]))
        return self._resolved_version

    async def infer(
        self, inputs: Sequence[triton_http.InferInput], outputs: Sequence[str]
    ) -> tuple[triton_http.InferResult, str, float]:
        """Run one request; returns the result, the model version and the latency in ms.

        Raises `invalid_input_error` for input the model refused, `unavailable_error` when
        it could not answer, and CircuitOpen without calling it while its breaker is open.
        """
        if self.breaker is None:
            return await self._infer(inputs, outputs)
        return await self.breaker.call(lambda: self._infer(inputs, outputs))

    async def _infer(
        self, inputs: Sequence[triton_http.InferInput], outputs: Sequence[str]
    ) -> tuple[triton_http.InferResult, str, float]:
        requested = [triton_http.InferRequestedOutput(name) for name in outputs]
        started = time.perf_counter()
        version = await self._version_or_unavailable()
        try:
            result = await self._client.infer(
                self.model_name,
                list(inputs),
                model_version=version,
                outputs=requested,
                timeout=int(self._timeout_s * 1_000_000),
            )
        except InferenceServerException as exc:
            if input_refused(exc):
                raise self.invalid_input_error(exc.message() or str(exc)) from exc
            raise self._unavailable(exc) from exc
        except (OSError, TimeoutError, aiohttp.ClientError) as exc:
            raise self._unavailable(exc) from exc
        return result, version, round((time.perf_counter() - started) * 1000, 3)

    def _unavailable(self, error: Exception) -> ModelUnavailable:
        if isinstance(error, InferenceServerException):
            return self.unavailable_error(
                f"{self.model_name}: {error.message() or error} (status {error.status()})"
            )
        return self.unavailable_error(f"{self.model_name}: {type(error).__name__}: {error}")

    async def close(self) -> None:
        if self._client_instance is not None:
            await self._client_instance.close()
            self._client_instance = None


def bytes_input(name: str, values: Sequence[bytes]) -> triton_http.InferInput:
    import numpy as np

    tensor = triton_http.InferInput(name, [len(values)], "BYTES")
    tensor.set_data_from_numpy(np.array(list(values), dtype=np.object_))
    return tensor
