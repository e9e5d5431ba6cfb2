"""Running a model submission: a registered baseline (+ checkpoint) predicts the evaluation rows.

Models come from :func:`fetal_bench.models.create_model`; each carries a ``spec`` saying what
it predicts (``task_type``, ``labels``) and what it eats (``image_size``, ``channels``,
``normalize``). Batched through the same loader as training, on the GPU with mixed precision
when there is one. Segmentation logits are resized to each image's native size before the
argmax, so masks are scored at the ground truth's resolution.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from fetal_bench._io import sha256_tensors
from fetal_bench.errors import FetalBenchError
from fetal_bench.evaluation.submissions import ClassificationSubmission
from fetal_bench.tasks import Task


def _device(device: str | None):
    import torch

    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_model(model_name: str, checkpoint, device: str | None = None, *, random_init: bool = False):
    """The model to score. Without ``checkpoint`` only a model whose published weights do the
    task is accepted (an untrained one would put noise on the leaderboard)."""
    from fetal_bench.models import create_inference_model

    model = create_inference_model(model_name, checkpoint=checkpoint, random_init=random_init)
    model.eval()
    return model.to(_device(device))


def state_dict_sha256(model) -> str:
    """Content hash of a model's weights (names, dtypes, shapes, bytes): identifies it exactly."""
    return sha256_tensors(sorted(model.state_dict().items()))


def checkpoint_metadata(model, checkpoint) -> dict:
    """sha256 of the loaded model's weights, what its training run recorded (data, share, name),
    and ``reference``: the checkpoint as another machine can name it (``org/name@commit`` for a
    Hub repository, the directory's name for a local one)."""
    from fetal_bench.models.checkpoint import is_checkpoint_reference, read_checkpoint

    meta: dict = {}
    recorded = getattr(model, "loaded_checkpoint", None)  # set by load_checkpoint: the files actually loaded
    if recorded is None and checkpoint is not None and is_checkpoint_reference(checkpoint):  # not a weights file
        recorded = read_checkpoint(checkpoint)
    if recorded is not None:
        training = recorded.training
        meta.update({k: training.get(k) for k in ("training_data", "synthetic_share") if training.get(k) is not None})
        if recorded.run_name:
            meta["name"] = recorded.run_name
        meta["reference"] = recorded.reference
    meta["sha256"] = state_dict_sha256(model)
    return meta


def _autocast(device):
    import contextlib

    import torch

    if device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return contextlib.nullcontext()


def _progress(total: int, description: str):
    """A progress bar on stderr (stdout keeps the result table clean when piped)."""
    import sys

    from tqdm.auto import tqdm

    return tqdm(total=total, desc=description, unit="image", leave=False, file=sys.stderr)


def _loader(model, task: Task, dataset, batch_size: int, num_workers: int):
    from fetal_bench.data.loading import make_dataloader

    spec = model.spec
    kwargs = {"channels": spec.channels}
    if getattr(spec, "normalize", None) is not None:
        kwargs["normalize"] = spec.normalize
    # Images only: the truth is read at native resolution by evaluation.data, so decoding and
    # resizing every reference mask here too (as a training loader does) would be wasted work.
    return make_dataloader(dataset, task=task.type, image_size=tuple(spec.image_size), batch_size=batch_size,
                           shuffle=False, num_workers=num_workers, label_column=None, mask_column=None, **kwargs)


def predict_classification(task: Task, model, model_name: str, dataset, expected_ids: list[str], *,
                           batch_size: int = 32, num_workers: int = 0,
                           log: Callable[[str], None] = lambda m: None) -> ClassificationSubmission:
    """Class probabilities of ``model`` (from :func:`load_model`) for ``expected_ids``, in that order."""
    import torch

    spec = model.spec
    if spec.task_type != "classification":
        raise FetalBenchError(f"Model {model_name!r} is a {spec.task_type} model; task {task.name!r} is classification.",
                              "Pick a classifier (`fetal-bench models list`).")
    model_labels = list(spec.labels)
    missing = [label for label in task.labels if label not in model_labels]
    stray = [label for label in model_labels if label not in task.labels and label not in task.allowed_extra_labels]
    if missing or stray:
        raise FetalBenchError(
            f"Model {model_name!r} predicts {model_labels}; task {task.name!r} scores {list(task.labels)}"
            + (f" (missing {missing})" if missing else "") + (f" (unknown to the task: {stray})" if stray else "") + ".",
            "Train the model on a label set that covers the task's labels.")
    columns = tuple(task.labels) + tuple(label for label in task.allowed_extra_labels if label in model_labels)
    order = [model_labels.index(label) for label in columns]
    wanted = set(expected_ids)
    device_ = next(model.parameters()).device
    ids, chunks = [], []
    with torch.inference_mode(), _autocast(device_), _progress(len(dataset), f"{model_name}: predicting") as bar:
        for batch in _loader(model, task, dataset, batch_size, num_workers):
            bar.update(len(batch["id"]))
            logits = model(batch["pixel_values"].to(device_, non_blocking=True))
            chunks.append(torch.softmax(logits.float(), dim=1).cpu().numpy())
            ids.extend(batch["id"])
    proba = np.concatenate(chunks)[:, order]
    proba = proba / proba.sum(axis=1, keepdims=True)  # columns the task ignores were dropped
    position = {row_id: i for i, row_id in enumerate(ids) if row_id in wanted}
    pick = np.array([position[row_id] for row_id in expected_ids])
    log(f"predicted {len(pick)} rows with {model_name} on {device_}")
    return ClassificationSubmission(columns, proba[pick], proba[pick].argmax(axis=1))


def predict_segmentation(task: Task, model, model_name: str, dataset, expected_ids: list[str],
                         shapes: dict[str, tuple[int, int]], *, batch_size: int = 8, num_workers: int = 0,
                         log: Callable[[str], None] = lambda m: None) -> dict[str, np.ndarray]:
    """Masks of ``model`` (from :func:`load_model`) at each image's native size, keyed by id.

    Logits become masks through :func:`fetal_bench.models.seg_postprocess.mask_from_logits`
    with the post-processing the model's configuration carries (none: bilinear logits, argmax).
    """
    import torch

    from fetal_bench.models.seg_postprocess import mask_from_logits

    if model.spec.task_type != "segmentation":
        raise FetalBenchError(f"Model {model_name!r} is a {model.spec.task_type} model; task {task.name!r} is segmentation.",
                              "Pick a segmenter (`fetal-bench models list`).")
    device_ = next(model.parameters()).device
    postprocess = (getattr(model, "model_cfg", None) or {}).get("postprocess")
    masks: dict[str, np.ndarray] = {}
    with torch.inference_mode(), _autocast(device_), _progress(len(dataset), f"{model_name}: segmenting") as bar:
        for batch in _loader(model, task, dataset, batch_size, num_workers):
            bar.update(len(batch["id"]))
            logits = model(batch["pixel_values"].to(device_, non_blocking=True)).float()
            for i, row_id in enumerate(batch["id"]):
                masks[row_id] = mask_from_logits(logits[i], shapes[row_id], postprocess)
    log(f"segmented {len(masks)} images with {model_name} on {device_}")
    return {row_id: masks[row_id] for row_id in expected_ids}
