"""The phantom set's layout (classes, sites, split sizes) and biometry ranges."""

from __future__ import annotations



PLANE_CLASSES: tuple[str, ...] = ("abdomen", "brain", "femur", "thorax")
SITES: tuple[str, ...] = ("site-a", "site-b", "site-c")
SPLIT_SIZES: dict[str, dict[str, int]] = {
    "planes": {"train": 240, "validation": 60, "test": 120},
    "head": {"train": 96, "validation": 32, "test": 64},
}

_DEFAULT_SIZE = (128, 160)  # (H, W); all design lengths below are in pixels of this size
_DESIGN_HEIGHT = 128.0
_IMAGES_PER_PATIENT = 4  # planes: one image per class per patient (a screening session)
_IMAGES_PER_SUBJECT = 2  # head: like HC18's NNN_HC / NNN_2HC pairs
_SPLITS = ("train", "validation", "test")  # order fixes seed codes and id number ranges
_CONFIG_CODES = {"planes": 1, "head": 2}
_PATIENT_STREAM = 1 << 20  # seed-sequence offset that keeps patient draws apart from image draws

# Realistic head biometry at this image size (HC18 is 800 px wide at 0.05-0.33 mm; at 160 px
# wide that is 0.26-1.6 mm per pixel). HC spans mid-second to third trimester.
_HC_RANGE_MM = (100.0, 340.0)
_PIXEL_SIZE_RANGE_MM = (0.30, 1.30)
_HEAD_ASPECT_RANGE = (0.74, 0.88)  # b / a of fetal heads (cephalic index ~ 0.75-0.85)
