"""Feature networks for synthetic-data quality scores (FID, KID, precision/recall), pluggable.

A feature extractor turns 8-bit grayscale images into vectors. Scores computed on different
extractors are not comparable, so every result file names the extractor and its weights.

Registered:

``inception``
    torchvision's Inception-v3 (ImageNet weights ``IMAGENET1K_V1``), 2048-d pool features at
    299 x 299, the gray image repeated on three channels. Used only when its weights are already
    in the torch hub cache (``torch.hub.get_dir()/checkpoints``): fetal-bench never downloads
    them. These are torchvision's weights, not the TF-Inception port of the original FID code, so
    values are not comparable with published FIDs, only between fetal-bench runs.
``random-cnn``
    A fixed, randomly initialised CNN (seeded; 4 conv blocks, 256-d global-average features at
    128 x 128, per-image standardisation). Always available and deterministic; scores are only
    comparable across runs with the same feature network, never with any other FID.
``sononet16``
    The fetal-ultrasound network: SonoNet-16 (Baumgartner et al. 2017; the port in
    :mod:`fetal_bench.models.sononet`) with its original weights, 128-d global-average features
    of the last convolutional block, at 224 x 288 with per-image standardisation. Used only when
    ``SonoNet16.npz`` is already on disk (``$FETAL_BENCH_SONONET16`` or the fetal-bench weights
    cache); never downloaded here.
``auto``
    ``sononet16`` where its weights are present, else ``inception`` where its weights are, else
    ``random-cnn`` with a warning.

Other networks plug in with :func:`register_feature_extractor`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from fetal_bench.errors import FetalBenchError

__all__ = ["FeatureExtractor", "available_extractors", "get_feature_extractor", "register_feature_extractor"]

_INCEPTION_FILE = "inception_v3_google-0cc3c7bd.pth"
_RANDOM_SEED = 1234
_BATCH = 32


@dataclass
class FeatureExtractor:
    """``fn(images) -> (N, dim)`` plus what a result file must say about it."""

    name: str
    description: str
    weights: str
    dim: int
    comparable: str
    fn: Callable[[Sequence[np.ndarray]], np.ndarray]
    # False for a network nobody trained (random-cnn): its distances compare pixel statistics,
    # not what a trained network sees, so FID/KID on it are no measure of image quality.
    trained: bool = True

    def __call__(self, images: Sequence[np.ndarray]) -> np.ndarray:
        return self.fn(images)

    def as_dict(self) -> dict:
        return {"name": self.name, "description": self.description, "weights": self.weights, "dim": self.dim,
                "comparable": self.comparable, "trained": self.trained}


_REGISTRY: dict[str, Callable[[], FeatureExtractor]] = {}


def register_feature_extractor(name: str, factory: Callable[[], FeatureExtractor]) -> None:
    """Make ``factory`` available as ``--features NAME`` (it raises FetalBenchError if unusable)."""
    _REGISTRY[name] = factory


def available_extractors() -> list[str]:
    return ["auto", *sorted(_REGISTRY)]


_AUTO_ORDER = ("sononet16", "inception")


def get_feature_extractor(name: str = "auto") -> FeatureExtractor:
    if name == "auto":
        problems = []
        for candidate in _AUTO_ORDER:
            try:
                return _REGISTRY[candidate]()
            except FetalBenchError as error:
                problems.append(error.problem)
        warnings.warn(" ".join(problems) + " Falling back to the random-cnn feature network: scores are "
                      "comparable only across runs that use it.", stacklevel=2)
        return _REGISTRY["random-cnn"]()
    if name not in _REGISTRY:
        raise FetalBenchError(f"Unknown feature network {name!r}.", f"Use one of: {', '.join(available_extractors())}.")
    return _REGISTRY[name]()


def _batched(images: Sequence[np.ndarray], size: int, prepare, model) -> np.ndarray:
    import torch

    out = []
    with torch.no_grad():
        for start in range(0, len(images), _BATCH):
            batch = torch.stack([prepare(image, size) for image in images[start : start + _BATCH]])
            out.append(model(batch).float().cpu().numpy())
    return np.concatenate(out).astype(np.float64) if out else np.zeros((0, 1))


def _resize(image: np.ndarray, size: int):
    import torch
    from PIL import Image

    resized = np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR), dtype=np.float32) / 255.0
    return torch.from_numpy(resized)


def _inception() -> FeatureExtractor:
    import torch

    path = Path(torch.hub.get_dir()) / "checkpoints" / _INCEPTION_FILE
    if not path.is_file():
        raise FetalBenchError(
            f"Inception-v3 weights are not in the torch hub cache ({path}).",
            "Put torchvision's inception_v3_google-0cc3c7bd.pth there, or use --features random-cnn.",
        )
    from torchvision.models import inception_v3

    model = inception_v3(weights=None, aux_logits=True, init_weights=False)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    model.fc = torch.nn.Identity()
    model.eval()
    mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]

    def prepare(image, size):
        x = _resize(image, size)[None].expand(3, size, size)
        return (x - mean) / std

    return FeatureExtractor(
        "inception", "torchvision Inception-v3 (ImageNet), 2048-d pool features, 299 px, gray repeated x3",
        f"torchvision IMAGENET1K_V1 ({_INCEPTION_FILE})", 2048,
        "comparable between fetal-bench runs with torchvision Inception-v3; NOT with TF-Inception FIDs",
        lambda images: _batched(images, 299, prepare, model),
    )


def _random_cnn() -> FeatureExtractor:
    import torch
    from torch import nn

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_RANDOM_SEED)
        layers: list[nn.Module] = []
        channels = [1, 32, 64, 128, 256]
        for c_in, c_out in zip(channels, channels[1:]):
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.ReLU()]
        model = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten()).eval()

    def prepare(image, size):
        x = _resize(image, size)
        return ((x - x.mean()) / x.std().clamp_min(1e-6))[None]

    return FeatureExtractor(
        "random-cnn", "fixed random CNN (seed 1234), 4 stride-2 conv+ReLU blocks, 256-d mean-pooled, 128 px",
        f"random init, torch seed {_RANDOM_SEED}", 256,
        "ONLY comparable across fetal-bench runs using this same random-cnn network",
        lambda images: _batched(images, 128, prepare, model), trained=False,
    )


def _sononet16() -> FeatureExtractor:
    import torch

    try:
        from fetal_bench.models.sononet import SONONET16_WEIGHTS, build_sononet
        from fetal_bench.data.pinned_files import find_weights
    except ImportError as error:  # the baselines package is optional here
        raise FetalBenchError(f"The SonoNet-16 port is not available ({error}).", "Use --features inception|random-cnn.") from error
    path = find_weights(SONONET16_WEIGHTS, download=False, env_var="FETAL_BENCH_SONONET16")
    if path is None:
        raise FetalBenchError(
            "SonoNet16.npz is not on disk (FETAL_BENCH_SONONET16 or the fetal-bench weights cache).",
            f"Set FETAL_BENCH_SONONET16 to a copy of {SONONET16_WEIGHTS.url}, or use --features inception|random-cnn.",
        )
    model = build_sononet(weights=path).eval()

    def forward(x):
        # The network's own input scaling (x 255) then its convolutional trunk, mean-pooled.
        return model.features(x * 255.0).mean(dim=(2, 3))

    def prepare(image, size):
        from PIL import Image

        resized = np.asarray(Image.fromarray(image).resize((288, 224), Image.BILINEAR), dtype=np.float32)
        x = torch.from_numpy(resized)
        return ((x - x.mean()) / x.std().clamp_min(1e-6))[None]

    return FeatureExtractor(
        "sononet16", "SonoNet-16 (Baumgartner et al. 2017) last conv block, 128-d mean-pooled, 224 x 288 gray",
        f"SonoNet16.npz (sha256 {SONONET16_WEIGHTS.sha256[:16]})", 128,
        "comparable between fetal-bench runs with SonoNet-16 features",
        lambda images: _batched(images, 0, prepare, forward),
    )


register_feature_extractor("sononet16", _sononet16)
register_feature_extractor("inception", _inception)
register_feature_extractor("random-cnn", _random_cnn)
