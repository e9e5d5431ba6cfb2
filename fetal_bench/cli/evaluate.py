"""`fetal-bench tasks list` and `fetal-bench evaluate`."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.table import Table

from fetal_bench.cli._console import console


@click.group()
def tasks() -> None:
    """Benchmark tasks."""


@tasks.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the tasks as JSON.")
def tasks_list(as_json: bool) -> None:
    """The registered tasks: data, split, metrics, main score, groups."""
    from fetal_bench.tasks import list_tasks

    if as_json:
        click.echo(json.dumps([task.to_dict() for task in list_tasks()], indent=2))
        return
    table = Table(title="fetal-bench tasks", show_lines=True)
    table.add_column("task", no_wrap=True)
    for column in ("data @ revision [split]", "type", "main score", "groups"):
        table.add_column(column, overflow="fold")
    for task in list_tasks():
        config = f"/{task.dataset.config}" if task.dataset.config else ""
        arrow = "↑" if task.higher_is_better else "↓"
        table.add_row(f"{task.name} v{task.version}", f"{task.dataset.name}{config} @ {task.dataset.revision} [{task.eval_split}]",
                      task.type, f"{task.main_score} {arrow}", ", ".join(task.group_by) or "-")
    console.print(table)
    console.print("Descriptions and protocols: `fetal-bench tasks list --json`, or docs/tasks.md.")


def _fmt(entry: dict) -> str:
    if entry.get("value") is None:
        return f"n/a ({entry.get('reason', '')})"
    low, high = entry["ci95"]
    interval = "" if low is None else f" [{low:.4g}, {high:.4g}]"
    return f"{entry['value']:.4g}{interval}"


def print_result(result: dict) -> None:
    scores = result["scores"]
    table = Table(title=f"{result['task']} — {result['submission']['name']} ({result['n_samples']} images, "
                        f"{result['n_subjects']} {result['bootstrap']['unit']}s)")
    table.add_column("metric")
    table.add_column("value [95% CI]", justify="right")
    for metric, entry in scores.items():
        if metric == "main_score":
            continue
        label = f"[bold]{metric}[/] (main)" if metric == scores["main_score"] else metric
        table.add_row(label, _fmt(entry))
    console.print(table)
    main = scores["main_score"]
    for column, groups in result.get("groups", {}).items():
        group_table = Table(title=f"by {column}")
        group_table.add_column(column)
        group_table.add_column("n", justify="right")
        group_table.add_column(f"{main} [95% CI]", justify="right")
        for value, entry in groups["values"].items():
            group_table.add_row(value, str(entry["n_samples"]), _fmt(entry["scores"][main]))
        console.print(group_table)
        if groups.get("worst") is not None:
            console.print(f"worst {column}: {groups['worst']}; best: {groups['best']}; gap {groups['gap']:.4g}")
    for note in result.get("notes", []):
        console.print(f"[yellow]Note:[/] {note}")


@click.command()
@click.option("--task", "task_name", required=True, help="Task name (`fetal-bench tasks list`).")
@click.option("--predictions", type=click.Path(path_type=Path), default=None,
              help="Predictions: CSV/Parquet (classification) or a directory of <id>.png / a Parquet (segmentation).")
@click.option("--model", default=None, help="A registered model (`fetal-bench models list`) to run instead.")
@click.option("--checkpoint", type=click.Path(path_type=Path), default=None, help="The model's checkpoint directory.")
@click.option("--data", default=None, help="A local dataset build or a Hub id (default: the task's pinned dataset).")
@click.option("--split", default=None, help="Score another split than the task's (e.g. validation).")
@click.option("--output", type=click.Path(path_type=Path), default=None, help="Directory (or .json path) for the result file.")
@click.option("--name", default=None, help="Submission name shown on the leaderboard.")
@click.option("--training-data", type=click.Choice(["real", "synthetic", "hybrid", "none"]), default=None,
              help="What the submission was trained on.")
@click.option("--synthetic-share", type=float, default=None, help="Fraction of synthetic training images (0-1).")
@click.option("--description", default=None, help="One line describing the submission.")
@click.option("--bootstrap", "n_resamples", type=click.IntRange(10, 100_000), default=1000, show_default=True,
              help="Bootstrap resamples for the 95% intervals.")
@click.option("--seed", type=int, default=0, show_default=True, help="Bootstrap seed.")
@click.option("--batch-size", type=click.IntRange(1), default=32, show_default=True, help="Batch size for --model.")
@click.option("--device", default=None, help="Device for --model (default: cuda if available, else cpu).")
@click.option("--validate-only", is_flag=True, help="Check the submission and stop; nothing is scored or written.")
def evaluate(task_name, predictions, model, checkpoint, data, split, output, name, training_data, synthetic_share,
             description, n_resamples, seed, batch_size, device, validate_only) -> None:
    """Score a submission on a task; print the scores and write a result file."""
    from fetal_bench.errors import FetalBenchError
    from fetal_bench.evaluation import evaluate as run

    if output is None and not validate_only:
        raise FetalBenchError("--output is required to score a submission.", "Pass --output DIR (or --validate-only).")
    result = run(task_name, predictions=predictions, model=model, checkpoint=checkpoint, data=data, split=split,
                 output=output, name=name, training_data=training_data, synthetic_share=synthetic_share,
                 description=description, n_resamples=n_resamples, seed=seed, batch_size=batch_size, device=device,
                 validate_only=validate_only, log=lambda message: console.print(message, highlight=False))
    if validate_only:
        console.print(f"[green]Valid[/]: the submission covers all {result['n_samples']} rows of {task_name}.")
        return
    print_result(result)
    console.print(f"Result file: {result['_path']}")
