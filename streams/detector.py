"""The object detector the pipeline talks to, and its Triton implementation.

Every detector model served by Triton answers one contract: input `IMAGE`
(the encoded file bytes), outputs `DETECTIONS` `[N, 6]` (x1, y1, x2, y2,
score, class_id in original pixels), `LABELS` `[N]` (class names) and
`IMAGE_SIZE` `[2]` (width, height). Decoding and resizing happen in Triton.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

import aiohttp
import numpy as np
import tritonclient.http.aio as triton_http
from tritonclient.utils import InferenceServerException

from schemas.detections import BoundingBox, Detection
from streams.retry import PermanentError


class InvalidImage(PermanentError):
    error_type = "InvalidImage"


class DetectorUnavailable(Exception):
    """The detector could not be reached or failed in a way a retry may fix."""

    error_type = "DetectorUnavailable"


@dataclass(frozen=True)
class DetectorResult:
    detections: tuple[Detection, ...]
    image_width: int
    image_height: int
    model_name: str
    model_version: str
    latency_ms: float


class Detector(Protocol):
    model_name: str

    async def detect(self, image: bytes) -> DetectorResult: ...

    async def close(self) -> None: ...


# Triton's Python backend passes our model's own error text through; these mark bad input.
_INVALID_INPUT_MARKERS = ("invalid image",)


class TritonDetector:
    def __init__(self, url: str, model_name: str, model_version: str = "", timeout_s: float = 30.0):
        self.model_name = model_name
        self._model_version = model_version
        self._url = url
        self._client_instance: triton_http.InferenceServerClient | None = None
        self._timeout_s = timeout_s
        self._resolved_version: str | None = None

    @property
    def _client(self) -> triton_http.InferenceServerClient:
        # aiohttp needs a running loop, so the client is made on first use, not at wiring time.
        if self._client_instance is None:
            self._client_instance = triton_http.InferenceServerClient(
                url=self._url, conn_timeout=self._timeout_s
            )
        return self._client_instance

    async def _version(self) -> str:
        if self._resolved_version is None:
            if self._model_version:
                self._resolved_version = self._model_version
            else:
                metadata = await self._client.get_model_metadata(self.model_name)
                self._resolved_version = str(max(int(v) for v in metadata["versions"]))
        return self._resolved_version

    async def detect(self, image: bytes) -> DetectorResult:
        payload = triton_http.InferInput("IMAGE", [1], "BYTES")
        payload.set_data_from_numpy(np.array([image], dtype=np.object_))
        outputs = [
            triton_http.InferRequestedOutput(n) for n in ("DETECTIONS", "LABELS", "IMAGE_SIZE")
        ]
        started = time.perf_counter()
        try:
            version = await self._version()
            result = await self._client.infer(
                self.model_name,
                [payload],
                model_version=version,
                outputs=outputs,
                timeout=int(self._timeout_s * 1_000_000),
            )
        except InferenceServerException as exc:
            message = exc.message() or str(exc)
            if any(marker in message.lower() for marker in _INVALID_INPUT_MARKERS):
                raise InvalidImage(message) from exc
            raise DetectorUnavailable(f"{self.model_name}: {message}") from exc
        except (OSError, TimeoutError, aiohttp.ClientError) as exc:
            raise DetectorUnavailable(f"{self.model_name}: {type(exc).__name__}: {exc}") from exc
        latency_ms = (time.perf_counter() - started) * 1000
        rows = result.as_numpy("DETECTIONS").reshape(-1, 6)
        labels = [label.decode() for label in result.as_numpy("LABELS").reshape(-1)]
        width, height = (int(v) for v in result.as_numpy("IMAGE_SIZE").reshape(-1)[:2])
        return DetectorResult(
            detections=tuple(
                _detection(row, label) for row, label in zip(rows, labels, strict=True)
            ),
            image_width=width,
            image_height=height,
            model_name=self.model_name,
            model_version=version,
            latency_ms=round(latency_ms, 3),
        )

    async def ready(self) -> bool:
        return bool(await self._client.is_model_ready(self.model_name))

    async def close(self) -> None:
        if self._client_instance is not None:
            await self._client_instance.close()


def _detection(row: np.ndarray, label: str) -> Detection:
    x1, y1, x2, y2, score, class_id = (float(v) for v in row)
    return Detection(
        label=label,
        class_id=int(class_id),
        confidence=round(min(max(score, 0.0), 1.0), 4),
        bbox=BoundingBox(x1=round(x1, 1), y1=round(y1, 1), x2=round(x2, 1), y2=round(y2, 1)),
    )
