"""The earlier name of :mod:`fetal_bench.evaluation.scored_split` (``tests/test_real_data.py``, which
re-scores the committed results, imports ``load_eval_data`` from here)."""

from fetal_bench.evaluation.scored_split import EvalData, load_eval_data

__all__ = ["EvalData", "load_eval_data"]
