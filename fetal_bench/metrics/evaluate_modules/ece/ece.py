"""fetal-bench `ece` as an `evaluate` metric module.

Computes through fetal_bench.metrics.ece, the same function the fetal-bench harness uses,
so scores agree exactly. Load offline with evaluate.load("<path to this file>") or
fetal_bench.metrics.load_evaluate_metric("ece").
"""

import evaluate
import numpy as np

from fetal_bench.metrics import ece
from fetal_bench.metrics._evaluate_support import CITATION, REFERENCE_URLS, proba_features

_DESCRIPTION = """\
Expected calibration error: the top-class confidence max_c p_c is binned into n_bins equal-width
bins (edges numpy.linspace(0, 1, n_bins + 1), right-closed, a confidence on an edge falls in the
lower bin); ECE = sum over bins of (n_b / n) |accuracy_b - mean confidence_b|. The prediction is
the first column holding the maximum.
"""

_KWARGS_DESCRIPTION = """\
Args:
    prediction_scores (list of list of float): class probabilities per sample, values in [0, 1].
    references (list of int): true class index per sample.
    n_bins (int, optional, default 15): number of equal-width confidence bins.
Returns:
    ece (float): the score
Example:
    >>> m = evaluate.load("fetal_bench/metrics/evaluate_modules/ece")
    >>> m.compute(prediction_scores=[[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]], references=[0, 1, 1])
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class ExpectedCalibrationError(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=proba_features(),
            reference_urls=REFERENCE_URLS,
        )

    def _compute(self, prediction_scores, references, n_bins=15):
        return {"ece": ece(references, np.asarray(prediction_scores, dtype=np.float64), n_bins=n_bins)}
