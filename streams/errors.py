"""The failures a stage tells apart: what a retry may fix, and what it never will.

A leaf module: the retry policy, the circuit breaker, the model clients and the image
reader all raise or catch these, and import nothing from each other to do so. Each
carries `error_type`, the name a dead letter records.
"""

from __future__ import annotations


class PermanentError(Exception):
    """A failure that retrying cannot fix (a corrupt image, say): dead-letter at once."""

    error_type = "PermanentError"


class ModelUnavailable(Exception):
    """The model could not be reached or failed in a way a retry may fix."""

    error_type = "ModelUnavailable"


class InvalidModelInput(PermanentError):
    """The model refused the input itself (a corrupt image, an empty prompt): never retried,
    and says nothing about the model's health."""

    error_type = "InvalidModelInput"


class InvalidImage(InvalidModelInput):
    error_type = "InvalidImage"


class ImageMissing(PermanentError):
    error_type = "ImageMissing"
