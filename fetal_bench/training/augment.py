"""Ultrasound-suited augmentation, as a :data:`fetal_bench.data.loading.Transform`.

Called by the data loader on each row *before* normalisation, with a ``numpy`` generator seeded
per (seed, epoch, row): so augmentation is reproducible whatever the number of workers, and a
resumed run draws exactly what the interrupted one would have.

What varies between real scans, and so what is simulated:

* **geometry** -- probe angle and zoom: small rotations, scaling and shifts, and a left-right
  flip (the sonographer's screen orientation is a convention, not anatomy). One affine
  transform moves image and mask together: the image is resampled bilinearly, the mask by
  nearest neighbour, so labels stay labels;
* **gain and contrast** -- overall gain (a multiplicative factor) and the log-compression /
  dynamic-range setting (a gamma curve);
* **speckle** -- multiplicative noise with a grain of about two pixels (noise drawn at half
  resolution and upsampled), like the Rayleigh speckle of B-mode, rather than additive pixel noise;
* **depth gain** (``ultrasound-depth-gain`` only) -- the time-gain compensation a sonographer sets
  per depth, and the near-field haze that hides the skull nearest the probe in late pregnancy: a
  smooth random gain profile down the image rows (the probe is at the top). A U-Net trained on
  heads up to 199 mm, scored on larger ones, traced only the bright far skull where the near skull
  was faint (HC18 792_HC, 794_HC, 796_HC: -18% to -21% of HC); this preset was made to show it
  such images. Measured: it did not fix that (docs/baselines.md, the size-shift section).

The ``"fu-lora"`` preset is the FU-LoRA paper's "+DA" (RandomRotation ±15°,
RandomResizedCrop with scale 0.08-1 and aspect 3/4-4/3, horizontal flip), built on the same
affine machinery.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from fetal_bench.errors import FetalBenchError

__all__ = ["PRESETS", "UltrasoundAugment", "make_augment"]


@dataclass(frozen=True)
class UltrasoundAugment:
    """A picklable augmentation (works in spawned loader workers).

    Attributes:
        rotation_deg: maximum absolute rotation.
        scale: (low, high) zoom factor (> 1 zooms in).
        translate: maximum shift as a fraction of each side.
        flip_p: probability of a left-right flip.
        resized_crop: (low, high) area fraction of a random crop resized to the full frame
            (torchvision's RandomResizedCrop); replaces ``scale``/``translate`` when set.
        gain: (low, high) multiplicative gain.
        gamma: (low, high) exponent of the contrast curve.
        speckle: standard deviation of the multiplicative speckle noise (0: none).
        p_intensity: probability of each intensity change.
        depth_gain: (low, high) gain at each of ``depth_gain_knots`` depths spread down the
            rows, log-uniform, interpolated linearly between them; None: off. Applied with
            probability ``p_intensity``. Its draws come after all the others, so turning it on
            leaves every other draw as it was.
        depth_gain_knots: how many depths the gain profile is drawn at.
    """

    rotation_deg: float = 10.0
    scale: tuple[float, float] = (0.9, 1.1)
    translate: float = 0.05
    flip_p: float = 0.5
    resized_crop: tuple[float, float] | None = None
    gain: tuple[float, float] = (0.8, 1.25)
    gamma: tuple[float, float] = (0.7, 1.5)
    speckle: float = 0.15
    p_intensity: float = 0.8
    depth_gain: tuple[float, float] | None = None
    depth_gain_knots: int = 4

    def __call__(self, image: torch.Tensor, mask: torch.Tensor | None, rng: np.random.Generator):
        _, height, width = image.shape
        theta = self._affine(rng, height, width)
        if theta is not None:
            grid = F.affine_grid(theta[None], [1, 1, height, width], align_corners=False)
            image = F.grid_sample(image[None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0]
            if mask is not None:
                moved = F.grid_sample(mask[None, None].to(torch.float32), grid, mode="nearest",
                                      padding_mode="zeros", align_corners=False)
                mask = moved[0, 0].round().to(mask.dtype)
        image = self._intensity(image, rng)
        return image, mask

    def _affine(self, rng: np.random.Generator, height: int, width: int) -> torch.Tensor | None:
        """Output->input map in normalised coordinates, or None for the identity."""
        angle = math.radians(rng.uniform(-self.rotation_deg, self.rotation_deg)) if self.rotation_deg else 0.0
        flip = rng.random() < self.flip_p
        if self.resized_crop is not None:
            # A crop of area fraction s and aspect r (log-uniform), anywhere inside the frame.
            s = rng.uniform(*self.resized_crop)
            r = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
            sx, sy = min(1.0, math.sqrt(s * r)), min(1.0, math.sqrt(s / r))
            tx, ty = rng.uniform(-(1 - sx), 1 - sx), rng.uniform(-(1 - sy), 1 - sy)
        else:
            zoom = rng.uniform(*self.scale)
            sx = sy = 1.0 / zoom
            tx, ty = (rng.uniform(-2 * self.translate, 2 * self.translate) for _ in range(2))
        if not angle and not flip and sx == sy == 1.0 and not tx and not ty:
            return None
        # Rotate in pixel space, not in normalised coordinates, so non-square frames rotate
        # rigidly: A = D^-1 R D with D = diag(W, H) / 2.
        cos, sin = math.cos(angle), math.sin(angle)
        aspect = height / width
        rot = np.array([[cos, -sin * aspect], [sin / aspect, cos]])
        scale = np.diag([(-sx if flip else sx), sy])
        matrix = rot @ scale
        theta = np.concatenate([matrix, [[tx], [ty]]], axis=1)
        return torch.tensor(theta, dtype=torch.float32)

    def _intensity(self, image: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        # Draw every number whatever is applied, so one change never shifts the others' draws.
        do_gain, do_gamma, do_speckle = rng.random(3) < self.p_intensity
        gain, gamma = rng.uniform(*self.gain), rng.uniform(*self.gamma)
        if do_gain:
            image = image * gain
        if do_gamma:
            image = image.clamp(0, 1) ** gamma
        if do_speckle and self.speckle > 0:
            _, height, width = image.shape
            small = torch.from_numpy(rng.standard_normal((1, 1, max(1, height // 2), max(1, width // 2))).astype(np.float32))
            noise = F.interpolate(small, size=(height, width), mode="bilinear", align_corners=False)[0]
            image = image * (1 + self.speckle * noise)
        if self.depth_gain is not None:
            image = self._depth_gain(image, rng)
        return image.clamp(0, 1)

    def _depth_gain(self, image: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        apply = rng.random() < self.p_intensity
        low, high = (math.log(v) for v in self.depth_gain)
        knots = np.exp(rng.uniform(low, high, size=self.depth_gain_knots))
        if not apply:
            return image
        height = image.shape[1]
        profile = np.interp(np.arange(height), np.linspace(0, height - 1, self.depth_gain_knots), knots)
        return image * torch.from_numpy(profile.astype(np.float32))[None, :, None]


PRESETS: dict[str, UltrasoundAugment | None] = {
    "none": None,
    "ultrasound": UltrasoundAugment(),
    # "ultrasound" plus a random depth-gain profile (0.25-1.5 at 4 depths): ours, for head segmenters
    # that must find a faint near-field skull.
    "ultrasound-depth-gain": UltrasoundAugment(depth_gain=(0.25, 1.5)),
    # FU-LoRA "+DA": rotation ±15°, RandomResizedCrop(scale 0.08-1), horizontal flip; no intensity changes.
    "fu-lora": UltrasoundAugment(rotation_deg=15.0, resized_crop=(0.08, 1.0), flip_p=0.5, p_intensity=0.0, speckle=0.0),
}


def make_augment(name: str) -> UltrasoundAugment | None:
    try:
        return PRESETS[name]
    except KeyError:
        raise FetalBenchError(f"Unknown augmentation {name!r}.", f"Use one of: {', '.join(PRESETS)}.") from None
