"""The scripted answers of the fault-injection analysts (`scripted-analyst`, which speaks the
CPU nemotron's contract, and `vllm-analyst`, which speaks the vLLM backend's): the answer
depends on the camera id in the prompt.

camera id contains   answer
"notjson"            prose, not JSON
"score150"           JSON with risk_score 150
"contradicts"        JSON whose risk_level contradicts its risk_score
"unavailable"        an error (the model is failing: transient to the caller)
anything else        a valid medium-risk assessment

An evaluation's judge (a JSON schema asking for a rubric or for suggestions) gets a valid
answer of that shape, or prose when the camera id contains "badjudge". A camera id
containing "slow" makes every answer take SLOW_S seconds.
"""

import json
import re
import time

VALID = {"risk_score": 42, "risk_level": "medium", "summary": "Scripted.", "reasoning": "Scripted."}
RUBRIC = {
    "context_usage": 4,
    "reasoning_coherence": 3,
    "risk_justification": 4,
    "actionability": 2,
    "critique": "Scripted critique: it does not say what to do.",
}
SUGGESTIONS = {"suggestions": [{"category": "context", "suggestion": "Scripted: give the time."}]}
SLOW_S = 1.5


def judged(camera: str, schema: dict) -> str | None:
    """The judge's answer, when the schema asks for a rubric or suggestions."""
    wanted = set(schema.get("required", []))
    if not wanted & {"critique", "suggestions"}:
        return None
    if "badjudge" in camera:
        return "The assessment reads well to me."
    return json.dumps(RUBRIC if "critique" in wanted else SUGGESTIONS)


def scripted(prompt: str, schema: dict) -> str:
    match = re.search(r"^Camera: (\S+)", prompt, re.MULTILINE)
    camera = match.group(1) if match else ""
    if "slow" in camera:
        time.sleep(SLOW_S)
    judge = judged(camera, schema)
    if judge is not None:
        return judge
    if "notjson" in camera:
        return "The risk looks high to me, probably."
    if "score150" in camera:
        return json.dumps({**VALID, "risk_score": 150, "risk_level": "critical"})
    if "contradicts" in camera:
        return json.dumps({**VALID, "risk_score": 10, "risk_level": "critical"})
    if "unavailable" in camera:
        raise RuntimeError("scripted failure: model unavailable")
    return json.dumps(VALID)
