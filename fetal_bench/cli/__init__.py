"""The `fetal-bench` command line: a thin layer over the library.

Each sub-command parses options, calls one library function and prints the outcome. A
:class:`~fetal_bench.errors.FetalBenchError` becomes a red message with its fix and exit code 2,
Ctrl-C exits 130; nothing else is caught, so bugs keep their tracebacks.
"""

from __future__ import annotations

import sys

import click

from fetal_bench import __version__
from fetal_bench.errors import FetalBenchError


class _Group(click.Group):
    """A click group that turns user-fixable errors into a clear message and a non-zero exit."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except FetalBenchError as error:
            from fetal_bench.cli._console import err_console, safe

            # Problems quote ids, names and paths from outside: printed literally, never as markup.
            err_console.print(f"[bold red]Error:[/] {safe(error.problem, limit=5000)}", highlight=False, soft_wrap=True)
            if error.fix:
                err_console.print(f"[bold]Fix:[/] {safe(error.fix, limit=5000)}", highlight=False, soft_wrap=True)
            sys.exit(error.exit_code)
        except KeyboardInterrupt:
            # Ctrl-C: the shell convention (128 + SIGINT), not click's "Aborted!" and exit 1.
            # Outputs are written atomically under locks, so nothing half-written is left.
            from fetal_bench.cli._console import err_console

            err_console.print("Interrupted.", highlight=False)
            sys.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="fetal-bench")
def cli() -> None:
    """fetal-bench: fetal ultrasound datasets, synthetic data and benchmarks."""


def _register() -> None:
    from fetal_bench.cli.datasets import datasets
    from fetal_bench.cli.demo import demo
    from fetal_bench.cli.doctor import doctor
    from fetal_bench.cli.evaluate import evaluate, tasks

    cli.add_command(datasets)
    cli.add_command(demo)
    cli.add_command(doctor)
    from fetal_bench.cli.generate import generate; cli.add_command(generate)  # noqa: E702
    from fetal_bench.cli.leaderboard import leaderboard; cli.add_command(leaderboard)  # noqa: E702
    cli.add_command(tasks)
    cli.add_command(evaluate)
    from fetal_bench.cli.models import models
    from fetal_bench.cli.predict import predict
    from fetal_bench.cli.train import protocols, train

    cli.add_command(models)
    cli.add_command(train)
    cli.add_command(predict)
    cli.add_command(protocols)


_register()


def main() -> None:
    cli(prog_name="fetal-bench")
