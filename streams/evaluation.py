"""The figures of an evaluation, and what the judge is asked. Plain code, no model calls.

- consistency: 1 - mean |repeated score - original score| / 100 over the repeated runs;
- relevance: coverage x precision of the assessment's text against the batch's evidence
  (detected object types and the vision model's colours): coverage is the share of the
  evidence terms the summary and reasoning mention; precision is the share of the object
  types they mention that were detected (an object named but never detected is invented);
- coherence: the judge's rubric, 1-5 per criterion, as (mean - 1) / 4;
- contributions: each upstream model's share is |ablated score - original score| / 100
  (scaled down together when they exceed 1), the analyst's share the rest.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from functools import cache

from schemas.analysis import RiskAssessment
from schemas.batches import BatchClosed
from schemas.evaluation import (
    RUBRIC_CRITERIA,
    EvaluatedAnalysis,
    QualityScores,
    RelevanceEvidence,
    Rubric,
)
from streams.analysis import build_prompt

# The detector's 80 COCO labels, and the other words a text uses for them. A word that names
# several labels ("vehicle") refers to whichever of them was detected.
OBJECT_WORDS: dict[str, tuple[str, ...]] = {
    "person": (
        "person", "people", "man", "men", "woman", "women", "pedestrian", "individual",
        "someone", "somebody", "visitor", "intruder", "child", "children", "resident",
        "stranger", "human",
    ),
    "bicycle": ("bicycle", "bike", "cyclist"),
    "car": ("car", "vehicle", "automobile"),
    "motorcycle": ("motorcycle", "motorbike", "vehicle"),
    "airplane": ("airplane", "plane", "aircraft"),
    "bus": ("bus", "buses", "vehicle"),
    "train": ("train",),
    "truck": ("truck", "lorry", "van", "vehicle"),
    "boat": ("boat",),
    "traffic light": ("traffic light",),
    "fire hydrant": ("fire hydrant", "hydrant"),
    "stop sign": ("stop sign",),
    "parking meter": ("parking meter",),
    "bench": ("bench", "benches"),
    "bird": ("bird",),
    "cat": ("cat",),
    "dog": ("dog",),
    "horse": ("horse",),
    "sheep": ("sheep",),
    "cow": ("cow", "cattle"),
    "elephant": ("elephant",),
    "bear": (),  # a verb ("bear in mind") far more often than the animal
    "zebra": ("zebra",),
    "giraffe": ("giraffe",),
    "backpack": ("backpack",),
    "umbrella": ("umbrella",),
    "handbag": ("handbag", "bag"),
    "tie": ("necktie",),
    "suitcase": ("suitcase", "luggage"),
    "frisbee": ("frisbee",),
    "skis": ("skis",),
    "snowboard": ("snowboard",),
    "sports ball": ("ball",),
    "kite": ("kite",),
    "baseball bat": ("baseball bat",),
    "baseball glove": ("baseball glove",),
    "skateboard": ("skateboard",),
    "surfboard": ("surfboard",),
    "tennis racket": ("tennis racket", "racket"),
    "bottle": ("bottle",),
    "wine glass": ("wine glass",),
    "cup": ("cup",),
    "fork": ("fork",),
    "knife": ("knife", "knives"),
    "spoon": ("spoon",),
    "bowl": ("bowl",),
    "banana": ("banana",),
    "apple": ("apple",),
    "sandwich": ("sandwich",),
    "orange": (),  # the word is a colour far more often than the fruit
    "broccoli": ("broccoli",),
    "carrot": ("carrot",),
    "hot dog": ("hot dog",),
    "pizza": ("pizza",),
    "donut": ("donut",),
    "cake": ("cake",),
    "chair": ("chair",),
    "couch": ("couch", "sofa"),
    "potted plant": ("potted plant", "houseplant"),
    "bed": ("bed",),
    "dining table": ("dining table", "table"),
    "toilet": ("toilet",),
    "tv": ("tv", "television"),
    "laptop": ("laptop",),
    "mouse": ("mouse",),
    "remote": ("remote control",),
    "keyboard": ("keyboard",),
    "cell phone": ("cell phone", "phone", "smartphone"),
    "microwave": ("microwave",),
    "oven": ("oven",),
    "toaster": ("toaster",),
    "sink": ("sink",),
    "refrigerator": ("refrigerator", "fridge"),
    "book": ("book",),
    "clock": ("clock",),
    "vase": ("vase",),
    "scissors": ("scissors",),
    "teddy bear": ("teddy bear",),
    "hair drier": ("hair drier", "hair dryer"),
    "toothbrush": ("toothbrush",),
}  # fmt: skip

# Keys of the vision model's attributes whose values are evidence a text can mention.
COLOUR_KEYS = ("upper_color", "lower_color", "colors", "color")


@cache
def _pattern(word: str) -> re.Pattern[str]:
    """`word` as a whole word (or phrase), singular or plural."""
    return re.compile(rf"\b{re.escape(word)}(?:s|es)?\b", re.IGNORECASE)


def _mentions(text: str, word: str) -> bool:
    return _pattern(word).search(text) is not None


def object_mentions(text: str) -> set[str]:
    """The words of OBJECT_WORDS the text uses."""
    return {w for words in OBJECT_WORDS.values() for w in words if _mentions(text, w)}


def colours(batch: BatchClosed) -> set[str]:
    found: set[str] = set()
    for d in batch.detections:
        if d.enrichment is None:
            continue
        for key in COLOUR_KEYS:
            value = d.enrichment.attributes.get(key)
            values = value if isinstance(value, list) else [value]
            found.update(v.lower() for v in values if isinstance(v, str) and v.strip())
    return found


def relevance(
    analysis: EvaluatedAnalysis | RiskAssessment, batch: BatchClosed
) -> RelevanceEvidence:
    text = f"{analysis.summary}\n{analysis.reasoning}"
    detected = {d.label for d in batch.detections}
    said = object_mentions(text)
    # A detected label is matched when the text uses one of its words.
    matched_labels = {
        label for label in detected if any(w in said for w in OBJECT_WORDS.get(label, (label,)))
    } | {label for label in detected if label not in OBJECT_WORDS and _mentions(text, label)}
    # A word used that names no detected label is an invented object.
    invented = sorted(
        w for w in said if not any(w in OBJECT_WORDS.get(label, ()) for label in detected)
    )
    evidence_colours = colours(batch)
    matched_colours = {c for c in evidence_colours if _mentions(text, c)}
    evidence = sorted(detected | evidence_colours)
    matched = sorted(matched_labels | matched_colours)
    coverage = len(matched) / len(evidence) if evidence else 1.0
    named = len(matched_labels) + len(invented)
    precision = len(matched_labels) / named if named else 1.0
    return RelevanceEvidence(
        evidence_terms=tuple(evidence),
        matched=tuple(matched),
        invented=tuple(invented),
        coverage=round(coverage, 4),
        precision=round(precision, 4),
    )


def relevance_score(evidence: RelevanceEvidence) -> float:
    return round(evidence.coverage * evidence.precision, 4)


def consistency(original: int, repeated: Sequence[int]) -> float:
    return round(1 - sum(abs(s - original) for s in repeated) / len(repeated) / 100, 4)


def coherence(rubric: Rubric) -> float:
    scores = [getattr(rubric, criterion) for criterion in RUBRIC_CRITERIA]
    return round((sum(scores) / len(scores) - 1) / 4, 4)


def contributions(
    original: int, ablated: Mapping[str, int | None], analyst: str
) -> dict[str, float]:
    """Each upstream model's share of the score (its ablation's change / 100; 0 when it had
    no evidence to remove), the analyst's the rest; they sum to 1."""
    changes = {m: abs(s - original) / 100 if s is not None else 0.0 for m, s in ablated.items()}
    total = sum(changes.values())
    if total > 1:
        changes = {m: c / total for m, c in changes.items()}
    shares = {m: round(c, 4) for m, c in changes.items()}
    shares[analyst] = round(1 - sum(shares.values()), 4)
    return shares


def overall(quality: QualityScores) -> QualityScores:
    measured = [
        q for q in (quality.consistency, quality.relevance, quality.coherence) if q is not None
    ]
    mean = round(sum(measured) / len(measured), 4) if measured else None
    return quality.model_copy(update={"overall": mean})


JUDGE_SYSTEM_PROMPT = (
    "You review the risk assessments a security camera analyst made. You receive what the "
    "camera saw and the assessment. Score each criterion from 1 (poor) to 5 (excellent): "
    "context_usage (does it use the camera, time and objects given), reasoning_coherence "
    "(does the reasoning follow from the evidence without contradiction), "
    "risk_justification (does the evidence justify the risk score and level), actionability "
    "(does it tell a person what to do or watch). Then write the critique: one or two "
    "sentences on the assessment's main weakness. Answer with one JSON object."
)

SUGGESTIONS_SYSTEM_PROMPT = (
    "You improve the instructions (the system prompt) of a security camera analyst model. "
    "You receive its system prompt, what the camera saw and the assessment it made. Name "
    "up to three changes to the system prompt that would have made this assessment "
    "better. Give each a category: context (information the prompt should supply), "
    "specificity (what the prompt should ask for more precisely), format (how the answer "
    "should be shaped), missing_data (evidence the pipeline should add). Answer with one "
    "JSON object."
)


def assessment_text(analysis: EvaluatedAnalysis) -> str:
    return (
        f"Assessment: risk_score {analysis.risk_score}, risk_level {analysis.risk_level}\n"
        f"Summary: {analysis.summary}\nReasoning: {analysis.reasoning}"
    )


def judge_prompt(batch: BatchClosed, analysis: EvaluatedAnalysis) -> str:
    return f"What the camera saw:\n{build_prompt(batch)}\n\n{assessment_text(analysis)}"


def suggestions_prompt(system_prompt: str, batch: BatchClosed, analysis: EvaluatedAnalysis) -> str:
    return (
        f"System prompt:\n{system_prompt}\n\nWhat the camera saw:\n{build_prompt(batch)}\n\n"
        f"{assessment_text(analysis)}"
    )


def vision_model(batch: BatchClosed, default: str) -> str:
    """The name of the vision model whose descriptions the batch holds."""
    names: Iterable[str | None] = (d.enrichment_model for d in batch.detections)
    return next((n for n in names if n), default)


def has_descriptions(batch: BatchClosed) -> bool:
    return any(d.enrichment is not None for d in batch.detections)
