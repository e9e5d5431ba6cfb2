"""`fetal-bench models list`."""

from __future__ import annotations

import json

import click
from rich.table import Table

from fetal_bench.cli._console import console


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
    table = Table(title="fetal-bench models", show_lines=True)
    table.add_column("model", no_wrap=True)
    for column in ("task", "description", "pretrained weights"):
        table.add_column(column, overflow="fold")
    for info in infos:
        table.add_row(info.name, info.task_type, info.description, info.weights)
    console.print(table)
    console.print("Train: fetal-bench train MODEL --task T --output DIR; options: fetal-bench models list --json.")
