"""Training fetal-bench baselines: ``train(...)`` (accelerate), augmentation, data mixing.

>>> from fetal_bench.training import train
>>> result = train(model="unet", task="phantom-head-seg", output="runs/unet", epochs=5)
>>> result.output  # a checkpoint directory: create_model("unet", checkpoint=result.output)
"""

from fetal_bench.training.loop import TrainConfig, TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "train"]
