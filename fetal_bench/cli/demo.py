"""`fetal-bench demo`: the whole project on the embedded phantom set, in a few minutes on a CPU.

Build the phantom datasets, report on them, stream them through the training loader, train
and score two baselines, make and score a synthetic split, and build the leaderboard site.
"""

from __future__ import annotations

from pathlib import Path

import click

from fetal_bench.cli._console import console, safe


@click.command()
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("fetal-bench-demo"),
              show_default=True, help="Where the demo writes its outputs.")
@click.option("--overwrite", is_flag=True, help="Delete the outputs of an earlier demo run and redo everything (without it, a rerun reuses the finished training runs: same scores).")
def demo(out_dir: Path, overwrite: bool) -> None:
    """Run every part of fetal-bench on the embedded phantom (simulated) set."""
    from fetal_bench.demo import run_demo

    outputs = run_demo(out_dir, overwrite=overwrite, log=console.print)  # its messages use markup (bold steps)
    console.rule("demo outputs")
    for what, where in outputs.items():
        console.print(safe(f"{what}: {where}"), highlight=False)
