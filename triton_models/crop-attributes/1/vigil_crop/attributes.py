"""Per-box attributes from pixels: colour evidence, body-part colours, geometry, light.

Only what the pixels support is claimed; see `../model.py` for the JSON contract.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image
from vigil_triton.imaging import DecodedImage

from vigil_crop.colors import BLACK, COLOR_NAMES, name_pixels, ranked, shares, srgb_to_lab
from vigil_crop.describe import describe
from vigil_crop.imaging import Box, crop_pixels

SOURCE = "pixel-statistics"
PERSON_LABELS = frozenset({"person"})
VEHICLE_LABELS = frozenset(
    {"bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat"}
)
PRIMARY_MIN_SHARE = 0.20  # the main colour must cover this much of its region
SECONDARY_MIN_SHARE = 0.12  # further colours listed in `colors` (at most MAX_COLORS)
MAX_COLORS = 3
REPORTED_SHARE_MIN = 0.05  # `color_shares` lists colours covering at least this much
VEHICLE_DARK_MAX = 0.60  # below this dark share, dark pixels are glass/tyres/shadow
MAX_SAMPLES = 6144  # pixels analysed per box (box-filtered down to this)
FULL_EVIDENCE_PIXELS = 4096  # boxes smaller than this (decoded px) get less confidence
UNOBSERVABLE_EVIDENCE = 0.1  # colour evidence when colours are not observable
LIGHT_FACTOR = {"dark": 0.5, "dim": 0.8}
GAIN_FROM = 200  # frames whose 99th-percentile highlight is below this are levelled ...
MAX_GAIN = 8.0  # ... by 255 / highlight, at most this
UNKNOWN = "unknown"


@dataclass(frozen=True)
class FrameStats:
    width: int
    height: int
    brightness: float  # mean L*/100 of the frame
    lighting: str  # dark < 0.15 <= dim < 0.25 <= normal < 0.75 <= bright
    grayscale: bool  # no colour anywhere (95th pct of max-min RGB < 6): IR night mode, B/W
    gain: float  # colours are named after scaling RGB by this (1 unless under-exposed)
    too_dark: bool  # even levelled, the highlights stay below GAIN_FROM

    @property
    def colors_observable(self) -> bool:
        return not (self.grayscale or self.too_dark)

    @property
    def night_likely(self) -> bool:
        return self.grayscale or self.lighting == "dark"


@dataclass(frozen=True)
class ColorEvidence:
    fractions: np.ndarray  # share per palette entry
    color: str  # main colour, or "unknown" when none reaches PRIMARY_MIN_SHARE
    colors: list[str]  # main colour first, then secondary ones
    top_share: float

    @classmethod
    def of(cls, names: np.ndarray, *, observable: bool = True) -> ColorEvidence:
        if not observable:  # grayscale or too dark: luminance is not garment or paint colour
            return cls(np.zeros(len(COLOR_NAMES)), UNKNOWN, [], 0.0)
        fractions = shares(names)
        ranking = ranked(fractions)
        top_share = ranking[0][1] if ranking else 0.0
        if top_share < PRIMARY_MIN_SHARE:
            return cls(fractions, UNKNOWN, [], top_share)
        colors = [name for name, share in ranking[:MAX_COLORS] if share >= SECONDARY_MIN_SHARE]
        return cls(fractions, colors[0], colors, top_share)

    def reported_shares(self) -> dict[str, float]:
        return {
            name: round(share, 3)
            for name, share in ranked(self.fractions)
            if share >= REPORTED_SHARE_MIN
        }


@dataclass(frozen=True)
class Enrichment:
    description: str
    attributes: dict[str, Any]
    confidence: float

    def attributes_json(self) -> str:
        return json.dumps(self.attributes, ensure_ascii=False, separators=(",", ":"))


def frame_stats(decoded: DecodedImage) -> FrameStats:
    image = decoded.image
    ratio = min(1.0, 128 / max(image.size))
    size = (max(1, round(image.size[0] * ratio)), max(1, round(image.size[1] * ratio)))
    rgb = np.asarray(image.resize(size, Image.Resampling.BOX), dtype=np.uint8)
    brightness = float(srgb_to_lab(rgb)[..., 0].mean()) / 100.0
    # Auto-levels for under-exposed frames, so that darkness alone does not read as black.
    highlight = float(np.percentile(rgb.max(axis=-1), 99))
    gain = 1.0 if highlight >= GAIN_FROM else min(MAX_GAIN, 255.0 / max(highlight, 1.0))
    levelled = _levels(gain)[rgb].astype(np.int16)
    # Channel spread rather than C*: a dark but coloured frame keeps it, a gray one has none.
    spread_p95 = float(np.percentile(levelled.max(axis=-1) - levelled.min(axis=-1), 95))
    if brightness < 0.15:
        lighting = "dark"
    elif brightness < 0.25:
        lighting = "dim"
    elif brightness < 0.75:
        lighting = "normal"
    else:
        lighting = "bright"
    return FrameStats(
        width=decoded.width,
        height=decoded.height,
        brightness=brightness,
        lighting=lighting,
        grayscale=spread_p95 < 6.0,
        gain=round(gain, 3),
        too_dark=highlight * gain < GAIN_FROM,
    )


def _levels(gain: float) -> np.ndarray:
    """uint8 lookup table multiplying by `gain`, clipped."""
    return np.clip(np.round(np.arange(256) * gain), 0, 255).astype(np.uint8)


def kind_of(label: str) -> str:
    if label in PERSON_LABELS:
        return "person"
    return "vehicle" if label in VEHICLE_LABELS else "object"


def _inset(n: int, fraction: float) -> slice:
    start = min(int(n * fraction), n - 1)
    return slice(start, max(start + 1, math.ceil(n * (1 - fraction))))


def _split_row(lab: np.ndarray, top: int, bottom: int, lo: int, hi: int) -> int:
    """Row between upper and lower garment: the two-segment split of the row-mean colours
    with the largest between-segment variance (Ward), searched in [lo, hi]; the middle of
    the box when the two segments differ by less than 6 ΔE (one colour head to toe)."""
    rows = lab[top:bottom].mean(axis=1)  # [n, 3]
    n = rows.shape[0]
    cumulative = np.concatenate([np.zeros((1, 3)), np.cumsum(rows, axis=0)])
    best_row, best_score, best_delta = (top + bottom) // 2, -1.0, 0.0
    for row in range(max(lo, top + 1), min(hi, bottom - 1) + 1):
        k = row - top
        upper = cumulative[k] / k
        lower = (cumulative[n] - cumulative[k]) / (n - k)
        delta = float(np.linalg.norm(upper - lower))
        score = k * (n - k) / n * delta * delta
        if score > best_score:
            best_row, best_score, best_delta = row, score, delta
    return best_row if best_delta >= 6.0 else (top + bottom) // 2


def _person_colors(
    lab: np.ndarray, names: np.ndarray, observable: bool
) -> tuple[ColorEvidence, ColorEvidence, ColorEvidence]:
    """(upper, lower, whole body) evidence from the central 60% of the box's width."""
    height, width = names.shape
    columns = _inset(width, 0.2)
    if height < 8:  # too few rows to find a boundary: halves (overlapping when 1 row)
        upper_rows, lower_rows = slice(0, math.ceil(height / 2)), slice(height // 2, height)
        body_rows = slice(0, height)
    else:
        top, bottom = round(height * 0.16), round(height * 0.95)  # skip head and feet
        split = _split_row(lab[:, columns], top, bottom, round(height * 0.35), round(height * 0.68))
        upper_rows, lower_rows, body_rows = (
            slice(top, split),
            slice(split, bottom),
            slice(top, bottom),
        )
    return (
        ColorEvidence.of(names[upper_rows, columns], observable=observable),
        ColorEvidence.of(names[lower_rows, columns], observable=observable),
        ColorEvidence.of(names[body_rows, columns], observable=observable),
    )


def _vehicle_colors(names: np.ndarray, observable: bool) -> tuple[ColorEvidence, float]:
    """Body colour of a vehicle: dark pixels (glass, tyres, shadow) are left out unless they
    are most of the box, in which case the vehicle is black. Returns (evidence, dark share)."""
    region = names[_inset(names.shape[0], 0.08), _inset(names.shape[1], 0.08)].reshape(-1)
    dark_share = float(np.mean(region == BLACK))
    if dark_share < VEHICLE_DARK_MAX:
        region = region[region != BLACK]
    return ColorEvidence.of(region, observable=observable), dark_share


def _edges(box: Box, frame: FrameStats) -> list[str]:
    touching = [
        ("left", box.x1 <= 0.5),
        ("top", box.y1 <= 0.5),
        ("right", box.x2 >= frame.width - 0.5),
        ("bottom", box.y2 >= frame.height - 0.5),
    ]
    return [edge for edge, touches in touching if touches]


def _geometry(box: Box, frame: FrameStats, brightness: float) -> dict[str, Any]:
    area = box.width * box.height / (frame.width * frame.height)
    return {
        "box": [round(v, 1) for v in (box.x1, box.y1, box.x2, box.y2)],
        "relative_width": round(box.width / frame.width, 3),
        "relative_height": round(box.height / frame.height, 3),
        "relative_area": round(area, 4),
        "aspect_ratio": round(box.width / box.height, 3),
        "size": "small" if area < 0.01 else "medium" if area < 0.10 else "large",
        "touches_edges": _edges(box, frame),
        "brightness": round(brightness, 3),
        "frame_brightness": round(frame.brightness, 3),
        "lighting": frame.lighting,
        "grayscale": frame.grayscale,
        "colors_observable": frame.colors_observable,
        "night_likely": frame.night_likely,
    }


def _colors(evidence: ColorEvidence) -> dict[str, Any]:
    return {
        "color": evidence.color,
        "colors": evidence.colors,
        "color_shares": evidence.reported_shares(),
    }


def _confidence(evidence: float, decoded: DecodedImage, box: Box, frame: FrameStats) -> float:
    sx, sy = decoded.scale
    size_factor = min(1.0, math.sqrt(box.width * sx * box.height * sy / FULL_EVIDENCE_PIXELS))
    if not frame.colors_observable:
        evidence = UNOBSERVABLE_EVIDENCE
    value = evidence * size_factor * LIGHT_FACTOR.get(frame.lighting, 1.0)
    return round(min(1.0, max(0.0, value)), 3)


def analyse(decoded: DecodedImage, frame: FrameStats, box: Box) -> Enrichment:
    pixels = crop_pixels(decoded, box, MAX_SAMPLES)
    lab = srgb_to_lab(pixels)
    brightness = float(lab[..., 0].mean()) / 100.0  # as captured, before levelling
    if frame.gain != 1.0:
        lab = srgb_to_lab(_levels(frame.gain)[pixels])
    names = name_pixels(lab)
    observable = frame.colors_observable
    kind = kind_of(box.label)
    attributes: dict[str, Any] = {"kind": kind, "label": box.label, "source": SOURCE}
    if kind == "person":
        upper, lower, body = _person_colors(lab, names, observable)
        attributes.update(
            clothing=[
                f"{evidence.color} {part} garment"
                for evidence, part in ((upper, "upper"), (lower, "lower"))
                if evidence.color != UNKNOWN
            ],
            carrying=[],
            age_group=UNKNOWN,
            gender_presentation=UNKNOWN,
            upper_color=upper.color,
            upper_colors=upper.colors,
            lower_color=lower.color,
            lower_colors=lower.colors,
            **_colors(body),
        )
        evidence = (upper.top_share + lower.top_share) / 2
    elif kind == "vehicle":
        body, dark_share = _vehicle_colors(names, observable)
        attributes.update(vehicle_type=box.label, **_colors(body), dark_share=round(dark_share, 3))
        evidence = body.top_share
    else:
        body = ColorEvidence.of(
            names[_inset(names.shape[0], 0.1), _inset(names.shape[1], 0.1)], observable=observable
        )
        attributes.update(_colors(body))
        evidence = body.top_share
    attributes.update(_geometry(box, frame, brightness))
    confidence = _confidence(evidence, decoded, box, frame)
    return Enrichment(describe(attributes), attributes, confidence)
