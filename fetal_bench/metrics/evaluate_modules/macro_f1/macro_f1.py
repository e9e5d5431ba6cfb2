"""fetal-bench `macro_f1` as an `evaluate` metric module.

Computes through fetal_bench.metrics.macro_f1, the same function the fetal-bench harness uses,
so scores agree exactly. Load offline with evaluate.load("<path to this file>") or
fetal_bench.metrics.load_evaluate_metric("macro_f1").
"""

import evaluate

from fetal_bench.metrics import macro_f1
from fetal_bench.metrics._evaluate_support import CITATION, REFERENCE_URLS, infer_n_classes, label_features

_DESCRIPTION = """\
Unweighted mean over the k task classes of F1_c = 2 TP_c / (2 TP_c + FP_c + FN_c); a class
neither present nor predicted scores 0 (scikit-learn's zero_division=0). A prediction equal to k
means 'a class outside the task' and is always wrong.
"""

_KWARGS_DESCRIPTION = """\
Args:
    predictions (list of int): predicted class index per sample.
    references (list of int): true class index per sample.
    n_classes (int, optional): number of task classes k; default: one more than the largest label seen.
Returns:
    macro_f1 (float): the score
Example:
    >>> m = evaluate.load("fetal_bench/metrics/evaluate_modules/macro_f1")
    >>> m.compute(predictions=[0, 1, 2, 1], references=[0, 1, 1, 1], n_classes=3)
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class MacroF1(evaluate.Metric):
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
        return {"macro_f1": macro_f1(references, predictions, k)}
