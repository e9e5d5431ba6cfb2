"""The protocol runners: turn a resolved config into training runs, scores and summary rows.

Every run is resumable: a finished training run is skipped by ``train`` itself (its output
directory says so), and an existing ``results/<run>.json`` is read instead of re-scored, so a
protocol interrupted after hours continues where it stopped when run again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fetal_bench._cache import cache_root
from fetal_bench.tasks.kinds import CLASSIFICATION
from fetal_bench.errors import FetalBenchError

Log = Callable[[str], None]

#: Score columns copied into the summary rows (those the papers report).
# The classification protocols (FU-LoRA, pre-training) report the classification kind's scores.
_CLASSIFICATION_SCORES = CLASSIFICATION.protocol_scores
STANDIN = "@phantom-standin"


def _resolve_synthetic(value: str | None, log: Log) -> str | None:
    """``"@phantom-standin"``: a second phantom draw (seed 1) standing in for a synthetic split.

    Only the tiny profiles use it, to exercise the mixing machinery without a generator; it is
    simulated phantom data, not the output of any generative model.
    """
    if value != STANDIN:
        return value
    from fetal_bench.data.builders.phantom import build_phantom

    target = cache_root() / "phantom-standin-seed1"
    if not (target / "build_info.json").is_file():
        log(f"building the phantom stand-in for a synthetic split in {target}")
        build_phantom(target, overwrite=True, seed=1)
    return str(target)


def _require(config: dict[str, Any], key: str, why: str) -> Any:
    if config.get(key) in (None, ""):
        raise FetalBenchError(f"Protocol {config['name']!r} needs `{key}`: {why}.",
                              f"Pass --set {key}=PATH (or --set profile=tiny for the phantom smoke run).")
    return config[key]


def _train_run(config: dict[str, Any], output: Path, run_id: str, *, dry_run: bool, log: Log, variant: str | None = None,
               **fields: Any):
    """Train one run (``variant``: its variant or arm, for the authors' settings that differ
    between runs); the resolved config and how it departs from the authors' are kept in
    ``config["_planned"]`` for the summary."""
    from fetal_bench.training import TrainConfig, train
    from fetal_bench.training.config import resolve_config

    options = {**config.get("train", {}), **fields}
    if "image_size" in options and options["image_size"] is not None:
        options["image_size"] = tuple(options["image_size"])
    if "box_jitter" in options:
        options["box_jitter"] = tuple(options["box_jitter"])
    options["exclude_labels"] = tuple(options.get("exclude_labels", ()))
    train_config = TrainConfig(output=str(output / "runs" / run_id), progress=False, run_name=run_id, **options)
    resolved = resolve_config(train_config).to_dict()
    planned = {"train_config": resolved}
    if config.get("fidelity") == "paper":
        from fetal_bench.protocols.authors import departures

        planned["departures"] = departures(config["name"], resolved, variant)
        if planned["departures"]:
            log(f"{run_id}: not the authors' setting (protocol says `fidelity: paper`): "
                + "; ".join(planned["departures"]))
    config.setdefault("_planned", {})[run_id] = planned
    if dry_run:
        log(f"[dry run] {run_id}: train {train_config.model} on {train_config.task} ({json.dumps(fields, default=str)})")
        return None
    log(f"{run_id}: training {train_config.model}")
    return train(train_config, log=lambda message: log(f"  {run_id}: {message}"))


def _evaluate_run(config: dict[str, Any], output: Path, run_id: str, model: str, *, dry_run: bool, log: Log,
                  data: str | None, name: str | None = None) -> dict[str, Any] | None:
    if dry_run:
        return None
    path = output / "results" / f"{run_id}.json"
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    from fetal_bench.evaluation import evaluate

    log(f"{run_id}: evaluating on {config['task']}")
    return evaluate(config["task"], model=model, checkpoint=output / "runs" / run_id, data=data, output=path,
                    name=name or run_id, n_resamples=int(config.get("bootstrap", 1000)), seed=0)


def _fidelity(config: dict[str, Any], run_id: str) -> dict[str, Any]:
    """The summary row's ``authors_settings``: ``exact or documented`` when the run trains as the
    authors' code did or as documented (protocols/authors.py), else what departs; nothing for a
    protocol that does not say ``fidelity: paper``."""
    if config.get("fidelity") != "paper":
        return {}
    found = config.get("_planned", {}).get(run_id, {}).get("departures") or []
    return {"authors_settings": "; ".join(found) if found else "exact or documented"}


def _scores(result: dict[str, Any] | None, names: tuple[str, ...]) -> dict[str, Any]:
    if result is None:
        return {}
    scores = result.get("scores", {})
    row = {}
    for name in names:
        entry = scores.get(name)
        if isinstance(entry, dict):
            row[name] = entry.get("value")
            if entry.get("ci95"):
                row[f"{name}_ci95"] = "[{:.4g}, {:.4g}]".format(*entry["ci95"]) if None not in entry["ci95"] else None
    return row


def _training_columns(result) -> dict[str, Any]:
    if result is None:
        return {}
    return {"training_data": result.training_data, "synthetic_share": round(result.synthetic_share, 4),
            "n_train": result.n_train, "epochs": result.epochs_completed, "train_time_s": result.train_time_s}


def _eval_data(config: dict[str, Any], task) -> str | None:
    if config.get("eval_data"):
        return config["eval_data"]
    from fetal_bench.training.mixing import FOREIGN_TRAINING

    # Zero-shot tasks are scored on another dataset than the training data; others on --data.
    return None if task.name in FOREIGN_TRAINING else config.get("data")


# --------------------------------------------------------------------------------------------


def _image_policy(config: dict[str, Any]) -> dict[str, Any]:
    """The one resize policy (and input normalisation) every image of the protocol goes through.

    The training loaders and the evaluation harness resize real and synthetic images alike to
    the input size without keeping the aspect ratio (``stretch``), which is what the authors do
    (FU-LoRA's notebook cell 24; the mask-guided repository's Datasets.py:142-143 for SAM); a
    protocol that asks for anything else is refused rather than half applied.
    """
    resize = config.get("resize", "stretch")
    if resize != "stretch":
        raise FetalBenchError(f"Protocol {config['name']!r} asks for resize {resize!r}.",
                              "Only `stretch` is applied to real and synthetic images alike (by the loaders and the harness).")
    size = config.get("train", {}).get("image_size") or (config.get("model_cfg") or {}).get("image_size")
    normalize = (config.get("train", {}).get("model_cfg") or {}).get("normalize", "auto")
    return {"resize": f"stretch to {size[0]}x{size[1]}" if size else "stretch", "normalize": normalize}


#: Generators whose synthetic rows are image + mask pairs drawn on a square canvas.
_PAIR_GENERATORS = ("mask-guided", "mask-conditioned")


def check_synthetic_geometry(synthetic: str | None) -> None:
    """Refuse mask-guided pairs that were not stretched to their square canvas.

    A generator trained on stretched images (the authors': train_text_to_image_lora_head_femur.py
    :551-552) draws pairs in the geometry of real images stretched to a square, so the loaders'
    stretch to any input size gives a synthetic pair the geometry of a real image stretched
    there. A letterboxed LoRA's pairs carry black bars and undistorted heads: mixed with
    stretched real images they would differ in geometry in exactly the "with synthesis"
    comparison. Splits without a local build record (a Hub id, the phantom stand-in) are not
    checked here.
    """
    if synthetic is None:
        return
    record = Path(synthetic) / "build_info.json"
    if not record.is_file():
        return
    from fetal_bench._io import load_json, read_regular_file

    info = load_json(read_regular_file(record, max_bytes=64 * 1024 * 1024))
    generation = (info.get("generation") if isinstance(info, dict) else None) or {}
    if generation.get("generator") not in _PAIR_GENERATORS:
        return
    resize = generation.get("resize", "letterbox")  # splits written before the field existed were letterboxed
    if resize != "stretch":
        raise FetalBenchError(
            f"The synthetic pairs in {synthetic} were drawn by a LoRA trained on {resize}ed images; the protocol "
            "stretches every real image to the model's input, so the two would enter the model with different geometry.",
            "Retrain the mask-guided LoRA with `data: {resize: stretch}` (the default, the authors' setting) and sample again.")


def _set_up(config: dict[str, Any], log: Log, *, needs_synthetic: bool, why: str):
    """The protocol's task, its synthetic split (required, for ``why``, when ``needs_synthetic``),
    the data its runs are scored on and its image policy."""
    from fetal_bench.tasks import get_task

    task = get_task(config["task"])
    synthetic = _resolve_synthetic(config.get("synthetic"), log)
    if needs_synthetic and synthetic is None:
        _require(config, "synthetic", why)
    policy = _image_policy(config)
    check_synthetic_geometry(synthetic)
    return task, synthetic, _eval_data(config, task), policy


def _classification_row(config: dict[str, Any], output: Path, run_id: str, model: str, result, eval_data, *,
                        dry_run: bool, log: Log, **identity: Any) -> dict[str, Any]:
    """A summary row of a classification run: which run it is, how it trained, what it scores
    (the classification kind's protocol scores, as the papers report them)."""
    scored = _evaluate_run(config, output, run_id, model, dry_run=dry_run, log=log, data=eval_data)
    return {"run": run_id, **identity, **_training_columns(result), **_scores(scored, _CLASSIFICATION_SCORES)}


def run_fu_lora(config: dict[str, Any], output: Path, *, dry_run: bool, log: Log) -> list[dict[str, Any]]:
    """FU-LoRA Table 1: variants (ES, ES+DA, HB, HB+DA) x backbones x seeds."""
    needs_synthetic = any("synthetic_per_class" in v or "synthetic_ratio" in v for v in config["variants"].values())
    task, synthetic, eval_data, policy = _set_up(config, log, needs_synthetic=needs_synthetic,
                                                 why="the HB variants mix in synthetic images")
    rows = []
    for backbone in config["backbones"]:
        for variant, settings in config["variants"].items():
            for seed in config.get("seeds", [0]):
                run_id = f"{variant.replace('+', 'p')}-{backbone}-s{seed}"
                uses_synthetic = "synthetic_per_class" in settings or "synthetic_ratio" in settings
                result = _train_run(config, output, run_id, dry_run=dry_run, log=log, variant=variant, model=backbone,
                                    task=task.name, data=config.get("data"),
                                    exclude_labels=tuple(config.get("exclude_labels", ())),
                                    synthetic=synthetic if uses_synthetic else None, seed=seed, **settings)
                rows.append(_classification_row(config, output, run_id, backbone, result, eval_data, dry_run=dry_run,
                                                log=log, variant=variant, backbone=backbone, seed=seed, **policy,
                                                **_fidelity(config, run_id)))
    return rows


def run_tian(config: dict[str, Any], output: Path, *, dry_run: bool, log: Log) -> list[dict[str, Any]]:
    """Real-only, synthetic-only and synthetic-then-real runs per backbone and seed."""
    task, synthetic, eval_data, policy = _set_up(config, log, needs_synthetic=True,
                                                 why="the pre-training stage trains on synthetic images")
    rows = []
    for backbone in config["backbones"]:
        for seed in config.get("seeds", [0]):
            stage_dirs: dict[str, str] = {}
            for stage, settings in config["stages"].items():
                run_id = f"{stage}-{backbone}-s{seed}"
                fields: dict[str, Any] = {"model": backbone, "task": task.name, "data": config.get("data"), "seed": seed,
                                          "exclude_labels": tuple(config.get("exclude_labels", ()))}
                if settings.get("synthetic_ratio") is not None:
                    fields.update(synthetic=synthetic, synthetic_ratio=settings["synthetic_ratio"])
                if settings.get("init_from"):
                    source = settings["init_from"]
                    if source not in stage_dirs:
                        raise FetalBenchError(f"Stage {stage!r} starts from {source!r}, which has not run before it.",
                                              "Order the stages so that the pre-training comes first.")
                    fields["init_from"] = stage_dirs[source]
                    fields.update(config.get("finetune", {}))
                result = _train_run(config, output, run_id, dry_run=dry_run, log=log, **fields)
                stage_dirs[stage] = str(output / "runs" / run_id)
                rows.append(_classification_row(config, output, run_id, backbone, result, eval_data, dry_run=dry_run,
                                                log=log, stage=stage, backbone=backbone, seed=seed, **policy))
    return rows


def run_ratio_curve(config: dict[str, Any], output: Path, *, dry_run: bool, log: Log) -> list[dict[str, Any]]:
    """One run per synthetic share; a PNG of the main score against the share reached."""
    needs_synthetic = any(r > 0 for r in config["ratios"])
    task, synthetic, eval_data, policy = _set_up(config, log, needs_synthetic=needs_synthetic,
                                                 why="shares above 0 mix in synthetic rows")
    names = task.kind.protocol_scores
    rows = []
    for ratio in config["ratios"]:
        for seed in config.get("seeds", [0]):
            run_id = f"share{int(round(100 * ratio)):03d}-{config['model']}-s{seed}"
            result = _train_run(config, output, run_id, dry_run=dry_run, log=log, model=config["model"], task=task.name,
                                data=config.get("data"), synthetic=synthetic if ratio > 0 else None,
                                synthetic_ratio=ratio if ratio > 0 else None, seed=seed)
            scored = _evaluate_run(config, output, run_id, config["model"], dry_run=dry_run, log=log, data=eval_data)
            rows.append({"run": run_id, "requested_share": ratio, "seed": seed, **policy,
                         **_training_columns(result), **_scores(scored, names)})
    if not dry_run and rows:
        from fetal_bench.training.plots import plot_curves

        main = task.main_score
        points = sorted((row["synthetic_share"], row[main]) for row in rows if row.get(main) is not None)
        plot_curves(output / "curve.png", [(f"{task.name}: {main}", {main: points})], xlabel="synthetic share",
                    title=config["name"])
    return rows


def run_sam_few_shot(config: dict[str, Any], output: Path, *, dry_run: bool, log: Log) -> list[dict[str, Any]]:
    """SAM fine-tuned on n real pairs (and + synthetic pairs); Dice over jittered-box draws."""
    from fetal_bench.tasks import get_task

    task = get_task(config["task"])
    synthetic = _resolve_synthetic(config.get("synthetic"), log)
    policy = _image_policy(config)
    check_synthetic_geometry(synthetic)
    arms = [("real", None)] + ([("real+synthetic", synthetic)] if synthetic else [])
    eval_data = _eval_data(config, task)
    rows = []
    for n in config["shots"]:
        for arm, syn in arms:
            for seed in config.get("seeds", [0]):
                run_id = f"n{n:03d}-{arm.replace('+', '-')}-s{seed}"
                fields: dict[str, Any] = {"model": config.get("model", "sam"), "task": task.name, "data": config.get("data"),
                                          "real_n": n, "seed": seed, "model_cfg": config.get("model_cfg", {})}
                if syn is not None:
                    fields.update(synthetic=syn, synthetic_n=config.get("synthetic_n"))
                result = _train_run(config, output, run_id, dry_run=dry_run, log=log, variant=arm, **fields)
                row: dict[str, Any] = {"run": run_id, "n_real": n, "arm": arm, "seed": seed, **policy,
                                       **_training_columns(result), **_fidelity(config, run_id)}
                if not dry_run:
                    row.update(box_prompted_dice(output / "runs" / run_id, task, eval_data or config.get("data"),
                                                 split=config.get("eval_split", task.eval_split),
                                                 draws=int(config.get("jitter_draws", 5)),
                                                 jitter=tuple(config.get("jitter", (0, 20))), seed=seed, log=log))
                    if config.get("harness", True):
                        scored = _evaluate_run(config, output, run_id, fields["model"], dry_run=dry_run, log=log,
                                               data=eval_data)
                        row.update({f"promptfree_{k}": v for k, v in _scores(scored, task.kind.protocol_scores).items()})
                rows.append(row)
    return rows


def box_prompted_dice(checkpoint: str | os.PathLike, task, data: str | None, *, split: str, draws: int,
                      jitter: tuple[float, float], seed: int = 0, batch_size: int = 8,
                      log: Log = lambda message: None) -> dict[str, Any]:
    """The mask-guided paper's measure: Dice with ground-truth boxes jittered outward, per draw.

    Dice is computed per image at the model's input resolution (the paper's 256x256) and
    averaged; each draw jitters every box anew. Returns the mean over draws, their standard
    deviation and the per-draw means.
    """
    import numpy as np
    import torch

    from fetal_bench.data.loading import make_dataloader
    from fetal_bench.models import create_model
    from fetal_bench.training.mixing import open_training_split
    from fetal_bench.tasks.losses import boxes_from_masks, segmentation_dice

    model = create_model("sam", checkpoint=checkpoint).eval()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    spec = model.spec
    dataset, _ = open_training_split(data, task, split, task.dataset.config)
    loader = make_dataloader(dataset, image_size=tuple(spec.image_size), channels=spec.channels,
                             normalize=spec.normalize, batch_size=batch_size, label_column=None,
                             mask_column=task.mask_column)
    per_draw: list[list[torch.Tensor]] = [[] for _ in range(draws)]
    with torch.inference_mode():
        for index, batch in enumerate(loader):
            embeddings = model.embed(batch["pixel_values"].to(device))  # once per batch, reused by every draw
            for draw in range(draws):
                generator = torch.Generator().manual_seed(seed * 1_000_003 + draw * 10_007 + index)
                boxes = boxes_from_masks(batch["masks"], jitter=jitter, generator=generator)
                logits = model.decode(embeddings, boxes.to(device), tuple(spec.image_size))
                per_draw[draw].append(segmentation_dice(logits.cpu(), batch["masks"]))
    means = np.array([float(torch.cat(values).mean()) for values in per_draw])
    log(f"box-prompted Dice over {draws} draws: {means.mean():.4f} ± {means.std(ddof=1) if draws > 1 else 0:.4f}")
    return {"box_dice": float(means.mean()), "box_dice_sd": float(means.std(ddof=1)) if draws > 1 else 0.0,
            "box_dice_draws": json.dumps([round(float(v), 5) for v in means])}
