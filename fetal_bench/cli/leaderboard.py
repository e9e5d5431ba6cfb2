"""`fetal-bench leaderboard ...`: build the static site; check result files before a pull request."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from fetal_bench.cli._console import console, err_console, safe


@click.group()
def leaderboard() -> None:
    """The leaderboard website: built from a folder of result files."""


def _print_invalid(invalid) -> None:
    # safe(): paths and reasons quote result files, whose text must be printed literally.
    for item in invalid:
        err_console.print(f"Invalid: {safe(item.path)}: {safe(item.reason)}", style="red", highlight=False,
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
            # safe(): names come from result files; a str cell is read as rich markup.
            table.add_row(safe(task.name), str(task.ranked), str(task.flagged), str(task.invalid),
                          safe(", ".join(task.leaders) or "-"))
    console.print(table)
    _print_invalid(summary.invalid)
    console.print(f"{summary.n_valid} valid, {len(summary.invalid)} invalid result file(s); "
                  f"{len(summary.synthetic)} synthetic dataset page(s).", highlight=False)
    console.print(f"Open {safe(summary.index)} in a browser.", highlight=False)
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
    from fetal_bench.leaderboard import build_boards
    from fetal_bench.leaderboard.loading import find_result_files, load_result_files

    # Files and folders are checked together, as one leaderboard would see them; nothing is
    # copied first (copying would read a FIFO or /dev/zero that the reader refuses unread).
    files: list[tuple[str, Path]] = []
    for path in paths:
        if path.is_dir():
            files += [(str(path / rel), found) for rel, found in find_result_files(path)]
        else:
            files.append((str(path), path))
    loaded = load_result_files(files)

    flagged = {row.entry.path: board.reasons for boards in build_boards(loaded.entries, include_registry=False)
               for board in boards.variants for row in board.rows}
    for entry in loaded.entries:
        if entry.path in flagged:
            reasons = safe("; ".join(flagged[entry.path]))
            console.print(f"OK (shown apart, not comparable: {reasons}): {safe(entry.path)}",
                          style="yellow", highlight=False, soft_wrap=True)
        else:
            console.print(f"OK: {safe(entry.path)} ({safe(entry.task)}, {safe(repr(entry.name))})", style="green",
                          highlight=False, soft_wrap=True)
    _print_invalid(loaded.invalid)
    if loaded.invalid:
        raise SystemExit(1)
