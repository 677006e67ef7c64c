"""The default prompt configuration of each model that takes one: version 1, which
`vigil init` seeds on the prompts topic and a worker uses until the topic says otherwise."""

from __future__ import annotations

from schemas.analysis import PromptConfig, PromptConfigured

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
