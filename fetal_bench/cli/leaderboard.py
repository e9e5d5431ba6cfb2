"""`fetal-bench leaderboard ...`: build the static site; check result files before a pull request."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table
from rich.text import Text

from fetal_bench.cli._console import console, err_console


@click.group()
def leaderboard() -> None:
    """The leaderboard website: built from a folder of result files."""


def _print_invalid(invalid) -> None:
    # markup=False: paths and reasons quote result files, whose text must not be read as rich markup.
    for item in invalid:
        err_console.print(f"Invalid: {item.path}: {item.reason}", style="red", highlight=False, markup=False,
                          soft_wrap=True)


@leaderboard.command("build")
@click.option("--results", "results_dir", required=True, type=click.Path(path_type=Path, file_okay=False),
              help="Folder of result JSON files (searched recursively), e.g. leaderboard/results.")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path),
              help="Site folder to write; replaced as a whole if it is a site built before.")
@click.option("--synthetic", "synthetic_dirs", multiple=True, type=click.Path(path_type=Path, exists=True),
              help="A built synthetic dataset folder (or a folder of them) to give a page; repeatable.")
@click.option("--timestamp/--no-timestamp", default=True, show_default=True,
              help="Print the build time in the footer (honours SOURCE_DATE_EPOCH); --no-timestamp makes "
                   "the output depend on the inputs only.")
@click.option("--strict", is_flag=True, help="Exit with status 1 when any result file is invalid.")
def build_command(results_dir: Path, out_dir: Path, synthetic_dirs: tuple[Path, ...], timestamp: bool,
                  strict: bool) -> None:
    """Build the static leaderboard site from the result files in --results."""
    from fetal_bench.leaderboard import build_site

    summary = build_site(results_dir, out_dir, synthetic_dirs=synthetic_dirs, build_timestamp=timestamp)
    table = Table(title=f"Leaderboard -> {out_dir}")
    table.add_column("task")
    for column in ("ranked", "not comparable", "invalid"):
        table.add_column(column, justify="right")
    table.add_column("leader")
    for task in summary.tasks:
        if task.ranked or task.flagged or task.invalid:
            # Text(): names come from result files; a plain str cell would be parsed as rich markup.
            table.add_row(Text(task.name), str(task.ranked), str(task.flagged), str(task.invalid),
                          Text(", ".join(task.leaders) or "-"))
    console.print(table)
    _print_invalid(summary.invalid)
    console.print(f"{summary.n_valid} valid, {len(summary.invalid)} invalid result file(s); "
                  f"{len(summary.synthetic)} synthetic dataset page(s).", highlight=False)
    console.print(f"Open {summary.index} in a browser.", highlight=False, markup=False)
    if strict and summary.invalid:
        raise SystemExit(1)


@leaderboard.command("check")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path, exists=True))
def check_command(paths: tuple[Path, ...]) -> None:
    """Validate result files (or folders of them) as the leaderboard will; exit 1 if any is invalid.

    Run it on a result file before opening a pull request: it applies the schema, the strict JSON
    rules and the duplicate-predictions check, and says whether each result would be ranked with
    the others in its folder or shown apart as not comparable.
    """
    import shutil
    import tempfile

    from fetal_bench.leaderboard import build_boards, load_results

    # Files and folders are checked together, as one leaderboard would see them.
    with tempfile.TemporaryDirectory(prefix="fetal-bench-check-") as tmp:
        for index, path in enumerate(paths):
            target = Path(tmp) / f"{index:03d}"
            if path.is_dir():
                shutil.copytree(path, target)
            else:
                target.mkdir()
                shutil.copy2(path, target / path.name)
        loaded = load_results(tmp)

    def original(rel: str) -> str:
        index, _, rest = rel.partition("/")
        source = paths[int(index)]
        return str(source / rest) if source.is_dir() else str(source)

    flagged = {row.entry.path: board.reasons for boards in build_boards(loaded.entries, include_registry=False)
               for board in boards.variants for row in board.rows}
    for entry in loaded.entries:
        where = original(entry.path)
        if entry.path in flagged:
            console.print(f"OK (shown apart, not comparable: {'; '.join(flagged[entry.path])}): {where}",
                          style="yellow", highlight=False, markup=False, soft_wrap=True)
        else:
            console.print(f"OK: {where} ({entry.task}, {entry.name!r})", style="green", highlight=False,
                          markup=False, soft_wrap=True)
    for item in loaded.invalid:
        err_console.print(f"Invalid: {original(item.path)}: {item.reason}",
                          style="red", highlight=False, markup=False, soft_wrap=True)
    if loaded.invalid:
        raise SystemExit(1)
