"""Naming pixel colours with a fixed palette of rules in CIE L*C*h (D65, sRGB input).

Each pixel gets exactly one of COLOR_NAMES; first matching rule wins:

  black   L* < 25 and C* < 15 (dark, no clear colour)
  gray    C* < 10 and 25 <= L* < 74
  white   C* < 10 and L* >= 74
  then by hue angle h (C* >= 10, or C* >= 15 when L* < 25):
  red     h in [345, 45)   -> pink when L* >= 65; beige when L* >= 65, C* < 20, h >= 25
  warm    h in [45, 95)    -> beige (L* >= 50, C* < 25), orange (h < 75, L* >= 60),
                              yellow (h >= 75, L* >= 60), else brown
  yellow  h in [95, 115)   -> beige (L* >= 50, C* < 25), yellow (L* >= 60), else green
  green   h in [115, 200)
  blue    h in [200, 315)
  purple  h in [315, 345)  -> pink when L* >= 70

The thresholds were set on sRGB references (navy, denim, tan, cream, teal ...)
and real photos; light gray vs white and shaded cream vs brown are the
boundaries most sensitive to exposure.
"""

from __future__ import annotations

import numpy as np

COLOR_NAMES = (
    "black",
    "gray",
    "white",
    "red",
    "pink",
    "orange",
    "brown",
    "beige",
    "yellow",
    "green",
    "blue",
    "purple",
)
BLACK = COLOR_NAMES.index("black")

_SRGB_TO_XYZ = np.array(
    [
        [0.4124564, 0.3575761, 0.1804375],
        [0.2126729, 0.7151522, 0.0721750],
        [0.0193339, 0.1191920, 0.9503041],
    ]
)
_D65_WHITE = np.array([0.95047, 1.0, 1.08883])
_EPSILON = (6 / 29) ** 3


def _linear_table() -> np.ndarray:
    c = np.arange(256, dtype=np.float64) / 255.0
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


_SRGB_TO_LINEAR = _linear_table()  # the sRGB transfer function for every uint8 value


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """uint8 sRGB [..., 3] -> CIE L*a*b* float64 [..., 3] (D65)."""
    linear = _SRGB_TO_LINEAR[rgb.reshape(-1, 3)]
    xyz = linear @ (_SRGB_TO_XYZ.T / _D65_WHITE)
    f = np.where(xyz > _EPSILON, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    lab = np.empty_like(f)
    lab[:, 0] = 116 * f[:, 1] - 16
    lab[:, 1] = 500 * (f[:, 0] - f[:, 1])
    lab[:, 2] = 200 * (f[:, 1] - f[:, 2])
    return lab.reshape(rgb.shape)


def lab_to_lch(lab: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lightness, a, b = lab[..., 0], lab[..., 1], lab[..., 2]
    return lightness, np.hypot(a, b), np.degrees(np.arctan2(b, a)) % 360.0


def name_pixels(lab: np.ndarray) -> np.ndarray:
    """Palette index (int8) per pixel of a L*a*b* array [..., 3]."""
    lightness, chroma, hue = lab_to_lch(lab)
    dark = lightness < 25
    neutral = (dark & (chroma < 15)) | (chroma < 10)
    reds = (hue >= 345) | (hue < 45)
    warm = (hue >= 45) & (hue < 95)
    yellows = (hue >= 95) & (hue < 115)
    greens = (hue >= 115) & (hue < 200)
    blues = (hue >= 200) & (hue < 315)
    purples = (hue >= 315) & (hue < 345)
    light, pale = lightness >= 60, (lightness >= 50) & (chroma < 25)
    rules = [
        (neutral & dark, "black"),
        (neutral & (lightness < 74), "gray"),
        (neutral, "white"),
        (reds & (lightness >= 65) & (chroma < 20) & (hue >= 25) & (hue < 45), "beige"),
        (reds & (lightness >= 65), "pink"),
        (reds, "red"),
        (warm & pale, "beige"),
        (warm & light & (hue < 75), "orange"),
        (warm & light, "yellow"),
        (warm, "brown"),
        (yellows & pale, "beige"),
        (yellows & light, "yellow"),
        (yellows | greens, "green"),
        (blues, "blue"),
        (purples & (lightness >= 70), "pink"),
    ]
    conditions = [condition for condition, _ in rules]
    choices = [COLOR_NAMES.index(name) for _, name in rules]
    return np.select(conditions, choices, default=COLOR_NAMES.index("purple")).astype(np.int8)


def shares(names: np.ndarray) -> np.ndarray:
    """Fraction of pixels per palette entry (float64 [len(COLOR_NAMES)]); zeros when empty."""
    counts = np.bincount(names.reshape(-1), minlength=len(COLOR_NAMES)).astype(np.float64)
    total = counts.sum()
    return counts / total if total else counts


def ranked(fractions: np.ndarray) -> list[tuple[str, float]]:
    """(name, share) by share descending, ties in palette order."""
    order = sorted(range(len(COLOR_NAMES)), key=lambda i: (-fractions[i], i))
    return [(COLOR_NAMES[i], float(fractions[i])) for i in order if fractions[i] > 0]
