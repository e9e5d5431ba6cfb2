"""Reference generators of synthetic fetal ultrasound data, and their provenance.

* :mod:`~fetal_bench.generators.fu_lora`: FU-LoRA (Stable Diffusion LoRA, class prompts).
* :mod:`~fetal_bench.generators.mask_guided`: mask-guided diffusion for head image + mask pairs
  (the paper's outline method, and a mask-conditioned variant with an ellipse shape prior).
* :mod:`~fetal_bench.generators.score`: FID, KID, k-NN precision/recall of a synthetic split.
* :mod:`~fetal_bench.generators.tiny`: the tiny random pipeline behind ``--base tiny``.

Submodules import torch/diffusers when used; importing this package stays cheap.
"""

from __future__ import annotations

import importlib

_SUBMODULES = ("base", "config", "features", "fu_lora", "head_pairs", "lora", "mask_guided", "outline", "sample_run", "sampling",
               "score", "shape_prior", "synthetic", "tiny", "tiny_split", "training", "training_images")

__all__ = list(_SUBMODULES)


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"fetal_bench.generators.{name}")
    raise AttributeError(f"module 'fetal_bench.generators' has no attribute {name!r}")
