"""One-sentence descriptions built from the attributes (nothing beyond them is said)."""

from __future__ import annotations

from typing import Any

UNKNOWN = "unknown"


def _percent(fraction: float) -> str:
    value = round(fraction * 100)
    return "under 1%" if value < 1 else f"about {value}%"


def _light_note(attributes: dict[str, Any]) -> str:
    if attributes["grayscale"]:
        return " (grayscale image: colours not observable)"
    if not attributes["colors_observable"]:
        return " (too dark: colours not observable)"
    if attributes["lighting"] in ("dark", "dim"):
        return f" ({attributes['lighting']} lighting: colours less certain)"
    return ""


def _person(attributes: dict[str, Any]) -> str:
    upper, lower = attributes["upper_color"], attributes["lower_color"]
    if upper != UNKNOWN and lower != UNKNOWN:
        text = f"Person in a {upper} upper garment and {lower} lower garment"
    elif upper != UNKNOWN:
        text = f"Person in a {upper} upper garment (lower garment colour unclear)"
    elif lower != UNKNOWN:
        text = f"Person in a {lower} lower garment (upper garment colour unclear)"
    else:
        text = "Person, clothing colours unclear"
    return f"{text}, {_percent(attributes['relative_height'])} of frame height"


def _thing(attributes: dict[str, Any]) -> str:
    label, colors = attributes["label"], attributes["colors"]
    if colors:
        text = f"{' and '.join(colors[:2]).capitalize()} {label}"
    else:
        text = f"{label.capitalize()} of unclear colour"
    size, area = attributes["size"], _percent(attributes["relative_area"])
    return f"{text}, {size} in frame ({area} of frame area)"


def describe(attributes: dict[str, Any]) -> str:
    text = _person(attributes) if attributes["kind"] == "person" else _thing(attributes)
    return f"{text}{_light_note(attributes)}."
