"""Result files for tests of the leaderboard.

Two kinds, never to be put in ``leaderboard/results/`` (which holds only real baselines):

- made-up, schema-valid result dicts (:func:`make_result`, :func:`example_results`): their scores
  are invented, they name no predictions, so a build shows them as *unverified*; they exercise
  validation, escaping, downloads and every display of a result file;
- real results on the embedded phantom set (:func:`phantom_board`): predictions written here
  with a known number of errors, scored by ``fetal-bench evaluate``, so a build verifies and
  ranks them. Submission names start with ``example-`` (or are deliberately hostile strings).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

from fetal_bench import __version__
from fetal_bench.evaluation.results import SCHEMA_VERSION, validate_result

XSS_NAME = "<script>alert(1)</script>"


def score(value: float | None, half_width: float = 0.02, reason: str | None = None) -> dict:
    """``{"value", "ci95"}`` with a symmetric made-up interval (null value: null interval and a reason)."""
    if value is None:
        return {"value": None, "ci95": [None, None], "reason": reason or "not computable (test)"}
    low, high = round(value - half_width, 6), round(value + half_width, 6)
    # Kept inside the range a real score has (the leaderboard refuses a Dice interval above 1).
    if value >= 0:
        low = max(low, 0.0)
    if 0 <= value <= 1:
        high = min(high, 1.0)
    return {"value": value, "ci95": [low, high]}


#: The fingerprint made-up results record where the catalog pins none (the phantom set's tasks).
MADE_UP_FINGERPRINT = "f" * 64


def expected_fingerprint(task: str, revision: str | None = None, split: str | None = None) -> str:
    """What a made-up result must record to claim ``task``'s (pinned) data: the catalog's pin where
    there is one (a result claiming a pinned revision with another fingerprint is refused)."""
    from fetal_bench.leaderboard.verify import pinned_fingerprint
    from fetal_bench.tasks.registry import get_task

    t = get_task(task)
    return pinned_fingerprint(t.dataset.name, revision or t.dataset.revision, split or t.eval_split,
                              t.dataset.config) or MADE_UP_FINGERPRINT


def _task_defaults(task: str) -> dict[str, Any]:
    from fetal_bench.errors import FetalBenchError
    from fetal_bench.tasks.registry import get_task

    try:
        t = get_task(task)
    except FetalBenchError:  # an unknown task: the caller passes what it needs
        return {}
    return {"task_version": t.version, "dataset_name": t.dataset.name, "revision": t.dataset.revision,
            "config": t.dataset.config, "split": t.eval_split, "main_score": t.main_score,
            "task_type": t.type, "higher_is_better": t.higher_is_better}


def make_result(
    task: str = "hc18-head-seg",
    name: str = "example-model",
    value: float | None = 0.9,
    *,
    metrics: Mapping[str, float | None] | None = None,
    groups: Mapping[str, Mapping[str, float | None]] | None = None,
    main_score: str | None = None,
    higher_is_better: bool | None = None,
    task_version: str | None = None,
    dataset_name: str | None = None,
    revision: str | None = None,
    config: str | None = None,
    split: str | None = None,
    fingerprint: str | None = None,
    kind: str = "predictions",
    model: str | None = None,
    training_data: str | None = "real",
    synthetic_share: float | None = None,
    description: str | None = None,
    url: str | None = None,
    created_at: str = "2026-01-15T12:00:00+00:00",
    fetal_bench_version: str = __version__,
    n_samples: int = 200,
) -> dict:
    """A result dict that passes the result schema, filled from the task registry where the task is known."""
    defaults = _task_defaults(task)
    if fingerprint is None:  # the pinned content of the claimed revision, where the catalog pins it
        fingerprint = expected_fingerprint(task, revision, split) if defaults else MADE_UP_FINGERPRINT
    main = main_score or defaults.get("main_score") or "accuracy"
    scores: dict[str, Any] = {"main_score": main, main: score(value)}
    for metric, metric_value in (metrics or {}).items():
        scores[metric] = score(metric_value)
    group_block: dict[str, Any] = {}
    for column, values in (groups or {}).items():
        entries = {g: {"n_samples": 40, "n_subjects": 20, "scores": {"main_score": main, main: score(v, 0.05)}}
                   for g, v in values.items()}
        group_block[column] = {"values": entries}
    # Distinct predictions per submission (the leaderboard refuses a repeated sha256).
    sha = hashlib.sha256(f"{task}|{name}|{value}|{revision}|{task_version}|{created_at}".encode()).hexdigest()
    hib = higher_is_better if higher_is_better is not None else defaults.get("higher_is_better")
    result: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "task": task,
        "task_version": task_version or defaults.get("task_version") or "1.0",
        "dataset": {"name": dataset_name or defaults.get("dataset_name") or "phantom",
                    "revision": revision or defaults.get("revision") or "v1.0",
                    "config": config if config is not None else defaults.get("config"),
                    "split": split or defaults.get("split") or "test",
                    "fingerprint": fingerprint},
        "submission": {"name": name, "kind": kind, "sha256": sha, "model": model, "training_data": training_data,
                       "synthetic_share": synthetic_share, "description": description, "url": url},
        "scores": scores,
        "groups": group_block,
        "n_samples": n_samples,
        "n_subjects": n_samples // 2,
        "fetal_bench_version": fetal_bench_version,
        "environment": {"python": "3.11", "note": "made-up result for leaderboard tests"},
        "created_at": created_at,
        "runtime_s": 1.0,
    }
    if hib is not None:
        result["higher_is_better"] = hib
    if defaults.get("task_type"):
        result["task_type"] = defaults["task_type"]
    validate_result(result, source=f"test result {name!r}")
    return result


def write_results(directory: str | Path, results: Sequence[dict], *, names: Sequence[str] | None = None) -> list[Path]:
    """Write result dicts as ``NN-<task>.json`` files (or the given names) into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, result in enumerate(results):
        filename = names[index] if names else f"{index:02d}-{result['task']}.json"
        path = directory / filename
        path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        paths.append(path)
    return paths


def example_results() -> list[dict]:
    """A varied made-up set for the site tests and screenshots.

    HC18: seven entries with a tie, a null score, a hostile name, real/synthetic/hybrid training
    data with synthetic shares, and two on other dataset revisions (flagged). African zero-shot:
    three entries with per-country scores. An unknown task ranked by a lower-is-better metric.
    """
    seg = {"dice": 0.0, "iou": 0.0, "hd95_mm": 0.0, "assd_mm": 0.0}

    # HC18 ranks by the HC absolute difference (lower is better); Dice is reported beside it.
    def hc_mm(dice: float | None) -> float | None:
        return None if dice is None else round((1 - dice) * 70, 2)

    def seg_metrics(dice: float | None) -> dict:
        if dice is None:
            return {k: None for k in seg}
        return {"dice": dice, "iou": round(dice / (2 - dice), 4), "hd95_mm": round((1 - dice) * 60, 2),
                "assd_mm": round((1 - dice) * 18, 2)}

    hc18 = [
        ("example-unet-real", 0.962, "real", 0.0, "unet-small"),
        ("example-unet-hybrid-50", 0.968, "hybrid", 0.5, "unet-small"),
        ("example-unet-synthetic", 0.931, "synthetic", 1.0, "unet-small"),
        ("example-unet-hybrid-25", 0.962, "hybrid", 0.25, "unet-small"),  # ties with example-unet-real
        (XSS_NAME, 0.944, "real", 0.0, "<img src=x onerror=alert(2)>"),
        ("example-failed-run", None, "real", 0.0, None),
    ]
    results = [
        make_result("hc18-head-seg", name, hc_mm(value), metrics=seg_metrics(value), training_data=training,
                    synthetic_share=share, model=model, kind="model" if model else "predictions",
                    description="Made-up scores for the leaderboard tests.",
                    url="https://example.org/paper" if name.endswith("real") else "javascript:alert(3)",
                    created_at=f"2026-01-{10 + i:02d}T09:30:00+00:00")
        for i, (name, value, training, share, model) in enumerate(hc18)
    ]
    results.append(make_result("hc18-head-seg", "example-unet-old-revision", hc_mm(0.95), metrics=seg_metrics(0.95),
                               revision="v0.9", fingerprint="0" * 64, created_at="2025-11-02T10:00:00+00:00"))
    results.append(make_result("hc18-head-seg", "example-unet-old-revision-b", hc_mm(0.948),
                               metrics=seg_metrics(0.948),
                               revision="v0.9", fingerprint="0" * 64, created_at="2025-11-03T10:00:00+00:00"))
    countries = ("Algeria", "Egypt", "Ghana", "Malawi", "Uganda")
    for i, (name, base, training, share) in enumerate([("example-resnet-es", 0.74, "real", 0.0),
                                                        ("example-resnet-fu-lora", 0.81, "hybrid", 0.5),
                                                        ("example-resnet-synthetic", 0.69, "synthetic", 1.0)]):
        per_country = {c: round(base + (j - 2) * 0.04 * (1 if j % 2 else -1), 3) for j, c in enumerate(countries)}
        results.append(make_result("planes-africa-zero-shot", name, base, groups={"country": per_country},
                                   metrics={"macro_f1": round(base - 0.03, 3), "auc_ovr_macro": round(base + 0.1, 3),
                                            "ece": round(0.3 - base / 4, 3)},
                                   training_data=training, synthetic_share=share,
                                   created_at=f"2026-02-0{i + 1}T08:00:00+00:00"))
    for name, mm in [("example-ellipse-fit", 2.4), ("example-baseline", 3.1), ("example-tied", 2.4)]:
        results.append(make_result("example-hc-biometry", name, mm, main_score="hc_abs_diff_mm",
                                   higher_is_better=False, dataset_name="hc18", revision="v1.0", split="test",
                                   metrics={"dice": 0.95}))
    return results


# --------------------------------------------------------------------------------------------
# Real results on the phantom set


def phantom_planes_predictions(path: Path, n_wrong: int, *, seed: int = 0, confidence: float = 0.7) -> Path:
    """A phantom-planes submission CSV whose argmax is wrong on exactly ``n_wrong`` test rows
    (chosen by ``seed``): the true class gets ``confidence`` elsewhere, a wrong one there."""
    import numpy as np
    import pandas as pd

    from fetal_bench.evaluation.scored_split import load_eval_data
    from fetal_bench.tasks import get_task

    task = get_task("phantom-planes")
    truth = task.kind.ground_truth(task, load_eval_data(task).dataset)
    k, n = len(task.labels), len(truth.ids)
    rng = np.random.default_rng(seed)
    wrong = set(rng.permutation(n)[:n_wrong].tolist())
    proba = np.full((n, k), (1 - confidence) / (k - 1))
    for row, label in enumerate(truth.y_true):
        chosen = (label + 1 + rng.integers(k - 1)) % k if row in wrong else label
        proba[row, chosen] = confidence
    table = pd.DataFrame({"id": truth.ids, **{name: proba[:, j] for j, name in enumerate(task.labels)}})
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False, float_format="%.17g")
    return path


def phantom_head_predictions(path: Path, grow: int) -> Path:
    """A phantom-head-seg submission Parquet: each reference mask grown (``grow`` > 0) or shrunk
    (< 0) by that many pixels, so Dice and the HC error fall as ``abs(grow)`` rises."""
    import numpy as np
    from scipy import ndimage

    from fetal_bench.evaluation.scored_split import load_eval_data
    from fetal_bench.tasks.segmentation import write_segmentation_predictions
    from fetal_bench.tasks import get_task

    task = get_task("phantom-head-seg")
    truth = task.kind.ground_truth(task, load_eval_data(task).dataset)
    operation = ndimage.binary_dilation if grow > 0 else ndimage.binary_erosion
    masks = {row_id: (operation(mask > 0, iterations=abs(grow)) if grow else mask > 0).astype(np.uint8)
             for row_id, mask in zip(truth.ids, truth.masks)}
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_segmentation_predictions(path, truth.ids, masks)


def real_result(root: Path, task: str, name: str, predictions: Path, **submission: Any) -> Path:
    """Score ``predictions`` with ``fetal-bench evaluate`` into ``root/results``; the predictions
    stay in ``root/predictions`` (the layout the leaderboard searches by default)."""
    from fetal_bench.evaluation import evaluate

    result = evaluate(task, predictions=predictions, name=name, output=root / "results", n_resamples=200,
                      **submission)
    return Path(result["_path"])


# (task, name, how to make its predictions, evaluate keywords): a varied, verifiable board.
PHANTOM_BOARD = (
    ("phantom-planes", "example-cnn-best", ("planes", 6, 0), {"training_data": "real"}),
    ("phantom-planes", "example-cnn-close", ("planes", 8, 1), {"training_data": "hybrid", "synthetic_share": 0.5}),
    ("phantom-planes", "example-cnn-tied", ("planes", 6, 2), {"training_data": "synthetic", "synthetic_share": 1.0}),
    ("phantom-planes", "example-cnn-weak", ("planes", 40, 3), {"training_data": "none"}),
    ("phantom-planes", XSS_NAME, ("planes", 20, 4), {"training_data": "real", "description": "<b>bold?</b>",
                                                     "paper_url": "https://example.org/paper",
                                                     "command": "fetal-bench evaluate --task phantom-planes"}),
    ("phantom-head-seg", "example-unet-exact", ("head", 0, 0), {"training_data": "real"}),
    ("phantom-head-seg", "example-unet-grown", ("head", 2, 0), {"training_data": "real"}),
    ("phantom-head-seg", "example-unet-shrunk", ("head", -3, 0), {"training_data": "hybrid", "synthetic_share": 0.25}),
)


def phantom_board(root: Path) -> Path:
    """``root/results`` and ``root/predictions`` holding the :data:`PHANTOM_BOARD` results; returns ``root``."""
    for task, name, (kind, amount, seed), keywords in PHANTOM_BOARD:
        stem = "".join(c if c.isalnum() else "-" for c in name)
        if kind == "planes":
            predictions = phantom_planes_predictions(root / "predictions" / f"{stem}.csv", amount, seed=seed)
        else:
            predictions = phantom_head_predictions(root / "predictions" / f"{stem}.parquet", amount)
        real_result(root, task, name, predictions, **keywords)
    return root


def estimates_outside_their_intervals(result: dict) -> list[tuple[str, str, dict]]:
    """(where, metric, score) of every score whose value lies outside its 95% interval."""
    blocks = [("scores", result["scores"])] + [
        (f"groups/{c}/{v}", e["scores"]) for c, b in result["groups"].items() for v, e in b["values"].items()]
    return [(where, metric, score) for where, scores in blocks for metric, score in scores.items()
            if metric != "main_score" and score["value"] is not None and score["ci95"][0] is not None
            and not score["ci95"][0] <= score["value"] <= score["ci95"][1]]


#: The card :func:`make_synthetic_dataset` writes by default: hostile HTML and a right-aligned table.
EXAMPLE_CARD = ("---\nlicense: cc-by-4.0\n---\n\n# Synthetic example\n\n"
                "> **Simulated data.** Not clinical.\n\n<script>alert(6)</script>\n\n"
                "| split | rows |\n|---|---:|\n| train | 6 |\n")


def make_synthetic_dataset(root: Path, n: int = 6, *, card: str = EXAMPLE_CARD) -> Path:
    """A folder shaped like a built synthetic dataset: ``card``, a build record, one Parquet shard of
    ``n`` small PNG images. Its build record holds a hostile string and a path leaving the folder."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    root.mkdir(parents=True)
    (root / "data").mkdir()
    images = []
    for i in range(n):
        buffer = io.BytesIO()
        Image.new("L", (64 + 16 * i, 48), color=40 * i % 255).save(buffer, format="PNG")
        images.append({"bytes": buffer.getvalue(), "path": None})
    features = {"id": {"dtype": "string", "_type": "Value"}, "image": {"_type": "Image"},
                "label": {"names": ["abdomen", "brain"], "_type": "ClassLabel"},
                "seed": {"dtype": "int64", "_type": "Value"}, "prompt": {"dtype": "string", "_type": "Value"}}
    table = pa.table({"id": [f"syn-{i:03d}" for i in range(n)], "image": images, "label": [i % 2 for i in range(n)],
                      "seed": list(range(n)), "prompt": ["<b>an ultrasound</b> of a fetal brain"] * n})
    table = table.replace_schema_metadata({"huggingface": json.dumps({"info": {"features": features}})})
    pq.write_table(table, root / "data/train-00000-of-00001.parquet")
    build_info = {"dataset": "synthetic-example", "fingerprint": "c" * 64,
                  "generator": {"name": "fu-lora", "base": "tiny", "steps": 2, "note": "<script>alert(5)</script>"},
                  "config_sha256": "d" * 64, "files": {"data/train-00000-of-00001.parquet": "e" * 64},
                  "configs": {"default": {"train": {"num_examples": n, "files": ["data/train-00000-of-00001.parquet",
                                                                                 "../../outside.parquet"]}}}}
    (root / "build_info.json").write_text(json.dumps(build_info))
    (root / "README.md").write_text(card)
    return root


__all__ = ["EXAMPLE_CARD", "PHANTOM_BOARD", "estimates_outside_their_intervals", "XSS_NAME", "example_results", "make_result", "make_synthetic_dataset",
           "phantom_board", "phantom_head_predictions", "phantom_planes_predictions", "real_result", "score",
           "write_results"]
