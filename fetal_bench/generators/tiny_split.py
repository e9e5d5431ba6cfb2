"""The generators' step of `fetal-bench demo`: a small synthetic split from the phantom set.

Trains a tiny FU-LoRA (``--base tiny``: a random in-process pipeline, so the images are noise,
not ultrasound; the point is the machinery) for a few steps, samples two images per class into a
synthetic dataset directory and scores it against the real phantom split. Seconds on a CPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

SYNTHETIC_SPLIT = "synthetic split (load_dataset(DIR, split='train'))"


def _bar(description: str, enabled: bool):
    """A progress bar on stderr and the callback that moves it to (done, total)."""
    from tqdm.auto import tqdm

    # Redrawn at every update (a handful of them): the bar shows each step, not a sample of them.
    bar = tqdm(desc=description, total=None, disable=not enabled, leave=False, unit="step", mininterval=0,
               miniters=1)

    def update(done: int, total: int, *_: object) -> None:
        bar.total = total
        bar.update(done - bar.n)

    return bar, update


def run_generators_demo(phantom_dir: str | Path, out_dir: str | Path, *,
                        log: Callable[[str], None] = print, sample_steps: int = 20,
                        progress: bool = True) -> dict[str, str]:
    """Train, sample and score on ``phantom_dir``; write under ``out_dir``; return {what: where}.

    ``sample_steps``: Euler steps per image (FU-LoRA's 20 by default; fewer for a quicker check).
    ``progress``: progress bars on stderr for training steps and sampled images.
    """
    import time

    from fetal_bench.generators import fu_lora
    from fetal_bench.generators.score import GRID_FILE, RESULT_FILE, score

    out_dir = Path(out_dir)
    lora_dir, synthetic_dir, score_dir = out_dir / "fu-lora-tiny", out_dir / "synthetic-planes", out_dir / "synthetic-score"
    start = time.perf_counter()
    bar, update = _bar("FU-LoRA training", progress)
    with bar:
        fu_lora.train(data=phantom_dir, config="planes", base="tiny", max_steps=4, output=lora_dir, overwrite=True,
                      progress=update)
    log(f"   trained a tiny FU-LoRA (4 steps) in {time.perf_counter() - start:.1f} s")
    start = time.perf_counter()
    # One image per shard, so the bar moves per image (the images do not depend on the sharding).
    bar, update = _bar("sampling", progress)
    with bar:
        result = fu_lora.sample(lora=lora_dir, per_class=2, seed=7, steps=sample_steps, output=synthetic_dir,
                                overwrite=True, shard_size=1, on_shard=update)
    rows = result.configs["default"]["train"].num_examples
    log(f"   sampled {rows} synthetic images in {time.perf_counter() - start:.1f} s "
        "(random tiny base: noise, not ultrasound)")
    quality = score(synthetic_dir, real=phantom_dir, real_config="planes", output=score_dir,
                    features="random-cnn", min_per_class=2)
    log(f"   FID {quality['scores']['fid']['value']:.4g} (random-cnn features)")
    return {
        "FU-LoRA (tiny base)": str(lora_dir),
        SYNTHETIC_SPLIT: str(synthetic_dir),
        "synthetic-quality result": str(score_dir / RESULT_FILE),
        "synthetic sample grid": str(score_dir / GRID_FILE),
    }
