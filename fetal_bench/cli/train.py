"""`fetal-bench train MODEL --task T ...` and `fetal-bench protocols list|run ...`."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.table import Table

from fetal_bench.cli._console import console, note, safe


def _model_options(pairs: tuple[str, ...]) -> dict:
    """``KEY=VALUE`` pairs; values are JSON when they parse (``true``, ``8``, ``[1, 2]``), else strings."""
    from fetal_bench.errors import FetalBenchError

    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise FetalBenchError(f"--model-opt {pair!r} is not KEY=VALUE.", "Write e.g. --model-opt pretrained=false.")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


@click.command("train")
@click.argument("model")
@click.option("--task", "task_name", required=True, help="Task to train for (`fetal-bench tasks list`).")
@click.option("--data", default=None, help="Training data: a local dataset build or a Hub id (default: the task's dataset).")
@click.option("--config", "data_config", default=None, help="Dataset config (default: the task's).")
@click.option("--synthetic", default=None, help="A synthetic dataset (from `fetal-bench generate`) to mix in.")
@click.option("--synthetic-ratio", type=click.FloatRange(0, 1), default=None,
              help="Synthetic share of the training set (0-1; 1 = synthetic only). Default: all synthetic rows.")
@click.option("--synthetic-per-class", type=click.IntRange(1), default=None, help="At most N synthetic rows per class.")
@click.option("--real-per-class", type=click.IntRange(1), default=None, help="At most N real rows per class (balanced subset).")
@click.option("--real-n", type=click.IntRange(1), default=None, help="Train on N real rows (few-shot).")
@click.option("--exclude-label", "exclude_labels", multiple=True, help="Drop a class of the training data (repeatable).")
@click.option("--epochs", type=click.IntRange(1), default=None, help="Default: the model's (20 unless it says otherwise).")
@click.option("--max-steps", type=click.IntRange(1), default=None, help="Stop after N optimisation steps.")
@click.option("--max-minutes", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Budget for the whole run, closing validation and saving included (cosine LR follows the clock).")
@click.option("--recipe", default="auto", show_default=True,
              help="The model's named recipe (unet: cpu = 128x192, 16 base channels, batch 8; gpu = its full size). "
                   "auto: cpu when no GPU is found. Options you give override it.")
@click.option("--image-size", type=(int, int), default=None, help="Input HEIGHT WIDTH (default: the model's).")
@click.option("--batch-size", type=click.IntRange(1), default=None, help="Default: the model's.")
@click.option("--lr", type=float, default=None, help="Learning rate (default: the model's).")
@click.option("--optimizer", type=click.Choice(["adamw", "adam", "sgd"]), default=None)
@click.option("--weight-decay", type=float, default=None)
@click.option("--momentum", type=float, default=0.9, show_default=True, help="SGD momentum.")
@click.option("--scheduler", type=click.Choice(["cosine", "none"]), default=None)
@click.option("--grad-clip", type=click.FloatRange(0), default=None,
              help="Max gradient norm; 0: no clipping (default: the model's, 1.0 unless it says otherwise).")
@click.option("--augment", type=click.Choice(["ultrasound", "ultrasound-depth-gain", "fu-lora", "none"]), default="ultrasound",
              show_default=True, help="Augmentation preset (fetal_bench.training.augment.PRESETS).")
@click.option("--patience", type=int, default=5, show_default=True, help="Early stopping after N validations without improvement (0: off).")
@click.option("--val-every-steps", type=click.IntRange(1), default=None, help="Validate every N steps (default: each epoch).")
@click.option("--checkpoint-every-steps", type=click.IntRange(1), default=100, show_default=True)
@click.option("--init-from", type=click.Path(path_type=Path, exists=True, file_okay=False), default=None,
              help="Start from the weights of a checkpoint directory (fine-tuning).")
@click.option("--model-opt", "model_opts", multiple=True, help="Model option KEY=VALUE (repeatable), e.g. pretrained=false.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--num-workers", type=click.IntRange(0), default=0, show_default=True, help="Data-loading processes.")
@click.option("--mixed-precision", type=click.Choice(["auto", "no", "fp16", "bf16"]), default="auto", show_default=True)
@click.option("--run-name", default=None, help="Name recorded in the checkpoint (and shown on the leaderboard).")
@click.option("--no-resume", is_flag=True, help="Refuse to resume an existing run in --output.")
@click.option("--overwrite", is_flag=True, help="Delete --output and start over.")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
@click.option("--output", required=True, type=click.Path(path_type=Path), help="Checkpoint/run directory.")
def train(model, task_name, data, data_config, synthetic, synthetic_ratio, synthetic_per_class, real_per_class, real_n,
          exclude_labels, epochs, max_steps, max_minutes, recipe, image_size, batch_size, lr, optimizer, weight_decay, momentum,
          scheduler, grad_clip, augment, patience, val_every_steps, checkpoint_every_steps, init_from, model_opts, seed,
          num_workers, mixed_precision, run_name, no_resume, overwrite, no_progress, output) -> None:
    """Train baseline MODEL on a task; the output directory is a checkpoint for `fetal-bench evaluate`.

    Re-running the same command resumes an interrupted run from its last checkpoint.
    """
    from fetal_bench.training import TrainConfig
    from fetal_bench.training import train as run

    config = TrainConfig(
        model=model, task=task_name, output=str(output), data=data, data_config=data_config, synthetic=synthetic,
        synthetic_ratio=synthetic_ratio, synthetic_per_class=synthetic_per_class, real_per_class=real_per_class,
        real_n=real_n, exclude_labels=tuple(exclude_labels), epochs=epochs, max_steps=max_steps, max_minutes=max_minutes,
        recipe=recipe,
        image_size=image_size, batch_size=batch_size, lr=lr, optimizer=optimizer, weight_decay=weight_decay,
        momentum=momentum, scheduler=scheduler, grad_clip=grad_clip, augment=augment, patience=patience or None,
        val_every_steps=val_every_steps, checkpoint_every_steps=checkpoint_every_steps,
        init_from=None if init_from is None else str(init_from), model_cfg=_model_options(model_opts), seed=seed,
        num_workers=num_workers, mixed_precision=mixed_precision, run_name=run_name, resume=not no_resume,
        overwrite=overwrite, progress=not no_progress,
    )
    from fetal_bench._io import exclusive_lock

    with exclusive_lock(output):  # the run directory is this run's output, for the whole run
        result = run(config, log=note)
    table = Table(title=safe(f"{model} on {task_name}"))
    table.add_column("")
    table.add_column("value", justify="right")
    for key, value in (("best validation " + result.metric, result.best_text()), ("epochs", result.epochs_text()),
                       ("steps", str(result.steps)), ("stopped by", result.stopped_by),
                       ("run time", f"{result.train_time_s / 60:.1f} min"),
                       ("training rows", f"{result.n_train} ({result.training_data}, synthetic share {result.synthetic_share:.2f})")):
        table.add_row(safe(key), safe(value))
    console.print(table)
    console.print(f"Checkpoint: {safe(result.output)} (log: train_log.jsonl, curves: curves.png)")
    data_arg = f" --data {data}" if data and "zero-shot" not in task_name else ""
    note(f"Next: fetal-bench evaluate --task {task_name} --model {model} --checkpoint {result.output}{data_arg} --output results/")


@click.group("protocols")
def protocols() -> None:
    """The papers' training protocols: versioned configs, one command each."""


@protocols.command("list")
def protocols_list() -> None:
    """The registered protocols, their configs and the papers they follow."""
    from fetal_bench.protocols import list_protocols

    table = Table(title="fetal-bench protocols", show_lines=True)
    for column in ("protocol", "version", "what", "reference"):
        table.add_column(column, overflow="fold")
    for protocol in list_protocols():
        table.add_row(*(safe(text) for text in (protocol.name, protocol.version, protocol.description,
                                                protocol.reference)))
    console.print(table)


@protocols.command("run")
@click.argument("name")
@click.option("--output", required=True, type=click.Path(path_type=Path), help="Directory for runs, results and the summary.")
@click.option("--set", "overrides", multiple=True, help="Override a config entry KEY=VALUE (dotted keys; JSON values).")
@click.option("--config-file", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None,
              help="A YAML config replacing the registered one.")
@click.option("--dry-run", is_flag=True, help="Print the runs the protocol would make, and stop.")
def protocols_run(name, output, overrides, config_file, dry_run) -> None:
    """Run protocol NAME end to end (train every variant, evaluate, summarise)."""
    from fetal_bench.protocols import run_protocol

    summary = run_protocol(name, output, overrides=_model_options(overrides), config_file=config_file, dry_run=dry_run,
                           log=note)
    table = Table(title=safe(f"{name} -> {output}"))
    columns = list(summary["rows"][0]) if summary["rows"] else []
    for column in columns:
        table.add_column(safe(column), overflow="fold")
    for row in summary["rows"]:
        table.add_row(*[safe("" if row.get(c) is None else (f"{row[c]:.4g}" if isinstance(row[c], float) else row[c]))
                        for c in columns])
    console.print(table)
    if not dry_run:
        note(f"Summary: {summary['_path']}")
