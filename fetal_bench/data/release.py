"""The release pipeline behind `dataset_scripts/`: download -> build -> validate -> push/tag.

A release is refused unless the built dataset passes its checks: the expected number of rows
per split (from the official release), no subject shared between splits, and no build
warning (a partial raw download must never be published).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from fetal_bench.data.builders import build_dataset
from fetal_bench.data.catalog import get_dataset_info
from fetal_bench.data.download import download_dataset
from fetal_bench.data.report import dataset_report
from fetal_bench.errors import DataError, FetalBenchError


@dataclass(frozen=True)
class ReleaseCheck:
    """What a correct build of a dataset must hold.

    ``rows``: per config, the exact row count of each listed split; ``total_rows``: per config,
    the row count over all splits (for splits whose sizes follow from a hash rule).
    """

    rows: Mapping[str, Mapping[str, int]]
    total_rows: Mapping[str, int] | None = None
    allow_warnings: bool = False


def validate_build(directory: Path, check: ReleaseCheck, warnings: list[str]) -> None:
    problems = []
    if warnings and not check.allow_warnings:
        problems += [f"build warning: {w}" for w in warnings]
    for config, report in dataset_report(directory).items():
        for split, expected in check.rows.get(config, {}).items():
            if report.rows.get(split, 0) != expected:
                problems.append(f"config {config!r}, split {split!r}: {report.rows.get(split, 0)} rows, expected {expected}")
        total = (check.total_rows or {}).get(config)
        if total is not None and sum(report.rows.values()) != total:
            problems.append(f"config {config!r}: {sum(report.rows.values())} rows in all, expected {total}")
        for pair, shared in report.subject_overlap.items():
            problems.append(f"config {config!r}: {len(shared)} subjects shared by {pair}")
    if problems:
        raise DataError(
            f"{directory} is not fit for release:\n  - " + "\n  - ".join(problems),
            "Rebuild from the complete official download; never publish a partial or leaking build.",
        )


def release_dataset(
    name: str,
    workdir: str | os.PathLike,
    check: ReleaseCheck,
    *,
    push: bool = False,
    repo_id: str | None = None,
    tag: str | None = None,
    mirror: str | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """Run the whole pipeline in ``workdir`` (raw/ and built/ inside it); returns the build dir."""
    info = get_dataset_info(name)
    workdir = Path(workdir)
    raw, built = workdir / "raw", workdir / "built"
    log(f"[1/4] download {name} into {raw}")
    downloaded = download_dataset(name, raw, mirror=mirror)
    if getattr(downloaded, "unverified", None):  # a release publishes what it builds: only verified files
        raise FetalBenchError(
            f"{', '.join(p.name for p in downloaded.unverified)} could not be verified: fetal-bench pins no checksum "
            "for it and the md5 came from the mirror that served it.",
            "Release from files downloaded without --mirror (checked against zenodo.org's md5).")
    log(f"[2/4] build into {built}")
    result = build_dataset(name, built, raw_dir=raw, overwrite=True, progress=True)
    log("[3/4] validate")
    validate_build(built, check, result.warnings)
    if push:
        from fetal_bench.data.publish import push_dataset

        repo_id = repo_id or info.hub_id
        tag = tag or info.revision
        log(f"[4/4] push to {repo_id} as {tag}")
        record = push_dataset(built, repo_id, tag)
        log(f"      {record.repo_id}@{record.tag} = commit {record.commit}")
    else:
        log("[4/4] push skipped (pass --push to publish)")
    return built
