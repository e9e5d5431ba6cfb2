"""Leaderboard build time and peak memory on many result files (issue 27, item 8).

Two folders are generated (seeded, in a temporary directory):

* ``plain``: ``--n`` schema-valid result files spread over the registry's tasks (made-up
  scores, no predictions: every one is loaded, validated, checked against the registry and the
  catalog, listed as unverified and given its own page);
* ``bloated``: ``--n-bloated`` files of about 4.8 MB each holding 44,000 group values, the
  attack that once took 25 s and 1.3 GB for 100 files (they are now refused by the schema's
  bound on group values, before any page is drawn).

Each case is a whole ``fetal-bench leaderboard build`` in a fresh child process (so peak memory
is the build's own, read from ``getrusage`` of the child), timed with ``benchmarks/_common.py``'s
interleaved rounds. The aim: 10,000 results in under 15 s and 1 GB.

    python benchmarks/bench_leaderboard.py --wait-quiet 600 --json benchmarks/results/bench_leaderboard.json
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import add_common_arguments, check_machine, finish_machine, format_stats, summarise, write_json  # noqa: E402

GOAL_SECONDS = 15.0
GOAL_BYTES = 1 << 30


def _result(task, index: int, rng: random.Random, groups: dict | None = None) -> dict:
    from fetal_bench import __version__
    from fetal_bench.leaderboard.verify import pinned_fingerprint

    value = round(rng.uniform(0.5, 0.99) if task.higher_is_better else rng.uniform(1.0, 5.0), 6)
    fingerprint = pinned_fingerprint(task.dataset.name, task.dataset.revision, task.eval_split,
                                     task.dataset.config) or "f" * 64
    return {
        "schema_version": "1.0", "task": task.name, "task_version": task.version, "task_type": task.type,
        "higher_is_better": task.higher_is_better,
        "dataset": {"name": task.dataset.name, "revision": task.dataset.revision, "config": task.dataset.config,
                    "split": task.eval_split, "fingerprint": fingerprint},
        "submission": {"name": f"bench-{index:05d}", "kind": "predictions",
                       "sha256": f"{index:064x}", "training_data": "real", "description": "benchmark file"},
        "scores": {"main_score": task.main_score,
                   task.main_score: {"value": value, "ci95": [round(value * 0.97, 6), round(value * 1.01, 6)]}},
        "groups": groups or {}, "n_samples": 200, "n_subjects": 100, "fetal_bench_version": __version__,
        "environment": {"python": "3.11"}, "created_at": "2026-01-01T00:00:00+00:00", "runtime_s": 1.0,
    }


def make_plain(folder: Path, n: int, seed: int = 0) -> None:
    from fetal_bench.tasks import list_tasks

    rng = random.Random(seed)
    tasks = list_tasks()
    folder.mkdir(parents=True)
    for index in range(n):
        task = tasks[index % len(tasks)]
        (folder / f"{task.name}__bench-{index:05d}.json").write_text(json.dumps(_result(task, index, rng)))


def make_bloated(folder: Path, n: int, values: int = 44_000, seed: int = 0) -> None:
    from fetal_bench.tasks import get_task

    rng = random.Random(seed)
    task = get_task("planes-africa-zero-shot")
    folder.mkdir(parents=True)
    for index in range(n):
        block = {f"g{v:05d}": {"n_samples": 1, "n_subjects": 1, "scores": {
            "main_score": "accuracy", "accuracy": {"value": 0.5, "ci95": [0.4, 0.6]}}} for v in range(values)}
        result = _result(task, index, rng, groups={"site": {"values": block}})
        (folder / f"bloated-{index:03d}.json").write_text(json.dumps(result))


_CHILD = """
import resource, sys, time
from fetal_bench.leaderboard import build_site
start, cpu_start = time.perf_counter(), time.process_time()
summary = build_site(sys.argv[1], sys.argv[2], build_timestamp=False)
elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
print(elapsed, cpu, len(summary.files), summary.n_valid, len(summary.invalid),
      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def build_once(results: Path, out: Path) -> dict:
    """One build in a child process: wall and CPU seconds (the build alone), peak RSS bytes, files
    written. The CPU seconds (user + system of the build) hardly move with other jobs' load, where
    the wall time does: on a busy machine they say what the build costs; quote the wall time only
    from a quiet run."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _CHILD, str(results), str(out)], capture_output=True, text=True,
                          check=True)
    build_s, cpu_s, n_files, n_valid, n_invalid, peak = done.stdout.split()[-6:]
    site_bytes = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return {"build_s": float(build_s), "build_cpu_s": float(cpu_s), "process_s": time.perf_counter() - started, "peak_rss_bytes": int(peak),
            "files_written": int(n_files), "site_bytes": site_bytes, "valid": int(n_valid), "invalid": int(n_invalid)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="plain result files (default 10,000)")
    parser.add_argument("--n-bloated", type=int, default=100, help="4.8 MB files of 44,000 group values (default 100)")
    add_common_arguments(parser, repeats=3)
    args = parser.parse_args(argv)
    machine = check_machine(args)
    report: dict = {"n": args.n, "n_bloated": args.n_bloated}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_plain(root / "plain", args.n)
        make_bloated(root / "bloated", args.n_bloated)
        report["input_bytes"] = {case: sum(p.stat().st_size for p in (root / case).iterdir())
                                 for case in ("plain", "bloated")}
        runs: dict[str, list[dict]] = {"plain": [], "bloated": []}
        for round_index in range(args.repeats + 1):  # round 0 warms the file cache, discarded
            for case in (("plain", "bloated") if round_index % 2 else ("bloated", "plain")):
                run = build_once(root / case, root / f"site-{case}")
                if round_index:
                    runs[case].append(run)
        for case, case_runs in runs.items():
            report[case] = {"build_s": summarise([r["build_s"] for r in case_runs]),
                            "build_cpu_s": summarise([r["build_cpu_s"] for r in case_runs]),
                            "process_s": summarise([r["process_s"] for r in case_runs]),
                            "peak_rss_bytes": max(r["peak_rss_bytes"] for r in case_runs),
                            **{k: case_runs[-1][k] for k in ("files_written", "site_bytes", "valid", "invalid")}}
            print(format_stats(f"{case} build (s)", report[case]["build_s"]),
                  f"CPU {report[case]['build_cpu_s']['median']:.2f} s, peak {report[case]['peak_rss_bytes'] / 2**20:.0f} MiB, site {case_runs[-1]['site_bytes'] / 2**20:.1f} MiB,"
                  f" {case_runs[-1]['valid']} valid, {case_runs[-1]['invalid']} invalid")
    plain = report["plain"]
    report["goal"] = {"seconds": GOAL_SECONDS, "bytes": GOAL_BYTES,
                      "met": plain["build_s"]["median"] < GOAL_SECONDS and plain["peak_rss_bytes"] < GOAL_BYTES}
    report.update(finish_machine(machine))
    write_json(args.json_path, report)
    print(f"goal (10,000 results < {GOAL_SECONDS:g} s and < 1 GiB): {'met' if report['goal']['met'] else 'MISSED'}")
    return 0 if report["goal"]["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
