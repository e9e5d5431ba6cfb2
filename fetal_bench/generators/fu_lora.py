"""FU-LoRA: a Stable Diffusion LoRA per source set, one prompt per plane class; class-prompted sampling.

Wang et al., "Generative Diffusion Model Bootstraps Zero-shot Classification of Fetal Ultrasound
Images In Underrepresented African Populations" (MICCAI 2024 PIPPI, arXiv:2407.20072): the
authors' 20 FETAL_PLANES_DB images per class (their ``lora_train_data.csv``), kohya "Standard"
LoRA (every Linear/1x1 conv of the UNet's transformer blocks and of CLIP's attention and MLP;
rank/alpha 128, UNet lr 1e-4, text encoder lr 5e-5, constant schedule, batch 1, aspect-ratio
buckets up to 512² px, fp16, AdamW8bit, clip-skip 2, seed 1234); sampled (fetal-bench's choice)
with Euler, 20 steps, CFG 7, LoRA scale 0.3. Defaults and their sources: ``configs/fu_lora.yaml``;
against the authors' code: ``docs/reproducibility.md``. ``sample`` also takes the authors'
released kohya files (``--lora fangyijie/fu-lora --weight-name ...``).

Library API (the CLI is a thin layer over it)::

    from fetal_bench.generators import fu_lora
    fu_lora.train(data="data/phantom", config="planes", base="tiny", output="lora", max_steps=4)
    fu_lora.sample(lora="lora", per_class=2, seed=7, output="synthetic")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from fetal_bench.errors import DataError, FetalBenchError
from fetal_bench.generators.common import (
    check_lora_matches,
    open_lora,
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


def _training_rows(dataset, info, config: dict) -> tuple[list[int], dict[int, str], list[str], dict[str, str]]:
    from fetal_bench.generators.training_images import select_per_class

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
    listed = _listed_rows(config, info.label_names, ids, labels, keep)
    if listed and n is not None and any(len(r) != int(n) for r in listed.values()):
        raise FetalBenchError(
            f"data.images_per_class {n} conflicts with the authors' list ({len(next(iter(listed.values())))} per class), "
            "which this split holds.",
            "Keep the list's count, or pass --generator-config with `data: {image_list: null}` to hash-pick N per class.")
    hashed_keep = [i for i in keep if info.label_names[labels[i]] not in listed]
    chosen = select_per_class([ids[i] for i in hashed_keep], [labels[i] for i in hashed_keep],
                              None if n is None else int(n), int(config["data"]["selection_seed"]))
    rows = sorted(row for rows in listed.values() for row in rows) + [hashed_keep[i] for i in chosen]
    selection = {info.label_names[labels[i]]: ("authors-list" if info.label_names[labels[i]] in listed else "hash")
                 for i in keep}
    return rows, prompts, skipped, selection


def _listed_rows(config: dict, label_names: list[str], ids: list[str], labels: list[int],
                 keep: list[int]) -> dict[str, list[int]]:
    """Class name -> rows of the authors' list (``data.image_list: fu-lora-authors``).

    A class is taken from the list only when every listed image of it is in the split with that
    class; otherwise (another dataset, e.g. the phantom set, or a split without them) that class
    falls back to the hash pick, and the LoRA's config says which rule chose each class.
    """
    if config["data"].get("image_list") != "fu-lora-authors":
        return {}
    import warnings

    from fetal_bench.data.fu_lora_lists import ES_PLANE_NAMES, ListUnavailableError, lora_training_ids

    if not set(label_names) & set(ES_PLANE_NAMES.values()):
        return {}  # not FETAL_PLANES_DB's classes (e.g. the phantom set): the list cannot apply
    try:
        authors = lora_training_ids()
    except ListUnavailableError as err:
        # Every class then falls back to the hash pick, which generator_config.json records.
        warnings.warn(f"{err.problem} Every class falls back to the hash pick. {err.fix}", stacklevel=2)
        return {}
    where = {ids[i]: i for i in keep}
    listed: dict[str, list[int]] = {}
    for plane, wanted in authors.items():
        rows = [where.get(image_id) for image_id in wanted]
        if all(r is not None and label_names[labels[r]] == plane for r in rows):
            listed[plane] = rows
    return listed


class _Shaping:
    """How training images reach the model: kohya aspect-ratio buckets, or letterboxed squares."""

    def __init__(self, mode: str, resolution: int, resized=None, sizes=None, steps=None):
        self.mode, self.resolution, self.resized, self.sizes, self.steps = mode, resolution, resized, sizes, steps

    def apply(self, i: int, image: np.ndarray) -> np.ndarray:
        from fetal_bench.generators.training_images import bucket_crop, letterbox

        if self.mode == "bucket":
            return bucket_crop(image, self.resized[i], self.sizes[i])
        return letterbox(image, self.resolution)[0]

    def summary(self) -> dict[str, Any]:
        if self.mode != "bucket":
            return {"mode": self.mode, "size": [self.resolution, self.resolution]}
        counts: dict[str, int] = {}
        for w, h in self.sizes:
            counts[f"{w}x{h}"] = counts.get(f"{w}x{h}", 0) + 1
        return {"mode": "bucket", "steps": self.steps, "buckets": dict(sorted(counts.items()))}


def _image_shaping(cfg: dict, dataset, ids, rows: list[int], resolution: int, model) -> _Shaping:
    from fetal_bench.generators.training_images import image_size, kohya_bucket

    mode = cfg["data"]["resize"]
    if mode == "letterbox":
        return _Shaping(mode, resolution)
    if mode != "bucket":
        raise FetalBenchError(f"data.resize {mode!r} is not supported.", "Use bucket (kohya's) or letterbox.")
    bucket = cfg["data"]["bucket"]
    multiple = model.vae_scale_factor * 2 ** (len(model.unet.config.block_out_channels) - 1)
    # "auto" scales kohya's SD 1.5 values (steps 64, sizes 256..1024 at 512 px) to the base's size.
    steps = max(multiple, resolution // 8) if bucket["steps"] == "auto" else int(bucket["steps"])
    if steps % multiple:
        raise FetalBenchError(f"data.bucket.steps {steps} is not a multiple of {multiple} for this base.",
                              f"Use auto or a multiple of {multiple}.")
    low = resolution // 2 if bucket["min_size"] == "auto" else int(bucket["min_size"])
    high = resolution * 2 if bucket["max_size"] == "auto" else int(bucket["max_size"])
    resized, sizes = [], []
    for row in rows:
        width, height = image_size(dataset[row]["image"], ids[row])
        r, b = kohya_bucket(width, height, resolution=resolution, steps=steps, no_upscale=bool(bucket["no_upscale"]),
                            min_size=low, max_size=high)
        resized.append(r)
        sizes.append(b)
    return _Shaping("bucket", resolution, resized, sizes, steps)


def _repeats_from_authors_file(cfg: dict[str, Any]) -> dict[str, Any] | None:
    """``train.repeats_from``: a kohya LoRA file (the authors' release) whose header records its
    training; its repeat count replaces ``train.repeats`` (kohya.kohya_training_metadata)."""
    source = cfg["train"].get("repeats_from")
    if not source:
        return None
    from fetal_bench.generators.kohya import kohya_training_metadata, repeats_from_metadata

    metadata = kohya_training_metadata(source)
    cfg["train"]["repeats"] = repeats_from_metadata(metadata, str(source))
    return {**metadata, "file": Path(source).name}


def train(*, data: str | Path, output: str | Path, config: str | None = None, base: str | None = None,
          revision: str | None = None, split: str | None = None, max_steps: int | None = None,
          images_per_class: int | None = None, generator_config: str | Path | Mapping | None = None,
          overwrite: bool = False, progress: Callable[[int, int, float], None] | None = None) -> dict[str, Any]:
    """Train an FU-LoRA on ``split`` of dataset ``data`` (config ``config``); write it to ``output``.

    ``base`` is ``tiny``, a diffusers directory or a Hub id (default: the config's pinned SD 1.5).
    Returns the written ``generator_config.json`` content. Rerunning an interrupted run resumes
    from its last checkpoint.
    """
    from fetal_bench.generators.base import load_base
    from fetal_bench.generators.training_images import decode_gray, open_source
    from fetal_bench.generators.training import TrainingData, train_lora

    cfg = resolve_train_config(GENERATOR, generator_config, {
        "train": {"max_steps": max_steps},
        "data": {"split": split, "images_per_class": images_per_class},
    })
    kohya_record = _repeats_from_authors_file(cfg)
    dataset, info = open_source(data, config=config, split=cfg["data"]["split"])
    rows, prompts, skipped, selection = _training_rows(dataset, info, cfg)
    model = load_base(base or cfg["base"]["model"], revision=revision, default=cfg["base"])
    resolution = resolve_resolution(cfg, model)
    labels = dataset["label"]
    ids = dataset["id"]
    shaping = _image_shaping(cfg, dataset, ids, rows, resolution, model)

    def get(i: int):
        row = rows[i]
        image = shaping.apply(i, decode_gray(dataset[row]["image"], ids[row]))
        return np.broadcast_to(image, (3, *image.shape)), prompts[labels[row]], None

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
            "selection": selection,
        },
    }
    record["data"]["resize"] = shaping.summary()
    if kohya_record is not None:
        record["data"]["repeats_from"] = kohya_record  # what the authors' file says of their run
    return train_lora(base=model, config=cfg, data=TrainingData(len(rows), get, resolution, sizes=shaping.sizes),
                      output=output,
                      record=record, overwrite=overwrite, progress=progress)


def sample(*, lora: str | Path | None, output: str | Path, weight_name: str | None = None,
           lora_revision: str | None = None, **options: Any):
    """Sample ``per_class`` images per trained class (or per class of ``classes``) into a synthetic dataset at ``output``.

    ``options``: the sampling options every generator takes (:class:`~fetal_bench.generators.sample_run.SampleOptions`:
    ``per_class``, ``seed``, ``steps``, ``config``, ``work_dir``...). Resumable: shards go to
    ``work_dir`` (default ``OUTPUT.work``) and a rerun skips finished ones. ``config`` reproduces a
    split from its generation config (a synthetic dataset directory, its README.md, or a YAML
    file); explicit options override it. ``lora`` may also be a kohya-format ``.safetensors``
    file, a directory holding one (``weight_name``), or a Hub model repository (``weight_name``
    required; ``lora_revision`` pins its commit), e.g. the authors' ``fangyijie/fu-lora``: see
    :func:`external_lora`. Returns the :class:`~fetal_bench.data.writer.BuildResult`.
    """
    from fetal_bench.generators.sample_run import SampleOptions, SampleRun

    run = SampleRun(output, SampleOptions(**options))
    external = external_lora(lora, weight_name, lora_revision) if lora is not None else None
    if external is not None:
        lora_dir, lora_record = external
        check_lora_matches(run.generation_in, lora_record, lora_dir)
    else:
        lora_dir, lora_record = open_lora(lora, run.generation_in, (GENERATOR,))
    run.use_lora(lora_dir, lora_record)
    return _sample(run)


def external_lora(lora: str | Path, weight_name: str | None, lora_revision: str | None):
    """``(directory, in-memory LoRA config)`` for a kohya LoRA file; None for a fetal-bench LoRA directory.

    The file is a local ``.safetensors`` path, ``DIR`` + ``weight_name``, or ``weight_name`` in a
    Hub model repository (``owner/name`` that is not a local path), fetched with
    ``hf_hub_download`` at ``lora_revision`` (recorded: the resolved commit and the file's
    sha256). Its classes are FETAL_PLANES_DB's with the shipped FU-LoRA prompts (the authors'
    caption files); sampling defaults are the shipped config's.
    """
    from fetal_bench._io import sha256_file
    from fetal_bench.generators.lora import CONFIG_FILE

    path = Path(lora)
    source: dict[str, Any]
    if path.is_dir() and (path / CONFIG_FILE).is_file() and not weight_name:
        return None
    if path.is_dir() and weight_name:
        file, source = path / Path(weight_name).name, {"kind": "local"}
    elif path.is_file():
        file, source = path, {"kind": "local"}
    elif not path.exists() and str(lora).count("/") == 1 and not str(lora).startswith((".", "/", "~")):
        from fetal_bench.generators.kohya import download_hub_lora

        file, commit = download_hub_lora(str(lora), weight_name, lora_revision)
        source = {"kind": "hub", "repo_id": str(lora), "weight_name": weight_name, "commit": commit}
    else:
        return None  # open_lora explains what a LoRA directory must hold
    if not file.is_file() or file.suffix != ".safetensors":
        raise FetalBenchError(f"{file} is not a .safetensors file.",
                              "Pass a kohya LoRA .safetensors file (never a pickle), or a fetal-bench LoRA directory.")
    return file.parent, _external_config(file, source, sha256_file(file))


def _external_config(file: Path, source: dict[str, Any], digest: str) -> dict[str, Any]:
    from fetal_bench.data.builders.planes import ES_PLANES
    from fetal_bench.generators.config import config_sha256, default_config

    cfg = default_config(GENERATOR)
    names = list(ES_PLANES)
    prompts, _ = class_prompts(names, cfg["data"]["class_prompts"])
    return {
        "generator": GENERATOR, "format": "kohya", "lora_file": str(file), "source": {**source, "file": file.name},
        "config_version": cfg["config_version"], "config": cfg, "config_sha256": config_sha256(cfg),
        "lora_sha256": digest, "base": None, "resolution": None,
        "data": {"dataset": "fetal-planes-es", "label_names": names,
                 "classes": [{"label": k, "name": names[k], "prompt": p} for k, p in sorted(prompts.items())]},
    }


def _sample(run) -> Any:
    import datasets

    from fetal_bench.generators import sampling as smp
    from fetal_bench.generators.synthetic import provenance_features, synthetic_info

    run.load_pipeline()
    classes = run.chosen_classes()
    # An external LoRA records no training resolution: the base's native one (512 for SD 1.5).
    resolution = int(run.lora_record["resolution"] or run.model.native_resolution)
    run.record_generation(GENERATOR, classes, resolution, lora={"lora_source": run.lora_record.get("source")},
                          source_keys=("dataset", "path", "config", "split", "fingerprint", "license", "label_names"))
    items = run.items(classes)
    constant, options = run.provenance_columns(), run.pipeline_options()

    def render(batch: list) -> tuple[list[dict], list[dict]]:
        from PIL import Image

        rows = []
        for item, image in zip(batch, smp.pipeline_images(run.pipe, batch, **options)):
            rgb = (np.clip(image, 0.0, 1.0) * 255).round().astype(np.uint8)
            gray = np.asarray(Image.fromarray(rgb).convert("L"))
            rows.append({"id": run.row_id(item), "image": to_png(gray), "label": item.label, "seed": item.seed,
                         "prompt": item.prompt, **constant})
        return rows, []

    features = datasets.Features({
        "id": datasets.Value("string"),
        "image": datasets.Image(),
        "label": datasets.ClassLabel(names=run.lora_record["data"]["label_names"]),
        **provenance_features(),
    })
    if not run.render_shards(items, render, features).is_main_process:
        return None
    info = synthetic_info(
        generation=run.generation,
        title="FU-LoRA synthetic planes",
        summary=(f"Synthetic fetal ultrasound plane images generated by FU-LoRA: {run.sample_cfg['per_class']} per "
                 f"class for {', '.join(c['name'] for c in classes)}."),
        features={"id": "unique row id: generator, run seed and index", "image": "generated image (8-bit gray PNG)",
                  "label": "the class the image was prompted for (the source set's ClassLabel)"},
        reproduce="fetal-bench generate fu-lora sample --lora LORA_DIR --config THIS_DIR --output NEW_DIR",
        task_categories=("image-classification",),
    )
    return run.write(info=info, features=features, notes=[run.timing_note(len(items), "images sampled") + "."])
