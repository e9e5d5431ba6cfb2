"""FU-LoRA: a Stable Diffusion LoRA per source set, one prompt per plane class; class-prompted sampling.

Wang et al., "Generative Diffusion Model Bootstraps Zero-shot Classification of Fetal Ultrasound
Images In Underrepresented African Populations" (MICCAI 2024 PIPPI, arXiv:2407.20072): 20 real
FETAL_PLANES_DB images per class, kohya LoRA (rank/alpha 128, UNet lr 1e-4, text encoder lr 5e-5,
constant schedule, batch 1, 512 px, fp16, AdamW8bit, clip-skip 2, seed 1234), sampled with
Euler, 20 steps, CFG 7, LoRA scale 0.3. Defaults and their sources: ``configs/fu_lora.yaml``.

Library API (the CLI is a thin layer over it)::

    from fetal_bench.generators import fu_lora
    fu_lora.train(data="data/phantom", config="planes", base="tiny", output="lora", max_steps=4)
    fu_lora.sample(lora="lora", per_class=2, seed=7, output="synthetic")
"""

from __future__ import annotations

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

__all__ = ["class_prompts", "sample", "train"]

GENERATOR = "fu-lora"


def class_prompts(label_names: list[str], mapping: Mapping[str, str]) -> tuple[dict[int, str], list[str]]:
    """``({label index: prompt}, [skipped class names])`` from a case-insensitive name -> prompt map."""
    lowered = {str(k).strip().lower(): v for k, v in mapping.items()}
    prompts, skipped = {}, []
    for index, name in enumerate(label_names):
        prompt = lowered.get(name.strip().lower())
        if prompt:
            prompts[index] = str(prompt)
        else:
            skipped.append(name)
    return prompts, skipped


def _training_rows(dataset, info, config: dict) -> tuple[list[int], dict[int, str], list[str]]:
    from fetal_bench.generators.data import select_per_class

    if info.label_names is None:
        raise DataError(
            f"Dataset {info.path} (config {info.config!r}) has no ClassLabel `label` column: FU-LoRA "
            "trains one prompt per class.",
            "Use a classification set, e.g. `--config planes` of the phantom set or fetal-planes-es.",
        )
    prompts, skipped = class_prompts(info.label_names, config["data"]["class_prompts"])
    if not prompts:
        raise FetalBenchError(
            f"None of the classes {info.label_names} has a prompt in data.class_prompts.",
            "Add `data: {class_prompts: {CLASS NAME: PROMPT}}` to a YAML passed with --generator-config.",
        )
    labels = dataset["label"]
    ids = dataset["id"]
    keep = [i for i, label in enumerate(labels) if label in prompts]
    if not keep:
        raise DataError(f"Split {info.split!r} has no rows of the prompted classes.", "Use another --split.")
    n = config["data"]["images_per_class"]
    chosen = select_per_class([ids[i] for i in keep], [labels[i] for i in keep],
                              None if n is None else int(n), int(config["data"]["selection_seed"]))
    return [keep[i] for i in chosen], prompts, skipped


def train(
    *,
    data: str | Path,
    output: str | Path,
    config: str | None = None,
    base: str | None = None,
    revision: str | None = None,
    split: str | None = None,
    max_steps: int | None = None,
    images_per_class: int | None = None,
    generator_config: str | Path | Mapping | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int, float], None] | None = None,
) -> dict[str, Any]:
    """Train an FU-LoRA on ``split`` of dataset ``data`` (config ``config``); write it to ``output``.

    ``base`` is ``tiny``, a diffusers directory or a Hub id (default: the config's pinned SD 1.5).
    Returns the written ``generator_config.json`` content. Rerunning an interrupted run resumes
    from its last checkpoint.
    """
    from fetal_bench.generators.base import load_base
    from fetal_bench.generators.data import decode_gray, letterbox, open_source
    from fetal_bench.generators.training import TrainingData, train_lora

    cfg = resolve_train_config(GENERATOR, generator_config, {
        "train": {"max_steps": max_steps},
        "data": {"split": split, "images_per_class": images_per_class},
    })
    dataset, info = open_source(data, config=config, split=cfg["data"]["split"])
    rows, prompts, skipped = _training_rows(dataset, info, cfg)
    model = load_base(base or cfg["base"]["model"], revision=revision, default=cfg["base"])
    resolution = resolve_resolution(cfg, model)
    labels = dataset["label"]
    ids = dataset["id"]

    def get(i: int):
        row = rows[i]
        image = decode_gray(dataset[row]["image"], ids[row])
        square, _ = letterbox(image, resolution)
        return np.broadcast_to(square, (3, resolution, resolution)), prompts[labels[row]], None

    counts: dict[int, int] = {}
    for row in rows:
        counts[labels[row]] = counts.get(labels[row], 0) + 1
    import hashlib

    record = {
        "base": model.identity,
        "data": {
            **info.as_dict(),
            "n_images": len(rows),
            "image_ids_sha256": hashlib.sha256("\n".join(sorted(ids[r] for r in rows)).encode()).hexdigest(),
            "classes": [{"label": k, "name": info.label_names[k], "prompt": p, "n_images": counts.get(k, 0)}
                        for k, p in sorted(prompts.items())],
            "skipped_classes": skipped,
        },
    }
    return train_lora(base=model, config=cfg, data=TrainingData(len(rows), get, resolution), output=output,
                      record=record, overwrite=overwrite, progress=progress)


def sample(
    *,
    lora: str | Path,
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
    config: str | Path | None = None,
    work_dir: str | Path | None = None,
    keep_work: bool = False,
    overwrite: bool = False,
    on_shard: Callable[[int, int], None] | None = None,
):
    """Sample ``per_class`` images per trained class (or per class of ``classes``) into a synthetic dataset at ``output``.

    Resumable: shards go to ``work_dir`` (default ``OUTPUT.work``) and a rerun skips finished
    ones. ``config`` reproduces a split from its generation config (a synthetic dataset
    directory, its README.md, or a YAML file); explicit options override it.
    Returns the :class:`~fetal_bench.data.writer.BuildResult`.
    """
    generation_in = load_generation(config)
    lora_dir, lora_config = open_lora(lora, generation_in, (GENERATOR,))
    setup = SamplingSetup(lora_config, generation_in, {
        "per_class": per_class, "seed": seed, "steps": steps, "guidance": guidance,
        "lora_scale": lora_scale, "scheduler": scheduler, "batch_size": batch_size, "shard_size": shard_size,
        "classes": classes,
    })
    return _run_sampling(lora_dir, lora_config, setup, Path(output), base=base, revision=revision,
                         generation_in=generation_in, work_dir=work_dir, keep_work=keep_work,
                         overwrite=overwrite, on_shard=on_shard)


def _run_sampling(lora_dir: Path, lora_config: dict, setup: SamplingSetup, output: Path, *, base, revision,
                  generation_in, work_dir, keep_work, overwrite, on_shard):
    import datasets

    from fetal_bench.generators import sampling as smp
    from fetal_bench.generators.base import base_label
    from fetal_bench.generators.synthetic import (
        generator_revision,
        provenance_features,
        synthetic_info,
        write_synthetic,
    )

    check_output(output, overwrite)
    model, pipe, state = prepare_pipeline(lora_dir, lora_config, setup.sample, base=base, revision=revision,
                                          generation_in=generation_in)
    device = state.device
    source = lora_config["data"]
    label_names = source["label_names"]
    classes = [c for c in lora_config["data"]["classes"]]
    wanted = setup.sample.get("classes")
    if wanted:
        lowered = {str(w).lower() for w in wanted}
        classes = [c for c in classes if c["name"].lower() in lowered]
        if not classes:
            raise FetalBenchError(f"None of the classes {wanted} was trained.",
                                  f"Trained classes: {[c['name'] for c in lora_config['data']['classes']]}.")
    sample_cfg = {**setup.sample, "classes": [c["name"] for c in classes]}
    resolution = int(lora_config["resolution"])
    generation = {
        "generator": GENERATOR,
        "config_version": lora_config["config_version"],
        "lora_path": str(lora_dir.resolve()),
        "lora_sha256": lora_config["lora_sha256"],
        "lora_config_sha256": lora_config["config_sha256"],
        "base": model.identity,
        "base_model": base_label(model.identity),
        "resolution": resolution,
        "clip_skip": lora_config["config"]["train"].get("clip_skip"),
        "source": {k: source.get(k) for k in ("dataset", "path", "config", "split", "fingerprint", "license", "label_names")},
        "sample": sample_cfg,
        "execution": setup.execution,
    }
    config_hash = generation_sha256(generation)
    per_class = int(sample_cfg["per_class"])
    run_seed = int(sample_cfg["seed"])
    items = [smp.Item(index=k * per_class + j, label=int(c["label"]), prompt=c["prompt"],
                      seed=run_seed + k * per_class + j)
             for k, c in enumerate(classes) for j in range(per_class)]

    clip_skip = generation["clip_skip"]
    negative = str(sample_cfg.get("negative_prompt") or "")
    constant = {
        "generator": GENERATOR,
        "generator_revision": generator_revision(generation),
        "base_model": generation["base_model"],
        "lora_sha256": generation["lora_sha256"],
        "scheduler": str(sample_cfg["scheduler"]),
        "steps": int(sample_cfg["steps"]),
        "guidance": float(sample_cfg["guidance"]),
        "lora_scale": float(sample_cfg["lora_scale"]),
        "config_sha256": config_hash,
    }

    def render(batch: list) -> tuple[list[dict], list[dict]]:
        from PIL import Image

        images = smp.pipeline_images(pipe, batch, resolution=resolution, steps=int(sample_cfg["steps"]),
                                     guidance=float(sample_cfg["guidance"]), clip_skip=clip_skip,
                                     negative_prompt=negative, vae_scale_factor=model.vae_scale_factor)
        rows = []
        for item, image in zip(batch, images):
            rgb = (np.clip(image, 0.0, 1.0) * 255).round().astype(np.uint8)
            gray = np.asarray(Image.fromarray(rgb).convert("L"))
            rows.append({"id": f"{GENERATOR}-s{run_seed}-{item.index:06d}", "image": to_png(gray),
                         "label": item.label, "seed": item.seed, "prompt": item.prompt, **constant})
        return rows, []

    features = datasets.Features({
        "id": datasets.Value("string"),
        "image": datasets.Image(),
        "label": datasets.ClassLabel(names=label_names),
        **provenance_features(),
    })
    work = Path(work_dir) if work_dir else output.with_name(output.name + ".work")
    started = time.perf_counter()
    run = smp.run_sharded(items=items, render=render, features=features, work_dir=work,
                          plan={"config_sha256": config_hash}, batch_size=setup.execution["batch_size"],
                          shard_size=setup.execution["shard_size"], on_shard=on_shard)
    if not run.is_main_process:
        return None
    reproduce = "fetal-bench generate fu-lora sample --lora LORA_DIR --config THIS_DIR --output NEW_DIR"
    info = synthetic_info(
        generation=generation,
        title="FU-LoRA synthetic planes",
        summary=(f"Synthetic fetal ultrasound plane images generated by FU-LoRA: {per_class} per class for "
                 f"{', '.join(c['name'] for c in classes)}."),
        features={"id": "unique row id: generator, run seed and index", "image": "generated image (8-bit gray PNG)",
                  "label": "the class the image was prompted for (the source set's ClassLabel)"},
        reproduce=reproduce,
        task_categories=("image-classification",),
    )
    notes = [f"{len(items)} images sampled in {time.perf_counter() - started:.1f} s on {device} "
             f"(batch {setup.execution['batch_size']}, shard {setup.execution['shard_size']}, "
             f"{state.num_processes} process(es))."]
    result = write_synthetic(output, info=info, features=features, rows=run.rows_iter, label_column="label",
                             generation=generation, notes=notes, overwrite=overwrite)
    smp.finish(run, keep_work)
    return result
