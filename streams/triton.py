"""What every model client shares: one lazily made Triton HTTP client, version lookup,
and the mapping of Triton's errors onto retryable and permanent failures."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import aiohttp
import tritonclient.http.aio as triton_http
from tritonclient.utils import InferenceServerException

from streams.retry import PermanentError

if TYPE_CHECKING:
    from streams.breaker import CircuitBreaker


class ModelUnavailable(Exception):
    """The model could not be reached or failed in a way a retry may fix."""

    error_type = "ModelUnavailable"


class InvalidModelInput(PermanentError):
    """The model refused the input itself (a corrupt image, an empty prompt): never retried."""

    error_type = "InvalidModelInput"


# Our Python-backend models start the text of errors about bad input with these.
_INVALID_INPUT_MARKERS = ("invalid image", "invalid request", "context length exceeded")


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
        try:
            version = await self.version()
            result = await self._client.infer(
                self.model_name,
                list(inputs),
                model_version=version,
                outputs=requested,
                timeout=int(self._timeout_s * 1_000_000),
            )
        except InferenceServerException as exc:
            message = exc.message() or str(exc)
            if any(marker in message.lower() for marker in _INVALID_INPUT_MARKERS):
                raise self.invalid_input_error(message) from exc
            raise self.unavailable_error(f"{self.model_name}: {message}") from exc
        except (OSError, TimeoutError, aiohttp.ClientError) as exc:
            raise self.unavailable_error(f"{self.model_name}: {type(exc).__name__}: {exc}") from exc
        return result, version, round((time.perf_counter() - started) * 1000, 3)

    async def ready(self) -> bool:
        return bool(await self._client.is_model_ready(self.model_name))

    async def close(self) -> None:
        if self._client_instance is not None:
            await self._client_instance.close()
            self._client_instance = None


def bytes_input(name: str, values: Sequence[bytes]) -> triton_http.InferInput:
    import numpy as np

    tensor = triton_http.InferInput(name, [len(values)], "BYTES")
    tensor.set_data_from_numpy(np.array(list(values), dtype=np.object_))
    return tensor
