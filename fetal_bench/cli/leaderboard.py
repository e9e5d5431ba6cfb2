"""`fetal-bench leaderboard ...`: build the static site, check result files, re-score old results."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from fetal_bench.cli._console import console, err_console, safe
from fetal_bench.errors import FetalBenchError

# Exit status when a result file was refused (its numbers are not what its predictions score,
# or it contradicts the registry): the CLI's usual status for a problem the user must fix.
REFUSED_EXIT = 2


@click.group()
def leaderboard() -> None:
    """The leaderboard website: built from result files, each verified from its predictions."""


def _data_sources(values: tuple[str, ...]) -> dict[str, str]:
    sources: dict[str, str] = {}
    for value in values:
        name, sep, source = value.partition("=")
        if not sep or not name.strip() or not source.strip():
            raise FetalBenchError(f"--data {value!r} is not NAME=DIR.",
                                  "Name the dataset and its build, e.g. --data hc18=data/hc18.")
        if name in sources:
            raise FetalBenchError(f"--data names {name!r} twice.", "Give one build per dataset.")
        sources[name.strip()] = source.strip()
    return sources


_RESULTS = click.option("--results", "results_dirs", required=True, multiple=True,
                        type=click.Path(path_type=Path, file_okay=False),
                        help="Folder of result JSON files (searched recursively); repeatable, merged, e.g. "
                             "--results leaderboard/results --results mine.")
_PREDICTIONS = click.option("--predictions", "predictions", multiple=True, type=click.Path(path_type=Path, exists=True),
                            help="A file or folder holding the results' predictions (found by sha256); repeatable. "
                                 "Each results folder and its sibling predictions/ are searched anyway.")
_DATA = click.option("--data", "data", multiple=True, metavar="NAME=DIR",
                     help="The build (or Hub id) of dataset NAME to score on, e.g. hc18=data/hc18; repeatable. "
                          "Default: the catalog's source (the phantom set is built in-process).")


def _print_verdicts(verdicts) -> None:
    # safe(): paths and reasons quote result files, whose text must be printed literally.
    for path, line in verdicts:
        style = "green" if line == "ranked" else "red" if line.startswith("refused") else "yellow"
        console.print(f"{safe(path)}: {safe(line)}", style=style, highlight=False, soft_wrap=True)


@leaderboard.command("build")
@_RESULTS
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path),
              help="Site folder to write; replaced as a whole if it is a site built before.")
@_PREDICTIONS
@_DATA
@click.option("--verify/--no-verify", default=True, show_default=True,
              help="Score every result again from its predictions before ranking it; --no-verify ranks nothing.")
@click.option("--synthetic", "synthetic_dirs", multiple=True, type=click.Path(path_type=Path, exists=True),
              help="A built synthetic dataset folder (or a folder of them) to give a page; repeatable.")
@click.option("--timestamp/--no-timestamp", default=True, show_default=True,
              help="Print the build time in the footer (honours SOURCE_DATE_EPOCH); --no-timestamp makes "
                   "the output depend on the inputs only.")
@click.option("--strict", is_flag=True, help="Exit with status 1 when any result file is invalid.")
def build_command(results_dirs: tuple[Path, ...], out_dir: Path, predictions: tuple[Path, ...],
                  data: tuple[str, ...], verify: bool, synthetic_dirs: tuple[Path, ...], timestamp: bool,
                  strict: bool) -> None:
    """Build the static leaderboard site from the result files in --results.

    Every result is scored again from its predictions; one whose numbers differ is refused
    (exit 2) and shown in no ranking.
    """
    from fetal_bench.leaderboard import build_site

    summary = build_site(results_dirs, out_dir, predictions=predictions, data=_data_sources(data), verify=verify,
                         synthetic_dirs=synthetic_dirs, build_timestamp=timestamp)
    table = Table(title=f"Leaderboard -> {safe(out_dir)}")
    table.add_column("task")
    for column in ("ranked", "not comparable", "unverified", "invalid"):
        table.add_column(column, justify="right")
    table.add_column("leader (and not distinguishable from #1)")
    for task in summary.tasks:
        if task.ranked or task.flagged or task.invalid or task.unverified:
            # safe(): names come from result files; a str cell is read as rich markup.
            table.add_row(safe(task.name), str(task.ranked), str(task.flagged), str(task.unverified),
                          str(task.invalid), safe(", ".join(task.indistinguishable) or "-"))
    console.print(table)
    _print_verdicts(summary.verdicts)
    console.print(f"{summary.n_valid} valid, {len(summary.invalid)} invalid or refused result file(s); "
                  f"{len(summary.synthetic)} synthetic dataset page(s).", highlight=False)
    console.print(f"Open {safe(summary.index)} in a browser.", highlight=False)
    if summary.refused:
        err_console.print(f"Error: {len(summary.refused)} result file(s) refused: their numbers are not what their "
                          "predictions score, or they contradict the task registry.", style="red", highlight=False)
        raise SystemExit(REFUSED_EXIT)
    if strict and summary.invalid:
        raise SystemExit(1)


@leaderboard.command("check")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path, exists=True))
@_PREDICTIONS
@_DATA
def check_command(paths: tuple[Path, ...], predictions: tuple[Path, ...], data: tuple[str, ...]) -> None:
    """Check result files (or folders of them) as the leaderboard will, before a pull request.

    Says per file "ranked", "shown apart (why)" or "refused (why)": schema, strict JSON, the
    registry and the catalog's pinned content, repeated predictions, and the scores computed
    again from the predictions. Exit 2 when a file is refused, 1 when one is invalid.
    """
    from fetal_bench.leaderboard import build_boards
    from fetal_bench.leaderboard.loading import find_result_files, load_result_files
    from fetal_bench.leaderboard.site import _check_lines, default_predictions
    from fetal_bench.leaderboard.verify import Verifier, verify_all

    # Files and folders are checked together, as one leaderboard would see them; nothing is
    # copied first (copying would read a FIFO or /dev/zero that the reader refuses unread).
    files: list[tuple[str, Path]] = []
    folders: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += [(str(path / rel), found) for rel, found in find_result_files(path)]
            folders.append(path)
        else:
            files.append((str(path), path))
            folders.append(path.parent)
    loaded = load_result_files(files)
    verifier = Verifier([*default_predictions(list(dict.fromkeys(folders))), *predictions], _data_sources(data))
    verdicts, refused = verify_all(loaded.entries, verifier)
    refused_paths = {item.path for item in refused}
    entries = [e for e in loaded.entries if e.path not in refused_paths]
    with_verified = {e.task for e in entries if verdicts[e.path].status == "verified"}
    boards = build_boards(entries, verdicts, include_registry=False, expected_fingerprint=lambda info: (
        verifier.expected_fingerprint(info.name) if info.name in with_verified else None))
    _print_verdicts(_check_lines(boards, verdicts, [*loaded.invalid, *refused]))
    if refused:
        raise SystemExit(REFUSED_EXIT)
    if loaded.invalid:
        raise SystemExit(1)


@leaderboard.command("rescore")
@click.argument("result", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--predictions", "predictions", required=True, type=click.Path(path_type=Path, exists=True),
              help="The predictions the result was scored on (checked by sha256).")
@_DATA
@click.option("--output", required=True, type=click.Path(path_type=Path),
              help="Folder (or .json path) for the re-scored result.")
def rescore_command(result: Path, predictions: Path, data: tuple[str, ...], output: Path) -> None:
    """Score an earlier result's predictions again on the task's current version.

    For a result written before a task version changed (HC18 1.0 ranked by Dice, 2.0 by the HC
    absolute difference) or before fetal-bench changed how an interval is computed: the
    submission's description, command and links are kept, the scores are new, and the file
    records which result it came from.
    """
    from fetal_bench._io import UnreadableFile, read_regular_file
    from fetal_bench.evaluation.rescore import rescore_result
    from fetal_bench.leaderboard.loading import MAX_RESULT_BYTES, parse_result_bytes

    try:
        raw = read_regular_file(result, max_bytes=MAX_RESULT_BYTES)
    except UnreadableFile as error:
        raise FetalBenchError(f"{result} {error.reason}.", "Pass a result JSON file written by fetal-bench evaluate.") \
            from None
    parsed = parse_result_bytes(raw, str(result))
    sources = _data_sources(data)
    written = rescore_result(parsed, raw, predictions, data=sources.get(parsed["dataset"]["name"]), output=output)
    main = written["scores"]["main_score"]
    console.print(f"{safe(written['task'])} {safe(written['task_version'])}: {safe(main)} = "
                  f"{written['scores'][main]['value']:.6g}", highlight=False)
    console.print(f"Result file: {safe(written['_path'])}", highlight=False)
