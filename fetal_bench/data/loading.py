"""Open built fetal-bench datasets and feed them to PyTorch training and evaluation loops.

Two entry points:

* :func:`open_dataset` resolves a *source* (a local directory made by
  ``fetal-bench datasets build``, a catalog name such as ``"hc18"``, or any Hub id) and
  returns what :func:`datasets.load_dataset` returns, turning the library's terse failures
  into :class:`~fetal_bench.errors.FetalBenchError` messages that say what to do.
* :func:`make_dataloader` wraps a split in a :class:`torch.utils.data.DataLoader` that decodes
  the embedded PNG bytes lazily (inside the workers), resizes, optionally augments,
  normalises and collates into dict batches::

      ds = open_dataset("out/hc18", split="train")
      loader = make_dataloader(ds, mask_column="mask", image_size=(224, 224),
                               batch_size=16, shuffle=True, num_workers=2, seed=0)
      for batch in loader:
          batch["pixel_values"]   # float32 (B, C, H, W), normalised
          batch["masks"]          # int64 (B, H, W), nearest-neighbour resized (with mask_column)
          batch["labels"]         # int64 (B,) (with label_column)
          batch["original_size"]  # int64 (B, 2): (height, width) before resizing
          batch["pixel_size_mm"]  # float64 (B,), when the dataset has that column
          batch["id"]             # list[str], the row ids submissions are keyed by

The loader reads the columns it is given and knows nothing of task types: a task's kind says
which columns its training reads (:mod:`fetal_bench.tasks`).

Determinism: the order and every augmentation draw depend only on ``seed``, the epoch and the
row, never on ``num_workers``. A seeded :class:`torch.Generator` draws, each epoch, the
permutation *and* one 63-bit seed per row; the transform receives a
:class:`numpy.random.Generator` built from that row seed. Workers additionally seed
``random``/``numpy`` globally for third-party code that ignores the ``rng`` argument, but
only the ``rng`` argument is reproducible across worker counts.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler, default_collate
from torch.utils.data import Dataset as TorchDataset

from fetal_bench.data.images import open_gray, open_mask
from fetal_bench.data.opening import open_dataset
from fetal_bench.errors import DataError, FetalBenchError
from fetal_bench.metrics.registry import TASK_TYPES, TaskType

if TYPE_CHECKING:  # datasets is imported where used: it is slow to import
    import datasets

__all__ = ["Normalize", "Transform", "make_dataloader", "open_dataset"]

#: Augmentation hook: ``transform(image, mask, rng) -> (image, mask)``. ``image`` is a float32
#: tensor (1, H, W) in [0, 1] at the target size, before normalisation; ``mask`` an int64
#: tensor (H, W) or None (classification); ``rng`` is seeded per (seed, epoch, row). It must
#: keep the shapes and return the mask's values unchanged in kind (labels, not intensities).
#: With num_workers > 0 on a platform that spawns workers (macOS, Windows) it must be
#: picklable (a module-level function or class instance, not a lambda).
Transform = Callable[
    [torch.Tensor, torch.Tensor | None, np.random.Generator],
    tuple[torch.Tensor, torch.Tensor | None],
]

#: ``"per_image"`` (default): each image minus its own mean, divided by its own std. It removes
#: the gain/brightness differences between machines and operators, which is what dominates
#: ultrasound domain shift, and it is what SonoNet was trained with. ``(mean, std)``: fixed
#: statistics in [0, 1] units, one float or one per output channel (e.g. ImageNet's with
#: ``channels=3``). ``None``: intensities scaled to [0, 1] only.
Normalize = Literal["per_image"] | tuple[float | Sequence[float], float | Sequence[float]] | None

_EPS = 1e-6  # floor for a per-image std, so a blank (constant) image does not divide by zero

#: ``task=`` of the earlier signature, still accepted: the target column a task type's batches
#: carried, under its default name.
_TASK_TYPE_TARGETS: dict[str, dict[str, str]] = {"classification": {"label_column": "label"},
                                                 "segmentation": {"mask_column": "mask"}}


# --------------------------------------------------------------------------------------------
# make_dataloader
# --------------------------------------------------------------------------------------------


def make_dataloader(dataset: datasets.Dataset, *, image_size: tuple[int, int] | int, batch_size: int,
                    label_column: str | None = None, mask_column: str | None = None, task: TaskType | None = None,
                    shuffle: bool = False, num_workers: int = 0, seed: int = 0, channels: int = 1,
                    transform: Transform | None = None, drop_last: bool = False, pin_memory: bool | None = None,
                    normalize: Normalize = "per_image", decoded_cache: bool = False) -> DataLoader:
    """Batches of decoded, resized, normalised images from one split of a built dataset.

    Args:
        dataset: one split, a :class:`datasets.Dataset` (e.g. ``open_dataset(..., split=...)``).
        label_column: the ClassLabel/integer column batches carry as ``labels``; None (default)
            for none.
        mask_column: the mask Image column batches carry as ``masks``; None (default) for none,
            e.g. for HC18's unlabelled ``challenge_test``.
        task: shorthand for the column a task type trains on, under its usual name:
            ``"classification"`` reads ``label_column="label"``, ``"segmentation"``
            ``mask_column="mask"`` (a column given explicitly is read as well).
        image_size: (height, width) every image is resized to, aspect ratio not kept (an
            int means square). Images use PIL's antialiased bilinear filter, masks nearest
            neighbour so they keep their label values; ``original_size`` lets metrics resize a
            prediction back to the ground truth's native resolution.
        batch_size, drop_last: as in :class:`torch.utils.data.DataLoader`.
        shuffle: a fresh permutation each epoch, drawn from a generator seeded with ``seed``.
        num_workers: decoding processes; 0 decodes in the calling process. Workers persist
            across epochs (starting them costs more than an epoch of a small split).
        seed: fixes the order and the augmentation draws; the same seed gives the same
            batches whatever ``num_workers``.
        channels: 1, or 3 to repeat the gray channel for ImageNet-pretrained backbones.
        transform: optional augmentation, see :data:`Transform`; applied after resizing and
            before normalisation. None (default) means no augmentation.
        pin_memory: default: True when CUDA is available.
        normalize: see :data:`Normalize`; default per-image standardisation.
        decoded_cache: decode and resize every image (and mask) once, into the on-disk cache of
            :mod:`fetal_bench.data.decoded_cache`, and read later epochs (and later loaders over
            the same rows) from it; the batches are bit-identical to the uncached ones. For
            several passes over the same rows (training); off by default, since a single
            pass only pays for writing the cache.

    Every batch also has ``id`` (list[str]), ``original_size`` (the images' (height, width)
    before resizing, so a prediction can be scored at the reference's native size) and, when the
    dataset has the column, ``pixel_size_mm``; source images in RGB/RGBA/palette modes are
    converted to 8-bit gray ("L").
    """
    import datasets

    _check_split(dataset)
    label_col, mask_col = _target_columns(task, label_column, mask_column)
    size = _check_size(image_size)
    if channels not in (1, 3):
        raise FetalBenchError(f"channels={channels} is not supported.", "Use channels=1 or 3.")
    if batch_size < 1 or num_workers < 0:
        raise FetalBenchError(
            f"batch_size={batch_size}, num_workers={num_workers}.",
            "Use batch_size >= 1 and num_workers >= 0.",
        )
    mean, std = _check_normalize(normalize, channels)
    _check_columns(dataset, label_col, mask_col)
    has_pixel_size = "pixel_size_mm" in dataset.column_names

    columns = ["id", "image"] + [c for c in (label_col, mask_col) if c is not None]
    if has_pixel_size:
        columns.append("pixel_size_mm")
    # Only the columns we use are read, as plain Python objects, with images left as their
    # encoded bytes: decoding happens per batch inside the workers, never eagerly.
    raw = dataset.with_format(None).select_columns(columns)
    for column in ("image", mask_col):
        if column is not None:
            raw = raw.cast_column(column, datasets.Image(decode=False))
    decoded = None
    if decoded_cache:
        from fetal_bench.data.decoded_cache import open_decoded

        decoded = open_decoded(raw, size=size, mask_column=mask_col, decode=decode_row, num_workers=num_workers)

    rows = _Rows(
        raw,
        size=size,
        channels=channels,
        transform=transform,
        label_column=label_col,
        mask_column=mask_col,
        has_pixel_size=has_pixel_size,
        normalize=normalize if normalize == "per_image" else None,
        mean=mean,
        std=std,
        decoded=decoded,
    )
    if pin_memory is None:
        pin_memory = torch.cuda.is_available()
    return DataLoader(
        rows,
        batch_size=batch_size,
        sampler=_SeededSampler(len(rows), shuffle=shuffle, seed=seed),
        num_workers=num_workers,
        # default_collate turns the samples' tensors/ints/floats/strs into exactly the batch we
        # document, and in a worker it builds the batch in shared memory (no copy on transfer).
        collate_fn=default_collate,
        pin_memory=pin_memory,
        drop_last=drop_last,
        worker_init_fn=_seed_worker if num_workers > 0 else None,
        # Seeds the workers' base seed (torch.initial_seed() inside a worker), which
        # _seed_worker spreads to random/numpy: reproducible run to run.
        generator=torch.Generator().manual_seed(seed),
        persistent_workers=num_workers > 0,
    )


def _check_split(dataset) -> None:
    import datasets

    if isinstance(dataset, datasets.DatasetDict):
        raise FetalBenchError(
            f"make_dataloader needs one split, got a DatasetDict with splits {list(dataset)}.",
            "Pass dataset[SPLIT], or open_dataset(..., split=SPLIT).",
        )
    if not isinstance(dataset, datasets.Dataset):
        raise FetalBenchError(
            f"make_dataloader needs a datasets.Dataset, got {type(dataset).__name__}.",
            "Load the split without streaming, e.g. open_dataset(DIR, split='train').",
        )


def _target_columns(task: str | None, label_column: str | None, mask_column: str | None) -> tuple[str | None, str | None]:
    """The label and mask columns to read: as given, plus a task type's shorthand column."""
    if task is None:
        return label_column, mask_column
    if task not in _TASK_TYPE_TARGETS:
        raise FetalBenchError(f"Unknown task type {task!r}.", f"Use one of {', '.join(TASK_TYPES)}, or pass "
                              "label_column / mask_column instead.")
    shorthand = _TASK_TYPE_TARGETS[task]
    return label_column or shorthand.get("label_column"), mask_column or shorthand.get("mask_column")


def _check_size(image_size: tuple[int, int] | int) -> tuple[int, int]:
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    if (
        not isinstance(image_size, (tuple, list))
        or len(image_size) != 2
        or not all(isinstance(v, int) and v > 0 for v in image_size)
    ):
        raise FetalBenchError(
            f"image_size={image_size!r} is not a (height, width) pair of positive ints.",
            "Pass e.g. image_size=(224, 224).",
        )
    return int(image_size[0]), int(image_size[1])


def _check_normalize(normalize: Normalize, channels: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Fixed statistics as float32 arrays shaped (C or 1, 1, 1); (None, None) otherwise."""
    if normalize is None or normalize == "per_image":
        return None, None
    try:
        mean, std = normalize  # type: ignore[misc]
        mean_a = np.asarray(mean, dtype=np.float32).reshape(-1, 1, 1)
        std_a = np.asarray(std, dtype=np.float32).reshape(-1, 1, 1)
    except (TypeError, ValueError):
        mean_a = std_a = None
    if (
        mean_a is None
        or std_a is None
        or mean_a.shape[0] not in (1, channels)
        or std_a.shape[0] not in (1, channels)
        or bool((std_a <= 0).any())
    ):
        raise FetalBenchError(
            f"normalize={normalize!r} is not understood.",
            "Use 'per_image', None, or (mean, std) in [0, 1] units: floats, or one per channel "
            f"({channels} here), with std > 0.",
        )
    return mean_a, std_a


def _check_columns(dataset: datasets.Dataset, label_col: str | None, mask_col: str | None) -> None:
    import datasets

    features = dataset.features
    for column, kind in (("id", "string row id"), ("image", "Image")):
        if column not in features:
            raise DataError(
                f"The dataset has no {column!r} column ({kind}); it has {dataset.column_names}.",
                "Pass a split of a dataset built by `fetal-bench datasets build`.",
            )
    if not isinstance(features["image"], datasets.Image):
        raise DataError(
            f"Column 'image' is {features['image']!r}, not an Image feature.",
            "Rebuild the dataset with `fetal-bench datasets build`.",
        )
    # Arrow null counts are free and read no image bytes. They describe the whole backing
    # table, which is this split unless it is a subset (select/filter): then missing values
    # are reported lazily, by the row that has one.
    table = dataset.data if len(dataset.data) == dataset.num_rows else None
    if label_col is not None:
        feature = features.get(label_col)
        if feature is None:
            raise DataError(
                f"The dataset has no label column {label_col!r}; it has {dataset.column_names}.",
                "Pass label_column=NAME, or label_column=None for unlabelled data.",
            )
        is_int = isinstance(feature, datasets.ClassLabel) or (
            isinstance(feature, datasets.Value) and feature.dtype.startswith(("int", "uint"))
        )
        if not is_int:
            raise DataError(
                f"Label column {label_col!r} is {feature!r}, not a ClassLabel/integer column.",
                f"Encode it first: dataset = dataset.class_encode_column({label_col!r}).",
            )
        if table is not None and table.column(label_col).null_count:
            raise DataError(
                f"Label column {label_col!r} has {table.column(label_col).null_count} missing values.",
                "Filter those rows out, or pass label_column=None to iterate without labels.",
            )
    if mask_col is not None:
        feature = features.get(mask_col)
        if not isinstance(feature, datasets.Image):
            found = "no such column" if feature is None else repr(feature)
            raise DataError(
                f"Mask column {mask_col!r} is not an Image column ({found}).",
                "Pass mask_column=NAME, or mask_column=None to iterate without masks.",
            )
        if table is not None and table.column(mask_col).null_count:
            raise DataError(
                f"Mask column {mask_col!r} has {table.column(mask_col).null_count} missing masks "
                "(an unlabelled split such as HC18's challenge_test?).",
                "Pass mask_column=None to iterate over its images without masks.",
            )


class _SeededSampler(Sampler):
    """Yields (row index, row seed) pairs; each epoch draws a permutation and the row seeds.

    Drawing the row seeds here, in the main process, is what makes augmentation independent of
    which worker decodes which row. The seeds are drawn even when unshuffled or unaugmented, so
    adding a transform never changes the order.
    """

    def __init__(self, n: int, *, shuffle: bool, seed: int):
        self._n = n
        self._shuffle = shuffle
        self._generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return self._n

    def __iter__(self) -> Iterator[tuple[int, int]]:
        if self._shuffle:
            order = torch.randperm(self._n, generator=self._generator)
        else:
            order = torch.arange(self._n)
        seeds = torch.randint(0, 2**63 - 1, (self._n,), generator=self._generator, dtype=torch.int64)
        return iter(zip(order.tolist(), seeds.tolist()))


def _seed_worker(worker_id: int) -> None:
    # torch seeds itself per worker (base seed from the DataLoader's generator + worker id);
    # extend that to the other global generators third-party augmentations tend to use.
    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)
    random.seed(worker_seed)


class _Rows(TorchDataset):
    """A torch view of one HF split whose image columns hold undecoded PNG bytes."""

    def __init__(
        self,
        raw: datasets.Dataset,
        *,
        size: tuple[int, int],
        channels: int,
        transform: Transform | None,
        label_column: str | None,
        mask_column: str | None,
        has_pixel_size: bool,
        normalize: str | None,
        mean: np.ndarray | None,
        std: np.ndarray | None,
        decoded: Any = None,
    ):
        self.raw = raw
        # With a decoded cache (fetal_bench.data.decoded_cache.DecodedSplit) only the small
        # columns are read from Arrow; the pixels come from the cache.
        self.decoded = decoded
        image_columns = ("image", mask_column)
        self.light = raw.select_columns([c for c in raw.column_names if c not in image_columns]) if decoded else None
        self.size = size
        self.channels = channels
        self.transform = transform
        self.label_column = label_column
        self.mask_column = mask_column
        self.has_pixel_size = has_pixel_size
        self.per_image = normalize == "per_image"
        self.mean = mean
        self.std = std

    def __len__(self) -> int:
        return len(self.raw)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        return self.__getitems__([key])[0]

    def __getitems__(self, keys: list[tuple[int, int]]) -> list[dict[str, Any]]:
        # DataLoader hands a whole batch of keys here: one Arrow read per batch instead of one
        # per row.
        indices = [index for index, _ in keys]
        if self.decoded is not None:
            columns = self.light[indices]
            decoded = [self.decoded.row(index) for index in indices]
        else:
            columns = self.raw[indices]
            decoded = [decode_row(columns, j, self.size, self.mask_column) for j in range(len(indices))]
        return [self._sample(columns, j, row_seed, *decoded[j]) for j, (_, row_seed) in enumerate(keys)]

    def _sample(self, columns: dict[str, list], j: int, row_seed: int, gray: np.ndarray,
                mask_u8: np.ndarray | None, original_size: tuple[int, int]) -> dict[str, Any]:
        row_id = columns["id"][j]
        # Per-image arithmetic is done in numpy: torch would split these ~50k-element ops over
        # its OpenMP threads, which costs more than it saves when num_workers=0 and fights the
        # training step for the same cores.
        pixels = np.asarray(gray, dtype=np.float32)[None] * np.float32(1 / 255)
        mask = None if mask_u8 is None else torch.from_numpy(mask_u8.astype(np.int64))

        if self.transform is not None:
            tensor, mask = self.transform(torch.from_numpy(pixels), mask, np.random.default_rng(row_seed))
            pixels = tensor.detach().cpu().numpy()

        if self.per_image:
            pixels = (pixels - pixels.mean()) / max(float(pixels.std()), _EPS)
        if self.channels == 3:
            pixels = np.broadcast_to(pixels, (3, *pixels.shape[1:]))
        if self.mean is not None and self.std is not None:
            pixels = (pixels - self.mean) / self.std

        # ascontiguousarray: a broadcast view must not reach the collation as a strided tensor.
        sample: dict[str, Any] = {
            "id": row_id,
            "pixel_values": torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32)),
        }
        if self.label_column is not None:
            label = columns[self.label_column][j]
            if label is None:  # only reachable on a subset; see _check_columns
                raise DataError(
                    f"Row {row_id!r} has no {self.label_column!r}.",
                    "Filter out unlabelled rows, or pass label_column=None.",
                )
            sample["labels"] = int(label)
        sample["original_size"] = torch.tensor(original_size, dtype=torch.int64)
        if mask is not None:
            sample["masks"] = mask
        if self.has_pixel_size:
            value = columns["pixel_size_mm"][j]
            sample["pixel_size_mm"] = float("nan") if value is None else float(value)
        return sample


def decode_row(
    columns: dict[str, list], j: int, size: tuple[int, int], mask_column: str | None
) -> tuple[np.ndarray, np.ndarray | None, tuple[int, int]]:
    """Row ``j`` of undecoded columns -> (gray uint8 image at ``size``, uint8 mask or None, original size).

    The one decoder of the training/evaluation loader, also what the decoded cache stores: the
    image converted to 8-bit gray and resized with PIL's antialiased bilinear filter (its output
    is uint8, so caching it loses nothing), the mask with NEAREST so it keeps its label values.
    """
    from PIL import Image

    row_id = columns["id"][j]
    height, width = size
    image = open_gray(columns["image"][j], row_id)
    original_size = (image.height, image.width)
    gray = np.asarray(image.resize((width, height), Image.BILINEAR), dtype=np.uint8)
    mask = None
    if mask_column is not None:
        mask_image = open_mask(columns[mask_column][j], row_id, original_size)
        # A mode "1" mask reads as bool: as uint8 it is 0/1, the same labels.
        mask = np.asarray(mask_image.resize((width, height), Image.NEAREST), dtype=np.uint8)
    return gray, mask, original_size
