"""Quality of a synthetic split against a real one: FID, KID, k-NN precision/recall, counts, a grid.

``fetal-bench generate score SYN --real REAL --output DIR`` writes ``DIR/synthetic_quality.json``
(atomically, strict JSON: a value that cannot be computed is ``null`` with a ``reason``) and
``DIR/samples_grid.png``. Definitions:

* FID (Heusel et al. 2017): ||mu_r - mu_s||^2 + Tr(S_r + S_s - 2 (S_r S_s)^1/2) on features of
  the chosen network (:mod:`fetal_bench.generators.features`).
* KID (Binkowski et al. 2018): unbiased MMD^2 with the kernel (x.y / d + 1)^3, mean and standard
  deviation over ``kid_subsets`` random subsets of ``min(1000, n_real, n_syn)`` (seeded).
* Precision / recall (Kynkaanniemi et al. 2019): a synthetic sample is "precise" if it lies in
  the k-NN ball (k = 3) of some real sample; recall is the same with the roles swapped.
* Per class (when both sets have a ClassLabel ``label`` and share class names): counts, and the
  same metrics where both sides have at least ``min_per_class`` images.

Lower FID/KID and higher precision/recall are better. Values depend on the feature network and
on the sample sizes (FID is biased upwards for small sets); compare like with like.
"""

from __future__ import annotations

import datetime as _dt
import math
import platform
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from fetal_bench._io import seeded_key
from fetal_bench.errors import FetalBenchError

__all__ = ["RESULT_FILE", "GRID_FILE", "fid", "kid", "precision_recall", "score"]

UNTRAINED_FEATURES_WARNING = (
    "UNTRAINED FEATURES: {name} is a random network nobody trained, so FID/KID/precision/recall here compare "
    "pixel statistics, not image quality or realism (noise can score well). Use them only to compare runs scored "
    "the same way; for a quality figure use --features sononet16 or inception.")
RESULT_FILE = "synthetic_quality.json"
GRID_FILE = "samples_grid.png"
SCHEMA_VERSION = "1.0"


def fid(real: np.ndarray, syn: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (rows = samples)."""
    from scipy import linalg

    if len(real) < 2 or len(syn) < 2:
        return float("nan")
    mu1, mu2 = real.mean(axis=0), syn.mean(axis=0)
    s1, s2 = np.cov(real, rowvar=False), np.cov(syn, rowvar=False)
    import warnings

    with warnings.catch_warnings():
        # sqrtm warns on singular products (fewer samples than dimensions); handled below.
        warnings.simplefilter("ignore")
        covmean = linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        # Near-singular products (few samples, many dimensions): regularise as the reference code does.
        offset = np.eye(s1.shape[0]) * 1e-6
        covmean = linalg.sqrtm((s1 + offset) @ (s2 + offset))
    covmean = np.real(covmean)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def kid(real: np.ndarray, syn: np.ndarray, *, subsets: int = 100, subset_size: int = 1000,
        seed: int = 0) -> tuple[float, float, int]:
    """(mean, std, subset size) of the unbiased polynomial-kernel MMD^2 over random subsets."""
    m = min(subset_size, len(real), len(syn))
    if m < 2:
        return float("nan"), float("nan"), m
    d = real.shape[1]
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(subsets):
        x = real[rng.choice(len(real), m, replace=False)]
        y = syn[rng.choice(len(syn), m, replace=False)]
        kxx = (x @ x.T / d + 1) ** 3
        kyy = (y @ y.T / d + 1) ** 3
        kxy = (x @ y.T / d + 1) ** 3
        mmd = ((kxx.sum() - np.trace(kxx)) + (kyy.sum() - np.trace(kyy))) / (m * (m - 1)) - 2 * kxy.mean()
        values.append(mmd)
    return float(np.mean(values)), float(np.std(values)), m


def _pairwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.clip(sq, 0, None))


def _knn_radii(x: np.ndarray, k: int) -> np.ndarray:
    radii = np.empty(len(x))
    for start in range(0, len(x), 1024):  # chunks bound memory at 1024 x N distances
        d = _pairwise(x[start : start + 1024], x)
        radii[start : start + 1024] = np.partition(d, k, axis=1)[:, k]  # index 0 is the point itself
    return radii


def _covered(points: np.ndarray, centres: np.ndarray, radii: np.ndarray) -> float:
    hits = 0
    for start in range(0, len(points), 1024):
        d = _pairwise(points[start : start + 1024], centres)
        hits += int((d <= radii[None, :]).any(axis=1).sum())
    return hits / len(points)


def precision_recall(real: np.ndarray, syn: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (k-NN manifolds of each set)."""
    if len(real) <= k or len(syn) <= k:
        return float("nan"), float("nan")
    return _covered(syn, real, _knn_radii(real, k)), _covered(real, syn, _knn_radii(syn, k))


def _value(x: float, reason: str, **extra) -> dict[str, Any]:
    if x is None or not math.isfinite(x):
        return {"value": None, "reason": reason, **extra}
    return {"value": float(x), **extra}


def _metrics(real: np.ndarray, syn: np.ndarray, *, k: int, kid_subsets: int, seed: int) -> dict[str, Any]:
    small = f"needs at least 2 images per side (real {len(real)}, synthetic {len(syn)})"
    kid_mean, kid_std, m = kid(real, syn, subsets=kid_subsets, seed=seed)
    precision, recall = precision_recall(real, syn, k)
    pr_reason = f"needs more than k={k} images per side (real {len(real)}, synthetic {len(syn)})"
    return {
        "fid": _value(fid(real, syn), small),
        "kid": _value(kid_mean, small, std=None if not math.isfinite(kid_std) else kid_std,
                      subsets=kid_subsets, subset_size=m),
        "precision": _value(precision, pr_reason, k=k),
        "recall": _value(recall, pr_reason, k=k),
    }


def _load(path: str | Path, config: str | None, split: str, max_images: int | None, seed: int):
    from fetal_bench.generators.training_images import decode_gray, open_source

    dataset, info = open_source(path, config=config, split=split)
    ids = dataset["id"]
    order = list(range(len(ids)))
    if max_images is not None and len(order) > max_images:
        # A deterministic subset, independent of row order: the smallest hashes of (seed, id).
        order = sorted(order, key=lambda i: seeded_key(seed, ids[i]))[:max_images]
        order.sort()
    images = [decode_gray(dataset[i]["image"], ids[i]) for i in order]
    labels = None
    if info.label_names is not None:
        column = dataset["label"]
        labels = [info.label_names[column[i]] if column[i] is not None else None for i in order]
    extra = {}
    if "config_sha256" in dataset.column_names:
        values = sorted({dataset[i]["config_sha256"] for i in order})
        extra["config_sha256"] = values[0] if len(values) == 1 else values
        extra["generator"] = sorted({dataset[i]["generator"] for i in order})
    return images, labels, info, extra


def _grid(real: Sequence[np.ndarray], real_labels, syn: Sequence[np.ndarray], syn_labels, path: Path,
          per_row: int = 6, tile: int = 96) -> None:
    from PIL import Image, ImageDraw

    from fetal_bench._io import atomic_file

    classes = sorted({*(syn_labels or [None])}, key=str) if syn_labels else [None]
    rows = []
    for name in classes:
        def pick(images, labels):
            chosen = [im for im, lab in zip(images, labels or [None] * len(images)) if name is None or lab == name]
            return chosen[:per_row]
        rows.append((str(name) if name is not None else "all", pick(real, real_labels), pick(syn, syn_labels)))
    label_w = 110
    width = label_w + 2 * per_row * tile + tile // 2
    canvas = Image.new("L", (width, tile * len(rows) + 24), 255)
    draw = ImageDraw.Draw(canvas)
    draw.text((label_w, 4), "real", fill=0)
    draw.text((label_w + per_row * tile + tile // 2, 4), "synthetic", fill=0)
    for r, (name, real_images, syn_images) in enumerate(rows):
        y = 24 + r * tile
        draw.text((4, y + tile // 2 - 6), name[:16], fill=0)
        for c, image in enumerate(real_images):
            canvas.paste(Image.fromarray(image).resize((tile, tile), Image.BILINEAR), (label_w + c * tile, y))
        for c, image in enumerate(syn_images):
            canvas.paste(Image.fromarray(image).resize((tile, tile), Image.BILINEAR),
                         (label_w + per_row * tile + tile // 2 + c * tile, y))
    with atomic_file(path, "wb") as handle:
        canvas.save(handle, format="PNG")


def score(
    synthetic: str | Path,
    *,
    real: str | Path,
    output: str | Path,
    real_config: str | None = None,
    real_split: str = "train",
    synthetic_split: str = "train",
    features: str = "auto",
    max_images: int | None = 5000,
    k: int = 3,
    kid_subsets: int = 100,
    min_per_class: int = 10,
    seed: int = 0,
) -> dict[str, Any]:
    """Score ``synthetic`` against ``real``; write the result JSON and the grid PNG into ``output``.

    ``real_config`` defaults to the config the synthetic split was made from (from its card) when
    ``real`` has that config. Returns the result dict.
    """
    import warnings as _warnings

    import torch

    from fetal_bench import __version__
    from fetal_bench._io import write_json_atomic
    from fetal_bench.generators.features import get_feature_extractor

    started = time.perf_counter()
    output = Path(output)
    messages: list[str] = []
    syn_images, syn_labels, syn_info, syn_extra = _load(synthetic, None, synthetic_split, max_images, seed)
    if real_config is None:
        source = _synthetic_source(Path(synthetic))
        real_config = source.get("config") if source else None
    real_images, real_labels, real_info, _ = _load(real, real_config, real_split, max_images, seed)
    if not syn_images or not real_images:
        raise FetalBenchError("A split to score is empty.", "Score non-empty splits.")
    with _warnings.catch_warnings(record=True) as caught:
        _warnings.simplefilter("always")
        extractor = get_feature_extractor(features)
    if not extractor.trained:
        messages.append(UNTRAINED_FEATURES_WARNING.format(name=extractor.name))
    messages += [str(w.message) for w in caught]
    f_syn, f_real = extractor(syn_images), extractor(real_images)
    scores = _metrics(f_real, f_syn, k=k, kid_subsets=kid_subsets, seed=seed)
    scores["main_score"] = "fid"

    counts = {"synthetic": _count(syn_labels), "real": _count(real_labels)}
    per_class: dict[str, Any] = {}
    if syn_labels is not None and real_labels is not None:
        real_lower = {str(n).lower() for n in real_labels}
        for name in sorted(set(syn_labels)):
            entry: dict[str, Any] = {"n_synthetic": syn_labels.count(name),
                                     "n_real": sum(1 for n in real_labels if str(n).lower() == str(name).lower())}
            if str(name).lower() not in real_lower:
                entry["reason"] = "class absent from the real split"
            elif min(entry["n_synthetic"], entry["n_real"]) < min_per_class:
                entry["reason"] = f"fewer than {min_per_class} images on a side"
            else:
                s_idx = [i for i, n in enumerate(syn_labels) if n == name]
                r_idx = [i for i, n in enumerate(real_labels) if str(n).lower() == str(name).lower()]
                entry.update(_metrics(f_real[r_idx], f_syn[s_idx], k=k, kid_subsets=kid_subsets, seed=seed))
            per_class[str(name)] = entry
    elif syn_labels is None or real_labels is None:
        messages.append("Per-class scores need a ClassLabel `label` in both splits.")

    output.mkdir(parents=True, exist_ok=True)
    _grid(real_images, real_labels, syn_images, syn_labels, output / GRID_FILE)
    result = {
        "schema_version": SCHEMA_VERSION,
        "kind": "synthetic-quality",
        "synthetic": {"path": syn_info.path, "split": synthetic_split, "fingerprint": syn_info.fingerprint,
                      "n": len(syn_images), **syn_extra},
        "real": {"path": real_info.path, "dataset": real_info.dataset, "config": real_config, "split": real_split,
                 "fingerprint": real_info.fingerprint, "n": len(real_images)},
        "feature_extractor": extractor.as_dict(),
        "untrained_features": not extractor.trained,
        "scores": scores,
        "per_class": per_class,
        "counts": counts,
        "settings": {"max_images": max_images, "k": k, "kid_subsets": kid_subsets, "min_per_class": min_per_class,
                     "seed": seed},
        "warnings": messages,
        "grid": GRID_FILE,
        "fetal_bench_version": __version__,
        "environment": {"python": platform.python_version(), "torch": torch.__version__,
                        "platform": platform.platform()},
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "runtime_s": round(time.perf_counter() - started, 3),
    }
    write_json_atomic(output / RESULT_FILE, result)
    return result


def _count(labels) -> dict[str, int] | None:
    if labels is None:
        return None
    out: dict[str, int] = {}
    for name in labels:
        out[str(name)] = out.get(str(name), 0) + 1
    return dict(sorted(out.items()))


def _synthetic_source(path: Path) -> dict[str, Any] | None:
    import json

    record = path / "build_info.json"
    if not record.is_file():
        return None
    try:
        return json.loads(record.read_text(encoding="utf-8")).get("generation", {}).get("source")
    except (OSError, ValueError):
        return None
