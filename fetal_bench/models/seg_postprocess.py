"""From a segmentation model's logits to a mask at the image's native size.

Every path that turns logits into a scored or saved mask (``evaluate --model``,
``fetal-bench predict``) calls :func:`mask_from_logits`, so a checkpoint's post-processing is
applied the same way everywhere. What to do is part of the model's configuration
(``model_cfg["postprocess"]``, saved in its checkpoint), never a flag of the evaluation:

* ``None`` (every model by default): resize the logits bilinearly to the native size, then
  argmax. Resizing scores rather than labels keeps boundaries smooth.
* ``{"method": "ellipse", "offset_px": d}`` (head segmenters): the head's outline is an
  ellipse, so fit one to the sub-pixel 0.5-probability contour of the largest head component
  (holes filled; where it is two round lobes joined by a neck, the larger lobe: see
  :func:`main_lobe`), trimmed of outlying contour points (a leak into a neighbouring structure),
  widen both semi-axes by ``d`` native pixels, and return the filled ellipse. ``d`` is fitted
  on training images only by :func:`calibrate_ellipse_offset`.

``flip_average: true`` (optional, U-Net) makes the model average its logits with those of the
left-right mirrored image at inference (:class:`fetal_bench.models.unet.UNetSegmenter`).
``calibration`` (optional) records how ``offset_px`` was fitted; it is provenance only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from fetal_bench.errors import FetalBenchError
from fetal_bench.geometry import Ellipse

if TYPE_CHECKING:
    import torch

__all__ = ["POSTPROCESS_METHODS", "calibrate_ellipse_offset", "check_postprocess", "foreground_probability",
           "head_ellipse_from_probability", "main_lobe", "mask_from_logits"]

POSTPROCESS_METHODS = ("ellipse",)
_KEYS = {"method", "offset_px", "flip_average", "calibration"}
#: |offset| beyond this many native pixels is no calibration but a broken fit (HC18 needs about 1).
MAX_OFFSET_PX = 20.0


def check_postprocess(postprocess: Any) -> dict | None:
    """``postprocess`` validated (a dict, or None for the plain argmax); a clear error otherwise."""
    if postprocess is None:
        return None
    fix = ('Use {"method": "ellipse", "offset_px": <float>} (optionally with "calibration"), '
           "or leave postprocess unset for the plain argmax.")
    if not isinstance(postprocess, Mapping):
        raise FetalBenchError(f"postprocess must be a mapping, got {type(postprocess).__name__}.", fix)
    unknown = sorted(str(k)[:40] for k in set(postprocess) - _KEYS)
    method = postprocess.get("method")
    offset = postprocess.get("offset_px", 0.0)
    if unknown:
        raise FetalBenchError(f"postprocess has unknown keys {unknown}.", fix)
    if method not in POSTPROCESS_METHODS:
        raise FetalBenchError(f"postprocess method {str(method)[:40]!r} is not one of {list(POSTPROCESS_METHODS)}.", fix)
    if isinstance(offset, bool) or not isinstance(offset, (int, float)) or not math.isfinite(offset) \
            or abs(offset) > MAX_OFFSET_PX:
        raise FetalBenchError(f"postprocess offset_px must be a number within ±{MAX_OFFSET_PX:g}, got {str(offset)[:40]}.",
                              fix)
    if not isinstance(postprocess.get("flip_average", False), bool):
        raise FetalBenchError("postprocess flip_average must be true or false.", fix)
    return {**dict(postprocess), "offset_px": float(offset)}


def foreground_probability(logits: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """Head probability (float32, ``size``) of one image's logits ``(C, h, w)``: bilinear resize
    of the logits to ``size``, then softmax (or sigmoid for one channel)."""
    import torch
    import torch.nn.functional as F

    full = F.interpolate(logits[None].float(), size=tuple(size), mode="bilinear", align_corners=False)[0]
    probability = torch.softmax(full, dim=0)[1] if full.shape[0] > 1 else torch.sigmoid(full[0])
    return probability.cpu().numpy().astype(np.float32)


def mask_from_logits(logits: torch.Tensor, size: tuple[int, int], postprocess: Mapping | None = None) -> np.ndarray:
    """Boolean mask of ``size`` from one image's logits ``(C, h, w)``, as the module docstring says."""
    import torch.nn.functional as F

    if postprocess is None:
        full = F.interpolate(logits[None].float(), size=tuple(size), mode="bilinear", align_corners=False)[0]
        # Equal to argmax(dim=0) > 0 (the first maximum wins a tie), ~200x faster on a CPU, where
        # argmax over the channel dimension takes ~80 ms for one 540x800 HC18 image.
        return (full[1:].amax(dim=0) > full[0] if full.shape[0] > 1 else full[0] > 0).cpu().numpy()
    from fetal_bench.geometry import ellipse_mask

    probability = foreground_probability(logits, size)
    region, ellipse = head_ellipse_from_probability(probability)
    if ellipse is None:
        return region
    offset = float(postprocess.get("offset_px", 0.0))
    if min(ellipse.a, ellipse.b) + offset <= 1.0:
        return region
    widened = Ellipse(ellipse.cx, ellipse.cy, ellipse.a + offset, ellipse.b + offset, ellipse.angle)
    return ellipse_mask(probability.shape, widened)


#: A lobe is split off where the region's neck is narrower than this share of its widest inscribed
#: circle's radius ...
NECK_RATIO = 0.5
#: ... and only when the smaller side holds at least this share of the region's area.
MIN_LOBE_SHARE = 0.2


def main_lobe(region: np.ndarray) -> np.ndarray:
    """``region`` without a second round lobe joined to it by a narrow neck.

    In the first trimester the fetal trunk is as round and as bright-rimmed as the head, and a
    network may mark both, touching (HC18 023_2HC: one ellipse around head and trunk, +57% HC). The
    lobes are found as the parts of the region deeper than ``NECK_RATIO`` times its greatest depth
    (distance to the background); each pixel of the region goes to its nearest lobe, and when two
    or more lobes each hold at least ``MIN_LOBE_SHARE`` of the area, the largest is kept (the rule
    that already picks the largest component). The deep part of a convex region (an ellipse of any
    shape) is convex, so one piece: such regions are returned unchanged.
    """
    from scipy import ndimage

    depth = ndimage.distance_transform_edt(region)
    lobes, count = ndimage.label(depth > NECK_RATIO * depth.max())
    if count < 2:
        return region
    _, (rows, cols) = ndimage.distance_transform_edt(lobes == 0, return_indices=True)
    owner = np.where(region, lobes[rows, cols], 0)
    areas = np.bincount(owner.ravel(), minlength=count + 1)
    areas[0] = 0
    largest, second = np.argsort(areas)[::-1][:2]
    if areas[second] < MIN_LOBE_SHARE * areas.sum():
        return region
    return owner == largest


def head_ellipse_from_probability(probability: np.ndarray) -> tuple[np.ndarray, Ellipse | None]:
    """The head region (largest 8-connected component of ``probability > 0.5``, holes filled, its
    main lobe: :func:`main_lobe`) and the trimmed ellipse through its sub-pixel 0.5 contour; the
    ellipse is None where none fits or it is implausible (see
    :func:`fetal_bench.metrics.usable_head_ellipse`)."""
    from scipy import ndimage

    from fetal_bench.geometry import fit_ellipse_robust, subpixel_boundary_points
    from fetal_bench.metrics.segmentation import MAX_ELLIPSE_OUTSIDE_FRACTION, ellipse_outside_fraction

    mask = probability > 0.5
    components, count = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    if count == 0:
        return mask, None
    sizes = np.bincount(components.ravel())
    sizes[0] = 0
    region = main_lobe(ndimage.binary_fill_holes(components == int(np.argmax(sizes))))
    x, y = subpixel_boundary_points(probability, region)
    try:
        ellipse = fit_ellipse_robust(x, y)
    except ValueError:
        return region, None
    values = (ellipse.cx, ellipse.cy, ellipse.a, ellipse.b, ellipse.angle)
    if not all(math.isfinite(v) for v in values) or ellipse.b <= 0 \
            or ellipse_outside_fraction(ellipse, region.shape) > MAX_ELLIPSE_OUTSIDE_FRACTION:
        return region, None
    return region, ellipse


def calibrate_ellipse_offset(ellipses: Sequence[Ellipse | None], shapes: Sequence[tuple[int, int]],
                             targets_mm: Sequence[float], pixel_sizes_mm: Sequence[float], *,
                             rounds: int = 3) -> tuple[float, dict]:
    """The ``offset_px`` that makes the mean signed HC error of the ellipse masks zero.

    ``ellipses``: :func:`head_ellipse_from_probability` on training images (None: skipped);
    ``targets_mm``: the HC each should measure (the reference HC, or the HC of the reference
    mask, both through :func:`fetal_bench.metrics.head_circumference_mm`). HC is measured on the
    rasterised mask exactly as the task scores it, so the offset absorbs every systematic
    difference: the model's, and the half pixel the metric's boundary-pixel centres lie inside
    a mask. Widening an ellipse by ``d`` adds about ``2 pi d`` pixels to its perimeter, so a
    secant search converges in two or three rounds. Returns the offset and a summary.
    """
    kept = [(e, s, t, p) for e, s, t, p in zip(ellipses, shapes, targets_mm, pixel_sizes_mm) if e is not None]
    if not kept:
        raise FetalBenchError("No calibration image gave a head ellipse.",
                              "Calibrate on a trained model and a split with head masks.")

    def mean_error(offset: float) -> float:
        return float(np.mean(_hc_errors(kept, offset)))

    offsets, errors = [0.0], [mean_error(0.0)]
    mean_spacing = float(np.mean([p for *_, p in kept]))
    offsets.append(-errors[0] / (2 * math.pi * mean_spacing))
    errors.append(mean_error(offsets[-1]))
    for _ in range(rounds - 1):
        if abs(errors[-1]) < 1e-3 or errors[-1] == errors[-2]:
            break
        slope = (errors[-1] - errors[-2]) / (offsets[-1] - offsets[-2])
        offsets.append(offsets[-1] - errors[-1] / slope)
        errors.append(mean_error(offsets[-1]))
    best = int(np.argmin(np.abs(errors)))
    offset = float(np.clip(offsets[best], -MAX_OFFSET_PX, MAX_OFFSET_PX))
    summary = {"n_images": len(kept), "n_without_ellipse": len(ellipses) - len(kept),
               "mean_signed_error_mm_before": errors[0], "mean_signed_error_mm_after": errors[best]}
    return offset, summary


def _hc_errors(kept: list, offset: float) -> np.ndarray:
    from fetal_bench.geometry import ellipse_mask
    from fetal_bench.metrics.segmentation import head_circumference_mm

    errors = []
    for ellipse, shape, target, spacing in kept:
        widened = Ellipse(ellipse.cx, ellipse.cy, ellipse.a + offset, ellipse.b + offset, ellipse.angle)
        measured = head_circumference_mm(ellipse_mask(tuple(shape), widened), spacing)
        errors.append(np.nan if measured is None else measured - target)
    errors = np.asarray(errors)
    return errors[np.isfinite(errors)]



CALIBRATION_TARGETS = ("reference_mask", "reference_hc")


def split_probabilities(model, dataset, *, batch_size: int = 8, log=lambda m: None) -> dict[str, np.ndarray]:
    """Head probability at native size of every row of ``dataset`` (an image column), keyed by id."""
    import torch

    from fetal_bench.data.loading import make_dataloader

    spec = model.spec
    loader = make_dataloader(dataset, image_size=tuple(spec.image_size), batch_size=batch_size,
                             shuffle=False, channels=spec.channels, normalize=spec.normalize,
                             label_column=None, mask_column=None)
    device = next(model.parameters()).device
    out: dict[str, np.ndarray] = {}
    model.eval()
    with torch.inference_mode():
        for batch in loader:
            logits = model(batch["pixel_values"].to(device)).float()
            for i, row_id in enumerate(batch["id"]):
                size = tuple(int(v) for v in batch["original_size"][i])
                out[row_id] = foreground_probability(logits[i], size)
    log(f"predicted {len(out)} head probability maps")
    return out


#: The only split calibration may read: every other one (validation, test, challenge_test) is scored.
CALIBRATION_SPLITS = ("train",)


def _check_training_split(split: str) -> None:
    """Refuse a split expression that reads any split but the training one.

    The expression is parsed, not matched by name: ``validation[:100%]`` and ``train+validation``
    read validation images as surely as ``validation`` does.
    """
    from fetal_bench.data.splits import split_names

    scored = [name for name in split_names(split) if name not in CALIBRATION_SPLITS]
    if scored:
        raise FetalBenchError(
            f"Calibrating on split {str(split)[:200]!r} would fit the offset on images it is scored on: it reads "
            f"{', '.join(repr(name) for name in scored)}.",
            "Calibrate on the training split: --split train, or a slice of it such as train[:50%].")


def calibrate_checkpoint(checkpoint, data, *, split: str = "train", config: str | None = None,
                         target: str = "reference_mask", flip_average: bool = False, batch_size: int = 8,
                         log=lambda m: None) -> dict:
    """Fit ``offset_px`` of the ellipse post-processing on ``split`` and save it in the checkpoint.

    The checkpoint's model is rebuilt with ``postprocess = {"method": "ellipse", "offset_px": d,
    "calibration": {...}}`` in its configuration and saved again (weights unchanged), so every
    later ``evaluate --model`` and ``predict`` applies it. ``target``: ``reference_mask`` makes
    the masks measure, on average, what the reference masks measure (their drawn outline
    included: best for Dice); ``reference_hc`` makes them measure the reference HC itself.
    ``flip_average``: the model averages with the mirrored image, during calibration and after.
    Calibrate on a training split only: fitted on the split it is scored on, the offset would
    leak the answer. Returns the ``postprocess`` entry.
    """
    from fetal_bench._io import exclusive_lock

    if target not in CALIBRATION_TARGETS:
        raise FetalBenchError(f"Unknown calibration target {str(target)[:40]!r}.", f"Use one of {list(CALIBRATION_TARGETS)}.")
    _check_training_split(split)
    # The checkpoint is this run's output: locked for the whole run, and checked writable before
    # the (long) prediction pass rather than failing when the offset is saved.
    with exclusive_lock(checkpoint):
        _check_writable(checkpoint)
        return _calibrate(checkpoint, data, split=split, config=config, target=target, flip_average=flip_average,
                          batch_size=batch_size, log=log)


def _check_writable(directory) -> None:
    import tempfile

    try:
        tempfile.TemporaryFile(dir=directory).close()
    except OSError as error:
        raise FetalBenchError(
            f"Checkpoint {directory} cannot be written ({error.strerror or error}): calibration saves the fitted "
            "offset in its config.json.",
            "Copy the checkpoint directory somewhere writable and calibrate the copy.") from None


def _calibrate(checkpoint, data, *, split, config, target, flip_average, batch_size, log) -> dict:
    from fetal_bench.data import open_dataset
    from fetal_bench.metrics.segmentation import head_circumference_mm
    from fetal_bench.models import create_model, get_model_info, save_checkpoint
    from fetal_bench.models.checkpoint import read_checkpoint

    recorded = read_checkpoint(checkpoint)
    if get_model_info(recorded.model).classifies:
        raise FetalBenchError(f"{checkpoint} holds a classifier ({recorded.model}).", "Calibrate a head segmenter.")
    model = create_model(recorded.model, checkpoint=checkpoint)
    dataset = open_dataset(data, config=config, split=split)
    # The offset is fitted to the very probabilities the saved model will produce.
    model.model_cfg["postprocess"] = {"method": "ellipse", "offset_px": 0.0, "flip_average": bool(flip_average)}
    probabilities = split_probabilities(model, dataset, batch_size=batch_size, log=log)
    ellipses, shapes, targets, spacings = [], [], [], []
    for row in dataset.remove_columns(["image"]):
        ellipses.append(head_ellipse_from_probability(probabilities[row["id"]])[1])
        shapes.append(probabilities[row["id"]].shape)
        spacing = float(row["pixel_size_mm"])
        spacings.append(spacing)
        if target == "reference_hc":
            targets.append(float(row["head_circumference_mm"]))
        else:
            targets.append(head_circumference_mm(np.asarray(row["mask"]) > 0, spacing) or np.nan)
    offset, summary = calibrate_ellipse_offset(ellipses, shapes, targets, spacings)
    postprocess = {"method": "ellipse", "offset_px": round(offset, 4), "flip_average": bool(flip_average),
                   "calibration": {"split": split, "target": target, **summary}}
    model.model_cfg["postprocess"] = postprocess
    save_checkpoint(model, checkpoint, training=recorded.training, run_name=recorded.run_name)
    log(f"ellipse offset {offset:+.3f} px fitted on {summary['n_images']} {split} images "
        f"(mean signed HC error {summary['mean_signed_error_mm_before']:+.3f} -> {summary['mean_signed_error_mm_after']:+.3f} mm)")
    return postprocess
