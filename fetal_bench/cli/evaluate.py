"""`fetal-bench tasks list` and `fetal-bench evaluate`."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.table import Table

from fetal_bench.cli._console import console, note, print_listing, safe
from fetal_bench.evaluation.results import TRAINING_DATA


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
    rows = []
    for task in list_tasks():
        config = f"/{task.dataset.config}" if task.dataset.config else ""
        arrow = "↑" if task.higher_is_better else "↓"
        groups = f"\nby {', '.join(task.group_by)}" if task.group_by else ""
        # safe(): "[test]" would otherwise be read as a markup tag and vanish.
        rows.append([safe(f"{task.name} v{task.version}"),
                     safe(f"{task.dataset.name}{config} @ {task.dataset.revision} [{task.eval_split}]"),
                     safe(f"{task.type}\n{task.main_score} {arrow}{groups}")])
    print_listing("fetal-bench tasks", ["task", "data @ revision [split]", "type, main score, groups"], rows,
                  footer="Descriptions and protocols: `fetal-bench tasks list --json`, or docs/tasks.md.")


def _fmt(entry: dict) -> str:
    if entry.get("value") is None:
        return f"n/a ({entry.get('reason', '')})"
    low, high = entry["ci95"]
    interval = "" if low is None else f" [{low:.4g}, {high:.4g}]"
    return f"{entry['value']:.4g}{interval}"


def print_result(result: dict) -> None:
    scores = result["scores"]
    # The submission name and group values come from outside: printed through safe().
    table = Table(title=f"{safe(result['task'])} — {safe(result['submission']['name'])} ({result['n_samples']} images, "
                        f"{result['n_subjects']} {safe(result['bootstrap']['unit'])}s)")
    table.add_column("metric")
    table.add_column("value [95% CI]", justify="right")
    for metric, entry in scores.items():
        if metric == "main_score":
            continue
        label = f"[bold]{safe(metric)}[/] (main)" if metric == scores["main_score"] else safe(metric)
        table.add_row(label, safe(_fmt(entry)))
    console.print(table)
    main = scores["main_score"]
    for column, groups in result.get("groups", {}).items():
        group_table = Table(title=f"by {safe(column)}")
        group_table.add_column(safe(column))
        group_table.add_column("n", justify="right")
        group_table.add_column(safe(f"{main} [95% CI]"), justify="right")
        for value, entry in groups["values"].items():
            group_table.add_row(safe(value), str(entry["n_samples"]), safe(_fmt(entry["scores"][main])))
        console.print(group_table)
        if groups.get("worst") is not None:
            console.print(safe(f"worst {column}: {groups['worst']}; best: {groups['best']}; gap {groups['gap']:.4g}"))
    for line in result.get("notes", []):
        console.print(f"[yellow]Note:[/] {safe(line, limit=5000)}")


@click.command()
@click.option("--task", "task_name", required=True, help="Task name (`fetal-bench tasks list`).")
@click.option("--predictions", type=click.Path(path_type=Path), default=None,
              help="Predictions: CSV/Parquet (classification) or a directory of <id>.png / a Parquet (segmentation).")
@click.option("--model", default=None, help="A registered model (`fetal-bench models list`) to run instead.")
@click.option("--checkpoint", default=None,
              help="The model's checkpoint: a directory, or a Hub repository org/name[@revision] (read from the "
                   "Hub cache when HF_HUB_OFFLINE=1).")
@click.option("--data", default=None, help="A local dataset build or a Hub id (default: the task's pinned dataset).")
@click.option("--split", default=None, help="Score another split than the task's (e.g. validation).")
@click.option("--output", type=click.Path(path_type=Path), default=None, help="Directory (or .json path) for the result file.")
@click.option("--name", default=None, help="Submission name shown on the leaderboard.")
@click.option("--training-data", type=click.Choice(TRAINING_DATA), default=None,
              help="What the submission was trained on.")
@click.option("--synthetic-share", type=float, default=None, help="Fraction of synthetic training images (0-1).")
@click.option("--description", default=None, help="One line describing the submission.")
@click.option("--bootstrap", "n_resamples", type=click.IntRange(10, 100_000), default=1000, show_default=True,
              help="Bootstrap resamples for the 95% intervals.")
@click.option("--seed", type=int, default=0, show_default=True, help="Bootstrap seed.")
@click.option("--batch-size", type=click.IntRange(1), default=32, show_default=True, help="Batch size for --model.")
@click.option("--device", default=None, help="Device for --model (default: cuda if available, else cpu).")
@click.option("--validate-only", is_flag=True, help="Check the submission and stop; nothing is scored or written.")
@click.option("--command", "command_line", default=None,
              help="The command that reproduces this result, recorded in the result file.")
@click.option("--save-predictions", type=click.Path(path_type=Path), default=None,
              help="With --model: also write its predictions as a submission (.csv, or .parquet of masks).")
@click.option("--paper-url", default=None, help="http(s) link to the submission's paper, shown on the leaderboard.")
@click.option("--code-url", default=None, help="http(s) link to the submission's code, shown on the leaderboard.")
@click.option("--zero-shot/--not-zero-shot", "zero_shot", default=None,
              help="Whether no image of the task's dataset was used for training (default: inferred from the task).")
def evaluate(task_name, predictions, model, checkpoint, data, split, output, name, training_data, synthetic_share,
             description, n_resamples, seed, batch_size, device, validate_only, command_line=None,
             save_predictions=None, paper_url=None, code_url=None, zero_shot=None) -> None:
    """Score a submission on a task; print the scores and write a result file."""
    import contextlib

    from fetal_bench._io import exclusive_lock
    from fetal_bench.errors import FetalBenchError
    from fetal_bench.evaluation import evaluate as run
    from fetal_bench.evaluation.results import check_result_output

    if output is None and not validate_only:
        raise FetalBenchError("--output is required to score a submission.", "Pass --output DIR (or --validate-only).")
    # Everything that would make the final write fail is checked before the (long) scoring, and
    # the result file is locked for the whole run: a second run writing the same file fails now.
    target = None
    if output is not None and not validate_only:
        default_name = name if name is not None else (Path(predictions).stem if predictions is not None else None)
        target = check_result_output(output, task_name, default_name)
    with exclusive_lock(target) if target is not None else contextlib.nullcontext():
        result = run(task_name, predictions=predictions, model=model, checkpoint=checkpoint, data=data, split=split,
                     output=output, name=name, training_data=training_data, synthetic_share=synthetic_share,
                     description=description, n_resamples=n_resamples, seed=seed, batch_size=batch_size,
                     device=device, validate_only=validate_only, command=command_line,
                     save_predictions=save_predictions, paper_url=paper_url, code_url=code_url,
                     zero_shot=zero_shot, log=note)
    if validate_only:
        console.print(f"[green]Valid[/]: the submission covers all {result['n_samples']} rows of {safe(task_name)}.")
        return
    print_result(result)
    console.print(f"Result file: {safe(result['_path'])}", highlight=False)
