"""Command-line wrapper shared by the per-dataset release scripts."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from fetal_bench.data.release import ReleaseCheck, release_dataset
from fetal_bench.errors import FetalBenchError


def run(name: str, check: ReleaseCheck) -> None:
    @click.command(help=f"Download, build, validate and (with --push) publish the {name} dataset.")
    @click.option("--workdir", required=True, type=click.Path(path_type=Path), help="Holds raw/ and built/.")
    @click.option("--push", is_flag=True, help="Publish to the Hub and tag the commit.")
    @click.option("--repo-id", default=None, help="Override the catalog's Hub repo id.")
    @click.option("--tag", default=None, help="Override the catalog's pinned revision.")
    @click.option("--mirror", default=None, help="Base URL replacing https://zenodo.org.")
    def main(workdir: Path, push: bool, repo_id: str | None, tag: str | None, mirror: str | None) -> None:
        try:
            built = release_dataset(name, workdir, check, push=push, repo_id=repo_id, tag=tag, mirror=mirror)
        except FetalBenchError as error:
            click.echo(f"Error: {error}", err=True)
            sys.exit(2)
        click.echo(f"Release build of {name}: {built}")

    main()
