"""The models a worker calls, behind their interfaces, and how they are made on Triton."""

from __future__ import annotations

from dataclasses import dataclass

from streams.analyst import Analyst, TritonAnalyst
from streams.detector import Detector, TritonDetector
from streams.enricher import Enricher, TritonEnricher
from vigil.settings import Settings


@dataclass
class Models:
    detector: Detector
    enricher: Enricher
    analyst: Analyst

    @classmethod
    def on_triton(cls, settings: Settings) -> Models:
        url, timeout = settings.triton_url, settings.triton_timeout_s
        return cls(
            detector=TritonDetector(
                url, settings.detector_model, settings.detector_model_version, timeout
            ),
            enricher=TritonEnricher(url, settings.enricher_model, timeout_s=timeout),
            analyst=TritonAnalyst(
                url, settings.analyst_model, timeout_s=settings.analyst_timeout_s
            ),
        )

    def all(self) -> tuple[Detector, Enricher, Analyst]:
        return (self.detector, self.enricher, self.analyst)

    async def close(self) -> None:
        for model in self.all():
            await model.close()
