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
``pixel_size_mm`` of a ``paper`` sample is nominal: the median, over that class's training
images, of the pixel size after letterboxing to the generation resolution (empty, with the HC,
when the training data has no pixel size, as the authors' Spanish heads).
"""

from __future__ import annotations

import collections
import hashlib
import io
import json
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from fetal_bench.errors import DataError, FetalBenchError
from fetal_bench.generators.common import (
    SamplingSetup,
    check_output,
    generation_sha256,
    load_generation,
    open_lora,
    prepare_pipeline,
    resolve_resolution,
    resolve_train_config,
    to_png,
)
from fetal_bench.generators.data import TRIMESTERS

__all__ = ["RECIPES", "VARIANTS", "fit_prior", "sample", "train"]

#: variant -> the generator config it starts from.
VARIANTS = {"paper": "mask-guided", "conditioned": "mask-conditioned"}
_GENERATORS = tuple(VARIANTS.values())

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
    config = default_config(VARIANTS[variant])
    overrides_file, _ = RECIPES[recipe]
    if overrides_file is not None:
        text = resources.files("fetal_bench.generators").joinpath("configs", overrides_file).read_text()
        config = merge_config(config, yaml.safe_load(text))
    if generator_config is not None:
        user = dict(generator_config) if isinstance(generator_config, Mapping) else load_yaml(generator_config)
        config = merge_config(config, user)
    return config


def _check_head_columns(dataset, info, needed=("image", "mask", "head_circumference_mm", "pixel_size_mm")) -> None:
    missing = [c for c in needed if c not in dataset.column_names]
    if missing:
        raise DataError(
            f"Dataset {info.path} (config {info.config!r}, split {info.split!r}) lacks {', '.join(missing)}: "
            "mask-guided training needs head images with masks, pixel sizes and head circumferences.",
            "Use an hc18-schema set: `--config head` of the phantom set, or hc18.",
        )


def _trimesters(dataset, bounds) -> list[int]:
    from fetal_bench.generators.data import trimester_of

    values = dataset["head_circumference_mm"]
    ids = dataset["id"]
    out = []
    for row_id, hc in zip(ids, values):
        if hc is None:
            raise DataError(f"Row {row_id!r} has no head circumference.", "Use a labelled split (not challenge_test).")
        out.append(trimester_of(hc, bounds))
    return out


def is_pair_folder(data: str | Path) -> bool:
    """The authors' training layout: ``image/NAME.png`` and ``mask/NAME_Annotation.png``."""
    path = Path(data)
    return (path / "image").is_dir() and (path / "mask").is_dir()


_MAX_PAIR_FILE_BYTES = 64 * 1024 * 1024


def open_pair_folder(data: str | Path):
    """Read the authors' folder layout into a dataset (id, image, mask) and its SourceInfo.

    Each outline ``mask/NAME_Annotation.png`` (0/255) is filled into a 0/1 head mask, as HC18's
    are (the outline is redrawn from it for training). Every image needs its outline.
    """
    import datasets
    from PIL import Image
    from scipy import ndimage

    from fetal_bench._io import UnreadableFile, read_regular_file, sha256_bytes
    from fetal_bench.data.writer import encode_png
    from fetal_bench.generators.data import SourceInfo

    root = Path(data)
    images = sorted(root.joinpath("image").glob("*.png"))
    if not images:
        raise DataError(f"{root / 'image'} holds no PNG images.", "Pass the authors' folder: image/NAME.png + mask/NAME_Annotation.png.")
    ids, image_cells, mask_cells, digests = [], [], [], []
    for path in images:
        outline_path = root / "mask" / f"{path.stem}_Annotation.png"
        if not outline_path.is_file():
            raise DataError(f"{path.name} has no outline {outline_path}.", "Add mask/NAME_Annotation.png for every image.")
        try:
            raw_image = read_regular_file(path, max_bytes=_MAX_PAIR_FILE_BYTES)
            raw_outline = read_regular_file(outline_path, max_bytes=_MAX_PAIR_FILE_BYTES)
            with Image.open(io.BytesIO(raw_image)) as image, Image.open(io.BytesIO(raw_outline)) as outline:
                size, outline_size = image.size, outline.size
                filled = ndimage.binary_fill_holes(np.asarray(outline.convert("L")) > 127)
        except (UnreadableFile, OSError) as error:  # PIL's UnidentifiedImageError is an OSError
            raise DataError(f"Cannot read the pair {path.name}: {error}", "Pass PNG images and outlines (regular files).") from None
        if size != outline_size:
            raise DataError(f"{path.name} is {size} but its outline is {outline_size}.", "Use outlines drawn on the image.")
        ids.append(path.stem)
        image_cells.append({"bytes": raw_image, "path": None})
        mask_cells.append({"bytes": encode_png(filled.astype(np.uint8)), "path": None})
        digests.append(f"{path.name}:{sha256_bytes(raw_image)}:{sha256_bytes(raw_outline)}")
    features = datasets.Features({"id": datasets.Value("string"), "image": datasets.Image(decode=False),
                                  "mask": datasets.Image(decode=False)})
    dataset = datasets.Dataset.from_dict({"id": ids, "image": image_cells, "mask": mask_cells}, features=features)
    info = SourceInfo(path=str(root.resolve()), config=None, split="pairs", dataset="image-outline pair folder",
                      fingerprint=hashlib.sha256("\n".join(digests).encode()).hexdigest())
    info.features = {"id": "Value", "image": "Image", "mask": "Image"}
    return dataset, info


def _image_size(cell: dict) -> tuple[int, int]:
    import io

    from PIL import Image

    with Image.open(io.BytesIO(cell["bytes"])) as image:  # reads the header only
        return image.height, image.width


def fit_prior(
    data: str | Path, *, config: str | None = None, split: str = "train",
    trimester_hc_mm: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """Fit the ellipse shape prior to every mask of ``split`` (see :mod:`~fetal_bench.generators.shape_prior`)."""
    from fetal_bench.generators import shape_prior
    from fetal_bench.generators.config import default_config
    from fetal_bench.generators.data import decode_mask, open_source

    bounds = list(trimester_hc_mm or default_config("mask-conditioned")["data"]["trimester_hc_mm"])
    dataset, info = open_source(data, config=config, split=split)
    _check_head_columns(dataset, info)
    trimesters = _trimesters(dataset, bounds)
    ids = dataset["id"]
    masks = [decode_mask(cell, row_id) for cell, row_id in zip(dataset["mask"], ids)]
    prior = shape_prior.fit_prior(masks, dataset["pixel_size_mm"], trimesters,
                                  source={k: v for k, v in info.as_dict().items()
                                          if k in ("path", "dataset", "config", "split", "fingerprint")})
    prior["trimester_hc_mm"] = bounds
    return prior


def _classes(dataset, cfg: dict) -> tuple[list[int], list[str]]:
    """Each row's class index and the class names: trimesters by HC, or one class for all."""
    rule = cfg["data"]["classes"]
    if rule == "single":
        return [0] * len(dataset), [str(cfg["data"]["class_name"])]
    if rule != "trimester":
        raise FetalBenchError(f"data.classes {rule!r} is not trimester or single.", "Use `trimester` or `single`.")
    return _trimesters(dataset, cfg["data"]["trimester_hc_mm"]), list(TRIMESTERS)


def _nominal_pixel_sizes(dataset, rows: list[int], classes: list[int], resolution: int) -> dict[int, float | None]:
    """Per class: the median pixel size (mm) of its training images after letterboxing to the
    resolution (pixel_size * longer side / resolution); None where the data has no pixel size."""
    sizes: dict[int, list[float]] = collections.defaultdict(list)
    has_size = "pixel_size_mm" in dataset.column_names
    for r in rows:
        value = dataset[r]["pixel_size_mm"] if has_size else None
        if value is not None:
            height, width = _image_size(dataset[r]["image"])
            sizes[classes[r]].append(float(value) * max(height, width) / resolution)
    return {c: (statistics.median(sizes[c]) if sizes[c] else None) for c in set(classes[r] for r in rows)}


def train(
    *,
    data: str | Path,
    output: str | Path,
    config: str | None = None,
    variant: str = "paper",
    recipe: str = DEFAULT_RECIPE,
    base: str | None = None,
    revision: str | None = None,
    split: str | None = None,
    max_steps: int | None = None,
    images_per_class: int | None = None,
    generator_config: str | Path | Mapping | None = None,
    prior: str | Path | Mapping | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int, float], None] | None = None,
) -> dict[str, Any]:
    """Train a mask-guided LoRA (``variant`` ``paper`` or ``conditioned``) on head images with masks.

    ``recipe``: one of :data:`RECIPES` (module docstring). ``data``: a dataset (hc18 schema) or
    the authors' folder layout (:func:`is_pair_folder`). ``prior`` (conditioned only): a prior
    JSON file or mapping from :func:`fit_prior`; by default it is fitted to every mask of
    ``data.prior_split`` of ``data``. Returns the written ``generator_config.json`` content.
    """
    from fetal_bench.generators.base import load_base
    from fetal_bench.generators.data import decode_gray, decode_mask, letterbox, open_source, outline, select_per_class
    from fetal_bench.generators.training import TrainingData, train_lora

    if variant not in VARIANTS:
        raise FetalBenchError(f"Unknown variant {variant!r}.", f"Use one of: {', '.join(VARIANTS)}.")
    if variant == "conditioned" and recipe != DEFAULT_RECIPE:
        raise FetalBenchError(f"The conditioned variant draws masks per trimester; recipe {recipe!r} has no trimesters.",
                              f"Use --recipe {DEFAULT_RECIPE} with --variant conditioned.")
    cfg = resolve_train_config(VARIANTS[variant], recipe_config(recipe, variant, generator_config), {
        "train": {"max_steps": max_steps},
        "data": {"split": split, "images_per_class": images_per_class},
    })
    if is_pair_folder(data):
        dataset, info = open_pair_folder(data)
    else:
        dataset, info = open_source(data, config=config, split=cfg["data"]["split"])
    single = cfg["data"]["classes"] == "single"
    _check_head_columns(dataset, info, ("image", "mask") if single else
                        ("image", "mask", "head_circumference_mm", "pixel_size_mm"))
    classes, names = _classes(dataset, cfg)
    ids = dataset["id"]
    n = cfg["data"]["images_per_class"]
    rows = select_per_class(ids, classes, None if n is None else int(n), int(cfg["data"]["selection_seed"]))
    model = load_base(base or cfg["base"]["model"], revision=revision, default=cfg["base"])
    resolution = resolve_resolution(cfg, model)
    width = max(1, round(int(cfg["data"]["outline_width"]) * resolution / 512))
    template = str(cfg["data"]["prompt"])
    conditioned = variant == "conditioned"

    def get(i: int):
        row = rows[i]
        record = dataset[row]
        image, _ = letterbox(decode_gray(record["image"], ids[row]), resolution)
        mask, _ = letterbox(decode_mask(record["mask"], ids[row]).astype(np.uint8), resolution, nearest=True)
        prompt = template.format(trimester=names[classes[row]])
        if conditioned:
            return np.broadcast_to(image, (3, resolution, resolution)), prompt, mask.astype(np.float32)
        return np.stack([image, image, outline(mask, width)]), prompt, None

    counts = collections.Counter(classes[r] for r in rows)
    nominal = _nominal_pixel_sizes(dataset, rows, classes, resolution)
    record = {
        "base": model.identity,
        "recipe": {"name": recipe, "source": RECIPES[recipe][1]},
        "data": {
            **info.as_dict(),
            "label_names": names,
            "n_images": len(rows),
            "image_ids_sha256": hashlib.sha256("\n".join(sorted(ids[r] for r in rows)).encode()).hexdigest(),
            "classes": [{"label": t, "name": names[t], "prompt": template.format(trimester=names[t]),
                         "n_images": counts[t], "nominal_pixel_size_mm": nominal[t]}
                        for t in sorted(counts)],
            "skipped_classes": [names[t] for t in range(len(names)) if t not in counts],
            "outline_width_px": width,
        },
    }
    if conditioned:
        if prior is None:
            record["shape_prior"] = fit_prior(data, config=config, split=cfg["data"]["prior_split"],
                                              trimester_hc_mm=cfg["data"]["trimester_hc_mm"])
        else:
            record["shape_prior"] = dict(prior) if isinstance(prior, Mapping) else json.loads(Path(prior).read_text())
    training_data = TrainingData(len(rows), get, resolution, extra_input_channels=1 if conditioned else 0)
    return train_lora(base=model, config=cfg, data=training_data, output=output, record=record,
                      overwrite=overwrite, progress=progress)


def sample(
    *,
    lora: str | Path | None,
    output: str | Path,
    per_class: int | None = None,
    seed: int | None = None,
    base: str | None = None,
    revision: str | None = None,
    steps: int | None = None,
    guidance: float | None = None,
    lora_scale: float | None = None,
    scheduler: str | None = None,
    batch_size: int | None = None,
    shard_size: int | None = None,
    classes: list[str] | None = None,
    prior: str | Path | Mapping | None = None,
    config: str | Path | None = None,
    work_dir: str | Path | None = None,
    keep_work: bool = False,
    overwrite: bool = False,
    on_shard: Callable[[int, int], None] | None = None,
    review_model: str | None = None,
    review_checkpoint: str | Path | None = None,
    review_dir: str | Path | None = None,
):
    """Sample ``per_class`` image + mask pairs per trained class into a synthetic hc18-schema split.

    The variant is the LoRA's. ``prior`` overrides the conditioned LoRA's stored shape prior.
    Resumable and reproducible as :func:`fetal_bench.generators.fu_lora.sample`. Paper variant:
    every pair is checked (:mod:`fetal_bench.generators.review`; a head segmenter when
    ``review_model`` and ``review_checkpoint`` are given) and flagged pairs are written to
    ``review_dir`` (default ``OUTPUT.review``) with a report and a contact sheet.
    """
    import datasets

    from fetal_bench.generators import sampling as smp
    from fetal_bench.generators.base import base_label
    from fetal_bench.generators.synthetic import generator_revision, provenance_features, synthetic_info, write_synthetic

    output = Path(output)
    generation_in = load_generation(config)
    lora_dir, lora_config = open_lora(lora, generation_in, _GENERATORS)
    variant = lora_config.get("variant") or "paper"
    generator = lora_config["generator"]
    setup = SamplingSetup(lora_config, generation_in, {
        "per_class": per_class, "seed": seed, "steps": steps, "guidance": guidance, "lora_scale": lora_scale,
        "scheduler": scheduler, "batch_size": batch_size, "shard_size": shard_size, "classes": classes,
    })
    check_output(output, overwrite)
    trained = lora_config["data"]["classes"]
    names = list(lora_config["data"].get("label_names") or TRIMESTERS)
    wanted = setup.sample.get("classes")
    chosen = [c for c in trained if not wanted or c["name"] in {str(w).lower() for w in wanted}]
    if not chosen:
        raise FetalBenchError(f"None of the classes {wanted} was trained.",
                              f"Trained: {[c['name'] for c in trained]}.")
    if variant != "paper" and (review_model or review_checkpoint):
        raise FetalBenchError("The review checks generated outlines; a conditioned sample has none.",
                              "Drop --review-model/--review-checkpoint for a conditioned LoRA.")
    if (review_model is None) != (review_checkpoint is None):
        raise FetalBenchError("A review segmenter needs both --review-model and --review-checkpoint.",
                              "E.g. --review-model unet --review-checkpoint runs/unet.")
    shape = None
    if variant == "conditioned":
        if prior is not None:
            shape = dict(prior) if isinstance(prior, Mapping) else json.loads(Path(prior).read_text())
        else:
            shape = (generation_in or {}).get("shape_prior") or lora_config["shape_prior"]
    model, pipe, state = prepare_pipeline(lora_dir, lora_config, setup.sample, base=base, revision=revision,
                                          generation_in=generation_in)
    sample_cfg = {**setup.sample, "classes": [c["name"] for c in chosen]}
    resolution = int(lora_config["resolution"])
    bounds = lora_config["config"]["data"]["trimester_hc_mm"]
    post = setup.postprocess
    generation = {
        "generator": generator,
        "variant": variant,
        "config_version": lora_config["config_version"],
        "lora_path": str(lora_dir.resolve()),
        "lora_sha256": lora_config["lora_sha256"],
        "lora_config_sha256": lora_config["config_sha256"],
        "base": model.identity,
        "base_model": base_label(model.identity),
        "resolution": resolution,
        "clip_skip": lora_config["config"]["train"].get("clip_skip"),
        "trimester_hc_mm": bounds,
        "source": {k: lora_config["data"].get(k) for k in ("dataset", "path", "config", "split", "fingerprint", "license")},
        "sample": sample_cfg,
        **({"postprocess": post} if variant == "paper" else {"shape_prior": shape}),
        "execution": setup.execution,
    }
    segmenter = None
    if variant == "paper":
        from fetal_bench.generators.review import Segmenter

        thresholds = _review_thresholds(lora_config, generation_in)
        if review_model is not None:
            segmenter = Segmenter(review_model, review_checkpoint)
        generation["review"] = {**thresholds, "segmenter": None if segmenter is None else
                                {"model": review_model, "weights_sha256": _weights_sha256(Path(review_checkpoint))}}
    config_hash = generation_sha256(generation)
    per = int(sample_cfg["per_class"])
    run_seed = int(sample_cfg["seed"])
    items = []
    for k, c in enumerate(chosen):
        for j in range(per):
            index = k * per + j
            item = smp.Item(index=index, label=int(c["label"]), prompt=c["prompt"], seed=run_seed + index)
            if shape is not None:
                from fetal_bench.generators.shape_prior import draw_ellipse

                # The requested mask depends only on this item's seed.
                ellipse, mm_per_px = draw_ellipse(shape, int(c["label"]), np.random.default_rng(item.seed),
                                                  resolution, bounds)
                item.condition = {"ellipse": _ellipse_dict(ellipse), "pixel_size_mm": mm_per_px}
            items.append(item)
    nominal = {int(c["label"]): c.get("nominal_pixel_size_mm") for c in trained}
    constant = {
        "generator": generator,
        "generator_revision": generator_revision(generation),
        "base_model": generation["base_model"],
        "lora_sha256": generation["lora_sha256"],
        "scheduler": str(sample_cfg["scheduler"]),
        "steps": int(sample_cfg["steps"]),
        "guidance": float(sample_cfg["guidance"]),
        "lora_scale": float(sample_cfg["lora_scale"]),
        "config_sha256": config_hash,
    }
    options = dict(resolution=resolution, steps=int(sample_cfg["steps"]), guidance=float(sample_cfg["guidance"]),
                   clip_skip=generation["clip_skip"], negative_prompt=str(sample_cfg.get("negative_prompt") or ""),
                   vae_scale_factor=model.vae_scale_factor)
    review_path = Path(review_dir) if review_dir else output.with_name(output.name + ".review")

    def row_for(item, image: np.ndarray, mask: np.ndarray, ellipse, pixel_size: float | None) -> dict:
        from fetal_bench.geometry import ellipse_perimeter

        row_id = f"{generator}-s{run_seed}-{item.index:06d}"
        hc = None if pixel_size is None else ellipse_perimeter(ellipse.a, ellipse.b) * float(pixel_size)
        row = {"id": row_id, "image": to_png(image), "mask": to_png(mask.astype(np.uint8)),
               "subject_id": row_id, "pixel_size_mm": pixel_size, "head_circumference_mm": hc,
               "label": item.label, "seed": item.seed, "prompt": item.prompt, **constant,
               "ellipse": json.dumps(_ellipse_dict(ellipse), sort_keys=True)}
        if variant == "conditioned":
            row["condition"] = json.dumps(item.condition, sort_keys=True)
        return row

    def render_paper(batch: list) -> tuple[list[dict], list[dict]]:
        images = smp.pipeline_images(pipe, batch, **options)
        checked = _check_pairs(batch, images, post, generation["review"], segmenter, resolution)
        rows, rejected = [], []
        for item, pair in zip(batch, checked):
            name = f"{generator}-s{run_seed}-{item.index:06d}"
            if pair["reason"] is None:
                row = row_for(item, pair["image"], pair["mask"], pair["ellipse"], nominal[item.label])
                row["review"] = json.dumps(pair["values"], sort_keys=True)
                rows.append(row)
                continue
            from fetal_bench.generators.review import save_pair

            save_pair(review_path, name, pair["image"], pair["outline"])
            rejected.append({"index": item.index, "name": name, "label": names[item.label], "seed": item.seed,
                             "reason": pair["reason"], **pair["values"],
                             "ellipse": None if pair["ellipse"] is None else _ellipse_dict(pair["ellipse"])})
        return rows, rejected

    def render_conditioned(batch: list) -> tuple[list[dict], list[dict]]:
        import torch
        from PIL import Image

        from fetal_bench.geometry import Ellipse, ellipse_mask

        ellipses = [Ellipse(**item.condition["ellipse"]) for item in batch]
        masks = [ellipse_mask((resolution, resolution), e) for e in ellipses]
        tensor = torch.from_numpy(np.stack(masks).astype(np.float32))[:, None]
        images = smp.conditioned_images(pipe, batch, tensor, **options)
        rows = []
        for item, image, mask, ellipse in zip(batch, images, masks, ellipses):
            rgb = (np.clip(image, 0.0, 1.0) * 255).round().astype(np.uint8)
            gray = np.asarray(Image.fromarray(rgb).convert("L"))
            rows.append(row_for(item, gray, mask, ellipse, float(item.condition["pixel_size_mm"])))
        return rows, []

    from fetal_bench.data.schemas import head_biometry_features

    columns = dict(head_biometry_features(label=datasets.ClassLabel(names=names), **provenance_features(),
                                          ellipse=datasets.Value("string")))
    if variant == "conditioned":
        columns["condition"] = datasets.Value("string")
    else:
        columns["review"] = datasets.Value("string")
    features = datasets.Features(columns)
    work = Path(work_dir) if work_dir else output.with_name(output.name + ".work")
    started = time.perf_counter()
    run = smp.run_sharded(items=items, render=render_conditioned if variant == "conditioned" else render_paper,
                          features=features, work_dir=work, plan={"config_sha256": config_hash},
                          batch_size=setup.execution["batch_size"], shard_size=setup.execution["shard_size"],
                          on_shard=on_shard)
    if not run.is_main_process:
        return None
    reasons = collections.Counter(r["reason"] for r in run.rejected)
    by_class = collections.Counter(r["label"] for r in run.rejected)
    accepted = len(items) - len(run.rejected)
    review = None
    if variant == "paper":
        from fetal_bench.generators.review import write_report

        review = write_report(review_path, run.rejected, attempted=len(items), thresholds=generation["review"],
                              segmenter=segmenter)
    if accepted == 0:
        smp.finish(run, keep_work)
        raise FetalBenchError(
            f"All {len(items)} samples were rejected ("
            f"{', '.join(f'{k} {v}' for k, v in reasons.most_common())}); each is in {review_path} for review.",
            "The LoRA has not learnt to draw head outlines (a random `tiny` base never does): train it "
            "longer on a real base (the paper trains 100 epochs), or relax the thresholds with `--config "
            "FILE.yaml` holding `postprocess: {...}` or `review: {...}` (see configs/mask_guided.yaml).",
        )
    notes = [f"{len(items)} samples generated in {time.perf_counter() - started:.1f} s on {state.device} "
             f"(batch {setup.execution['batch_size']}, shard {setup.execution['shard_size']}, "
             f"{state.num_processes} process(es)); {accepted} accepted."]
    if variant == "paper":
        notes.append(_review_note(review, reasons, by_class, review_path))
    summary = (
        f"Synthetic fetal head ultrasound images with head masks, made by mask-guided diffusion ({variant} "
        f"variant): {per} attempted per class ({', '.join(sample_cfg['classes'])})"
        + ("; masks are ellipses fitted to the generated outlines; pairs failing the automatic checks are left out "
           "and written for review." if variant == "paper"
           else "; each mask is the ellipse drawn from the shape prior and given to the model.")
    )
    info = synthetic_info(
        generation=generation,
        title="Mask-guided synthetic fetal heads",
        summary=summary,
        features={
            "id": "unique row id: generator, run seed and index",
            "image": "generated image (8-bit gray PNG)",
            "mask": "filled head mask (0/1): the ellipse " + ("fitted to the generated outline" if variant == "paper"
                                                              else "the image was conditioned on"),
            "subject_id": "= id (every synthetic image is its own subject)",
            "pixel_size_mm": "nominal pixel size in mm" + (" (median of the class's training images; empty when they "
                                                           "have none)" if variant == "paper"
                                                           else " (drawn with the ellipse)"),
            "head_circumference_mm": "perimeter of the mask's ellipse x pixel_size_mm",
            "label": "the class (trimester, or the recipe's single class) the image was prompted for",
            "ellipse": "the mask's ellipse as JSON (cx, cy, a, b, angle in pixels/radians)",
            "condition": "the requested ellipse and pixel size (conditioned variant)",
            "review": "the automatic checks' values as JSON (outline support and coverage, outline leak, segmenter Dice)",
        },
        reproduce="fetal-bench generate mask-guided sample --lora LORA_DIR --config THIS_DIR --output NEW_DIR",
        task_categories=("image-segmentation",),
    )
    extra = {"rejected": {"count": len(run.rejected), "by_reason": dict(reasons), "by_class": dict(by_class),
                          "samples": run.rejected}}
    if review is not None:
        extra["review"] = {**review, "directory": str(review_path.resolve())}
    result = write_synthetic(output, info=info, features=features, rows=run.rows_iter, label_column="label",
                             generation=generation, notes=notes, extra=extra, overwrite=overwrite)
    smp.finish(run, keep_work)
    return result


def _review_thresholds(lora_config: Mapping, generation_in: Mapping | None) -> dict[str, Any]:
    """The review thresholds: defaults <- the LoRA's config <- a reproduction config."""
    from fetal_bench.generators.review import REVIEW_DEFAULTS

    thresholds = dict(REVIEW_DEFAULTS)
    thresholds.update({k: v for k, v in (lora_config["config"].get("review") or {}).items() if k in REVIEW_DEFAULTS})
    thresholds.update({k: v for k, v in ((generation_in or {}).get("review") or {}).items() if k in REVIEW_DEFAULTS})
    return thresholds


def _weights_sha256(checkpoint: Path) -> str | None:
    from fetal_bench._io import sha256_file

    weights = checkpoint / "model.safetensors" if checkpoint.is_dir() else checkpoint
    return sha256_file(weights) if weights.is_file() else None


def _check_pairs(batch, images, post: Mapping, review: Mapping, segmenter, resolution: int) -> list[dict]:
    """Per generated RGB image: image, outline, fitted ellipse, mask, check values and the first
    failed check (None when every check passes), in the order of the module docstring."""
    from fetal_bench.geometry import ellipse_mask
    from fetal_bench.generators.outline import ellipse_from_outline
    from fetal_bench.generators.review import outline_leak
    from fetal_bench.metrics.segmentation import dice

    pairs = []
    for image in images:
        rgb = (np.clip(image, 0.0, 1.0) * 255).round().astype(np.uint8)
        outline = rgb[..., 2] > int(post["outline_threshold"])
        fit = ellipse_from_outline(outline, post)
        leak = outline_leak(rgb[..., 0], outline)
        values = {"support": fit.support, "coverage": fit.coverage, "outline_leak": leak, "segmenter_dice": None}
        reason = fit.reason
        if reason is None and leak is not None and leak > float(review["max_outline_leak"]):
            reason = "outline_leak"
        pairs.append({"image": rgb[..., 0], "outline": outline.astype(np.uint8), "ellipse": fit.ellipse,
                      "mask": None if fit.ellipse is None else ellipse_mask((resolution, resolution), fit.ellipse),
                      "values": values, "reason": reason})
    todo = [p for p in pairs if p["reason"] is None] if segmenter is not None else []
    if todo:
        for pair, predicted in zip(todo, segmenter.masks([p["image"] for p in todo])):
            pair["values"]["segmenter_dice"] = float(dice(predicted, pair["mask"]))
            if pair["values"]["segmenter_dice"] < float(review["min_segmenter_dice"]):
                pair["reason"] = "segmenter_disagrees"
    return pairs


def _review_note(review: Mapping, reasons: Mapping, by_class: Mapping, review_path: Path) -> str:
    rate = review["acceptance_rate"]
    return (f"Rejected (implausible outline or a failed check): {review['flagged']} of {review['attempted']}. "
            f"Automatic review: {review['accepted']} of {review['attempted']} pairs accepted "
            f"({rate:.1%}); thresholds: outline rules of fetal_bench.generators.outline, outline leak <= "
            f"{review['thresholds']['max_outline_leak']} gray levels"
            + (f", segmenter Dice >= {review['thresholds']['min_segmenter_dice']}" if review["segmenter"] else
               ", no segmenter check (none given)")
            + (f"; flagged by reason: {dict(sorted(reasons.items()))}, by class: {dict(sorted(by_class.items()))}; "
               f"flagged pairs, review.csv and the contact sheet rejected.png are in {review_path.name}/ for a person to "
               "correct" if reasons else "") + ".")


def _ellipse_dict(ellipse) -> dict[str, float]:
    return {"cx": float(ellipse.cx), "cy": float(ellipse.cy), "a": float(ellipse.a), "b": float(ellipse.b),
            "angle": float(ellipse.angle)}
