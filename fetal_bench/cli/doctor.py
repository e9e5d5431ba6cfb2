"""`fetal-bench doctor`: the environment on one screen (or as JSON), for bug reports."""

from __future__ import annotations

import json

import click

_MAX_MISMATCHES_SHOWN = 8


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--lock", "lock_path", type=click.Path(dir_okay=False, exists=True),
              help="The lock file to compare with (default: requirements/lock.txt of this checkout).")
def doctor(as_json: bool, lock_path: str | None) -> None:
    """Versions, lock match, devices, offline flags, caches and reference weights: paste it into a bug report."""
    from fetal_bench.doctor import diagnose

    report = diagnose(lock_path)
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    _print(report)


def _print(report: dict) -> None:
    from rich.table import Table
    from rich.text import Text

    from fetal_bench.cli._console import console

    # Every value below comes from the environment (paths, variables, versions): Text, never markup.
    python = report["python"]
    console.print(Text(f"fetal-bench {report['fetal_bench']} on Python {python['version']} "
                       f"({python['implementation']}, {python['platform']})"))
    torch = report["torch"]
    devices = ", ".join(torch["devices"]) or "none"
    console.print(Text(f"torch devices: CUDA {'yes' if torch['cuda_available'] else 'no'} "
                       f"(build CUDA {torch['cuda_version'] or '-'}; {devices}), "
                       f"MPS {'yes' if torch['mps_available'] else 'no'}"))
    lock = report["lock"]
    table = Table(title="Packages", title_justify="left")
    for column in ("package", "installed", "locked", "matches lock"):
        table.add_column(column)
    for package in report["packages"]:
        matches = {True: "yes", False: "NO", None: "-"}[package["matches_lock"]]
        table.add_row(*(Text(str(v or "-")) for v in (package["name"], package["installed"], package["locked"])),
                      Text(matches, style="red" if matches == "NO" else ""))
    console.print(table)
    if lock["found"]:
        mismatches = lock["mismatches"]
        console.print(Text(f"Lock {lock['path']}: {lock['packages']} packages for this platform, "
                           f"{len(mismatches)} installed differently."))
        for item in mismatches[:_MAX_MISMATCHES_SHOWN]:
            console.print(Text(f"  {item['name']}: installed {item['installed'] or 'missing'}, locked {item['locked']}"))
        if len(mismatches) > _MAX_MISMATCHES_SHOWN:
            console.print(Text(f"  ... and {len(mismatches) - _MAX_MISMATCHES_SHOWN} more (see --json)"))
    else:
        console.print(Text("Lock: none found (installed from a wheel?); pass --lock requirements/lock.txt to compare."))
    console.print(Text("Environment: " + ", ".join(f"{k}={v}" for k, v in report["environment"].items() if v)
                       if any(report["environment"].values()) else "Environment: no HF / fetal-bench variables set"))
    console.print(Text("Caches: " + ", ".join(f"{k} {v}" for k, v in report["caches"].items())))
    weights = Table(title="Reference weights", title_justify="left")
    for column in ("weights", "present"):
        weights.add_column(column, no_wrap=True)
    weights.add_column("where fetal-bench looks", overflow="fold")  # paths are folded, never cut
    for row in report["weights"]:
        present = {True: "yes", False: "no", None: "-"}[row["present"]]
        where = "; ".join(row["looked_in"]) or row["how"]
        if row["note"]:
            where += f" ({row['note']})"
        weights.add_row(Text(row["name"]), Text(present), Text(where, overflow="fold"))
    console.print(weights)
    for item in report["problems"]:
        console.print(Text("Problem: ", style="bold red") + Text(item["problem"]))
        console.print(Text("Fix: ", style="bold") + Text(item["fix"]))
    for item in report["notes"]:  # nothing fetal-bench does is affected: said, not warned
        console.print(Text("Note (fetal-bench is not affected): ", style="bold") + Text(item["problem"]))
        console.print(Text("For your own scripts: ") + Text(item["fix"].removeprefix("For your own scripts: ")))
    if not report["problems"]:
        console.print(Text("Nothing installed is known to break fetal-bench.", style="green"))
