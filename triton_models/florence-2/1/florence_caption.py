"""Turning a Florence-2 caption of one crop into the contract's person fields.

Only words the caption actually contains are used: no word, no claim ("unknown", []).
Pure Python, so it can be checked without torch.
"""

from __future__ import annotations

import re

COLOR_WORDS = (
    "black", "gray", "grey", "white", "silver", "red", "maroon", "pink", "orange",
    "brown", "tan", "beige", "cream", "khaki", "yellow", "gold", "green", "olive",
    "blue", "navy", "denim", "teal", "purple", "violet", "striped", "plaid", "camouflage",
)  # fmt: skip
GARMENTS = (
    "t-shirt", "shirt", "jacket", "coat", "hoodie", "sweater", "sweatshirt", "vest",
    "blouse", "suit", "uniform", "dress", "skirt", "jeans", "pants", "trousers",
    "shorts", "leggings", "hat", "cap", "beanie", "helmet", "hood", "scarf", "gloves",
    "mask", "sunglasses", "glasses", "shoes", "sneakers", "boots", "sandals", "tie",
)  # fmt: skip
CARRIED = (
    "backpack", "bag", "handbag", "purse", "suitcase", "luggage", "briefcase",
    "umbrella", "box", "package", "parcel", "phone", "cellphone", "bottle", "cup",
    "laptop", "camera", "stroller", "skateboard", "ladder", "tool", "crowbar", "knife",
    "gun", "rifle", "bat", "flashlight",
)  # fmt: skip
MALE = frozenset({"man", "men", "boy", "he", "his", "him", "gentleman", "male"})
FEMALE = frozenset({"woman", "women", "girl", "she", "her", "lady", "female"})
CHILD = frozenset({"child", "children", "kid", "kids", "boy", "girl", "toddler", "baby"})
SENIOR = frozenset({"elderly", "senior", "grandmother", "grandfather", "old"})
ADULT = frozenset({"man", "men", "woman", "women", "adult", "gentleman", "lady"})
MAX_CLOTHING = 6

_MODIFIER = r"(?:(?:light|dark|bright|pale)[ -])?"
_CLOTHING = re.compile(
    rf"\b(?:({_MODIFIER}(?:{'|'.join(COLOR_WORDS)}))(?:[ -]\w+)?[ -])?"
    rf"({'|'.join(re.escape(g) for g in GARMENTS)})s?\b"
)
_CARRIED = re.compile(rf"\b({'|'.join(CARRIED)})s?\b")
_BOILERPLATE = re.compile(
    r"^(?:the|this|in this) (?:image|picture|photo)(?: is)?"
    r" (?:shows|depicts|features|of|a close-up of|we can see)\s+",
    re.IGNORECASE,
)


def clean_caption(text: str) -> str:
    text = " ".join(text.replace("<pad>", " ").replace("</s>", " ").replace("<s>", " ").split())
    text = _BOILERPLATE.sub("", text)
    return text[:1].upper() + text[1:]


def first_sentences(text: str, count: int) -> str:
    sentences = re.split(r"(?<=[.!?])\s+", text.strip())
    chosen = " ".join(sentences[: max(1, count)]).strip()
    return chosen if chosen.endswith((".", "!", "?")) else f"{chosen}."


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


def person_fields(caption: str) -> dict[str, object]:
    """clothing / carrying / age_group / gender_presentation as the caption states them."""
    lower = caption.lower()
    clothing: list[str] = []
    for color, garment in _CLOTHING.findall(lower):
        phrase = f"{color} {garment}" if color else garment
        if phrase not in clothing and len(clothing) < MAX_CLOTHING:
            clothing.append(phrase)
    carrying = list(dict.fromkeys(_CARRIED.findall(lower)))
    words = _words(lower)
    male, female = bool(words & MALE), bool(words & FEMALE)
    gender = "male" if male and not female else "female" if female and not male else "unknown"
    if words & CHILD:
        age = "child"
    elif words & SENIOR:
        age = "senior"
    elif words & ADULT:
        age = "adult"
    else:
        age = "unknown"
    return {
        "clothing": clothing,
        "carrying": carrying,
        "age_group": age,
        "gender_presentation": gender,
    }
