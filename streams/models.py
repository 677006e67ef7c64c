"""The models a worker calls, behind their interfaces, and how they are made on Triton."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from streams.analyst import Analyst, TritonAnalyst
from streams.detector import Detector, TritonDetector
from streams.enricher import Enricher, TritonEnricher
from vigil.settings import Settings


@dataclass
class Models:
    detector: Detector
    enricher: Enricher
    analyst: Analyst
    # Makes the detector of another model name and version (a reprocess job names them).
    make_detector: Callable[[str, str | None], Detector] | None = None
    _other_detectors: dict[tuple[str, str | None], Detector] = field(default_factory=dict)

    def detector_for(self, model_name: str, model_version: str | None) -> Detector:
        """The detector of that model and version: one client each, made on first use."""
        key = (model_name, model_version)
        if key not in self._other_detectors:
            if self.make_detector is None:
                raise LookupError(f"no detector {model_name} can be made here")
            self._other_detectors[key] = self.make_detector(model_name, model_version)
        return self._other_detectors[key]

    @classmethod
    def on_triton(cls, settings: Settings) -> Models:
        url, timeout = settings.triton_url, settings.triton_timeout_s
        return cls(
            detector=TritonDetector(
                url, settings.detector_model, settings.detector_model_version, timeout
            ),
            enricher=TritonEnricher(url, settings.enricher_model, timeout_s=timeout),
            analyst=TritonAnalyst(
                url,
                settings.analyst_model,
                timeout_s=settings.analyst_timeout_s,
                grpc_url=settings.triton_grpc,
                protocol=settings.analyst_protocol,
            ),
            make_detector=lambda name, version: TritonDetector(url, name, version or "", timeout),
        )

    def all(self) -> tuple[Detector, Enricher, Analyst]:
        return (self.detector, self.enricher, self.analyst)

    async def close(self) -> None:
        for model in (*self.all(), *self._other_detectors.values()):
            await model.close()
