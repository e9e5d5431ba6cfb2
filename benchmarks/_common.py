"""What every benchmark here shares, so that its figures can be trusted and compared.

* **A quiet machine.** ``check_machine`` prints the 1-minute load average against the core count
  before timing and either waits (``--wait-quiet SECONDS``) or warns loudly when other work is
  running: a busy core slows both sides unevenly, which measures the machine, not the code.
  The load is recorded again after the run; the JSON says whether the run was quiet throughout.
* **Interleaved sides, medians.** ``time_interleaved`` runs every case once per round, in turn, in
  one process (so drifting load hits all of them alike), rotating which case goes first, discards
  a warm-up round, and reports the median of the remaining rounds with min and max.
* **JSON.** ``write_json`` writes the report atomically with the environment (Python, torch,
  threads, CPU, git commit) and the exact command line, so that a figure in the docs can be
  traced to the run that gave it.

Usage in a benchmark::

    parser = argparse.ArgumentParser(...)
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    machine = check_machine(args)
    stats = time_interleaved({"ours": run_ours, "theirs": run_theirs}, repeats=args.repeats)
    report = {"seconds": stats, "ratio": ratio(stats, "theirs", "ours"), **finish_machine(machine)}
    write_json(args.json_path, report)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Mapping

# A machine counts as quiet while its 1-minute load stays below this share of its cores (the
# benchmark itself adds about one).
QUIET_LOAD_PER_CORE = 0.75


def add_common_arguments(parser: argparse.ArgumentParser, *, repeats: int = 5) -> None:
    parser.add_argument("--repeats", type=int, default=repeats,
                        help=f"timed rounds after one warm-up round; the median is reported (default {repeats})")
    parser.add_argument("--json", dest="json_path", help="also write the report as JSON to this file")
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                        help="wait up to this long for the machine to become quiet before timing (default: warn only)")


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):  # Windows has no load average
        return None


def is_quiet(load: float | None, cores: int) -> bool | None:
    return None if load is None else load < QUIET_LOAD_PER_CORE * cores


def check_machine(args: argparse.Namespace, *, out=sys.stderr) -> dict:
    """Print the load; wait for quiet when asked; return what ``finish_machine`` completes."""
    cores = _cores()
    load = load_average()
    deadline = time.monotonic() + max(0.0, getattr(args, "wait_quiet", 0.0))
    while is_quiet(load, cores) is False and time.monotonic() < deadline:
        print(f"load average {load} on {cores} cores: waiting for the machine to become quiet ...", file=out)
        time.sleep(15)
        load = load_average()
    quiet = is_quiet(load, cores)
    print(f"load average {load} on {cores} cores" + ("" if quiet is None else " (quiet)" if quiet else ""), file=out)
    if quiet is False:
        print(f"WARNING: the machine is busy (load {load} >= {QUIET_LOAD_PER_CORE} x {cores} cores): these "
              "timings measure the load as much as the code; rerun on a quiet machine before quoting them.", file=out)
    return {"cores": cores, "load_before": load}


def finish_machine(machine: Mapping) -> dict:
    """The machine's part of a report: load before and after, and whether both were quiet."""
    after = load_average()
    quiet = [is_quiet(machine["load_before"], machine["cores"]), is_quiet(after, machine["cores"])]
    return {"machine": {"cores": machine["cores"], "load_before": machine["load_before"], "load_after": after,
                        "quiet": None if None in quiet else all(quiet)}}


def time_interleaved(cases: Mapping[str, Callable[[], object]], *, repeats: int, warmup: int = 1) -> dict:
    """Seconds per case: ``{"median", "min", "max", "runs"}``, rounds interleaved, warm-up discarded."""
    if repeats < 1:
        raise SystemExit("--repeats must be at least 1")
    runs: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    for round_index in range(warmup + repeats):
        # Each round starts with the next case: no case always runs first (cold caches) or last.
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            run = cases[name]
            start = time.perf_counter()
            run()
            elapsed = time.perf_counter() - start
            if round_index >= warmup:
                runs[name].append(elapsed)
    return {name: summarise(values) for name, values in runs.items()}


def summarise(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 4), "min": round(min(values), 4),
            "max": round(max(values), 4), "runs": [round(v, 4) for v in values]}


def ratio(stats: Mapping[str, Mapping], numerator: str, denominator: str) -> float:
    """median(numerator) / median(denominator), e.g. ratio(stats, "monai", "fetal-bench") = speed-up."""
    return round(stats[numerator]["median"] / stats[denominator]["median"], 3)


def format_stats(name: str, stats: Mapping, *, width: int = 28) -> str:
    return (f"  {name:<{width}} {stats['median']:9.3f} s median  "
            f"[{stats['min']:.3f}-{stats['max']:.3f}] over {len(stats['runs'])}")


def environment() -> dict:
    env = {"python": platform.python_version(), "machine": platform.machine(), "processor": platform.processor(),
           "command": " ".join(shlex.quote(arg) for arg in [Path(sys.argv[0]).as_posix(), *sys.argv[1:]])}
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        env.update(torch=torch.__version__, torch_threads=torch.get_num_threads())
    def git(*args: str) -> str | None:
        try:
            return subprocess.run(["git", *args], capture_output=True, text=True, timeout=10,
                                  cwd=Path(__file__).parent).stdout
        except (OSError, subprocess.SubprocessError):
            return None

    env["git_commit"] = (git("rev-parse", "HEAD") or "").strip() or None
    # True when tracked files differ from that commit: the timings are then of uncommitted code.
    changes = git("status", "--porcelain", "--untracked-files=no")
    env["git_dirty"] = None if changes is None or env["git_commit"] is None else bool(changes.strip())
    return env


def write_json(path: str | os.PathLike | None, report: Mapping) -> None:
    """Write the report (plus the environment) atomically; nothing when no path was given."""
    if not path:
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    payload = json.dumps({**report, "environment": environment()}, indent=2) + "\n"
    with tempfile.NamedTemporaryFile("w", dir=target.parent, prefix=f".{target.name}.", delete=False,
                                     encoding="utf-8") as handle:
        handle.write(payload)
    os.replace(handle.name, target)
    print(f"wrote {target}", file=sys.stderr)
