"""fetal-bench `auc_ovr_macro` as an `evaluate` metric module.

Computes through fetal_bench.metrics.auc_ovr_macro, the same function the fetal-bench harness uses,
so scores agree exactly. Load offline with evaluate.load("<path to this file>") or
fetal_bench.metrics.load_evaluate_metric("auc_ovr_macro").
"""

import evaluate
import numpy as np

from fetal_bench.metrics import auc_ovr_macro
from fetal_bench.metrics._evaluate_support import CITATION, REFERENCE_URLS, proba_features

_DESCRIPTION = """\
One-vs-rest ROC AUC of each class's probability column (ties count one half), averaged over the
classes that have both positive and negative reference samples; None when no class does.
"""

_KWARGS_DESCRIPTION = """\
Args:
    prediction_scores (list of list of float): class probabilities per sample, values in [0, 1].
    references (list of int): true class index per sample.
Returns:
    auc_ovr_macro (float or None): the score, None when no class has both positive and negative references
Example:
    >>> m = evaluate.load("fetal_bench/metrics/evaluate_modules/auc_ovr_macro")
    >>> m.compute(prediction_scores=[[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]], references=[0, 1, 1])
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class AucOvrMacro(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=proba_features(),
            reference_urls=REFERENCE_URLS,
        )

    def _compute(self, prediction_scores, references):
        return {"auc_ovr_macro": auc_ovr_macro(references, np.asarray(prediction_scores, dtype=np.float64))}
