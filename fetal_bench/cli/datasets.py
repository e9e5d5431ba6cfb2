"""`fetal-bench datasets ...`: list, info, download, build, push."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.table import Table

from fetal_bench.cli._console import console, print_listing, safe


@click.group()
def datasets() -> None:
    """Real and simulated fetal ultrasound datasets: catalog, download, build, inspect, publish."""


def _human_size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000:
            return f"{n:.0f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


@datasets.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the catalog as JSON.")
def list_command(as_json: bool) -> None:
    """The dataset catalog: Hub ids, pinned revisions, licences, official sources."""
    from dataclasses import asdict

    from fetal_bench.data.catalog import list_datasets

    infos = list_datasets()
    if as_json:
        click.echo(json.dumps([asdict(info) for info in infos], indent=2))
        return
    rows = []
    for info in infos:
        hub = f"{info.hub_id} @ {info.revision}" if info.hub_id else "(built locally: not published)"
        if info.simulated:
            sources = "generated in-process (simulated)"
        else:
            sources = "\n".join(
                f"{s.filename} ({_human_size(s.size)}{'' if s.required else ', optional'})" for s in info.sources
            )
            if info.zenodo_record:
                sources += f"\nZenodo {info.zenodo_record}"
        licence = info.license + (" (non-commercial)" if info.non_commercial else "")
        rows.append([safe(info.name), safe(hub), safe(licence), safe(sources), safe(", ".join(info.splits))])
    print_listing("fetal-bench datasets", ["name", "Hub id @ revision", "licence", "official sources", "splits"], rows)


@datasets.command("info")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def info_command(directory: Path, as_json: bool) -> None:
    """Report on a built dataset: counts per split/label/group, image sizes, duplicates, leaks."""
    from fetal_bench.data.report import dataset_report

    reports = dataset_report(directory)
    if as_json:
        click.echo(json.dumps({name: report.to_dict() for name, report in reports.items()}, indent=2))
    else:
        for report in reports.values():
            _print_report(directory, report)
        _print_release_matches(directory)
    if not all(report.ok for report in reports.values()):
        raise SystemExit(1)


def _print_report(directory: Path, report) -> None:
    splits = list(report.rows)
    # Split, label, group and id names come from the dataset's files: all printed through safe().
    table = Table(title=safe(f"{directory} [{report.name}]"))
    table.add_column("")
    for split in splits:
        table.add_column(safe(split), justify="right")
    table.add_row("rows", *[str(report.rows[s]) for s in splits])
    if report.subject_column:
        table.add_row(f"{safe(report.subject_column)}s", *[str(report.subjects.get(s, "")) for s in splits])
    labels = sorted({label for counts in report.labels.values() for label in counts})
    for label in labels:
        table.add_row(f"label: {safe(label)}", *[str(report.labels[s].get(label, 0)) for s in splits])
    for column, by_split in report.groups.items():
        values = sorted({value for counts in by_split.values() for value in counts})
        for value in values:
            table.add_row(f"{safe(column)}: {safe(value)}", *[str(by_split.get(s, {}).get(value, 0)) for s in splits])
    for split in splits:
        sizes = report.image_sizes.get(split, {})
        if sizes:
            top = ", ".join(f"{size} ×{n}" for size, n in list(sizes.items())[:3])
            more = f" (+{len(sizes) - 3} other sizes)" if len(sizes) > 3 else ""
            table.caption = (table.caption or "") + safe(f"{split} image sizes: {top}{more}") + "\n"
    console.print(table)
    if report.duplicate_images:
        shown = "; ".join(" = ".join(ids) for ids in report.duplicate_images[:5])
        console.print(f"[yellow]{len(report.duplicate_images)} group(s) of identical images:[/] {safe(shown)}")
    else:
        console.print("No duplicate images.")
    if report.subject_overlap:
        for pair, shared in report.subject_overlap.items():
            console.print(f"[bold red]Subjects shared by {safe(pair)}:[/] {len(shared)} (e.g. {safe(', '.join(shared[:5]))})")
    elif report.subject_column:
        console.print(f"No {safe(report.subject_column)} is shared between splits.")


@datasets.command("download")
@click.argument("name")
@click.option("--to", "to_dir", required=True, type=click.Path(path_type=Path), help="Directory for the raw files.")
@click.option("--mirror", default=None, help="Base URL replacing https://zenodo.org (a mirror).")
@click.option("--no-optional", is_flag=True, help="Skip optional files (e.g. HC18's unlabelled test set).")
def download_command(name: str, to_dir: Path, mirror: str | None, no_optional: bool) -> None:
    """Download the official raw files of dataset NAME, verify checksums, extract archives."""
    from fetal_bench.data.download import download_dataset

    paths = download_dataset(name, to_dir, include_optional=not no_optional, mirror=mirror)
    # "verified" only for what a checksum fetal-bench pins (or zenodo.org publishes) vouches for;
    # through a mirror, a file without a pin was checked against the mirror's own md5.
    checked = [p for p in paths if paths.trust.get(p) != "mirror"]
    pinned = [p for p in checked if paths.trust.get(p) == "pinned"]
    if checked:
        console.print(f"Downloaded and verified {len(checked)} file(s) into {safe(to_dir)}"
                      + (" against the checksums fetal-bench pins." if len(pinned) == len(checked) else ":"),
                      highlight=False)
        for path in checked:
            if paths.trust.get(path) != "pinned":
                console.print(f"  {safe(path.name)}: against the md5 that {safe(paths.origin[path])} publishes "
                              "(fetal-bench pins no checksum for it).", highlight=False)
    for path in paths.unverified:
        console.print(f"[yellow]NOT verified:[/] {safe(path)}: fetal-bench pins no checksum for it, and the md5 it "
                      f"matches came from the mirror that served it ({safe(mirror)}'s copy of {safe(paths.origin[path])}). "
                      "Compare its md5 "
                      "with the one the official record lists before relying on it.", highlight=False)
    if name != "phantom":
        console.print(f"Next: fetal-bench datasets build {safe(name)} --raw {safe(to_dir)} --out OUT_DIR")


def _builder_option_flags(command):
    """Add a flag for every dataset-specific build option the catalog declares."""
    from fetal_bench.data.catalog import CATALOG

    seen = set()
    for info in reversed(list(CATALOG.values())):
        for option in reversed(info.build_options):
            if option.name in seen:
                continue
            seen.add(option.name)
            help_text = f"({info.name}) {option.help}"
            if option.kind == "flag":
                command = click.option(option.flag, option.name, is_flag=True, default=False, help=help_text)(command)
            elif option.kind == "float":
                command = click.option(option.flag, option.name, type=float, default=None,
                                       help=f"{help_text} Default: {option.default}.")(command)
            else:
                command = click.option(option.flag, option.name, type=click.Choice(list(option.choices)), default=None,
                                       help=f"{help_text} Default: {option.default}.")(command)
    return command


@datasets.command("build")
@click.argument("name")
@click.option("--raw", "raw_dir", type=click.Path(path_type=Path), default=None,
              help="The extracted official download (not needed for phantom).")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Output dataset directory.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output directory.")
@_builder_option_flags
def build_command(name: str, raw_dir: Path | None, out_dir: Path, overwrite: bool, **builder_options) -> None:
    """Build dataset NAME from its official raw layout into a Parquet + card directory."""
    import time

    from fetal_bench.cli._console import err_console
    from fetal_bench.data.builders import build_dataset

    # Only the options given on the command line reach the builder (a flag left off is False).
    options = {key: value for key, value in builder_options.items() if value is not None and value is not False}
    start = time.perf_counter()
    result = build_dataset(name, out_dir, raw_dir=raw_dir, overwrite=overwrite, progress=True, **options)
    for warning in result.warnings:
        err_console.print(f"[yellow]Warning:[/] {safe(warning, limit=5000)}", highlight=False)
    table = Table(title=f"{safe(name)} -> {safe(out_dir)}")
    for column in ("config", "split", "rows", "rows per label"):
        table.add_column(column)
    for config, splits in result.configs.items():
        for split, summary in splits.items():
            per_label = ", ".join(f"{label} {n}" for label, n in summary.label_counts.items())
            table.add_row(safe(config), safe(split), str(summary.num_examples), safe(per_label))
    console.print(table)
    console.print(f"Built in {time.perf_counter() - start:.1f} s; files fingerprint {result.fingerprint[:16]} "
                  "(sha256 over the Parquet files).", highlight=False)
    _print_release_matches(out_dir)
    console.print(f'Load it with: datasets.load_dataset("{safe(out_dir)}")', highlight=False)


def _print_release_matches(directory: Path) -> None:
    """Whether the build is a published revision, by content (the catalog's pins): "Content:
    matches hc18 v1.0 ..." or which split differs."""
    from fetal_bench.data.provenance import build_release_matches

    for match in build_release_matches(directory):
        console.print(("[green]" if match.matches else "[yellow]") + safe(match.line) + "[/]", highlight=False,
                      soft_wrap=True)


@datasets.command("push")
@click.argument("directory", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--repo-id", required=True, help="Hub dataset repo, e.g. fetal-bench/hc18.")
@click.option("--tag", required=True, help="Version tag for this revision, e.g. v1.0.")
@click.option("--private", is_flag=True, help="Create the repo as private.")
@click.option("--token", default=None, envvar="HF_TOKEN", help="Hub token (default: HF_TOKEN or the saved login).")
def push_command(directory: Path, repo_id: str, tag: str, private: bool, token: str | None) -> None:
    """Publish a built dataset DIRECTORY to the Hub and tag the commit."""
    from fetal_bench.data.publish import push_dataset

    record = push_dataset(directory, repo_id, tag, private=private, token=token)
    console.print(f"Pushed {safe(directory)} to {safe(record.repo_id)}; tag {safe(record.tag)} -> commit {safe(record.commit)}.")
    console.print(f'Load it with: datasets.load_dataset("{safe(record.repo_id)}", revision="{safe(record.tag)}")',
                  highlight=False)
