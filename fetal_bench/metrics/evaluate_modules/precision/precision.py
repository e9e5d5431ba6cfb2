"""fetal-bench `precision` as an `evaluate` metric module.

Computes through fetal_bench.metrics.precision, the same function the fetal-bench harness uses,
so scores agree exactly. Load offline with evaluate.load("<path to this file>") or
fetal_bench.metrics.load_evaluate_metric("precision").
"""

import evaluate

from fetal_bench.metrics import precision
from fetal_bench.metrics._evaluate_support import CITATION, REFERENCE_URLS, label_features

_DESCRIPTION = """\
Positive predictive value of the positive class: TP / (TP + FP); None when nothing is predicted
positive.
"""

_KWARGS_DESCRIPTION = """\
Args:
    predictions (list of int): predicted class index per sample.
    references (list of int): true class index per sample.
    positive (int, optional): the positive class index; default 1.
Returns:
    precision (float or None): the score, None where it is undefined
Example:
    >>> m = evaluate.load("fetal_bench/metrics/evaluate_modules/precision")
    >>> m.compute(predictions=[0, 1, 1, 0], references=[0, 1, 0, 1])
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Precision(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=label_features(),
            reference_urls=REFERENCE_URLS,
        )

    def _compute(self, predictions, references, positive=1):
        return {"precision": precision(references, predictions, positive)}
