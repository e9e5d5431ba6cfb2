"""Baseline models: a declarative registry, a builder (``create_model``) and checkpoints.

>>> from fetal_bench.models import create_model, list_models, load_checkpoint, save_checkpoint
>>> model = create_model("resnet18", labels=["abdomen", "brain", "femur", "thorax"])
>>> model.spec.image_size, model.spec.channels, model.spec.normalize
((224, 224), 1, 'per_image')
>>> save_checkpoint(model, "runs/r18")           # config.json + model.safetensors + README.md
>>> same = create_model("resnet18", checkpoint="runs/r18")
>>> model, checkpoint = load_checkpoint("org/fetal-unet@v1")  # a Hub repository, same layout

Importing this package is cheap: torch and the backbones load when a model is built.
Dependencies run one way: ``builder`` -> ``checkpoint`` (the file layout) and ``registry``
(plain data); the model modules -> ``hub`` (the Hub Mixin) -> ``builder``.
"""

from fetal_bench.models.builder import create_inference_model, create_model, load_checkpoint
from fetal_bench.models.checkpoint import Checkpoint, load_weights, read_checkpoint, save_checkpoint
from fetal_bench.models.registry import MODELS, ModelInfo, get_model_info, list_models
from fetal_bench.models.spec import IMAGENET_NORMALIZE, SEGMENTATION_LABELS, ModelSpec

__all__ = [
    "IMAGENET_NORMALIZE",
    "MODELS",
    "SEGMENTATION_LABELS",
    "Checkpoint",
    "ModelInfo",
    "ModelSpec",
    "create_inference_model",
    "create_model",
    "get_model_info",
    "list_models",
    "load_checkpoint",
    "load_weights",
    "read_checkpoint",
    "save_checkpoint",
]
