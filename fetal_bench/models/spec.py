"""What a model eats and predicts: the :class:`ModelSpec` every fetal-bench model carries.

The evaluation harness, ``fetal-bench train`` and ``fetal-bench predict`` read only the spec to
feed a model: ``image_size``, ``channels`` and ``normalize`` are passed to
:func:`fetal_bench.data.loading.make_dataloader`; ``task_type`` and ``labels`` say how to read
the logits. A spec is plain data and round-trips through JSON (``config.json`` of a checkpoint).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from fetal_bench.errors import FetalBenchError
from fetal_bench.metrics.registry import TASK_TYPES, TaskType

__all__ = ["IMAGENET_NORMALIZE", "ModelSpec", "SEGMENTATION_LABELS"]

#: ImageNet statistics in [0, 1] units, for ``normalize`` with ``channels=3``.
IMAGENET_NORMALIZE: tuple[tuple[float, ...], tuple[float, ...]] = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
#: Label names of every binary segmenter (index 0 = background), as the harness expects.
SEGMENTATION_LABELS: tuple[str, str] = ("background", "head")


@dataclass(frozen=True)
class ModelSpec:
    """The input/output contract of one model instance.

    Attributes:
        name: registry name (``create_model(name)``).
        task_type: ``"classification"`` (logits ``(B, K)``) or ``"segmentation"`` (logits
            ``(B, K, H, W)``, or ``(B, 1, H, W)`` for a single foreground logit).
        labels: class names in logit order (segmentation: ``("background", "head")``).
        image_size: ``(height, width)`` the model expects.
        channels: 1 (gray) or 3 (gray repeated; e.g. for ImageNet statistics).
        normalize: what :func:`~fetal_bench.data.loading.make_dataloader` accepts:
            ``"per_image"``, ``(mean, std)`` in [0, 1] units, or ``None``.
        prompt: ``"box"`` when ``forward`` also takes box prompts (SAM); ``None`` otherwise.
            Such a model still runs without prompts (see its documentation), so the harness can
            call ``forward(pixel_values)``.
        crop: ``(top, bottom, left, right)`` pixel rows/columns to keep *before* resizing, for
            frames of exactly ``crop_frame_size`` ``(height, width)``: SonoNet's example frames
            carry the scanner's user interface around the image. Applied by ``fetal-bench
            predict``; dataset images (already cropped by their publishers) never match.
        crop_frame_size: see ``crop``.
    """

    name: str
    task_type: TaskType
    labels: tuple[str, ...]
    image_size: tuple[int, int]
    channels: int = 1
    normalize: Any = "per_image"
    prompt: str | None = None
    crop: tuple[int, int, int, int] | None = None
    crop_frame_size: tuple[int, int] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        problems = []
        if self.task_type not in TASK_TYPES:
            problems.append(f"task_type {self.task_type!r} is not one of {'/'.join(TASK_TYPES)}")
        if len(self.labels) < 2 or len(set(self.labels)) != len(self.labels):
            problems.append(f"labels {self.labels!r} must be at least two distinct names")
        if len(self.image_size) != 2 or not all(isinstance(v, int) and v > 0 for v in self.image_size):
            problems.append(f"image_size {self.image_size!r} is not (height, width) of positive ints")
        if self.channels not in (1, 3):
            problems.append(f"channels {self.channels} is not 1 or 3")
        if problems:
            raise FetalBenchError(f"Invalid model spec for {self.name!r}: " + "; ".join(problems) + ".",
                                  "Fix the model configuration (see `fetal-bench models list`).")
        # Frozen dataclass: normalise list inputs (from JSON) to tuples once, here.
        object.__setattr__(self, "labels", tuple(self.labels))
        object.__setattr__(self, "image_size", tuple(int(v) for v in self.image_size))
        if isinstance(self.normalize, list):
            object.__setattr__(self, "normalize", _tuplify(self.normalize))
        if self.crop is not None:
            object.__setattr__(self, "crop", tuple(int(v) for v in self.crop))
        if self.crop_frame_size is not None:
            object.__setattr__(self, "crop_frame_size", tuple(int(v) for v in self.crop_frame_size))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (tuples become lists)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def _tuplify(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_tuplify(v) for v in value)
    return value
