"""fetal-bench `weighted_f1` as an `evaluate` metric module.

Computes through fetal_bench.metrics.weighted_f1, the same function the fetal-bench harness uses,
so scores agree exactly. Load offline with evaluate.load("<path to this file>") or
fetal_bench.metrics.load_evaluate_metric("weighted_f1").
"""

import evaluate

from fetal_bench.metrics import weighted_f1
from fetal_bench.metrics._evaluate_support import CITATION, REFERENCE_URLS, infer_n_classes, label_features

_DESCRIPTION = """\
Mean of the per-class F1 weighted by each class's number of reference samples. A prediction
equal to k means 'a class outside the task' and is always wrong.
"""

_KWARGS_DESCRIPTION = """\
Args:
    predictions (list of int): predicted class index per sample.
    references (list of int): true class index per sample.
    n_classes (int, optional): number of task classes k; default: one more than the largest label seen.
Returns:
    weighted_f1 (float): the score
Example:
    >>> m = evaluate.load("fetal_bench/metrics/evaluate_modules/weighted_f1")
    >>> m.compute(predictions=[0, 1, 2, 1], references=[0, 1, 1, 1], n_classes=3)
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class WeightedF1(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=label_features(),
            reference_urls=REFERENCE_URLS,
        )

    def _compute(self, predictions, references, n_classes=None):
        k = infer_n_classes(n_classes, predictions, references)
        return {"weighted_f1": weighted_f1(references, predictions, k)}
