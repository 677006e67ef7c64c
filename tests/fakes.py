"""Hand-written fakes behind the project's own interfaces, for fault injection and unit tests.

Each fake plays a script: one entry per call, either the answer to give or the exception
to raise, and records what it was asked.
"""

from __future__ import annotations

from collections.abc import Sequence

from api.commands import Delivered, NotDelivered, Outgoing
from schemas.detections import Detection
from streams.analyst import AnalystAnswer, AnalystRequest
from streams.detector import DetectorResult
from streams.enricher import EnricherResult


class FakeSender:
    """Keeps what it is given; refuses messages with a key in `refuse` or on `refuse_topic`."""

    def __init__(self, refuse: tuple[str, ...] = (), refuse_topic: str = "") -> None:
        self.stored: list[Outgoing] = []
        self.refuse = refuse
        self.refuse_topic = refuse_topic

    def deliver(self, messages: Sequence[Outgoing]) -> list[Delivered | NotDelivered]:
        results: list[Delivered | NotDelivered] = []
        for message in messages:
            if message.key in self.refuse or message.topic == self.refuse_topic:
                results.append(NotDelivered("Local: Message timed out"))
            else:
                self.stored.append(message)
                results.append(Delivered(partition=1, offset=len(self.stored) - 1))
        return results


class Script:
    """Answers in order, one per call: a value to return, or an exception to raise.

    The last entry repeats once the script runs out, so `Script(error)` fails every call.
    """

    def __init__(self, *entries: object) -> None:
        if not entries:
            raise ValueError("a script needs at least one entry")
        self.entries = list(entries)
        self.calls = 0

    def next(self) -> object:
        entry = self.entries[min(self.calls, len(self.entries) - 1)]
        self.calls += 1
        if isinstance(entry, BaseException):
            raise entry
        return entry


class FakeDetector:
    """A Detector that plays a script of DetectorResults and errors; keeps the images seen."""

    def __init__(self, *script: object, model_name: str = "fake-detector") -> None:
        self.model_name = model_name
        self.script = Script(*script)
        self.images: list[bytes] = []

    async def detect(self, image: bytes) -> DetectorResult:
        self.images.append(image)
        return self.script.next()  # type: ignore[return-value]

    async def close(self) -> None:
        pass


class FakeEnricher:
    """An Enricher that plays a script of EnricherResults and errors; keeps each call."""

    def __init__(self, *script: object, model_name: str = "fake-enricher") -> None:
        self.model_name = model_name
        self.script = Script(*script)
        self.calls: list[tuple[bytes, list[Detection]]] = []

    async def describe(self, image: bytes, detections: Sequence[Detection]) -> EnricherResult:
        self.calls.append((image, list(detections)))
        return self.script.next()  # type: ignore[return-value]

    async def close(self) -> None:
        pass


class FakeAnalyst:
    """An Analyst that plays a script of answer texts (or AnalystAnswers) and errors."""

    def __init__(self, *script: object, model_name: str = "fake-analyst") -> None:
        self.model_name = model_name
        self.script = Script(*script)
        self.requests: list[AnalystRequest] = []

    async def answer(self, request: AnalystRequest) -> AnalystAnswer:
        self.requests.append(request)
        entry = self.script.next()
        if isinstance(entry, AnalystAnswer):
            return entry
        return AnalystAnswer(
            text=str(entry),
            tokens_in=len(request.prompt.split()),
            tokens_out=len(str(entry).split()),
            model_name=self.model_name,
            model_version="7",
            latency_ms=12.5,
        )

    async def close(self) -> None:
        pass
