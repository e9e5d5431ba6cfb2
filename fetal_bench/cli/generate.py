"""`fetal-bench generate ...`: FU-LoRA, mask-guided diffusion, synthetic-data quality.

A thin layer over :mod:`fetal_bench.generators`: options are parsed here, the work is done by
``fu_lora.train/sample``, ``mask_guided.train/sample/fit_prior`` and ``score.score``.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.table import Table

from fetal_bench.cli._console import console, err_console, safe

_SCHEDULERS = ["euler", "euler-a", "unipc", "ddim", "pndm", "dpm++"]


@click.group()
def generate() -> None:
    """Synthetic data: FU-LoRA, mask-guided diffusion, and quality scores of synthetic splits."""


# ---------------------------------------------------------------------------------------------
# Shared options
# ---------------------------------------------------------------------------------------------


def _train_options(function):
    options = [
        click.option("--data", required=True, help="Real dataset: a directory from `datasets build`, or a Hub id."),
        click.option("--config", "dataset_config", default=None, help="Dataset config (e.g. planes, head)."),
        click.option("--split", default=None, help="Split to train on (default: the generator config's data.split)."),
        click.option("--base", default=None,
                     help="Base model: `tiny` (in-process, for tests), a diffusers directory, or a Hub id "
                          "(default: stable-diffusion-v1-5 at its pinned revision)."),
        click.option("--revision", default=None, help="Hub revision of --base."),
        click.option("--max-steps", type=click.IntRange(min=1), default=None,
                     help="Stop after this many optimizer steps (default: epochs x repeats x images)."),
        click.option("--images-per-class", type=click.IntRange(min=1), default=None,
                     help="Real images per class (default: the paper's 20)."),
        click.option("--generator-config", type=click.Path(dir_okay=False, path_type=Path), default=None,
                     help="YAML overriding the generator's defaults (see fetal_bench/generators/configs)."),
        click.option("--output", required=True, type=click.Path(path_type=Path), help="LoRA output directory."),
        click.option("--overwrite", is_flag=True, help="Replace a finished LoRA in --output."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _sample_options(function):
    options = [
        click.option("--lora", type=click.Path(path_type=Path), default=None,
                     help="The trained LoRA directory (default: the one named by --config)."),
        click.option("--per-class", type=click.IntRange(min=1), default=None, help="Images per class."),
        click.option("--seed", type=int, default=None, help="Run seed: image i uses seed + i."),
        click.option("--output", required=True, type=click.Path(path_type=Path), help="Synthetic dataset directory."),
        click.option("--base", default=None, help="Sample on another base than the LoRA's (recorded per row)."),
        click.option("--revision", default=None, help="Hub revision of --base."),
        click.option("--steps", type=click.IntRange(min=1), default=None, help="Denoising steps."),
        click.option("--guidance", type=float, default=None, help="Classifier-free guidance scale."),
        click.option("--lora-scale", type=float, default=None, help="LoRA scale."),
        click.option("--scheduler", type=click.Choice(_SCHEDULERS), default=None, help="Sampling scheduler."),
        click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Images per forward pass."),
        click.option("--shard-size", type=click.IntRange(min=1), default=None,
                     help="Images per resumable shard."),
        click.option("--class", "classes", multiple=True, help="Only this class (repeatable)."),
        click.option("--config", "generation_config", type=click.Path(exists=True, path_type=Path), default=None,
                     help="Reproduce a split: its directory, its README.md, or a YAML generation config."),
        click.option("--work-dir", type=click.Path(path_type=Path), default=None,
                     help="Where shards are kept until the dataset is written (default: OUTPUT.work)."),
        click.option("--keep-work", is_flag=True, help="Keep the shard directory after writing the dataset."),
        click.option("--overwrite", is_flag=True, help="Replace an existing --output."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _train_progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    if not err_console.is_terminal:
        return _plain_progress("training", lambda step, total, loss: (step, total, f"loss {loss:.4f}"))
    progress = Progress(TextColumn("training"), BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]}"),
                        TimeRemainingColumn(), console=err_console, transient=True)
    task = progress.add_task("train", total=None, loss="-")

    def update(step: int, total: int, loss: float) -> None:
        progress.update(task, completed=step, total=total, loss=f"{loss:.4f}")

    return progress, update


def _shard_progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    if not err_console.is_terminal:
        return _plain_progress("shards", lambda done, total: (done, total, ""))
    progress = Progress(TextColumn("shards"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                        console=err_console, transient=True)
    task = progress.add_task("sample", total=None)

    def update(done: int, total: int) -> None:
        progress.update(task, completed=done, total=total)

    return progress, update


PLAIN_PROGRESS_EVERY_S = 30.0  # piped: one line per this many seconds at most (and at the end)


def _plain_progress(what: str, read):
    """Progress for a pipe or a log file, where rich's live bar shows nothing until the end: a
    plain line on stderr at the start, then at most every PLAIN_PROGRESS_EVERY_S seconds, and
    when the count completes. ``read(*args)`` turns the callback's arguments into
    (done, total, extra)."""
    import contextlib
    import time

    started = time.monotonic()
    last = {"at": None}

    def update(*args) -> None:
        done, total, extra = read(*args)
        now = time.monotonic()
        if last["at"] is not None and now - last["at"] < PLAIN_PROGRESS_EVERY_S and done != total:
            return
        last["at"] = now
        share = f" ({100 * done / total:.0f}%)" if total else ""
        err_console.print(f"{what}: {done}/{total or '?'}{share}, {now - started:.0f} s" + (f", {extra}" if extra else ""),
                          highlight=False, markup=False)

    @contextlib.contextmanager
    def context():
        err_console.print(f"{what}: starting (progress every {PLAIN_PROGRESS_EVERY_S:.0f} s; stderr is not a terminal)",
                          highlight=False, markup=False)
        yield

    return context(), update


def _library_sample_options(sampling: dict, on_shard) -> dict:
    """The shared sampling options (:class:`~fetal_bench.generators.sample_run.SampleOptions`) as the
    library names them, from what ``@_sample_options`` collected on the command line."""
    options = {name: value for name, value in sampling.items() if name not in ("generation_config", "classes")}
    return {**options, "classes": list(sampling["classes"]) or None, "config": sampling["generation_config"],
            "on_shard": on_shard}


def _print_lora(result: dict, output: Path) -> None:
    table = Table(title=safe(f"{result['generator']} LoRA -> {output}"))
    table.add_column("class")
    table.add_column("prompt")
    table.add_column("images", justify="right")
    for entry in result["data"]["classes"]:
        table.add_row(safe(entry["name"]), safe(entry["prompt"]), str(entry["n_images"]))
    console.print(table)
    training = result["training"]
    console.print(safe(f"{training['steps']} steps on {training['device']} ({training['optimizer']}, mixed precision "
                       f"{training['mixed_precision']}); final loss {training['final_loss']}."))
    if result["data"].get("skipped_classes"):
        console.print(f"[yellow]Not trained (no prompt):[/] {safe(', '.join(result['data']['skipped_classes']))}")
    console.print(safe(f"LoRA sha256 {result['lora_sha256']}; base {result['base']['id']}@{result['base'].get('revision')}."))


def _print_dataset(result, output: Path) -> None:
    if result is None:  # a non-main accelerate process
        return
    table = Table(title=safe(f"synthetic split -> {output}"))
    table.add_column("label")
    table.add_column("rows", justify="right")
    summary = result.configs["default"]["train"]
    for label, count in summary.label_counts.items():
        table.add_row(safe(label), str(count))
    table.add_row("total", str(summary.num_examples))
    console.print(table)
    info = json.loads((output / "build_info.json").read_text())
    rejected = info.get("rejected")
    if rejected and rejected.get("count"):
        console.print(f"[yellow]Rejected (implausible outline):[/] {safe(rejected['count'])} {safe(rejected['by_reason'])}")
    console.print(safe(f'Load it with: datasets.load_dataset("{output}", split="train")'), highlight=False)


# ---------------------------------------------------------------------------------------------
# fu-lora
# ---------------------------------------------------------------------------------------------


@generate.group("fu-lora")
def fu_lora_group() -> None:
    """FU-LoRA: Stable Diffusion LoRA on a few real images per plane class; class-prompted sampling."""


@fu_lora_group.command("train")
@_train_options
def fu_lora_train(data, dataset_config, split, base, revision, max_steps, images_per_class, generator_config,
                  output, overwrite) -> None:
    """Train an FU-LoRA on a labelled split (resumes an interrupted run of the same settings)."""
    from fetal_bench.generators import fu_lora

    progress, update = _train_progress()
    with progress:
        result = fu_lora.train(data=data, config=dataset_config, split=split, base=base, revision=revision,
                               max_steps=max_steps, images_per_class=images_per_class,
                               generator_config=generator_config, output=output, overwrite=overwrite,
                               progress=update)
    _print_lora(result, output)


@fu_lora_group.command("sample")
@_sample_options
@click.option("--weight-name", default=None,
              help="A kohya LoRA file inside --lora (a directory or a Hub model repo, e.g. fangyijie/fu-lora "
                   "with fetal_ultrasound_v1.0.safetensors).")
@click.option("--lora-revision", default=None, help="Hub revision (commit) of a --lora Hub repository.")
def fu_lora_sample(lora, output, weight_name, lora_revision, **sampling) -> None:
    """Sample a synthetic split from an FU-LoRA (resumable; rerun the same command after an interruption).

    --lora is a LoRA directory from `train`, a kohya-format .safetensors file, or a Hub repository
    with --weight-name (the authors' released LoRAs: --lora fangyijie/fu-lora --weight-name
    fetal_ultrasound_v1.0.safetensors).
    """
    from fetal_bench.generators import fu_lora

    progress, update = _shard_progress()
    with progress:
        result = fu_lora.sample(lora=lora, output=output, weight_name=weight_name, lora_revision=lora_revision,
                                **_library_sample_options(sampling, update))
    _print_dataset(result, output)


# ---------------------------------------------------------------------------------------------
# mask-guided
# ---------------------------------------------------------------------------------------------


@generate.group("mask-guided")
def mask_guided_group() -> None:
    """Mask-guided diffusion: fetal head images with masks (the paper's outline method, or mask-conditioned)."""


@mask_guided_group.command("train")
@_train_options
@click.option("--variant", type=click.Choice(["paper", "conditioned"]), default="paper", show_default=True,
              help="paper: learn [image, image, outline]; conditioned: the mask is a UNet input.")
@click.option("--prior", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="(conditioned) shape prior JSON from `fit-prior` (default: fitted to the training data).")
@click.option("--recipe", type=click.Choice(["readme-hc18-trimesters", "notebook-es-head"]),
              default="readme-hc18-trimesters", show_default=True,
              help="The authors' README recipe (HC18, 20 x 3 trimesters) or their notebook's (24 Spanish heads, "
                   "one prompt; --data = their image/ + mask/ folder).")
def mask_guided_train(data, dataset_config, split, base, revision, max_steps, images_per_class, generator_config,
                      output, overwrite, variant, prior, recipe) -> None:
    """Train a mask-guided LoRA on head images with masks (hc18 schema, or an image/ + mask/ folder)."""
    from fetal_bench.generators import mask_guided

    progress, update = _train_progress()
    with progress:
        result = mask_guided.train(data=data, config=dataset_config, split=split, variant=variant, base=base,
                                   revision=revision, max_steps=max_steps, images_per_class=images_per_class,
                                   generator_config=generator_config, prior=prior, output=output,
                                   overwrite=overwrite, progress=update, recipe=recipe)
    _print_lora(result, output)


@mask_guided_group.command("sample")
@_sample_options
@click.option("--prior", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="(conditioned) shape prior JSON overriding the LoRA's.")
@click.option("--review-model", default=None, help="Head segmenter checking each generated outline (e.g. unet).")
@click.option("--review-checkpoint", type=click.Path(exists=True, path_type=Path), default=None,
              help="Its checkpoint (e.g. a U-Net trained on hc18).")
@click.option("--review-dir", type=click.Path(path_type=Path), default=None,
              help="Where flagged pairs, review.csv and rejected.png go (default: OUTPUT.review).")
def mask_guided_sample(lora, output, prior, review_model, review_checkpoint, review_dir, **sampling) -> None:
    """Sample image + mask pairs per class into a synthetic hc18-schema split; flagged pairs go to review."""
    from fetal_bench.generators import mask_guided

    progress, update = _shard_progress()
    with progress:
        result = mask_guided.sample(lora=lora, output=output, prior=prior, review_model=review_model,
                                    review_checkpoint=review_checkpoint, review_dir=review_dir,
                                    **_library_sample_options(sampling, update))
    _print_dataset(result, output)


@mask_guided_group.command("fit-prior")
@click.option("--data", required=True, help="Dataset with head masks (hc18 schema).")
@click.option("--config", "dataset_config", default=None, help="Dataset config (e.g. head).")
@click.option("--split", default="train", show_default=True)
@click.option("--output", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Prior JSON file.")
def mask_guided_fit_prior(data, dataset_config, split, output) -> None:
    """Fit the ellipse shape prior (per trimester) to a split's masks; write it as JSON."""
    from fetal_bench._io import write_json_atomic
    from fetal_bench.generators import mask_guided

    prior = mask_guided.fit_prior(data, config=dataset_config, split=split)
    write_json_atomic(output, prior)
    table = Table(title=safe(f"ellipse prior -> {output}"))
    table.add_column("trimester")
    table.add_column("masks", justify="right")
    for trimester, entry in prior["classes"].items():
        table.add_row(["first", "second", "third"][int(trimester)], str(entry["n"]))
    console.print(table)


# ---------------------------------------------------------------------------------------------
# score
# ---------------------------------------------------------------------------------------------


@generate.command("score")
@click.argument("synthetic", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--real", required=True, help="The real dataset to compare with (directory or Hub id).")
@click.option("--real-config", default=None, help="Its config (default: the one the synthetic split came from).")
@click.option("--real-split", default="train", show_default=True)
@click.option("--features", default="auto", show_default=True,
              help="Feature network: auto (inception if its weights are cached, else random-cnn), inception, random-cnn.")
@click.option("--max-images", type=click.IntRange(min=2), default=5000, show_default=True,
              help="At most this many images per side (a deterministic subset).")
@click.option("--k", type=click.IntRange(min=1), default=3, show_default=True, help="k of k-NN precision/recall.")
@click.option("--output", required=True, type=click.Path(file_okay=False, path_type=Path))
def score_command(synthetic, real, real_config, real_split, features, max_images, k, output) -> None:
    """FID, KID, k-NN precision/recall and counts of SYNTHETIC against --real; a JSON result and a grid PNG."""
    from fetal_bench.generators.score import GRID_FILE, RESULT_FILE, score

    result = score(synthetic, real=real, real_config=real_config, real_split=real_split, features=features,
                   max_images=max_images, k=k, output=output)
    table = Table(title=safe(f"{synthetic} vs {result['real']['path']} ({result['feature_extractor']['name']} features)"))
    table.add_column("")
    for column in ("FID", "KID", "precision", "recall", "n synthetic", "n real"):
        table.add_column(column, justify="right")

    def fmt(entry):
        value = entry.get("value") if isinstance(entry, dict) else None
        return "-" if value is None else f"{value:.4g}"

    s = result["scores"]
    table.add_row("all", fmt(s["fid"]), fmt(s["kid"]), fmt(s["precision"]), fmt(s["recall"]),
                  str(result["synthetic"]["n"]), str(result["real"]["n"]))
    for name, entry in result["per_class"].items():
        table.add_row(safe(name), fmt(entry.get("fid")), fmt(entry.get("kid")), fmt(entry.get("precision")),
                      fmt(entry.get("recall")), str(entry["n_synthetic"]), str(entry["n_real"]))
    console.print(table)
    for message in result["warnings"]:
        err_console.print(f"[yellow]Warning:[/] {safe(message)}", highlight=False)
    console.print(safe(f"Wrote {output / RESULT_FILE} and {output / GRID_FILE}."), highlight=False)
