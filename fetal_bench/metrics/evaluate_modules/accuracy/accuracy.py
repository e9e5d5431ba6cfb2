"""fetal-bench `accuracy` as an `evaluate` metric module.

Computes through fetal_bench.metrics.accuracy, the same function the fetal-bench harness uses,
so scores agree exactly. Load offline with evaluate.load("<path to this file>") or
fetal_bench.metrics.load_evaluate_metric("accuracy").
"""

import evaluate

from fetal_bench.metrics import accuracy
from fetal_bench.metrics._evaluate_support import CITATION, REFERENCE_URLS, label_features

_DESCRIPTION = """\
Fraction of samples whose predicted class equals the true class.
"""

_KWARGS_DESCRIPTION = """\
Args:
    predictions (list of int): predicted class index per sample.
    references (list of int): true class index per sample.
Returns:
    accuracy (float): the score
Example:
    >>> m = evaluate.load("fetal_bench/metrics/evaluate_modules/accuracy")
    >>> m.compute(predictions=[0, 1, 2, 1], references=[0, 1, 1, 1])
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Accuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=label_features(),
            reference_urls=REFERENCE_URLS,
        )

    def _compute(self, predictions, references):
        return {"accuracy": accuracy(references, predictions)}
