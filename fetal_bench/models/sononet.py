"""SonoNet-16 (Baumgartner et al., IEEE TMI 2017) in PyTorch, with a loader for the original
``SonoNet16.npz``.

Architecture (read off the published arrays, 75 of them): five VGG-like blocks of 3x3
convolutions without bias, each followed by batch normalisation and ReLU -- (16, 16), (32, 32),
(64, 64, 64), (128, 128, 128), (128, 128, 128) channels -- with 2x2 max-pooling after the first
four blocks; an "adaptation" head of 1x1 conv (128 -> 64) + BN + ReLU and 1x1 conv (64 -> 14) +
BN; global average pooling gives the 14 class logits.

The ``.npz`` stores ``np.savez(*lasagne.layers.get_all_param_values(net))``: per conv layer
``W`` then the Lasagne ``BatchNormLayer`` parameters in their declaration order ``beta, gamma,
mean, inv_std`` (Lasagne's epsilon is 1e-4). ``inv_std`` becomes PyTorch's running variance
``1 / inv_std**2 - eps`` so that ``BatchNorm2d(eps=1e-4)`` computes the same thing. Lasagne's
``Conv2DLayer`` flips filters by default, but these weights were trained as cross-correlations
(flipping them breaks the example frames), so they are used as stored.

Preprocessing (the original example script): crop the 975x735 frame to rows 115:734 and
columns 81:874 (the scanner's user interface is outside), convert to gray, resize to 224x288,
standardise per image and **multiply by 255** -- the network was trained on that scale. The
factor is applied inside ``forward``, so the model's spec stays ``normalize="per_image"`` like
every other fetal-bench model and the weights stay as published.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from fetal_bench.errors import FetalBenchError
from fetal_bench.models.hub import FetalBenchModel
from fetal_bench.models.spec import ModelSpec
from fetal_bench.data.pinned_files import PretrainedWeightsWarning, WeightsFile, find_weights

__all__ = ["FETAL_PLANES_GROUPS", "SONONET16_WEIGHTS", "SONONET_LABELS", "SonoNet", "build_sononet", "load_sononet_npz"]

#: The 14 SonoNet classes, in logit order.
SONONET_LABELS: tuple[str, ...] = (
    "3VV", "4CH", "Abdominal", "Background", "Brain (Cb.)", "Brain (Tv.)", "Femur", "Kidneys", "Lips",
    "LVOT", "Profile", "RVOT", "Spine (cor.)", "Spine (sag.)",
)

#: SonoNet classes pooled onto the FETAL_PLANES_DB planes (FU-LoRA's five outputs; no cervix:
#: SonoNet never saw one). Cardiac views are thorax planes in FETAL_PLANES_DB; kidneys, lips,
#: profile, spine and background fall in its "Other".
FETAL_PLANES_GROUPS: dict[str, tuple[str, ...]] = {
    "Fetal abdomen": ("Abdominal",),
    "Fetal brain": ("Brain (Cb.)", "Brain (Tv.)"),
    "Fetal femur": ("Femur",),
    "Fetal thorax": ("3VV", "4CH", "LVOT", "RVOT"),
    "Other": ("Background", "Kidneys", "Lips", "Profile", "Spine (cor.)", "Spine (sag.)"),
}

#: The original weights (Apache-2.0), pinned by size, md5 and sha256.
SONONET16_WEIGHTS = WeightsFile(
    filename="SonoNet16.npz",
    url="https://github.com/baumgach/SonoNet-weights/raw/master/SonoNet16.npz",
    size=3_745_538,
    md5="f7363b400691a318bd0bb8203eefe4d2",
    sha256="bbbf9dde2b3af686c247a3074d890ceb685cd63fc1fc2af7e704edc07810c53f",
    license="Apache-2.0",
    description="SonoNet-16 trained on 14 fetal standard planes (Baumgartner et al. 2017)",
)

_BLOCKS = ((16, 16), (32, 32), (64, 64, 64), (128, 128, 128), (128, 128, 128))
_ADAPTATION = 64
_EPS = 1e-4  # Lasagne's BatchNormLayer default
_INPUT_SCALE = 255.0  # the original pipeline feeds 255 * (x - mean) / std
_FRAME_SIZE = (735, 975)  # (height, width) of SonoNet's example frames
_CROP = (115, 734, 81, 874)  # rows 115:734, columns 81:874


def _conv_bn(in_channels: int, out_channels: int, kernel: int) -> list[nn.Module]:
    return [nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(out_channels, eps=_EPS)]


class SonoNet(nn.Module, FetalBenchModel):
    """SonoNet-16: ``pixel_values (B, 1, 224, 288)`` (per-image standardised) -> logits.

    With ``groups`` (label -> SonoNet classes), the 14 probabilities are summed per group and
    the logits returned are their logarithms (so a softmax gives the pooled probabilities).
    """

    def __init__(self, spec: ModelSpec, cfg: dict, num_classes: int = 14,
                 groups: dict[str, Sequence[str]] | None = None):
        super().__init__()
        self.spec = spec
        self.model_cfg = cfg
        layers: list[nn.Module] = []
        in_channels = 1
        for index, block in enumerate(_BLOCKS):
            for out_channels in block:
                layers += [*_conv_bn(in_channels, out_channels, 3), nn.ReLU(inplace=True)]
                in_channels = out_channels
            if index < len(_BLOCKS) - 1:
                layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.adaptation = nn.Sequential(*_conv_bn(in_channels, _ADAPTATION, 1), nn.ReLU(inplace=True),
                                        *_conv_bn(_ADAPTATION, num_classes, 1))
        if groups is not None:
            index = {label: i for i, label in enumerate(SONONET_LABELS)}
            membership = torch.zeros(len(groups), num_classes, dtype=torch.bool)
            for row, members in enumerate(groups.values()):
                membership[row, [index[m] for m in members]] = True
            self.register_buffer("groups", membership, persistent=False)
        else:
            self.groups = None

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        x = self.adaptation(self.features(pixel_values * _INPUT_SCALE))
        logits = x.mean(dim=(2, 3))
        if self.groups is None:
            return logits
        # log of the summed probabilities of each group = logsumexp over its logits, minus a
        # per-row constant that the softmax ignores.
        masked = logits[:, None, :].masked_fill(~self.groups[None], float("-inf"))
        return torch.logsumexp(masked, dim=2)


def load_sononet_npz(model: SonoNet, path: str | Path, *, skip_last: bool = False) -> None:
    """Copy the original Lasagne arrays into ``model`` (see the module docstring for the order).

    ``skip_last``: leave the final 1x1 conv + BN alone (a new label set is being trained).
    """
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = [archive[f"arr_{i}"] for i in range(len(archive.files))]
    except (OSError, ValueError, KeyError) as err:
        raise FetalBenchError(f"{path} is not a readable SonoNet .npz ({err}).", f"Download {SONONET16_WEIGHTS.url}.") from err
    modules = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))]
    if len(arrays) != 75 or len(modules) != 30:
        raise FetalBenchError(f"{path} holds {len(arrays)} arrays; SonoNet-16 has 75.",
                              "Pass SonoNet16.npz (SonoNet32/64 are wider networks).")
    cursor = 0
    with torch.no_grad():
        for position, module in enumerate(modules):
            last = position >= len(modules) - 2
            if isinstance(module, nn.Conv2d):
                weight = torch.from_numpy(arrays[cursor])
                cursor += 1
                if not (last and skip_last):
                    _copy(module.weight, weight, path, cursor - 1)
            else:
                beta, gamma, mean, inv_std = (torch.from_numpy(a) for a in arrays[cursor:cursor + 4])
                cursor += 4
                if last and skip_last:
                    continue
                variance = 1.0 / inv_std.double() ** 2 - _EPS
                if bool((variance <= 0).any()):
                    raise FetalBenchError(f"{path}: array {cursor - 1} is not a Lasagne inv_std.", "Pass the original SonoNet16.npz.")
                _copy(module.bias, beta, path, cursor - 4)
                _copy(module.weight, gamma, path, cursor - 3)
                _copy(module.running_mean, mean, path, cursor - 2)
                _copy(module.running_var, variance.float(), path, cursor - 1)


def _copy(target: torch.Tensor, source: torch.Tensor, path, index: int) -> None:
    if tuple(target.shape) != tuple(source.shape):
        raise FetalBenchError(f"{path}: arr_{index} has shape {tuple(source.shape)}, expected {tuple(target.shape)}.",
                              "Pass the original SonoNet16.npz.")
    target.copy_(source)


def build_sononet(
    *,
    head: str = "sononet",
    labels: Sequence[str] | None = None,
    weights: str | Path | None | bool = "auto",
    restore: bool = False,
) -> SonoNet:
    """Build SonoNet-16.

    Args:
        head: ``"sononet"`` (its 14 classes, or ``labels`` for fine-tuning on a new label set:
            the last 1x1 conv + BN start from random) or ``"fetal-planes"`` (the 14 pooled onto
            :data:`FETAL_PLANES_GROUPS`).
        labels: a new label set for ``head="sononet"``; default SonoNet's 14.
        weights: ``"auto"`` (``$FETAL_BENCH_SONONET16``, the fetal-bench cache, else a verified
            download; random with a warning when none can be had), a path to ``SonoNet16.npz``,
            or ``None``/``False`` (random initialisation).
        restore: structure only (a checkpoint directory is about to be loaded).
    """
    if head not in ("sononet", "fetal-planes"):
        raise FetalBenchError(f"head={head!r} is not understood.", "Use 'sononet' or 'fetal-planes'.")
    if head == "fetal-planes" and labels is not None:
        raise FetalBenchError("sononet16-planes has a fixed label set.", "Fine-tune `sononet16` with labels=[...] instead.")
    new_labels = tuple(labels) if labels is not None and tuple(labels) != SONONET_LABELS else None
    out_labels = tuple(FETAL_PLANES_GROUPS) if head == "fetal-planes" else (new_labels or SONONET_LABELS)
    spec = ModelSpec(
        name="sononet16-planes" if head == "fetal-planes" else "sononet16",
        task_type="classification", labels=out_labels, image_size=(224, 288), channels=1, normalize="per_image",
        crop=_CROP, crop_frame_size=_FRAME_SIZE,
    )
    cfg = {"head": head, "labels": list(new_labels) if new_labels else None}
    model = SonoNet(spec, cfg, num_classes=len(new_labels) if new_labels else 14,
                    groups=FETAL_PLANES_GROUPS if head == "fetal-planes" else None)
    if restore or weights is None or weights is False:
        return model
    path = find_weights(SONONET16_WEIGHTS, path=None if weights == "auto" else weights, env_var="FETAL_BENCH_SONONET16")
    if path is None:
        warnings.warn(
            f"SonoNet16.npz is not available (offline or download failed); {spec.name} starts from random "
            f"initialisation. Set FETAL_BENCH_SONONET16=/path/to/SonoNet16.npz or pass checkpoint=PATH.",
            PretrainedWeightsWarning, stacklevel=3)
        return model
    load_sononet_npz(model, path, skip_last=new_labels is not None)
    return model
