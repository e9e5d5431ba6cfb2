"""Mask-guided diffusion for fetal head image + mask pairs, in two variants.

``paper`` (default): Wang et al., "Diffusion Model-based Data Augmentation Method for Fetal Head
Ultrasound Segmentation" (IMVIP 2025, arXiv:2506.23664). A UNet LoRA on Stable Diffusion v1.5 is
trained on 3-channel images [ultrasound, ultrasound, mask outline] (rank 128, lr 1e-4, 100
epochs, 512 px, fp16). Sampling (UniPC, 30 steps, LoRA scale 0.9) makes images whose red channel
is the ultrasound and whose blue channel (> 180) is the outline; an ellipse fitted to the
outline is filled into the mask. Every pair is checked (:mod:`fetal_bench.generators.outline`,
then :mod:`fetal_bench.generators.review`: outline leak, optional head segmenter); flagged pairs
are left out of the split and written for a person to correct, as the authors corrected theirs.

The authors' repository (github.com/13204942/Diffusion-based_DA_Fetal_Ultrasound_Segmentation,
commit 200ae09930581435d9febc67d160ce344c5b169c) describes two different trainings; both are
offered by name (``recipe``, :data:`RECIPES`):

``readme-hc18-trimesters`` (default): the README's data table, HC18 20 x 3 images, with the
  trimester prompts of ``code/FT_SD/data/1/metadata.jsonl`` ("An ultrasound image of a fetal
  head, first|second|third trimester.").
``notebook-es-head``: what ``code/FT_SD/sd_ft_runner.ipynb`` runs: ``--train_data_dir .../data/head``,
  the 24 FETAL_PLANES_DB head images of ``code/FT_SD/data/head`` with their outlines, one prompt
  read from ``prompt.txt`` by ``custom_us_dataset.py`` ("a photo of standard maternal fetal
  ultrasound planes, fetal head"), and 500 generated pairs (``SD_FT_LoRA_generation.ipynb``), of
  which the README's 495 were kept. Give ``--data`` the authors' folder (``image/NAME.png`` +
  ``mask/NAME_Annotation.png``): FETAL_PLANES_DB has no masks.

``conditioned`` (beyond the paper): the mask is an input, not an output. The UNet gets one more
input channel (the mask at latent resolution; zero-initialised weights) trained with the LoRA;
masks for sampling are drawn from an ellipse prior fitted to real masks
(:mod:`fetal_bench.generators.shape_prior`, stored in the LoRA's config), so each synthetic mask
is exactly the requested ellipse.

Trimester rule (HC18 records no gestational age): from the head circumference, HC < 100 mm is
the first trimester, 100 <= HC < 260 mm the second, HC >= 260 mm the third (the median HC at 14
and 28 weeks; ``data.trimester_hc_mm``). The phantom ``head`` set (HC 100-340 mm) has no first
trimester, so a LoRA trained on it knows the second and third only.

Output rows follow the ``hc18`` schema (``id, image, mask, subject_id, pixel_size_mm,
head_circumference_mm``) plus ``label`` (the trimester, or the recipe's single class), provenance
columns and ``ellipse`` (the mask's ellipse as JSON; for ``paper`` also ``review``, the checks'
values; for ``conditioned`` ``condition``, the requested ellipse and pixel size).
Training images are stretched to the square resolution, as the authors' training script does
(``data.resize: stretch``; ``letterbox`` keeps the aspect ratio and pads, an option of ours), so a
synthetic pair stretched to a model's input has the geometry of a real image stretched there.
``pixel_size_mm`` of a letterboxed ``paper`` sample is nominal: the median, over that class's
training images, of the pixel size after letterboxing to the generation resolution; a stretched
sample's pixel is not square, so its ``pixel_size_mm`` is empty and its HC is measured with the
median row and column sizes (both empty when the training data has no pixel size, as the
authors' Spanish heads).
"""

from __future__ import annotations

import collections
import hashlib
import json
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from fetal_bench.errors import FetalBenchError
from fetal_bench.generators.common import open_lora, resolve_resolution, resolve_train_config, to_png
from fetal_bench.generators.head_pairs import (
    check_head_columns,
    is_pair_folder,
    nominal_pixel_sizes,
    open_pair_folder,
    row_classes,
    trimesters,
)
from fetal_bench.generators.training_images import TRIMESTERS

__all__ = ["RECIPES", "VARIANTS", "ConditionedVariant", "PaperVariant", "fit_prior", "is_pair_folder",
           "open_pair_folder", "recipe_config", "sample", "train"]


#: Recipe name -> (overrides file in configs/ or None for the defaults, where it comes from).
RECIPES: dict[str, tuple[str | None, str]] = {
    "readme-hc18-trimesters": (None, "README.md data table (HC18, 20 x 3) and code/FT_SD/data/1/metadata.jsonl "
                                     "(trimester prompts), commit 200ae09930581435d9febc67d160ce344c5b169c"),
    "notebook-es-head": ("mask_guided_notebook_es_head.yaml",
                         "code/FT_SD/sd_ft_runner.ipynb, code/FT_SD/code/custom_us_dataset.py, code/FT_SD/data/head, "
                         "code/FT_SD/SD_FT_LoRA_generation.ipynb, commit 200ae09930581435d9febc67d160ce344c5b169c"),
}


DEFAULT_RECIPE = "readme-hc18-trimesters"


def recipe_config(recipe: str, variant: str, generator_config: str | Path | Mapping | None) -> dict[str, Any]:
    """The variant's defaults <- the recipe's overrides <- a user YAML (path or mapping)."""
    from importlib import resources

    import yaml

    from fetal_bench.generators.config import default_config, load_yaml, merge_config

    if recipe not in RECIPES:
        raise FetalBenchError(f"Unknown mask-guided recipe {recipe!r}.", f"Use one of: {', '.join(RECIPES)}.")
    config = default_config(_variant(variant).generator)
    overrides_file, _ = RECIPES[recipe]
    if overrides_file is not None:
        text = resources.files("fetal_bench.generators").joinpath("configs", overrides_file).read_text()
        config = merge_config(config, yaml.safe_load(text))
    if generator_config is not None:
        user = dict(generator_config) if isinstance(generator_config, Mapping) else load_yaml(generator_config)
        config = merge_config(config, user)
    return config


def fit_prior(
    data: str | Path, *, config: str | None = None, split: str = "train",
    trimester_hc_mm: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """Fit the ellipse shape prior to every mask of ``split`` (see :mod:`~fetal_bench.generators.shape_prior`)."""
    from fetal_bench.generators import shape_prior
    from fetal_bench.generators.config import default_config
    from fetal_bench.generators.training_images import decode_mask, open_source

    bounds = list(trimester_hc_mm or default_config("mask-conditioned")["data"]["trimester_hc_mm"])
    dataset, info = open_source(data, config=config, split=split)
    check_head_columns(dataset, info)
    classes = trimesters(dataset, bounds)
    ids = dataset["id"]
    masks = [decode_mask(cell, row_id) for cell, row_id in zip(dataset["mask"], ids)]
    prior = shape_prior.fit_prior(masks, dataset["pixel_size_mm"], classes,
                                  source={k: v for k, v in info.as_dict().items()
                                          if k in ("path", "dataset", "config", "split", "fingerprint")})
    prior["trimester_hc_mm"] = bounds
    return prior


# --------------------------------------------------------------------------------------------
# the two variants
# --------------------------------------------------------------------------------------------


class PaperVariant:
    """The paper's method: the LoRA learns [ultrasound, ultrasound, mask outline] images; a
    sample's blue channel is fitted with an ellipse, every pair is checked, and flagged pairs are
    left out of the split and written for a person to review.

    One instance per training or sampling run (sampling keeps the run's review settings).
    """

    name = "paper"
    generator = "mask-guided"  # the generator config it starts from
    extra_input_channels = 0
    column = "review"  # the variant's own column of the synthetic split
    mask_words = "fitted to the generated outline"
    pixel_size_words = (" (median of the class's training images; empty when they have none, or when they were "
                        "stretched to the square: the pixel is then not square)")
    summary_words = ("; masks are ellipses fitted to the generated outlines; pairs failing the automatic checks "
                     "are left out and written for review.")

    # -- training -----------------------------------------------------------------------------

    def check_recipe(self, recipe: str) -> None:
        """Every recipe suits the paper's method."""

    def example(self, image: np.ndarray, mask: np.ndarray, prompt: str, outline_width: int):
        """A training example: the image twice and the mask's outline, as three channels."""
        from fetal_bench.generators.training_images import outline

        return np.stack([image, image, outline(mask, outline_width)]), prompt, None

    def add_to_record(self, record: dict, *, data, config, cfg: dict, prior) -> None:
        """Nothing beyond the shared record: the outline width is already in it."""

    # -- sampling -----------------------------------------------------------------------------

    def check_sampling(self, review_model: str | None, review_checkpoint) -> None:
        if (review_model is None) != (review_checkpoint is None):
            raise FetalBenchError("A review segmenter needs both --review-model and --review-checkpoint.",
                                  "E.g. --review-model unet --review-checkpoint runs/unet.")

    def sampling_fields(self, run, prior) -> dict[str, Any]:
        """The outline post-processing this run fits ellipses with."""
        self.post = run.setup.postprocess
        return {"postprocess": self.post}

    def start_review(self, run, review_model: str | None, review_checkpoint, review_path: Path) -> None:
        """The checks' thresholds (and segmenter) this run applies, recorded in its generation config;
        flagged pairs go to ``review_path``."""
        from fetal_bench.generators.review import Segmenter, review_thresholds, weights_sha256

        thresholds = review_thresholds(run.lora_record, run.generation_in)
        self.segmenter = None if review_model is None else Segmenter(review_model, review_checkpoint)
        run.generation["review"] = {**thresholds, "segmenter": None if self.segmenter is None else
                                    {"model": review_model, "weights_sha256": weights_sha256(Path(review_checkpoint))}}
        self.review_path = review_path

    def condition(self, run, bounds) -> None:
        """No condition: the model draws the outline itself."""
        return None

    def renderer(self, run, names: list[str]) -> Callable[[list], tuple[list[dict], list[dict]]]:
        from fetal_bench.generators import sampling as smp
        from fetal_bench.generators.review import check_pairs, save_pair

        options, constant = run.pipeline_options(), run.provenance_columns()
        nominal = {int(c["label"]): c.get("nominal_pixel_size_mm") for c in run.lora_record["data"]["classes"]}

        def render(batch: list) -> tuple[list[dict], list[dict]]:
            images = smp.pipeline_images(run.pipe, batch, **options)
            checked = check_pairs(batch, images, self.post, run.generation["review"], self.segmenter, run.resolution)
            rows, rejected = [], []
            for item, pair in zip(batch, checked):
                if pair["reason"] is None:
                    row = _row(run, item, pair["image"], pair["mask"], pair["ellipse"], nominal[item.label], constant)
                    rows.append({**row, "review": json.dumps(pair["values"], sort_keys=True)})
                    continue
                save_pair(self.review_path, run.row_id(item), pair["image"], pair["outline"])
                rejected.append({"index": item.index, "name": run.row_id(item), "label": names[item.label],
                                 "seed": item.seed, "reason": pair["reason"], **pair["values"],
                                 "ellipse": None if pair["ellipse"] is None else _ellipse_dict(pair["ellipse"])})
            return rows, rejected

        return render

    def close(self, run, attempted: int, reasons: Mapping, by_class: Mapping) -> tuple[list[str], dict[str, Any]]:
        """The review's report beside the split: its note and build-record entry."""
        from fetal_bench.generators.review import review_note, write_report

        review = write_report(self.review_path, run.run.rejected, attempted=attempted,
                              thresholds=run.generation["review"], segmenter=self.segmenter)
        return ([review_note(review, reasons, by_class, self.review_path)],
                {"review": {**review, "directory": str(self.review_path.resolve())}})


class ConditionedVariant:
    """Beyond the paper: the mask is an input, not an output. The UNet gets one more input
    channel (the mask at latent resolution) trained with the LoRA; each sample's mask is an
    ellipse drawn from a shape prior fitted to real masks, so it is honoured exactly."""

    name = "conditioned"
    generator = "mask-conditioned"
    extra_input_channels = 1
    column = "condition"
    mask_words = "the image was conditioned on"
    pixel_size_words = " (drawn with the ellipse)"
    summary_words = "; each mask is the ellipse drawn from the shape prior and given to the model."

    def check_recipe(self, recipe: str) -> None:
        if recipe != DEFAULT_RECIPE:
            raise FetalBenchError(f"The conditioned variant draws masks per trimester; recipe {recipe!r} has no "
                                  "trimesters.", f"Use --recipe {DEFAULT_RECIPE} with --variant conditioned.")

    def example(self, image: np.ndarray, mask: np.ndarray, prompt: str, outline_width: int):
        """A training example: the image (three times) and, as the condition, its mask."""
        return np.broadcast_to(image, (3, *image.shape)), prompt, mask.astype(np.float32)

    def add_to_record(self, record: dict, *, data, config, cfg: dict, prior) -> None:
        """The shape prior sampling draws masks from: given, or fitted to ``data.prior_split``."""
        if prior is None:
            record["shape_prior"] = fit_prior(data, config=config, split=cfg["data"]["prior_split"],
                                              trimester_hc_mm=cfg["data"]["trimester_hc_mm"])
        else:
            record["shape_prior"] = dict(prior) if isinstance(prior, Mapping) else json.loads(Path(prior).read_text())

    def check_sampling(self, review_model: str | None, review_checkpoint) -> None:
        if review_model or review_checkpoint:
            raise FetalBenchError("The review checks generated outlines; a conditioned sample has none.",
                                  "Drop --review-model/--review-checkpoint for a conditioned LoRA.")

    def sampling_fields(self, run, prior) -> dict[str, Any]:
        """The shape prior this run draws masks from: ``prior``, the reproduced split's, or the LoRA's."""
        if prior is not None:
            self.shape = dict(prior) if isinstance(prior, Mapping) else json.loads(Path(prior).read_text())
        else:
            self.shape = (run.generation_in or {}).get("shape_prior") or run.lora_record["shape_prior"]
        return {"shape_prior": self.shape}

    def start_review(self, run, review_model, review_checkpoint, review_path: Path) -> None:
        """Nothing to review: the masks are the conditions."""

    def condition(self, run, bounds) -> Callable[[dict, int], dict]:
        from fetal_bench.generators.shape_prior import draw_ellipse

        def draw(trained_class: dict, seed: int) -> dict:
            # The requested mask depends only on this item's seed.
            ellipse, mm_per_px = draw_ellipse(self.shape, int(trained_class["label"]), np.random.default_rng(seed),
                                              run.resolution, bounds)
            return {"ellipse": _ellipse_dict(ellipse), "pixel_size_mm": mm_per_px}

        return draw

    def renderer(self, run, names: list[str]) -> Callable[[list], tuple[list[dict], list[dict]]]:
        from fetal_bench.generators import sampling as smp

        options, constant, size = run.pipeline_options(), run.provenance_columns(), run.resolution

        def render(batch: list) -> tuple[list[dict], list[dict]]:
            import torch
            from PIL import Image

            from fetal_bench.geometry import Ellipse, ellipse_mask

            ellipses = [Ellipse(**item.condition["ellipse"]) for item in batch]
            masks = [ellipse_mask((size, size), e) for e in ellipses]
            tensor = torch.from_numpy(np.stack(masks).astype(np.float32))[:, None]
            rows = []
            for item, image, mask, ellipse in zip(batch, smp.conditioned_images(run.pipe, batch, tensor, **options),
                                                  masks, ellipses):
                rgb = (np.clip(image, 0.0, 1.0) * 255).round().astype(np.uint8)
                gray = np.asarray(Image.fromarray(rgb).convert("L"))
                row = _row(run, item, gray, mask, ellipse, float(item.condition["pixel_size_mm"]), constant)
                rows.append({**row, "condition": json.dumps(item.condition, sort_keys=True)})
            return rows, []

        return render

    def close(self, run, attempted: int, reasons: Mapping, by_class: Mapping) -> tuple[list[str], dict[str, Any]]:
        """No report: a conditioned sample is never rejected."""
        return [], {}


Variant = PaperVariant | ConditionedVariant
#: variant name -> its class (one instance per run; both have the same methods).
VARIANTS: dict[str, type[Variant]] = {"paper": PaperVariant, "conditioned": ConditionedVariant}
_GENERATORS = tuple(kind.generator for kind in VARIANTS.values())


def _variant(name: str) -> Variant:
    if name not in VARIANTS:
        raise FetalBenchError(f"Unknown variant {name!r}.", f"Use one of: {', '.join(VARIANTS)}.")
    return VARIANTS[name]()


def _row(run, item, image: np.ndarray, mask: np.ndarray, ellipse, pixel_size, constant: dict) -> dict:
    """A synthetic row of the hc18 schema (its HC: the ellipse's perimeter in mm), with provenance.
    ``pixel_size``: mm per pixel, ``[row, column]`` sizes for a stretched LoRA (then the row's
    ``pixel_size_mm`` is empty: the pixel is not square), or None."""
    from fetal_bench.geometry import ellipse_perimeter

    row_id = run.row_id(item)
    if isinstance(pixel_size, (list, tuple)):  # stretched training images: [row, column] mm per pixel
        from fetal_bench.geometry import scaled_ellipse

        in_mm = scaled_ellipse(ellipse, float(pixel_size[1]), float(pixel_size[0]))
        hc, pixel_size = ellipse_perimeter(in_mm.a, in_mm.b), None  # no single size for a non-square pixel
    else:
        hc = None if pixel_size is None else ellipse_perimeter(ellipse.a, ellipse.b) * float(pixel_size)
    return {"id": row_id, "image": to_png(image), "mask": to_png(mask.astype(np.uint8)), "subject_id": row_id,
            "pixel_size_mm": pixel_size, "head_circumference_mm": hc, "label": item.label, "seed": item.seed,
            "prompt": item.prompt, **constant, "ellipse": json.dumps(_ellipse_dict(ellipse), sort_keys=True)}


def _ellipse_dict(ellipse) -> dict[str, float]:
    return {"cx": float(ellipse.cx), "cy": float(ellipse.cy), "a": float(ellipse.a), "b": float(ellipse.b),
            "angle": float(ellipse.angle)}


# --------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------


def train(*, data: str | Path, output: str | Path, config: str | None = None, variant: str = "paper",
          recipe: str = DEFAULT_RECIPE, base: str | None = None, revision: str | None = None, split: str | None = None,
          max_steps: int | None = None, images_per_class: int | None = None,
          generator_config: str | Path | Mapping | None = None, prior: str | Path | Mapping | None = None,
          overwrite: bool = False, progress: Callable[[int, int, float], None] | None = None) -> dict[str, Any]:
    """Train a mask-guided LoRA (``variant`` ``paper`` or ``conditioned``) on head images with masks.

    ``recipe``: one of :data:`RECIPES` (module docstring). ``data``: a dataset (hc18 schema) or
    the authors' folder layout (:func:`is_pair_folder`). ``prior`` (conditioned only): a prior
    JSON file or mapping from :func:`fit_prior`; by default it is fitted to every mask of
    ``data.prior_split`` of ``data``. Returns the written ``generator_config.json`` content.
    """
    from fetal_bench.generators.base import load_base
    from fetal_bench.generators.training import TrainingData, train_lora
    from fetal_bench.generators.training_images import (
        decode_gray,
        decode_mask,
        letterbox,
        open_source,
        select_per_class,
        stretch,
    )

    kind = _variant(variant)
    kind.check_recipe(recipe)
    cfg = resolve_train_config(kind.generator, recipe_config(recipe, variant, generator_config), {
        "train": {"max_steps": max_steps},
        "data": {"split": split, "images_per_class": images_per_class},
    })
    image_list = cfg["data"].get("image_list")
    if is_pair_folder(data):
        dataset, info = open_pair_folder(data)
    else:
        dataset, info = open_source(data, config=config, split=cfg["data"]["split"])
        if image_list and info.dataset == "hc18" and split is None:
            # The authors' images are named, not drawn from a split: 23 of the 60 lie in fetal-bench's
            # validation and test exams, so the list reads every labelled image (recorded below).
            dataset, info = open_source(data, config=config, split=_ALL_LABELLED)
    single = cfg["data"]["classes"] == "single"
    check_head_columns(dataset, info, ("image", "mask") if single else
                       ("image", "mask", "head_circumference_mm", "pixel_size_mm"))
    classes, names = row_classes(dataset, cfg)
    ids = dataset["id"]
    n = cfg["data"]["images_per_class"]
    chosen_by = _listed_rows(image_list, info, ids, classes) if image_list else None
    if chosen_by is not None:
        rows, classes = chosen_by
    else:
        rows = select_per_class(ids, classes, None if n is None else int(n), int(cfg["data"]["selection_seed"]))
    model = load_base(base or cfg["base"]["model"], revision=revision, default=cfg["base"])
    resolution = resolve_resolution(cfg, model)
    width = max(1, round(int(cfg["data"]["outline_width"]) * resolution / 512))
    template = str(cfg["data"]["prompt"])
    resize = str(cfg["data"]["resize"])
    if resize not in ("stretch", "letterbox"):
        raise FetalBenchError(f"data.resize {resize!r} is not supported.", "Use stretch (the authors') or letterbox.")

    def square(array: np.ndarray, nearest: bool = False) -> np.ndarray:
        if resize == "stretch":
            return stretch(array, resolution, nearest=nearest)
        return letterbox(array, resolution, nearest=nearest)[0]

    def get(i: int):
        row = rows[i]
        record = dataset[row]
        image = square(decode_gray(record["image"], ids[row]))
        mask = square(decode_mask(record["mask"], ids[row]).astype(np.uint8), nearest=True)
        return kind.example(image, mask, template.format(trimester=names[classes[row]]), width)

    record = _training_record(dataset, info, recipe, model, rows, classes, names, template, width, resolution, resize)
    record["data"]["selection"] = (f"the authors' list {image_list} (fetal_bench/data/mask_guided_lists.py)"
                                   if chosen_by is not None else f"hash pick, seed {cfg['data']['selection_seed']}")
    kind.add_to_record(record, data=data, config=config, cfg=cfg, prior=prior)
    training_data = TrainingData(len(rows), get, resolution, extra_input_channels=kind.extra_input_channels)
    return train_lora(base=model, config=cfg, data=training_data, output=output, record=record,
                      overwrite=overwrite, progress=progress)


_ALL_LABELLED = "train+validation+test"


def _listed_rows(name: str, info, ids: list[str], classes: list[int]) -> tuple[list[int], list[int]] | None:
    """The rows of a named list of the authors' images and their classes (the authors'
    trimesters); None where the list does not apply (a source other than hc18: a hash pick)."""
    from fetal_bench.data.mask_guided_lists import IMAGE_LISTS

    if name not in IMAGE_LISTS:
        raise FetalBenchError(f"data.image_list {name!r} is not a known list.",
                              f"Use one of: {', '.join(IMAGE_LISTS)}, or null for a hash pick.")
    if info.dataset != "hc18":
        return None
    where = {row_id: i for i, row_id in enumerate(ids)}
    listed = IMAGE_LISTS[name]
    missing = [e.hc18_name for e in listed if e.hc18_name not in where]
    if missing:
        raise FetalBenchError(f"{len(missing)} of the authors' {len(listed)} images are not in split {info.split!r} of "
                              f"{info.path}: {', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}.",
                              f"Train on a full hc18 build (split {_ALL_LABELLED}, the default with this list), or set "
                              "data.image_list: null for a hash pick.")
    rows = [where[e.hc18_name] for e in listed]
    authors = {where[e.hc18_name]: e.trimester - 1 for e in listed}
    return rows, [authors.get(i, c) for i, c in enumerate(classes)]


def _training_record(dataset, info, recipe: str, model, rows: list[int], classes: list[int], names: list[str],
                     template: str, width: int, resolution: int, resize: str) -> dict[str, Any]:
    """What the LoRA's generator_config.json records of its base, recipe and training images."""
    ids = dataset["id"]
    counts = collections.Counter(classes[r] for r in rows)
    nominal = nominal_pixel_sizes(dataset, rows, classes, resolution, resize)
    return {
        "base": model.identity,
        "recipe": {"name": recipe, "source": RECIPES[recipe][1]},
        "data": {
            **info.as_dict(),
            "label_names": names,
            "n_images": len(rows),
            "image_ids_sha256": hashlib.sha256("\n".join(sorted(ids[r] for r in rows)).encode()).hexdigest(),
            "resize": resize,
            # letterbox: one (square) pixel size; stretch: [row, column] sizes (the pixel is not square)
            "classes": [{"label": t, "name": names[t], "prompt": template.format(trimester=names[t]),
                         "n_images": counts[t], "nominal_pixel_size_mm": nominal[t]}
                        for t in sorted(counts)],
            "skipped_classes": [names[t] for t in range(len(names)) if t not in counts],
            "outline_width_px": width,
        },
    }


# --------------------------------------------------------------------------------------------
# sampling
# --------------------------------------------------------------------------------------------


def sample(*, lora: str | Path | None, output: str | Path, prior: str | Path | Mapping | None = None,
           review_model: str | None = None, review_checkpoint: str | Path | None = None,
           review_dir: str | Path | None = None, **options: Any):
    """Sample ``per_class`` image + mask pairs per trained class into a synthetic hc18-schema split.

    ``options``: the sampling options every generator takes
    (:class:`~fetal_bench.generators.sample_run.SampleOptions`). The variant is the LoRA's.
    ``prior`` overrides the conditioned LoRA's stored shape prior. Resumable and reproducible as
    :func:`fetal_bench.generators.fu_lora.sample`. Paper variant: every pair is checked
    (:mod:`fetal_bench.generators.review`; a head segmenter when ``review_model`` and
    ``review_checkpoint`` are given) and flagged pairs are written to ``review_dir`` (default
    ``OUTPUT.review``) with a report and a contact sheet.
    """
    from fetal_bench.generators.sample_run import SampleOptions, SampleRun

    run = SampleRun(output, SampleOptions(**options))
    lora_dir, lora_record = open_lora(lora, run.generation_in, _GENERATORS)
    kind = _variant(lora_record.get("variant") or "paper")
    run.use_lora(lora_dir, lora_record)
    classes = run.chosen_classes()
    kind.check_sampling(review_model, review_checkpoint)
    sampling_fields = kind.sampling_fields(run, prior)
    run.load_pipeline()
    bounds = lora_record["config"]["data"]["trimester_hc_mm"]
    # The training images' geometry (stretch: the authors'; letterbox: older LoRAs and the
    # conditioned variant): a segmentation protocol refuses pairs that are not stretched.
    resize = lora_record["data"].get("resize") or lora_record["config"]["data"].get("resize") or "letterbox"
    run.record_generation(lora_record["generator"], classes, int(lora_record["resolution"]),
                          identity={"variant": kind.name}, data={"trimester_hc_mm": bounds, "resize": resize},
                          sampling=sampling_fields,
                          source_keys=("dataset", "path", "config", "split", "fingerprint", "license"))
    review_path = Path(review_dir) if review_dir else run.output.with_name(run.output.name + ".review")
    kind.start_review(run, review_model, review_checkpoint, review_path)
    items = run.items(classes, kind.condition(run, bounds))
    names = list(lora_record["data"].get("label_names") or TRIMESTERS)
    features = _features(names, kind.column)
    if not run.render_shards(items, kind.renderer(run, names), features).is_main_process:
        return None
    return _write_split(run, kind, items, features, review_path)


def _features(names: list[str], column: str):
    import datasets

    from fetal_bench.data.schemas import head_biometry_features
    from fetal_bench.generators.synthetic import provenance_features

    columns = dict(head_biometry_features(label=datasets.ClassLabel(names=names), **provenance_features(),
                                          ellipse=datasets.Value("string")))
    columns[column] = datasets.Value("string")
    return datasets.Features(columns)


def _write_split(run, kind: Variant, items: list, features, review_path: Path):
    """The split (with the variant's report beside it); an error, and no split, when every pair was rejected."""
    from fetal_bench.generators.synthetic import synthetic_info

    rejected = run.run.rejected
    reasons = collections.Counter(r["reason"] for r in rejected)
    by_class = collections.Counter(r["label"] for r in rejected)
    accepted = len(items) - len(rejected)
    notes, extra = kind.close(run, len(items), reasons, by_class)
    if accepted == 0:
        run.finish_without_writing()
        raise FetalBenchError(
            f"All {len(items)} samples were rejected ("
            f"{', '.join(f'{k} {v}' for k, v in reasons.most_common())}); each is in {review_path} for review.",
            "The LoRA has not learnt to draw head outlines (a random `tiny` base never does): train it "
            "longer on a real base (the paper trains 100 epochs), or relax the thresholds with `--config "
            "FILE.yaml` holding `postprocess: {...}` or `review: {...}` (see configs/mask_guided.yaml).",
        )
    sample_cfg = run.sample_cfg
    info = synthetic_info(
        generation=run.generation,
        title="Mask-guided synthetic fetal heads",
        summary=(f"Synthetic fetal head ultrasound images with head masks, made by mask-guided diffusion ({kind.name} "
                 f"variant): {sample_cfg['per_class']} attempted per class ({', '.join(sample_cfg['classes'])})"
                 + kind.summary_words),
        features={
            "id": "unique row id: generator, run seed and index",
            "image": "generated image (8-bit gray PNG)",
            "mask": "filled head mask (0/1): the ellipse " + kind.mask_words,
            "subject_id": "= id (every synthetic image is its own subject)",
            "pixel_size_mm": "nominal pixel size in mm" + kind.pixel_size_words,
            "head_circumference_mm": "perimeter of the mask's ellipse x pixel_size_mm",
            "label": "the class (trimester, or the recipe's single class) the image was prompted for",
            "ellipse": "the mask's ellipse as JSON (cx, cy, a, b, angle in pixels/radians)",
            "condition": "the requested ellipse and pixel size (conditioned variant)",
            "review": "the automatic checks' values as JSON (outline support and coverage, outline leak, segmenter Dice)",
        },
        reproduce="fetal-bench generate mask-guided sample --lora LORA_DIR --config THIS_DIR --output NEW_DIR",
        task_categories=("image-segmentation",),
    )
    timing = run.timing_note(len(items), "samples generated") + f"; {accepted} accepted."
    extra = {"rejected": {"count": len(rejected), "by_reason": dict(reasons), "by_class": dict(by_class),
                          "samples": rejected}, **extra}
    return run.write(info=info, features=features, notes=[timing, *notes], extra=extra)
