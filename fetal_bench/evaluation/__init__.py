"""Evaluation: submissions, the harness (`evaluate`), and result files."""

from fetal_bench.evaluation.harness import evaluate
from fetal_bench.evaluation.results import read_result, validate_result, write_result

__all__ = ["evaluate", "read_result", "validate_result", "write_result"]
