"""fetal-bench: fetal ultrasound datasets, generators, baselines and benchmark tasks."""

__version__ = "0.1.0"

from fetal_bench.errors import FetalBenchError

__all__ = ["FetalBenchError", "__version__"]
