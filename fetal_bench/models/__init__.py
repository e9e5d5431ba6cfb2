"""Baseline models: a declarative registry, ``create_model`` and checkpoints.

>>> from fetal_bench.models import create_model, list_models, save_checkpoint
>>> model = create_model("resnet18", labels=["abdomen", "brain", "femur", "thorax"])
>>> model.spec.image_size, model.spec.channels, model.spec.normalize
((224, 224), 1, 'per_image')
>>> save_checkpoint(model, "runs/r18")                        # model.safetensors + config.json
>>> same = create_model("resnet18", checkpoint="runs/r18")

Importing this package is cheap: torch and the backbones load when a model is built.
"""

from fetal_bench.models.checkpoint import load_weights, save_checkpoint
from fetal_bench.models.registry import MODELS, ModelInfo, create_model, get_model_info, list_models
from fetal_bench.models.spec import IMAGENET_NORMALIZE, SEGMENTATION_LABELS, ModelSpec

__all__ = [
    "IMAGENET_NORMALIZE",
    "MODELS",
    "SEGMENTATION_LABELS",
    "ModelInfo",
    "ModelSpec",
    "create_model",
    "get_model_info",
    "list_models",
    "load_weights",
    "save_checkpoint",
]
