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
@click.option("--task", "task_name", default=None,
              help="Predict a task's split instead of IMAGES, as a submission `evaluate --predictions` takes as is.")
@click.option("--data", default=None, help="With --task: a local dataset build or a Hub id (as for evaluate).")
@click.option("--split", default=None, help="With --task: the split (default: the task's evaluation split).")
@click.option("--output", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="CSV file to write (with --task: .csv for classification, .parquet for segmentation).")
@click.option("--batch-size", type=click.IntRange(1), default=16, show_default=True)
@click.option("--device", default=None, help="cuda / cpu (default: cuda when available).")
@click.option("--random-init", is_flag=True,
              help="Run the model untrained when there is no --checkpoint (outputs are meaningless; for testing).")
@click.option("--no-progress", is_flag=True, help="No progress bar (it goes to stderr).")
@click.argument("images", nargs=-1, type=click.Path(path_type=Path, exists=True))
def predict(model_name, checkpoint, task_name, data, split, output, batch_size, device, random_init, no_progress,
            images) -> None:
    """Classify or segment image files (PNG/TIFF/JPEG/BMP, or directories of them: their images,
    sorted by name) with a model; or, with --task, the rows of a task's split.

    Without --checkpoint, only SonoNet-16 and SAM predict, with their published weights; when
    those are missing, or for any other model, it refuses (--random-init overrides).

    IMAGES: classifiers write a CSV `file,label,score` plus one probability column per class;
    segmenters also write one mask PNG per image into OUTPUT's sibling folder `<stem>_masks/`.

    --task T [--data D] [--split S]: a submission keyed by the dataset's row `id` (CSV of `id` and
    one probability per class, or Parquet of `id` and PNG masks) that `fetal-bench evaluate --task
    T --predictions OUTPUT` scores unchanged.
    """
    from fetal_bench.errors import FetalBenchError

    if (task_name is None) == (not images):
        raise FetalBenchError("Give either image files or --task, not both or neither.",
                              "fetal-bench predict --model M --output preds.csv scans/*.png, or --task T --data D "
                              "--split test --output preds.csv.")
    if task_name is None and (data is not None or split is not None):
        raise FetalBenchError("--data and --split choose a task's rows: they need --task.", "Add --task T.")
    if task_name is not None:
        from fetal_bench.evaluation.predict_files import predict_task

        written = predict_task(task_name, model_name, output, checkpoint=checkpoint, data=data, split=split,
                               batch_size=batch_size, device=device, random_init=random_init, log=note)
        note(f"Wrote {written.path} ({written.n} rows of {written.source} [{written.split}]): score it with "
             f"fetal-bench evaluate --task {written.task} --predictions {written.path}"
             + (f" --data {data}" if data is not None else "") + (f" --split {split}" if split is not None else "")
             + " --output results/")
        return
    from fetal_bench.evaluation.predict_files import predict_files

    result = predict_files(model_name, list(images), output, checkpoint=checkpoint, batch_size=batch_size, device=device,
                           random_init=random_init, progress=not no_progress)
    note(f"Wrote {result.csv} ({result.n} images)" + (f" and masks in {result.mask_dir}" if result.mask_dir else ""))
