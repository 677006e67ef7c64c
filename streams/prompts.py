"""The worker's view of the prompts topic (the seeded defaults are in `schemas.prompts`)."""

from __future__ import annotations

import asyncio

from schemas.analysis import PromptConfigured
from schemas.prompts import DEFAULT_PROMPTS
from schemas.topics import PROMPTS
from streams.follow import follow_topic


class PromptBook:
    """The newest configuration per model; the seeded default until the topic says otherwise."""

    def __init__(self) -> None:
        self._latest: dict[str, PromptConfigured] = {}
        # Every version the topic has shown (the first proposal of a version takes it).
        self._versions: dict[tuple[str, int], PromptConfigured] = {}
        # Set once the book holds every configuration the topic had when the worker started:
        # until then an analysis would use an old version (or the default).
        self.ready = asyncio.Event()

    def apply(self, event: PromptConfigured) -> None:
        self._versions.setdefault((event.model, event.version), event)
        current = self._latest.get(event.model)
        if current is None or event.version > current.version:
            self._latest[event.model] = event

    def current(self, model: str) -> PromptConfigured:
        found = self._latest.get(model) or DEFAULT_PROMPTS.get(model)
        if found is None:
            raise LookupError(f"no prompt configuration for model {model!r}")
        return found

    def version(self, model: str, version: int) -> PromptConfigured:
        """The model's configuration at `version` (an evaluation re-runs the one an event used)."""
        found = self._versions.get((model, version))
        default = DEFAULT_PROMPTS.get(model)
        if found is None and default is not None and default.version == version:
            found = default
        if found is None:
            raise LookupError(f"no version {version} of the prompt configuration of {model!r}")
        return found


async def follow_prompts(bootstrap: str, book: PromptBook, stop: asyncio.Event) -> None:
    """Keep `book` current with the prompts topic, read whole by every worker."""
    await follow_topic(
        bootstrap, PROMPTS, book.apply, stop, from_beginning=True, caught_up=book.ready
    )
