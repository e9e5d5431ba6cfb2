"""fetal-bench `f1` as an `evaluate` metric module.

Computes through fetal_bench.metrics.f1, the same function the fetal-bench harness uses,
so scores agree exactly. Load offline with evaluate.load("<path to this file>") or
fetal_bench.metrics.load_evaluate_metric("f1").
"""

import evaluate

from fetal_bench.metrics import f1
from fetal_bench.metrics._evaluate_support import CITATION, REFERENCE_URLS, label_features

_DESCRIPTION = """\
F1 of the positive class: 2 TP / (2 TP + FP + FN), a sample being positive when its class index
equals `positive`; None when there is no positive at all (neither true nor predicted).
"""

_KWARGS_DESCRIPTION = """\
Args:
    predictions (list of int): predicted class index per sample.
    references (list of int): true class index per sample.
    positive (int, optional): the positive class index; default 1.
Returns:
    f1 (float or None): the score, None where it is undefined
Example:
    >>> m = evaluate.load("fetal_bench/metrics/evaluate_modules/f1")
    >>> m.compute(predictions=[0, 1, 1, 0], references=[0, 1, 0, 1])
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class F1(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=label_features(),
            reference_urls=REFERENCE_URLS,
        )

    def _compute(self, predictions, references, positive=1):
        return {"f1": f1(references, predictions, positive)}
