"""Pixel-level attributes of detected objects, shared by the enrichment models.

Pure numpy + Pillow (no Triton, no torch), so `crop-attributes` (CPU) serves it
directly and `florence-2` (GPU) reuses its request checks, geometry and colour
evidence; both decode the image with `vigil_triton.imaging`. See `../model.py` for
the contract.
"""

from vigil_crop.attributes import SOURCE, Enrichment, FrameStats, analyse, frame_stats
from vigil_crop.colors import COLOR_NAMES
from vigil_crop.imaging import Box, InvalidRequest, check_shapes, parse_boxes

__all__ = [
    "COLOR_NAMES",
    "SOURCE",
    "Box",
    "Enrichment",
    "FrameStats",
    "InvalidRequest",
    "analyse",
    "check_shapes",
    "frame_stats",
    "parse_boxes",
]
