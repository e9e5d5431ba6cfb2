"""Segmentation tasks: a head mask per image. The kind owns everything that is specific to them.

* Truth: the reference masks at native size (sizes from the PNG headers; masks decoded when
  scored), pixel sizes and head circumferences.
* Submissions: a directory of ``<id>.png`` masks, or a Parquet file with ``id`` and ``mask``
  (PNG bytes), each at its image's native size (never resized).
* Prediction: a model's logits resized to each image's native size, then argmax, or the
  post-processing the model's configuration carries
  (:func:`fetal_bench.models.seg_postprocess.mask_from_logits`); written back as a Parquet of
  PNG masks.
* Scores: means (or medians) of per-image values, each image scored once, with
  subject-resampled intervals.
* Training: Dice + cross-entropy on the masks (box prompts from the masks for a box-prompted
  model such as SAM), validated on Dice.
"""

from __future__ import annotations

import io
import math
import os
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np

from fetal_bench._io import UnreadableFile
from fetal_bench.errors import DataError, FetalBenchError
from fetal_bench.tasks.kind import TaskKind
from fetal_bench.tasks.scoring import BootstrapConfig, score_entry
from fetal_bench.tasks.submissions import MAX_MASK_BYTES, Problems, SubmissionError, check_ids, mask_files
from fetal_bench.tasks.submissions import (
    error_text, read_mask_entry, read_parquet, read_submission_file, short_id, text_ids,
)

if TYPE_CHECKING:  # typing only
    from fetal_bench.models.registry import ModelInfo
    from fetal_bench.tasks.base import Task

__all__ = ["SEGMENTATION", "MaskObjective", "MaskTargets", "SegmentationKind", "SegmentationTruth",
           "load_segmentation_submission"]

PerImage = dict[str, np.ndarray]


# --------------------------------------------------------------------------------------------
# truth
# --------------------------------------------------------------------------------------------


@dataclass
class SegmentationTruth:
    """The reference of a segmentation split. Sizes come from the PNG headers; the masks
    themselves are decoded on first use (scoring), after a model has predicted: holding a
    split's native-size masks while a network ran made its forward passes up to 17% slower
    on a CPU (the allocator's state; ``benchmarks/bench_harness.py``)."""

    ids: list[str]
    shapes: dict[str, tuple[int, int]]
    pixel_size_mm: np.ndarray
    head_circumference_mm: np.ndarray | None
    subjects: np.ndarray
    groups: dict[str, np.ndarray]
    cells: list[dict] = field(repr=False)  # the masks' undecoded Image cells, in ``ids`` order
    dropped: int = 0  # every labelled row is scored (an unlabelled one is an error)

    @cached_property
    def masks(self) -> list[np.ndarray]:
        """Boolean masks (label > 0) at native size, in ``ids`` order."""
        from fetal_bench.data.images import open_mask

        return [np.asarray(open_mask(cell, row_id)) > 0 for row_id, cell in zip(self.ids, self.cells)]


def segmentation_truth(task: Task, dataset) -> SegmentationTruth:
    import datasets

    from fetal_bench.data.images import open_cell

    needed = ["id", task.mask_column, task.subject_column, "pixel_size_mm"]
    missing = [c for c in needed if c not in dataset.column_names]
    if missing:
        raise FetalBenchError(f"The evaluation data lacks columns {missing}.", f"Pass --data pointing at a build of {task.dataset.name!r}.")
    if not isinstance(dataset.features[task.mask_column], datasets.Image):
        raise FetalBenchError(f"The evaluation column {task.mask_column!r} holds "
                              f"{type(dataset.features[task.mask_column]).__name__} values, not images.",
                              "Store the masks as a datasets.Image column, as `fetal-bench datasets build` does.")
    columns = needed + [c for c in ("head_circumference_mm", *task.group_by) if c in dataset.column_names]
    rows = dataset.select_columns(columns).cast_column(task.mask_column, datasets.Image(decode=False))
    ids, cells = list(rows["id"]), rows[task.mask_column]
    unlabelled = [row_id for row_id, cell in zip(ids, cells) if cell is None]
    if unlabelled:
        raise FetalBenchError(f"{len(unlabelled)} evaluation rows have no reference mask (e.g. {unlabelled[0]}).",
                              "Score a labelled split (train/validation/test), not challenge_test.")
    shapes = {}
    for row_id, cell in zip(ids, cells):
        header = open_cell(cell, row_id, "mask")  # PIL reads the size from the header alone
        shapes[row_id] = (header.height, header.width)
    from fetal_bench.metrics.segmentation import HC_BAND_GROUP, hc_bands_of

    hc = rows["head_circumference_mm"] if "head_circumference_mm" in rows.column_names else None
    groups = {g: np.asarray(rows[g], dtype=object) for g in task.group_by if g in rows.column_names}
    if task.hc_bands and hc is not None and all(v is not None for v in hc):
        groups[HC_BAND_GROUP] = np.asarray(hc_bands_of(task.hc_bands, hc), dtype=object)
    return SegmentationTruth(
        ids=ids,
        shapes=shapes,
        pixel_size_mm=np.asarray(rows["pixel_size_mm"], dtype=np.float64),
        head_circumference_mm=None if hc is None else np.asarray(hc, dtype=np.float64),
        subjects=np.asarray(rows[task.subject_column], dtype=object),
        groups=groups,
        cells=cells,
    )




# --------------------------------------------------------------------------------------------
# submissions
# --------------------------------------------------------------------------------------------


def _decode_mask(data: object, expected_shape: tuple[int, int]) -> tuple[np.ndarray | None, str | None, str]:
    """(mask, None, "") or (None, kind, detail); the size is checked from the header before decoding.

    Checking the header size against the ground truth first bounds the pixels ever decoded by the
    reference mask's, so a PNG claiming 400 megapixels costs nothing.
    """
    from PIL import Image, UnidentifiedImageError

    if not isinstance(data, (bytes, bytearray, memoryview)):
        return None, "not-bytes", type(data).__name__
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the size check below decides
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                if (height, width) != tuple(expected_shape):
                    return None, "size", f"{width}x{height} (expected {expected_shape[1]}x{expected_shape[0]})"
                # Gray + alpha (LA) has one colour channel, RGB(A) three; alpha is ignored.
                colours = 1 if image.mode in ("LA", "La", "PA") else 3
                array = np.asarray(image)
    except Image.DecompressionBombError:
        return None, "size", f"over {2 * Image.MAX_IMAGE_PIXELS:,} pixels (expected {expected_shape[1]}x{expected_shape[0]})"
    except UnidentifiedImageError:
        return None, "unreadable", "not a PNG or other image file"
    except (OSError, ValueError, SyntaxError) as error:
        return None, "unreadable", error_text(error)[:80]
    if array.ndim == 3:  # a multi-channel mask is accepted only when its colour channels agree
        if not (array[..., :colours] == array[..., :1]).all():
            return None, "colour", ""
        array = array[..., 0]
    if array.ndim != 2:
        return None, "unreadable", f"{array.ndim}-D pixel data"
    return array, None, ""


_MASK_PROBLEMS = {  # kind -> how the error line starts
    "file": "mask entries that are not regular files of at most "
            f"{MAX_MASK_BYTES // (1024 * 1024)} MB (only <id>.png files are read)",
    "not-bytes": "masks that are not PNG bytes",
    "unreadable": "masks that are not readable images",
    "colour": "colour masks (save a single-channel PNG)",
    "size": "masks not at the image's native size (they are never resized)",
    "values": "mask values other than 0/1 (or 0/255)",
}


def _read_mask_directory(path: Path, expected: set[str]) -> tuple[list[str], dict[str, object], list[str]]:
    """(ids listed, raw bytes of the expected ones, "id (reason)" for entries that cannot be read).

    Only entries whose id is expected are opened: extra ids are reported by name, unread.
    """
    entries = mask_files(path)
    raw: dict[str, object] = {}
    bad_files = []
    root = path.resolve()
    for row_id, entry in entries.items():
        if row_id not in expected:
            continue
        try:
            raw[row_id] = read_mask_entry(entry, root)
        except UnreadableFile as error:
            bad_files.append(f"{short_id(row_id)} ({error.reason})")
    return list(entries), raw, bad_files


def _read_mask_parquet(path: Path) -> tuple[list[str], dict[str, object]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    fix = "Write one row per id with the mask as PNG bytes (or a datasets Image column)."
    data = read_submission_file(path, "the Parquet of masks")
    try:
        names = pq.ParquetFile(pa.BufferReader(data)).schema_arrow.names
    except (pa.ArrowException, OSError, ValueError) as error:
        raise SubmissionError(f"Cannot read {path} as Parquet: {error_text(error)[:300]}", fix) from None
    if "id" not in names or "mask" not in names:
        raise SubmissionError(f"{path} needs columns `id` and `mask` (PNG bytes), has {[short_id(n) for n in names[:20]]}.",
                              fix)
    table = read_parquet(path, data, columns=["id", "mask"], fix=fix)  # other columns are never decoded
    ids = text_ids(table.column("id").to_pylist())
    raw = {}
    for row_id, cell in zip(ids, table.column("mask").to_pylist()):
        raw[row_id] = cell.get("bytes") if isinstance(cell, dict) else cell
    return ids, raw


def load_segmentation_submission(
    path: str | Path,
    *,
    expected_ids: Sequence[str],
    expected_shapes: Mapping[str, tuple[int, int]],
) -> dict[str, np.ndarray]:
    """Boolean masks by id, checked against the ground truth's ids and native sizes."""
    path = Path(path)
    problems = Problems(path)
    found: dict[str, list[str]] = {kind: [] for kind in _MASK_PROBLEMS}
    if path.is_dir():
        ids, raw, found["file"] = _read_mask_directory(path, set(expected_ids))
    elif path.suffix.lower() in (".parquet", ".pq") and (path.exists() or path.is_symlink()):
        ids, raw = _read_mask_parquet(path)
    else:
        raise SubmissionError(f"Segmentation predictions {path} are neither a directory of PNG masks nor a Parquet file.",
                              "Pass a directory holding <id>.png for every evaluation id, or a Parquet with id + mask.")
    check_ids(ids, expected_ids, problems)
    masks: dict[str, np.ndarray] = {}
    for row_id in expected_ids:
        if row_id not in raw:
            continue
        array, kind, detail = _decode_mask(raw[row_id], tuple(expected_shapes[row_id]))
        if array is None:
            found[kind].append(f"{short_id(row_id)} ({detail})" if detail else row_id)
            continue
        values = np.unique(array)
        if not (set(values.tolist()) <= {0, 1} or set(values.tolist()) <= {0, 255}):
            found["values"].append(f"{short_id(row_id)} {values[:6].tolist()}")
            continue
        masks[row_id] = array > 0
    for kind, what in _MASK_PROBLEMS.items():
        problems.add_ids(what, found[kind])
    problems.raise_if_any("Save one single-channel PNG per id, at the image's own size, 0 = background and "
                          "1 (or 255) = head. `fetal-bench evaluate --validate-only` checks a submission.")
    return masks




def write_segmentation_predictions(path, ids: list[str], masks: dict[str, np.ndarray]) -> Path:
    """The model's masks as a submission Parquet (``id``, ``mask`` as 0/255 PNG bytes)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    from fetal_bench._io import atomic_file

    encoded = []
    for row_id in ids:
        buffer = io.BytesIO()
        Image.fromarray((np.asarray(masks[row_id]) > 0).astype(np.uint8) * 255).save(buffer, format="PNG")
        encoded.append(buffer.getvalue())
    table = pa.table({"id": pa.array(ids, pa.string()), "mask": pa.array(encoded, pa.binary())})
    path = Path(path)
    with atomic_file(path, "wb") as handle:
        pq.write_table(table, handle, compression="zstd")
    return path


# --------------------------------------------------------------------------------------------
# scores
# --------------------------------------------------------------------------------------------


def segmentation_per_image(task: Task, truth_masks, pred_masks, pixel_size_mm, hc_truth) -> PerImage:
    from fetal_bench import metrics as M
    from fetal_bench.metrics.segmentation import HC_METRICS, hc_scores

    values: PerImage = {metric: np.empty(len(truth_masks)) for metric in task.metrics}
    for i, (truth, pred) in enumerate(zip(truth_masks, pred_masks)):
        spacing = float(pixel_size_mm[i])
        hc = None  # one ellipse fit serves every HC metric of the image
        surface = None  # one boundary search serves HD95 and ASSD
        for metric in task.metrics:
            if metric == "dice":
                values[metric][i] = M.dice(pred, truth)
            elif metric == "iou":
                values[metric][i] = M.iou(pred, truth)
            elif metric in ("hd95_mm", "assd_mm"):
                if surface is None:
                    surface = M.hd95_and_assd_mm(pred, truth, spacing)
                values[metric][i] = getattr(surface, metric)
            elif metric in HC_METRICS:
                if hc_truth is not None and hc is None:
                    hc = hc_scores(pred, float(hc_truth[i]), spacing)
                values[metric][i] = np.nan if hc_truth is None else hc[metric]
    return values


def segmentation_statistic(metric: str, per_image: np.ndarray) -> Callable[[np.ndarray], float | None]:
    """A per-image segmentation metric aggregated over row indices (mean, or median where the metric says)."""
    from fetal_bench.metrics.registry import METRICS

    values = np.asarray(per_image, dtype=np.float64)
    if METRICS[metric].aggregate == "median":
        return lambda idx: float(np.median(values[idx]))
    return lambda idx: float(values[idx].mean())


def segmentation_scores(task: Task, per_image: PerImage, rows: np.ndarray, subjects: np.ndarray, boot: BootstrapConfig) -> dict:
    from fetal_bench import metrics as M

    scores: dict = {"main_score": task.main_score}
    for metric, values in per_image.items():
        subset = values[rows]
        if np.isnan(subset).any():
            scores[metric] = score_entry(None, reason="the evaluation data has no reference for this metric")
            continue
        if M.METRICS[metric].aggregate == "median":
            low, high = M.bootstrap_ci(lambda idx: float(np.median(subset[idx])), len(subset), clusters=subjects[rows],
                                       n_resamples=boot.n_resamples, seed=boot.seed, confidence=boot.confidence)
            scores[metric] = score_entry(float(np.median(subset)), (low, high))
            continue
        low, high = M.bootstrap_mean_ci(subset, clusters=subjects[rows], n_resamples=boot.n_resamples,
                                        seed=boot.seed, confidence=boot.confidence)
        scores[metric] = score_entry(float(subset.mean()), (low, high))
    return scores


# --------------------------------------------------------------------------------------------
# predicting image files (``fetal-bench predict``)
# --------------------------------------------------------------------------------------------


def _unique_stems(files: list[Path]) -> list[str]:
    seen: dict[str, int] = {}
    stems = []
    for path in files:
        stem = path.stem
        count = seen.get(stem, 0)
        seen[stem] = count + 1
        stems.append(stem if count == 0 else f"{stem}-{count}")
    return stems


def _save_mask(mask: np.ndarray, path: Path) -> None:
    from PIL import Image

    from fetal_bench._io import atomic_file

    with atomic_file(path, "wb") as handle:
        Image.fromarray(mask.astype(np.uint8) * 255).save(handle, format="PNG")


def _ellipse_columns(mask: np.ndarray) -> dict[str, float | None]:
    """An ellipse fitted to the mask's boundary, as HC18 measures head circumference."""
    from fetal_bench.geometry import fit_ellipse, mask_boundary

    empty = {"ellipse_cx": None, "ellipse_cy": None, "ellipse_a": None, "ellipse_b": None,
             "ellipse_angle": None, "ellipse_perimeter_px": None}
    rows, cols = np.nonzero(mask_boundary(mask))
    if len(rows) < 6:
        return empty
    try:
        ellipse = fit_ellipse(cols, rows)
    except ValueError:
        return empty
    values = {"ellipse_cx": ellipse.cx, "ellipse_cy": ellipse.cy, "ellipse_a": ellipse.a, "ellipse_b": ellipse.b,
              "ellipse_angle": ellipse.angle, "ellipse_perimeter_px": ellipse.perimeter}
    return {k: (v if math.isfinite(v) else None) for k, v in values.items()}




# --------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------


class MaskTargets:
    """A segmenter's training targets: the task's mask column, read as it is."""

    def __init__(self, task: Task):
        self.task = task
        self.labels = tuple(task.labels)
        self.columns = ["id", "image", task.mask_column]
        self.loader_columns = {"label_column": None, "mask_column": task.mask_column}

    def rows(self, dataset, what: str) -> tuple[Any, np.ndarray, None]:
        if self.task.mask_column not in dataset.column_names:
            raise DataError(f"The {what} data has no {self.task.mask_column!r} column.",
                            "Pass a segmentation dataset (synthetic data: image/mask pairs).")
        return dataset, np.arange(len(dataset)), None  # no classes: per-class caps do not apply

    def synthetic_rows(self, dataset) -> tuple[Any, np.ndarray, None]:
        return self.rows(dataset, "synthetic")

    def listed_rows(self, dataset, rows: np.ndarray, name: str) -> np.ndarray:
        raise FetalBenchError(f"real_list {name!r} names images of a classification set; task "
                              f"{self.task.name!r} is a segmentation task.", "Drop real_list.")


class MaskObjective:
    """A segmenter learning masks: cross-entropy plus soft Dice per image at the model's
    resolution, validated on hard Dice. A box-prompted model (SAM) gets box prompts from the masks,
    each side jittered outward by a draw in ``box_jitter`` pixels (the mask-guided paper's 0-20)."""

    def __init__(self, spec, box_jitter: tuple[float, float]):
        self.box_prompted = getattr(spec, "prompt", None) == "box"
        self.box_jitter = tuple(box_jitter)

    def forward(self, model, batch: dict, seed: int):
        if self.box_prompted:
            import torch

            from fetal_bench.tasks.losses import boxes_from_masks

            generator = torch.Generator().manual_seed(seed)
            return model(batch["pixel_values"], boxes=boxes_from_masks(batch["masks"], jitter=self.box_jitter,
                                                                         generator=generator))
        return model(batch["pixel_values"])

    def loss(self, logits, batch: dict):
        from fetal_bench.tasks.losses import dice_ce_loss

        return dice_ce_loss(_at_mask_size(logits.float(), batch), batch["masks"])

    def validation_forward(self, model, batch: dict, seed: int) -> tuple:
        return (self.forward(model, batch, seed),)

    def validation_values(self, outputs: tuple, batch: dict) -> dict:
        import torch

        from fetal_bench.tasks.losses import dice_ce_loss, segmentation_dice

        logits, masks = _at_mask_size(outputs[0].float(), batch), batch["masks"]
        per_image = torch.stack([dice_ce_loss(logits[i:i + 1], masks[i:i + 1]) for i in range(len(masks))])
        return {"loss": per_image, "dice": segmentation_dice(logits, masks)}

    def validation_scores(self, values: dict) -> dict[str, float]:
        return {"loss": float(values["loss"].mean()), "dice": float(values["dice"].mean())}


def _at_mask_size(logits, batch: dict):
    """Logits bilinearly resized to the masks' size when the model predicts at another one."""
    import torch.nn.functional as F

    size = batch["masks"].shape[-2:]
    if logits.shape[-2:] == size:
        return logits
    return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


# --------------------------------------------------------------------------------------------
# the kind
# --------------------------------------------------------------------------------------------


class SegmentationKind(TaskKind):
    name = "segmentation"
    protocol_scores = ("dice", "hc_abs_diff_mm", "hc_abs_diff_mm_median", "hc_no_ellipse_rate", "hd95_mm")
    predictions_suffix = ".parquet"

    def validation_metric(self, task: Task) -> str:
        return "dice"

    # -- evaluation ---------------------------------------------------------------------------

    def ground_truth(self, task: Task, dataset) -> SegmentationTruth:
        return segmentation_truth(task, dataset)

    def load_submission(self, task: Task, predictions, truth: SegmentationTruth) -> dict[str, np.ndarray]:
        return load_segmentation_submission(predictions, expected_ids=truth.ids, expected_shapes=truth.shapes)

    def write_predictions(self, path, truth: SegmentationTruth, submission: dict[str, np.ndarray]) -> Path:
        return write_segmentation_predictions(path, truth.ids, submission)

    def per_image_values(self, task: Task, truth: SegmentationTruth, submission: dict[str, np.ndarray]) -> PerImage:
        return segmentation_per_image(task, truth.masks, [submission[i] for i in truth.ids], truth.pixel_size_mm,
                                      truth.head_circumference_mm)

    def statistic(self, task: Task, truth: SegmentationTruth, submission: dict[str, np.ndarray], metric: str,
                  per_image: dict | None = None) -> Callable[[np.ndarray], float | None]:
        if per_image is None:
            per_image = self.per_image_values(task, truth, submission)
        return segmentation_statistic(metric, per_image[metric])

    def _rows_scorer(self, task: Task, truth: SegmentationTruth, submission: dict[str, np.ndarray],
                     boot: BootstrapConfig, on_phase, per_image: dict | None = None):
        # Every image is scored once; the bootstrap only resamples these values.
        if per_image is None:
            per_image = self.per_image_values(task, truth, submission)
        on_phase("per_image_metrics")

        def score_rows(rows: np.ndarray) -> dict:
            return segmentation_scores(task, per_image, rows, truth.subjects, boot)

        return score_rows

    # -- running a model ----------------------------------------------------------------------

    def image_outputs(self, model, dataset, *, sizes=None, batch_size: int = 8, num_workers: int = 0,
                      description: str | None = None) -> dict[str, np.ndarray]:
        """Boolean masks at ``sizes[id]`` (else each image's own size), keyed by row id, through
        :func:`~fetal_bench.models.seg_postprocess.mask_from_logits` with the post-processing the
        model's configuration carries (none: bilinear logits, argmax)."""
        from fetal_bench.models.seg_postprocess import mask_from_logits
        from fetal_bench.tasks.inference import logits_batches

        postprocess = (getattr(model, "model_cfg", None) or {}).get("postprocess")
        masks: dict[str, np.ndarray] = {}
        for batch, logits in logits_batches(model, dataset, batch_size=batch_size, num_workers=num_workers,
                                            description=description):
            logits = logits.float()
            for i, row_id in enumerate(batch["id"]):
                size = sizes[row_id] if sizes is not None else tuple(int(v) for v in batch["original_size"][i])
                masks[row_id] = mask_from_logits(logits[i], size, postprocess)
        return masks

    def predict(self, task: Task, model, model_name: str, dataset, truth: SegmentationTruth, *,
                batch_size: int = 8, num_workers: int = 0,
                log: Callable[[str], None] = lambda message: None) -> dict[str, np.ndarray]:
        """Masks of ``model`` at each reference's native size, keyed by id, in ``truth``'s order."""
        if model.spec.task_type != "segmentation":
            raise FetalBenchError(f"Model {model_name!r} is a {model.spec.task_type} model; task {task.name!r} is segmentation.",
                                  "Pick a segmenter (`fetal-bench models list`).")
        masks = self.image_outputs(model, dataset, sizes=truth.shapes, batch_size=batch_size, num_workers=num_workers,
                                   description=f"{model_name}: segmenting")
        log(f"segmented {len(masks)} images with {model_name} on {next(model.parameters()).device}")
        return {row_id: masks[row_id] for row_id in truth.ids}

    def file_rows(self, model, files: list[Path], outputs: dict[str, np.ndarray], output: Path,
                  ) -> tuple[list[dict[str, Any]], Path | None]:
        """``file, mask, foreground_fraction`` and the mask's ellipse; masks as 0/255 PNGs at each
        file's native size in ``<csv stem>_masks/`` (a segmentation submission accepts them)."""
        mask_dir = output.with_name(output.stem + "_masks")
        mask_dir.mkdir(parents=True, exist_ok=True)
        rows = []
        for index, (path, stem) in enumerate(zip(files, _unique_stems(files))):
            mask = outputs[str(index)]
            mask_path = mask_dir / f"{stem}.png"
            _save_mask(mask, mask_path)
            rows.append({"file": str(path), "mask": os.path.relpath(mask_path, output.parent),
                         "foreground_fraction": float(mask.mean()), **_ellipse_columns(mask)})
        return rows, mask_dir

    # -- training -----------------------------------------------------------------------------

    def training_targets(self, task: Task, info: ModelInfo, train, *, exclude_labels=()) -> MaskTargets:
        return MaskTargets(task)

    def objective(self, task: Task, info: ModelInfo, spec, *, box_jitter: tuple[float, float]) -> MaskObjective:
        return MaskObjective(spec, box_jitter)


SEGMENTATION = SegmentationKind()
