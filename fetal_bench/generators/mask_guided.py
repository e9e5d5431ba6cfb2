"""Mask-guided diffusion for fetal head image + mask pairs, in two variants.

``paper`` (default): Wang et al., "Diffusion Model-based Data Augmentation Method for Fetal Head
Ultrasound Segmentation" (IMVIP 2025, arXiv:2506.23664). A UNet LoRA on Stable Diffusion v1.5 is
trained on 3-channel images [ultrasound, ultrasound, mask outline] with the prompt "An ultrasound
image of a fetal head, first|second|third trimester." (20 HC18 images per trimester, rank 128,
lr 1e-4, 100 epochs, 512 px, fp16). Sampling (UniPC, 30 steps, LoRA scale 0.9) makes images
whose red channel is the ultrasound and whose blue channel (> 180) is the outline; an ellipse
fitted to the outline is filled into the mask, and implausible outlines are rejected and counted
(:mod:`fetal_bench.generators.outline`), replacing the paper's manual correction.

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
head_circumference_mm``) plus ``label`` (trimester), provenance columns and ``ellipse`` (the mask's
ellipse as JSON; for ``conditioned`` also ``condition``, the requested ellipse and pixel size).
``pixel_size_mm`` of a ``paper`` sample is nominal: the median, over that trimester's training
images, of the pixel size after letterboxing to the generation resolution.
"""

from __future__ import annotations

import collections
import hashlib
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

__all__ = ["VARIANTS", "fit_prior", "sample", "train"]

#: variant -> the generator config it starts from.
VARIANTS = {"paper": "mask-guided", "conditioned": "mask-conditioned"}
_GENERATORS = tuple(VARIANTS.values())


def _check_head_columns(dataset, info) -> None:
    missing = [c for c in ("image", "mask", "head_circumference_mm", "pixel_size_mm") if c not in dataset.column_names]
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


def train(
    *,
    data: str | Path,
    output: str | Path,
    config: str | None = None,
    variant: str = "paper",
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

    ``prior`` (conditioned only): a prior JSON file or mapping from :func:`fit_prior`; by default
    it is fitted to every mask of ``data.prior_split`` of ``data``. Returns the written
    ``generator_config.json`` content.
    """
    from fetal_bench.generators.base import load_base
    from fetal_bench.generators.data import decode_gray, decode_mask, letterbox, open_source, outline, select_per_class
    from fetal_bench.generators.training import TrainingData, train_lora

    if variant not in VARIANTS:
        raise FetalBenchError(f"Unknown variant {variant!r}.", f"Use one of: {', '.join(VARIANTS)}.")
    cfg = resolve_train_config(VARIANTS[variant], generator_config, {
        "train": {"max_steps": max_steps},
        "data": {"split": split, "images_per_class": images_per_class},
    })
    bounds = cfg["data"]["trimester_hc_mm"]
    dataset, info = open_source(data, config=config, split=cfg["data"]["split"])
    _check_head_columns(dataset, info)
    trimesters = _trimesters(dataset, bounds)
    ids = dataset["id"]
    n = cfg["data"]["images_per_class"]
    rows = select_per_class(ids, trimesters, None if n is None else int(n), int(cfg["data"]["selection_seed"]))
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
        prompt = template.format(trimester=TRIMESTERS[trimesters[row]])
        if conditioned:
            return np.broadcast_to(image, (3, resolution, resolution)), prompt, mask.astype(np.float32)
        return np.stack([image, image, outline(mask, width)]), prompt, None

    counts = collections.Counter(trimesters[r] for r in rows)
    # Nominal pixel size of generated images, per trimester: a training image letterboxed to the
    # resolution has pixels of pixel_size * longer side / resolution millimetres.
    pixel_sizes: dict[int, list[float]] = collections.defaultdict(list)
    for r in rows:
        height, width_px = _image_size(dataset[r]["image"])
        pixel_sizes[trimesters[r]].append(float(dataset[r]["pixel_size_mm"]) * max(height, width_px) / resolution)
    record = {
        "base": model.identity,
        "data": {
            **info.as_dict(),
            "label_names": list(TRIMESTERS),
            "n_images": len(rows),
            "image_ids_sha256": hashlib.sha256("\n".join(sorted(ids[r] for r in rows)).encode()).hexdigest(),
            "classes": [{"label": t, "name": TRIMESTERS[t], "prompt": template.format(trimester=TRIMESTERS[t]),
                         "n_images": counts[t], "nominal_pixel_size_mm": statistics.median(pixel_sizes[t])}
                        for t in sorted(counts)],
            "skipped_classes": [TRIMESTERS[t] for t in range(3) if t not in counts],
            "outline_width_px": width,
        },
    }
    if conditioned:
        if prior is None:
            record["shape_prior"] = fit_prior(data, config=config, split=cfg["data"]["prior_split"],
                                              trimester_hc_mm=bounds)
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
):
    """Sample ``per_class`` image + mask pairs per trained trimester into a synthetic hc18-schema split.

    The variant is the LoRA's. ``prior`` overrides the conditioned LoRA's stored shape prior.
    Resumable and reproducible as :func:`fetal_bench.generators.fu_lora.sample`.
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
    wanted = setup.sample.get("classes")
    chosen = [c for c in trained if not wanted or c["name"] in {str(w).lower() for w in wanted}]
    if not chosen:
        raise FetalBenchError(f"None of the trimesters {wanted} was trained.",
                              f"Trained: {[c['name'] for c in trained]}.")
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
    nominal = {int(c["label"]): float(c["nominal_pixel_size_mm"]) for c in trained}
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

    def row_for(item, image: np.ndarray, mask: np.ndarray, ellipse, pixel_size: float) -> dict:
        from fetal_bench.geometry import ellipse_perimeter

        row_id = f"{generator}-s{run_seed}-{item.index:06d}"
        row = {"id": row_id, "image": to_png(image), "mask": to_png(mask.astype(np.uint8)),
               "subject_id": row_id, "pixel_size_mm": pixel_size,
               "head_circumference_mm": ellipse_perimeter(ellipse.a, ellipse.b) * pixel_size,
               "label": item.label, "seed": item.seed, "prompt": item.prompt, **constant,
               "ellipse": json.dumps(_ellipse_dict(ellipse), sort_keys=True)}
        if variant == "conditioned":
            row["condition"] = json.dumps(item.condition, sort_keys=True)
        return row

    def render_paper(batch: list) -> tuple[list[dict], list[dict]]:
        from fetal_bench.geometry import ellipse_mask
        from fetal_bench.generators.outline import ellipse_from_outline

        images = smp.pipeline_images(pipe, batch, **options)
        rows, rejected = [], []
        for item, image in zip(batch, images):
            rgb = (np.clip(image, 0.0, 1.0) * 255).round().astype(np.uint8)
            fit = ellipse_from_outline(rgb[..., 2] > int(post["outline_threshold"]), post)
            if not fit.accepted:
                rejected.append({"index": item.index, "label": TRIMESTERS[item.label], "seed": item.seed,
                                 "reason": fit.reason})
                continue
            mask = ellipse_mask((resolution, resolution), fit.ellipse)
            rows.append(row_for(item, rgb[..., 0], mask, fit.ellipse, nominal[item.label]))
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

    columns = {
        "id": datasets.Value("string"),
        "image": datasets.Image(),
        "mask": datasets.Image(),
        "subject_id": datasets.Value("string"),
        "pixel_size_mm": datasets.Value("float32"),
        "head_circumference_mm": datasets.Value("float32"),
        "label": datasets.ClassLabel(names=list(TRIMESTERS)),
        **provenance_features(),
        "ellipse": datasets.Value("string"),
    }
    if variant == "conditioned":
        columns["condition"] = datasets.Value("string")
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
    if accepted == 0:
        smp.finish(run, keep_work)
        raise FetalBenchError(
            f"All {len(items)} samples were rejected (implausible outlines: "
            f"{', '.join(f'{k} {v}' for k, v in reasons.most_common())}).",
            "The LoRA has not learnt to draw head outlines (a random `tiny` base never does): train it "
            "longer on a real base (the paper trains 100 epochs), or relax the thresholds with `--config "
            "FILE.yaml` holding `postprocess: {...}` (see configs/mask_guided.yaml).",
        )
    notes = [f"{len(items)} samples generated in {time.perf_counter() - started:.1f} s on {state.device} "
             f"(batch {setup.execution['batch_size']}, shard {setup.execution['shard_size']}, "
             f"{state.num_processes} process(es)); {accepted} accepted."]
    if variant == "paper":
        notes.append(
            f"Rejected (implausible outline, see fetal_bench.generators.outline): {len(run.rejected)} of "
            f"{len(items)}" + (f"; by reason: {dict(sorted(reasons.items()))}; by trimester: "
                                f"{dict(sorted(by_class.items()))}" if run.rejected else "") + ".")
    summary = (
        f"Synthetic fetal head ultrasound images with head masks, made by mask-guided diffusion ({variant} "
        f"variant): {per} attempted per trimester ({', '.join(sample_cfg['classes'])})"
        + ("; masks are ellipses fitted to the generated outlines, implausible ones rejected."
           if variant == "paper" else "; each mask is the ellipse drawn from the shape prior and given to the model.")
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
            "pixel_size_mm": "nominal pixel size in mm" + (" (median of the trimester's training images)"
                                                           if variant == "paper" else " (drawn with the ellipse)"),
            "head_circumference_mm": "perimeter of the mask's ellipse x pixel_size_mm",
            "label": "the trimester the image was prompted for",
            "ellipse": "the mask's ellipse as JSON (cx, cy, a, b, angle in pixels/radians)",
            "condition": "the requested ellipse and pixel size (conditioned variant)",
        },
        reproduce="fetal-bench generate mask-guided sample --lora LORA_DIR --config THIS_DIR --output NEW_DIR",
        task_categories=("image-segmentation",),
    )
    extra = {"rejected": {"count": len(run.rejected), "by_reason": dict(reasons), "by_trimester": dict(by_class),
                          "samples": run.rejected}}
    result = write_synthetic(output, info=info, features=features, rows=run.rows_iter, label_column="label",
                             generation=generation, notes=notes, extra=extra, overwrite=overwrite)
    smp.finish(run, keep_work)
    return result


def _ellipse_dict(ellipse) -> dict[str, float]:
    return {"cx": float(ellipse.cx), "cy": float(ellipse.cy), "a": float(ellipse.a), "b": float(ellipse.b),
            "angle": float(ellipse.angle)}
