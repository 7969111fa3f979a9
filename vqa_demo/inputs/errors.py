"""The one exception type for bad user input, and its stable machine-readable categories."""

from __future__ import annotations

CATEGORIES = (
    "image_missing",
    "image_not_allowed",
    "image_not_found",
    "image_empty",
    "image_too_large",
    "image_not_raster",
    "image_unreadable",
    "image_truncated",
    "image_too_slow",
    "image_too_small",
    "image_aspect",
    "image_array_shape",
    "image_array_dtype",
    "image_array_values",
    "question_empty",
    "option_empty",
    "option_duplicate",
    "too_few_options",
    "too_many_options",
)


class InputError(ValueError):
    """A problem with user input; ``str(error)`` is the user-facing ``message``."""

    def __init__(self, category: str, message: str):
        assert category in CATEGORIES, f"unknown input error category {category!r}"
        super().__init__(message)
        self.category = category
        self.message = message

    def __reduce__(self):
        return (type(self), (self.category, self.message))
