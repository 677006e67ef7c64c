"""Prompt configurations: the seeded defaults, and the worker's view of the prompts topic."""

from __future__ import annotations

import asyncio

from schemas.analysis import PromptConfig, PromptConfigured
from schemas.topics import PROMPTS
from streams.follow import follow_topic

DEFAULT_SYSTEM_PROMPT = (
    "You are a security analysis AI for a home and small-business camera system. "
    "You receive the objects that one camera detected during a short time window, with "
    "descriptions of the people and vehicles when available. Assess how much this activity "
    "warrants a person's attention. Routine activity (residents, deliveries, passing traffic "
    "in daylight) is low risk; unknown people lingering, activity at night, or many people "
    "and vehicles together raise it. Answer with one JSON object: risk_score (integer "
    "0-100), risk_level (low 0-29, medium 30-59, high 60-84, critical 85-100), summary "
    "(one sentence) and reasoning (two or three sentences)."
)

DEFAULT_PROMPTS: dict[str, PromptConfigured] = {
    "nemotron": PromptConfigured(
        model="nemotron",
        version=1,
        config=PromptConfig(system_prompt=DEFAULT_SYSTEM_PROMPT, temperature=0.1, max_tokens=512),
        description="Default prompt",
        producer="vigil/init",
    )
}


class PromptBook:
    """The newest configuration per model; the seeded default until the topic says otherwise."""

    def __init__(self) -> None:
        self._latest: dict[str, PromptConfigured] = {}

    def apply(self, event: PromptConfigured) -> None:
        current = self._latest.get(event.model)
        if current is None or event.version > current.version:
            self._latest[event.model] = event

    def current(self, model: str) -> PromptConfigured:
        found = self._latest.get(model) or DEFAULT_PROMPTS.get(model)
        if found is None:
            raise LookupError(f"no prompt configuration for model {model!r}")
        return found


async def follow_prompts(bootstrap: str, book: PromptBook, stop: asyncio.Event) -> None:
    """Keep `book` current with the prompts topic, read whole by every worker."""
    await follow_topic(bootstrap, PROMPTS, book.apply, stop, from_beginning=True)
