"""`fetal-bench predict --model M [--checkpoint C] --output FILE IMAGES...`."""

from __future__ import annotations

from pathlib import Path

import click

from fetal_bench.cli._console import note


@click.command("predict")
@click.option("--model", "model_name", required=True, help="A registered model (`fetal-bench models list`).")
@click.option("--checkpoint", default=None,
              help="A checkpoint directory, a Hub repository (org/name or org/name@revision), or a published "
                   "weights file (SonoNet16.npz, SAM .pth).")
@click.option("--output", required=True, type=click.Path(path_type=Path, dir_okay=False), help="CSV file to write.")
@click.option("--batch-size", type=click.IntRange(1), default=16, show_default=True)
@click.option("--device", default=None, help="cuda / cpu (default: cuda when available).")
@click.option("--random-init", is_flag=True,
              help="Run the model untrained when there is no --checkpoint (outputs are meaningless; for testing).")
@click.option("--no-progress", is_flag=True, help="No progress bar (it goes to stderr).")
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path, exists=True))
def predict(model_name, checkpoint, output, batch_size, device, random_init, no_progress, images) -> None:
    """Classify or segment image files (PNG/TIFF/JPEG/BMP, or directories of them: their images,
    sorted by name) with a model.

    Without --checkpoint, only SonoNet-16 and SAM predict, with their published weights; when
    those are missing, or for any other model, it refuses (--random-init overrides).

    Classifiers write a CSV `file,label,score` plus one probability column per class;
    segmenters also write one mask PNG per image into OUTPUT's sibling folder `<stem>_masks/`.
    """
    from fetal_bench.evaluation.predict_files import predict_files

    result = predict_files(model_name, list(images), output, checkpoint=checkpoint, batch_size=batch_size, device=device,
                           random_init=random_init, progress=not no_progress)
    note(f"Wrote {result.csv} ({result.n} images)" + (f" and masks in {result.mask_dir}" if result.mask_dir else ""))
