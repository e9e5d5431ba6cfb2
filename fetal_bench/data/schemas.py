"""Column schemas that several datasets share, defined once.

The head-biometry layout is HC18's: every set that carries a head mask and its circumference
(``hc18``, the phantom's ``head`` config, mask-guided synthetic sets) uses exactly these
columns, in this order, so that one loader, one task definition and one scorer serve them all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover - typing only
    import datasets

# Column -> what it holds (the dataset cards' wording).
HEAD_BIOMETRY_COLUMNS = {
    "id": "unique row id",
    "image": "8-bit grayscale ultrasound image of the head standard plane",
    "mask": "filled head mask (0 background, 1 head)",
    "subject_id": "the exam (or simulated subject) the image belongs to; all its images are in one split",
    "pixel_size_mm": "physical size of one pixel in millimetres",
    "head_circumference_mm": "reference head circumference in millimetres",
}


def head_biometry_features(**extra: "datasets.features.FeatureType") -> "datasets.Features":
    """HC18's columns (id, image, mask, subject_id, pixel_size_mm, head_circumference_mm), then
    ``extra`` columns in the order given."""
    from datasets import Features, Image, Value

    return Features({
        "id": Value("string"),
        "image": Image(),
        "mask": Image(),
        "subject_id": Value("string"),
        "pixel_size_mm": Value("float32"),
        "head_circumference_mm": Value("float32"),
        **extra,
    })
