"""Headless Chromium and its driver for the console's browser tests, from Debian's packages
(`chromium`, `chromium-driver`), installed when the machine lacks them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vigil.devservices.debian import ensure_programs


@dataclass(frozen=True)
class Chromium:
    binary: Path
    driver: Path


def ensure_chromium() -> Chromium:
    found = ensure_programs(("chromium", "chromium-driver"), ("chromium", "chromedriver"))
    return Chromium(found["chromium"], found["chromedriver"])
