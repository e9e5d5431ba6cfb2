"""`fetal-bench predict --model M [--checkpoint C] --output FILE IMAGES...`."""

from __future__ import annotations

from pathlib import Path

import click

from fetal_bench.cli._console import console


@click.command("predict")
@click.option("--model", "model_name", required=True, help="A registered model (`fetal-bench models list`).")
@click.option("--checkpoint", type=click.Path(path_type=Path, exists=True), default=None,
              help="A checkpoint directory, or a published weights file (SonoNet16.npz, SAM .pth).")
@click.option("--output", required=True, type=click.Path(path_type=Path, dir_okay=False), help="CSV file to write.")
@click.option("--batch-size", type=click.IntRange(1), default=16, show_default=True)
@click.option("--device", default=None, help="cuda / cpu (default: cuda when available).")
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path, exists=True, dir_okay=False))
def predict(model_name, checkpoint, output, batch_size, device, images) -> None:
    """Classify or segment image files (PNG/TIFF/JPEG) with a model.

    Classifiers write a CSV `file,label,score` plus one probability column per class;
    segmenters also write one mask PNG per image into OUTPUT's sibling folder `<stem>_masks/`.
    """
    from fetal_bench.models.predict import predict_files

    result = predict_files(model_name, list(images), output, checkpoint=checkpoint, batch_size=batch_size, device=device)
    console.print(f"Wrote {result.csv} ({result.n} images)" + (f" and masks in {result.mask_dir}" if result.mask_dir else ""))
