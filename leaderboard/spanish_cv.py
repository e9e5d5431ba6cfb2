"""Cross-validation on the Spanish images only, for the zero-shot models of leaderboard/reproduce.sh.

The zero-shot task (planes-africa-zero-shot) forbids African images in training, model selection
and calibration, so every choice here is made on a build of fetal-planes-es (the 100 images of
the FU-LoRA authors' list: `fetal-bench datasets build fetal-planes-es --raw RAW/fetal_planes_db`
builds them as a partial, local revision). Folds are stratified by plane and grouped by patient
(sklearn's StratifiedGroupKFold, shuffled with seed 0), so no patient is in a fold's training and
held-out images at once.

Two commands:

  train-cv   a model trained through fetal_bench.training.train on each fold's training images
             and validated after every epoch on its held-out images; writes the held-out accuracy
             per fold and epoch and the epoch count with the best mean (ties: the fewer epochs).
  probe      a linear probe on the frozen published SonoNet-16: pooled features of one layer
             (--layers, default its adaptation layer: the input of its own last 1x1 conv),
             standardised, then multinomial logistic regression; the inverse regularisation C
             (and the layer, if several are given) is chosen by 5-fold CV on the Spanish images,
             the probe refitted on all of them, and the African test split predicted into a
             submission CSV (id + one probability per class).

Everything it writes is JSON or CSV written atomically; the numbers come from seeded,
epoch-based runs on the CPU.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from fetal_bench._io import write_json_atomic

EXCLUDED = ("Maternal cervix",)  # the zero-shot protocol's five outputs: the four planes and Other
TASK = "planes-africa-zero-shot"


def spanish_rows(build: str):
    """The Spanish build's rows (every split), images left encoded, cervix excluded."""
    import datasets

    opened = datasets.load_dataset(build)
    rows = datasets.concatenate_datasets([opened[split] for split in sorted(opened)])
    rows = rows.cast_column("image", datasets.Image(decode=False))
    names = rows.features["label"].names
    keep = [i for i, label in enumerate(rows["label"]) if names[label] not in EXCLUDED]
    return rows.select(keep), names


def folds(labels, groups, n_splits: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import StratifiedGroupKFold

    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=0)
    return list(splitter.split(np.zeros(len(labels)), labels, groups))


def write_fold_build(rows, train_rows, held_out, out: Path) -> Path:
    """A fetal-planes-es directory whose `train` is the fold's training images and whose
    `validation` its held-out images (the library's writer, so it loads like any build)."""
    from fetal_bench.data.builders.planes import ES_FEATURES
    from fetal_bench.data.catalog import FETAL_PLANES_ES
    from fetal_bench.data.writer import ConfigSpec, write_dataset

    def rows_of(indices):
        return lambda: (dict(rows[int(i)]) for i in indices)

    spec = ConfigSpec("default", ES_FEATURES, {"train": rows_of(train_rows), "validation": rows_of(held_out)},
                      label_column="label", subject_column="patient_id")
    write_dataset(out, FETAL_PLANES_ES, [spec], notes=["A cross-validation fold of a fetal-planes-es build."],
                  overwrite=True)
    return out


def train_cv(args) -> None:
    from fetal_bench.training import train

    rows, _ = spanish_rows(args.data)
    config = json.loads(args.config)
    per_fold = []
    for k, (train_rows, held_out) in enumerate(folds(rows["label"], rows["patient_id"], args.folds)):
        fold_dir = write_fold_build(rows, train_rows, held_out, Path(args.work) / f"fold{k}-data")
        run = Path(args.work) / f"fold{k}"
        train(model=args.model, task=TASK, data=str(fold_dir), train_split="train", val_split="validation",
              exclude_labels=EXCLUDED, epochs=args.epochs, keep="last", patience=None, seed=0,
              output=str(run), overwrite=True, progress=False, log=print, **{"mixed_precision": "no", **config})
        log = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
        accuracy = {entry["epoch"]: entry["accuracy"] for entry in log if entry.get("type") == "validation"}
        per_fold.append([accuracy[e] for e in range(1, args.epochs + 1)])
        print(f"fold {k}: {len(train_rows)} train, {len(held_out)} held out; accuracy by epoch "
              + " ".join(f"{a:.3f}" for a in per_fold[-1]), flush=True)
    mean = np.mean(per_fold, axis=0)
    best = int(np.argmax(mean)) + 1  # argmax takes the first maximum: the fewer epochs
    write_json_atomic(Path(args.output), {
        "model": args.model, "task": TASK, "data": "fetal-planes-es (local build, the 100 FU-LoRA-list images)",
        "folds": args.folds, "fold_rule": "StratifiedGroupKFold(shuffle=True, random_state=0) by plane, grouped by patient_id",
        "config": config, "max_epochs": args.epochs,
        "held_out_accuracy_by_fold_and_epoch": [[round(a, 6) for a in fold] for fold in per_fold],
        "mean_accuracy_by_epoch": [round(float(a), 6) for a in mean],
        "chosen": {"epochs": best, "mean_accuracy": round(float(mean[best - 1]), 6)},
    })
    print(f"chosen: {best} epochs (mean held-out accuracy {mean[best - 1]:.3f}) -> {args.output}")


#: The frozen SonoNet-16 representations a probe may read, each pooled over the image: its last
#: convolutional block (128), its adaptation layer (64, the input of the last 1x1 conv) and its
#: 14 class logits (the published classifier's output).
FEATURE_LAYERS = ("block5", "adaptation", "logits")


def sononet_features(rows, model) -> dict[str, np.ndarray]:
    """Each of :data:`FEATURE_LAYERS` for every row, from one pass of the frozen published SonoNet-16."""
    import torch

    from fetal_bench.tasks.inference import logits_batches

    captured: dict[str, list] = {layer: [] for layer in FEATURE_LAYERS}
    hooks = [model.features.register_forward_hook(lambda m, i, out: captured["block5"].append(out.mean(dim=(2, 3)))),
             model.adaptation[2].register_forward_hook(lambda m, i, out: captured["adaptation"].append(out.mean(dim=(2, 3))))]
    try:
        for _, logits in logits_batches(model, rows, batch_size=16):
            captured["logits"].append(logits)
    finally:
        for hook in hooks:
            hook.remove()
    return {layer: torch.cat(parts).double().numpy() for layer, parts in captured.items()}


def probe(args) -> None:
    import datasets
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from fetal_bench.models import get_model_info

    rows, names = spanish_rows(args.data)
    model = get_model_info("sononet16").build(weights=args.weights).eval()
    x = sononet_features(rows.cast_column("image", datasets.Image()), model)
    y = np.asarray([names[label] for label in rows["label"]])
    splits = folds(y, rows["patient_id"], args.folds)
    layers = args.layers.split(",")
    unknown = sorted(set(layers) - set(FEATURE_LAYERS))
    if unknown:
        raise SystemExit(f"Error: unknown layer(s) {unknown}.\nFix: use some of {', '.join(FEATURE_LAYERS)}.")
    grid = [(layer, float(c)) for layer in layers for c in args.c_grid.split(",")]

    def fitted(layer, c, train_rows):
        pipeline = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000))
        return pipeline.fit(x[layer][train_rows], y[train_rows])

    scores = {(layer, c): [float(np.mean(fitted(layer, c, tr).predict(x[layer][te]) == y[te])) for tr, te in splits]
              for layer, c in grid}
    means = {key: float(np.mean(s)) for key, s in scores.items()}
    # Ties: the earlier layer in FEATURE_LAYERS, then the stronger regularisation (smaller C).
    best = max(grid, key=lambda key: (means[key], -FEATURE_LAYERS.index(key[0]), -key[1]))
    final = fitted(*best, np.arange(len(y)))
    test = datasets.load_dataset(args.eval_data, split="test")
    probabilities = final.predict_proba(sononet_features(test, model)[best[0]])
    lines = ["id," + ",".join(final.classes_)]
    lines += [row_id + "," + ",".join(repr(float(p)) for p in probs) for row_id, probs in zip(test["id"], probabilities)]
    out = Path(args.predictions)
    partial = out.with_name(out.name + ".partial")
    partial.write_text("\n".join(lines) + "\n")
    partial.replace(out)
    write_json_atomic(Path(args.output), {
        "model": "linear probe on frozen SonoNet-16 (pooled features of one layer, standardised, multinomial logistic regression)",
        "task": TASK, "data": "fetal-planes-es (local build, the 100 FU-LoRA-list images)", "folds": args.folds,
        "fold_rule": "StratifiedGroupKFold(shuffle=True, random_state=0) by plane, grouped by patient_id",
        "held_out_accuracy_by_layer_and_c": {f"{layer} C={c!r}": [round(v, 6) for v in scores[layer, c]]
                                             for layer, c in grid},
        "mean_accuracy_by_layer_and_c": {f"{layer} C={c!r}": round(means[layer, c], 6) for layer, c in grid},
        "chosen": {"layer": best[0], "C": best[1], "mean_accuracy": round(means[best], 6)},
        "classes": list(final.classes_),
    })
    print(f"chosen {best[0]} C={best[1]} (mean held-out accuracy {means[best]:.3f}); wrote {out} and {args.output}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    cv = commands.add_parser("train-cv", help="epochs chosen by CV for a model trained with fetal_bench.training.train")
    cv.add_argument("--model", required=True)
    cv.add_argument("--config", default="{}", help="TrainConfig fields as JSON (lr, image_size, model_cfg, ...)")
    cv.add_argument("--epochs", type=int, required=True, help="the largest epoch count considered")
    cv.set_defaults(run=train_cv)
    pr = commands.add_parser("probe", help="linear probe on frozen SonoNet-16, C chosen by CV; predicts the African test split")
    pr.add_argument("--weights", required=True, help="SonoNet16.npz")
    pr.add_argument("--eval-data", required=True, help="a build of fetal-planes-africa")
    pr.add_argument("--predictions", required=True, help="the submission CSV to write")
    pr.add_argument("--c-grid", default="0.001,0.01,0.1,1,10")
    pr.add_argument("--layers", default="adaptation", help=f"comma-separated, of {', '.join(FEATURE_LAYERS)}")
    pr.set_defaults(run=probe)
    for sub in (cv, pr):
        sub.add_argument("--data", required=True, help="a build of fetal-planes-es")
        sub.add_argument("--folds", type=int, default=5)
        sub.add_argument("--work", default="runs/spanish-cv")
        sub.add_argument("--output", required=True, help="the CV record (JSON) to write")
    args = parser.parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main(sys.argv[1:])
