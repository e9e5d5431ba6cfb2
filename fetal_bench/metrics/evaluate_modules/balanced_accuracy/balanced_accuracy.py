"""fetal-bench `balanced_accuracy` as an `evaluate` metric module.

Computes through fetal_bench.metrics.balanced_accuracy, the same function the fetal-bench harness uses,
so scores agree exactly. Load offline with evaluate.load("<path to this file>") or
fetal_bench.metrics.load_evaluate_metric("balanced_accuracy").
"""

import evaluate

from fetal_bench.metrics import balanced_accuracy
from fetal_bench.metrics._evaluate_support import CITATION, REFERENCE_URLS, infer_n_classes, label_features

_DESCRIPTION = """\
Mean recall over the classes present in the references (a class absent from the references is
left out of the mean).
"""

_KWARGS_DESCRIPTION = """\
Args:
    predictions (list of int): predicted class index per sample.
    references (list of int): true class index per sample.
    n_classes (int, optional): number of task classes k; default: one more than the largest label seen.
Returns:
    balanced_accuracy (float): the score
Example:
    >>> m = evaluate.load("fetal_bench/metrics/evaluate_modules/balanced_accuracy")
    >>> m.compute(predictions=[0, 1, 2, 1], references=[0, 1, 1, 1], n_classes=3)
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class BalancedAccuracy(evaluate.Metric):
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
        return {"balanced_accuracy": balanced_accuracy(references, predictions, k)}
