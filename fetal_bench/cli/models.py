"""`fetal-bench models list`, `models info CHECKPOINT`, `models calibrate CHECKPOINT --data D` and
`models push DIR --repo-id ID`."""

from __future__ import annotations

import json

import click
from rich.table import Table

from fetal_bench.cli._console import console, print_listing, safe


@click.group()
def models() -> None:
    """Baseline models: the registry behind --model."""


@models.command("list")
@click.option("--task-type", type=click.Choice(["classification", "segmentation"]), default=None, help="Only this kind.")
@click.option("--json", "as_json", is_flag=True, help="Print the registry as JSON.")
def list_command(task_type: str | None, as_json: bool) -> None:
    """Registered models: task type, family, pretrained weights, defaults."""
    from dataclasses import asdict

    from fetal_bench.models import list_models

    infos = list_models(task_type=task_type)
    if as_json:
        click.echo(json.dumps([asdict(info) for info in infos], indent=2, default=list))
        return
    rows = [[safe(info.name), safe(info.task_type), safe(info.description), safe(info.weights)] for info in infos]
    print_listing("fetal-bench models", ["model", "task", "description", "pretrained weights"], rows,
                  footer="Train: fetal-bench train MODEL --task T --output DIR; options: fetal-bench models list --json.")


@models.command("info")
@click.argument("checkpoint")
@click.option("--revision", default=None, help="Hub branch, tag or commit (or write org/name@revision).")
@click.option("--json", "as_json", is_flag=True, help="Print the checkpoint's config.json and where it was read.")
def info_command(checkpoint: str, revision: str | None, as_json: bool) -> None:
    """What a checkpoint holds: a directory, or a Hub repository org/name[@revision] (from the
    Hub cache when HF_HUB_OFFLINE=1). Nothing is built or loaded."""
    from fetal_bench.models import read_checkpoint

    recorded = read_checkpoint(checkpoint, revision)
    if as_json:
        click.echo(json.dumps({"source": recorded.source, "revision": recorded.revision,
                               "directory": str(recorded.directory), "config": recorded.config}, indent=2))
        return
    table = Table(title=f"checkpoint {safe(recorded.reference, limit=200)}", show_header=False)
    table.add_column("field", no_wrap=True)
    table.add_column("value", overflow="fold")
    for field, value in _info_rows(recorded):
        table.add_row(field, safe(value, limit=500))
    console.print(table)


def _info_rows(recorded) -> list[tuple[str, object]]:
    spec, training, base = recorded.spec, recorded.training, recorded.base or {}
    weights = {"full": "every tensor (model.safetensors)",
               "adapter": f"LoRA adapter + head (PEFT) on {base.get('name', '?')}, base sha256 {base.get('sha256', '?')}"}
    rows: list[tuple[str, object]] = [("model", recorded.model), ("weights", weights[recorded.weights]),
                                      ("format", recorded.format_version), ("fetal-bench", recorded.fetal_bench_version),
                                      ("run", recorded.run_name)]
    if spec is not None:
        rows += [("task type", spec.task_type), ("labels", ", ".join(spec.labels)),
                 ("input", f"{spec.image_size[0]}x{spec.image_size[1]}, {spec.channels} channel(s)")]
    best = training.get("best_metric") if isinstance(training.get("best_metric"), dict) else {}
    rows += [("trained on", training.get("task")), ("training data", training.get("training_data")),
             ("best", f"{best.get('name')} = {best.get('value')}" if best else None)]
    if recorded.revision:
        rows.append(("files", recorded.directory))
    return [(name, value) for name, value in rows if value is not None]


@models.command("calibrate")
@click.argument("checkpoint", type=click.Path(exists=True, file_okay=False))
@click.option("--data", required=True, help="The build the model was trained on (a local directory or Hub id).")
@click.option("--config", default=None, help="Dataset config (e.g. head for the phantom set).")
@click.option("--split", default="train", show_default=True,
              help="A training split: fitted on a split it is scored on, the offset would leak the answer.")
@click.option("--target", type=click.Choice(["reference_mask", "reference_hc"]), default="reference_mask",
              show_default=True,
              help="reference_mask: masks measure what the drawn reference masks measure (best Dice); "
                   "reference_hc: the ellipses measure the reference head circumference (best HC).")
@click.option("--flip-average", is_flag=True, help="Average the logits with those of the mirrored image, here and after.")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True)
def calibrate_command(checkpoint: str, data: str, config: str | None, split: str, target: str,
                      flip_average: bool, batch_size: int) -> None:
    """Fit the head-ellipse post-processing of segmentation CHECKPOINT on a training split.

    Masks become the ellipse fitted to the 0.5-probability contour, widened or narrowed by an
    offset fitted here; both are saved in the checkpoint's config.json (weights unchanged), so
    every later `evaluate --model` and `predict` applies them.
    """
    from fetal_bench.models.seg_postprocess import calibrate_checkpoint

    postprocess = calibrate_checkpoint(checkpoint, data, split=split, config=config, target=target,
                                       flip_average=flip_average, batch_size=batch_size,
                                       log=lambda message: console.print(safe(message)))
    console.print(f"Saved in {safe(checkpoint)}/config.json: ellipse offset {postprocess['offset_px']:+.3f} px "
                  f"({postprocess['calibration']['n_images']} {safe(split)} images, target {target}"
                  + (", flip-averaged" if flip_average else "") + ").", highlight=False)


@models.command("push")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option("--repo-id", required=True, help="Hub model repository, e.g. my-org/fetal-unet.")
@click.option("--tag", default=None, help="Tag the commit (e.g. v1); an existing tag is refused.")
@click.option("--private", is_flag=True, help="Create the repository as private.")
@click.option("--token", default=None, envvar="HF_TOKEN", help="Hub token (default: HF_TOKEN or the saved login).")
@click.option("--result", "result_files", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="A result file of this checkpoint (`fetal-bench evaluate --model ... --checkpoint DIRECTORY`): "
                   "its scores go into the card's model-index. Repeatable.")
@click.option("--license", "license_id", default=None,
              help="Hub licence id of the weights (default: the training dataset's licence).")
def push_command(directory: str, repo_id: str, tag: str | None, private: bool, token: str | None,
                 result_files: tuple[str, ...], license_id: str | None) -> None:
    """Publish the checkpoint in DIRECTORY (config.json, weights, model card; not the run's logs).

    The card is written again first: licence, training datasets, pipeline tag, the scores of
    each --result as a model-index, and usage that names REPO_ID.
    """
    from fetal_bench.evaluation.model_submission import checkpoint_results
    from fetal_bench.models.checkpoint import push_checkpoint

    results = checkpoint_results(directory, result_files)
    commit, _ = push_checkpoint(directory, repo_id, tag=tag, private=private, token=token, results=results,
                                license=license_id)
    console.print(f"Pushed {safe(directory)} to {safe(repo_id)} at commit {safe(commit)}"
                  + (f", tag {safe(tag)}" if tag else "") + ".")
    where = f"{repo_id}@{tag}" if tag else repo_id
    console.print(f"Evaluate it with: fetal-bench evaluate --task TASK --model MODEL --checkpoint {safe(where)}",
                  highlight=False)
