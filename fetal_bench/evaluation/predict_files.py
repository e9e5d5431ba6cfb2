"""Run a model on image files: ``predict_files`` (behind ``fetal-bench predict``).

Images go through the very loader used for training and evaluation
(:func:`~fetal_bench.data.loading.make_dataloader`, via an in-memory dataset), so a file is
preprocessed exactly as a dataset row would be: gray conversion, resize to the model's size,
its normalisation. A model whose spec has a ``crop`` (SonoNet's scanner frames) is cropped first
when the file has that frame size.

Output: a CSV whose columns the model's kind chooses (``task_kind.file_rows``):
``file,label,score`` plus one probability column per class (classifiers), or
``file,mask,foreground_fraction`` plus an ellipse fitted to the mask with its perimeter in
pixels (segmenters; masks as 0/255 PNGs at each file's native size in ``<csv stem>_masks/``,
which a segmentation submission also accepts). Predictions are made as the harness makes them
(:meth:`~fetal_bench.tasks.kind.TaskKind.image_outputs`).
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fetal_bench.errors import FetalBenchError

__all__ = ["PredictResult", "TaskPredictions", "collect_images", "load_image_file", "predict_files", "predict_task"]

_EXTENSIONS = {".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp"}


@dataclass
class PredictResult:
    csv: Path
    n: int
    mask_dir: Path | None
    rows: list[dict[str, Any]]


def load_image_file(path: str | os.PathLike, spec=None) -> bytes:
    """PNG bytes of ``path`` (first frame), cropped by ``spec.crop`` when its frame size matches."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    from fetal_bench._io import UnreadableFile, read_regular_file
    from fetal_bench.data.builders._common import MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS

    path = Path(path)
    if path.suffix.lower() not in _EXTENSIONS:
        raise FetalBenchError(f"{path} is not a PNG/TIFF/JPEG/BMP image.", "Pass image files.")
    fix = "Pass a readable PNG/TIFF/JPEG file of an ultrasound frame."
    try:
        # Bounded like every image read from outside: a regular file of at most MAX_IMAGE_BYTES,
        # its pixel count checked from the header before anything is decoded (a 100-byte PNG can
        # claim 20000x20000 pixels).
        data = read_regular_file(path, max_bytes=MAX_IMAGE_BYTES)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the size check below decides
            with Image.open(io.BytesIO(data)) as image:
                if image.width * image.height > MAX_IMAGE_PIXELS:
                    raise FetalBenchError(f"Image {path} claims {image.width}x{image.height} pixels, over the limit of "
                                          f"{MAX_IMAGE_PIXELS:,}.", fix)
                image.seek(0)  # multi-page TIFF: the first frame
                image.load()
                frame = image.copy()
    except UnreadableFile as err:
        raise FetalBenchError(f"Cannot read image {path}: it {err.reason}.", fix) from None
    except Image.DecompressionBombError:  # Pillow's own limit (twice its warning size) came first
        raise FetalBenchError(f"Image {path} claims more than {2 * Image.MAX_IMAGE_PIXELS:,} pixels, over the limit "
                              f"of {MAX_IMAGE_PIXELS:,}.", fix) from None
    except UnidentifiedImageError:
        raise FetalBenchError(f"Cannot read image {path}: it is not a PNG, TIFF, JPEG or BMP image.", fix) from None
    except (OSError, ValueError, SyntaxError) as err:
        raise FetalBenchError(f"Cannot read image {path}: {err}.", fix) from None
    if spec is not None and spec.crop is not None and spec.crop_frame_size == (frame.height, frame.width):
        top, bottom, left, right = spec.crop
        frame = frame.crop((left, top, right, bottom))
    buffer = io.BytesIO()
    frame.save(buffer, format="PNG")
    return buffer.getvalue()


def collect_images(paths: list[str | os.PathLike]) -> list[Path]:
    """Image files of ``paths``, in the given order; a directory gives its images, sorted by name.

    A directory is read one level deep: its regular files with an image extension (hidden files
    and anything else are skipped). A directory without images is an error, not an empty run.
    """
    files: list[Path] = []
    for given in map(Path, paths):
        if given.is_dir():
            found = sorted((p for p in given.iterdir()
                            if p.suffix.lower() in _EXTENSIONS and not p.name.startswith(".") and p.is_file()),
                           key=lambda p: p.name)
            if not found:
                raise FetalBenchError(f"Directory {given} holds no PNG/TIFF/JPEG/BMP image.",
                                      "Pass a directory of images, or the image files themselves.")
            files.extend(found)
        elif given.is_file():
            if given.suffix.lower() not in _EXTENSIONS:
                raise FetalBenchError(f"{given} is not a PNG/TIFF/JPEG/BMP image.", "Pass image files.")
            files.append(given)
        else:
            raise FetalBenchError(f"{given} is not a file or directory.", "Pass image files or a directory of them.")
    if not files:
        raise FetalBenchError("No images were given.", "Pass one or more image files, or a directory of them.")
    return files


def predict_files(model_name: str, images: list[str | os.PathLike], output: str | os.PathLike, *,
                  checkpoint: str | os.PathLike | None = None, batch_size: int = 16, device: str | None = None,
                  model=None, random_init: bool = False, progress: bool = False) -> PredictResult:
    """Classify or segment ``images`` (files, or directories of them); write the CSV ``output``
    (and masks beside it).

    Without ``checkpoint`` only a model whose published weights do the task predicts (see
    :func:`~fetal_bench.models.builder.create_inference_model`); ``random_init`` allows an
    untrained one on purpose. ``progress``: a progress bar on stderr.
    """
    from fetal_bench._io import exclusive_lock

    files = collect_images(images)  # before the model: a typo costs no weight loading
    with exclusive_lock(output):  # the CSV (and the masks beside it) are this run's: locked for the whole run
        return _predict(model_name, files, Path(output), checkpoint=checkpoint, batch_size=batch_size, device=device,
                        model=model, random_init=random_init, progress=progress)


def _predict(model_name, files, output: Path, *, checkpoint, batch_size, device, model, random_init,
             progress) -> PredictResult:
    import datasets

    from fetal_bench._io import atomic_file
    from fetal_bench.models.builder import create_inference_model
    from fetal_bench.tasks.inference import torch_device
    from fetal_bench.tasks.kinds import kind_of

    if model is None:
        model, _ = create_inference_model(model_name, checkpoint=checkpoint, random_init=random_init)
    model.eval()
    model.to(torch_device(device))
    spec = model.spec
    table = datasets.Dataset.from_dict(
        {"id": [str(i) for i in range(len(files))],
         "image": [{"bytes": load_image_file(p, spec), "path": None} for p in files]},
        features=datasets.Features({"id": datasets.Value("string"), "image": datasets.Image()}),
    )
    kind = kind_of(spec.task_type)
    outputs = kind.image_outputs(model, table, batch_size=batch_size,
                                 description=f"{model_name}: predicting" if progress else None)
    output = Path(output)
    rows, mask_dir = kind.file_rows(model, files, outputs, output)
    with atomic_file(output, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    return PredictResult(csv=output, n=len(rows), mask_dir=mask_dir, rows=rows)


@dataclass
class TaskPredictions:
    path: Path  # the submission file written
    task: str
    source: str  # where the split was read ("local:<name>" or a Hub id)
    split: str
    n: int


def predict_task(task_name: str, model_name: str, output: str | os.PathLike, *,
                 checkpoint: str | os.PathLike | None = None, data: str | os.PathLike | None = None,
                 split: str | None = None, batch_size: int = 16, device: str | None = None, random_init: bool = False,
                 log=None) -> TaskPredictions:
    """A submission-ready predictions file: ``model_name`` run over the rows of ``task_name``'s
    split (``data``/``split`` as for ``evaluate``), written as the task's kind writes submissions
    (CSV of ``id`` + one probability per class; Parquet of ``id`` + PNG masks), so that
    ``fetal-bench evaluate --task T --predictions OUTPUT`` takes it unchanged and scores what
    ``evaluate --model`` scores."""
    from fetal_bench._io import exclusive_lock
    from fetal_bench.evaluation.model_submission import load_model
    from fetal_bench.evaluation.scored_split import load_eval_data
    from fetal_bench.tasks import get_task

    task = get_task(task_name)
    kind = task.kind
    output = Path(output)
    if output.suffix.lower() != kind.predictions_suffix:
        raise FetalBenchError(f"A {task.type} submission is a {kind.predictions_suffix} file; --output is {output.name}.",
                              f"Pass --output {output.with_suffix(kind.predictions_suffix).name}.")
    note = log or (lambda message: None)
    with exclusive_lock(output):
        eval_data = load_eval_data(task, data, split)
        loaded = load_model(model_name, checkpoint, device, random_init=random_init)
        truth = kind.ground_truth(task, eval_data.dataset)
        submission = kind.predict(task, loaded.model, model_name, eval_data.dataset, truth, batch_size=batch_size,
                                  log=note)
        kind.write_predictions(output, truth, submission)
    return TaskPredictions(output, task.name, eval_data.source, eval_data.split, len(truth.ids))
