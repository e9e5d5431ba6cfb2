"""A model submission: the registered model (and checkpoint) the harness runs, and what its
result records about them.

Loading returns what it loaded: the model and the :class:`~fetal_bench.models.Checkpoint` it was
restored from travel together (:class:`LoadedModel`), so the result cites the files actually
read, never a second reading of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fetal_bench._io import sha256_tensors

if TYPE_CHECKING:  # typing only
    from fetal_bench.models.checkpoint import Checkpoint

__all__ = ["LoadedModel", "checkpoint_results", "load_model", "state_dict_sha256"]


@dataclass
class LoadedModel:
    """A model in eval mode on its device, and the checkpoint it came from (None: a published
    weights file, or the model's own pretrained weights)."""

    name: str
    model: Any
    checkpoint: Checkpoint | None

    def provenance(self, given: str | Path | None) -> dict:
        """sha256 of the weights, what their training run recorded (data, synthetic share, run
        name) and ``reference``: the checkpoint as another machine can name it (``org/name@commit``
        for a Hub repository, the directory's name for a local one). ``given``: the ``--checkpoint``."""
        meta: dict = {}
        if self.checkpoint is not None:
            training = self.checkpoint.training
            meta.update({k: training.get(k) for k in ("training_data", "synthetic_share") if training.get(k) is not None})
            if self.checkpoint.run_name:
                meta["name"] = self.checkpoint.run_name
            meta["reference"] = self.checkpoint.reference
        elif given is not None:
            meta["reference"] = Path(given).name
        meta["sha256"] = state_dict_sha256(self.model)
        return meta


def load_model(model_name: str, checkpoint, device: str | None = None, *, random_init: bool = False) -> LoadedModel:
    """The model to score. Without ``checkpoint`` only a model whose published weights do the
    task is accepted (an untrained one would put noise on the leaderboard)."""
    from fetal_bench.models import create_inference_model
    from fetal_bench.tasks.inference import torch_device

    model, restored = create_inference_model(model_name, checkpoint=checkpoint, random_init=random_init)
    model.eval()
    return LoadedModel(model_name, model.to(torch_device(device)), restored)


def state_dict_sha256(model) -> str:
    """Content hash of a model's weights (names, dtypes, shapes, bytes): identifies it exactly."""
    return sha256_tensors(sorted(model.state_dict().items()))


def checkpoint_results(checkpoint, paths) -> list[dict]:
    """The result files ``paths``, read and checked to be scores of the weights in ``checkpoint``
    (a model submission of the same registered model whose weights sha256 is the checkpoint's):
    a model card's ``model-index`` then never quotes another model's scores."""
    from fetal_bench.errors import FetalBenchError
    from fetal_bench.evaluation.results import read_result

    results = [read_result(path) for path in paths]
    if not results:
        return []
    from fetal_bench.models import load_checkpoint

    model, recorded = load_checkpoint(checkpoint)
    sha256 = state_dict_sha256(model.eval())
    for path, result in zip(paths, results):
        submission = result.get("submission") or {}
        if submission.get("kind") != "model" or submission.get("model") != recorded.model \
                or submission.get("sha256") != sha256:
            raise FetalBenchError(
                f"{path} does not score this checkpoint: it is a {submission.get('kind')} submission of "
                f"{submission.get('model')!r} with weights sha256 {str(submission.get('sha256'))[:12]}..., the checkpoint "
                f"holds a {recorded.model!r} model with weights sha256 {sha256[:12]}....",
                f"Pass result files of `fetal-bench evaluate --model {recorded.model} --checkpoint {checkpoint}`.")
    return results
