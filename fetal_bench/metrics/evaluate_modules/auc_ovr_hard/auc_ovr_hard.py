"""fetal-bench `auc_ovr_hard` as an `evaluate` metric module.

Computes through fetal_bench.metrics.auc_ovr_hard, the same function the fetal-bench harness uses,
so scores agree exactly. Load offline with evaluate.load("<path to this file>") or
fetal_bench.metrics.load_evaluate_metric("auc_ovr_hard").
"""

import evaluate

from fetal_bench.metrics import auc_ovr_hard
from fetal_bench.metrics._evaluate_support import CITATION, REFERENCE_URLS, infer_n_classes, label_features

_DESCRIPTION = """\
FU-LoRA's AUC, as the authors compute it: for each class c present in the references, the
ROC AUC of the binarised prediction (1 if the predicted class is c, or is a label not present in
the references, e.g. "Other"), i.e. (TPR_c + TNR_c) / 2, averaged over the classes that have both
positive and negative reference samples; None when no class does.
"""

_KWARGS_DESCRIPTION = """\
Args:
    predictions (list of int): predicted class index per sample.
    references (list of int): true class index per sample.
    n_classes (int, optional): number of task classes k; default: one more than the largest label seen.
Returns:
    auc_ovr_hard (float or None): the score, None when no class has both positive and negative references
Example:
    >>> m = evaluate.load("fetal_bench/metrics/evaluate_modules/auc_ovr_hard")
    >>> m.compute(predictions=[0, 1, 2, 1], references=[0, 1, 1, 1], n_classes=3)
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class AucOvrHard(evaluate.Metric):
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
        return {"auc_ovr_hard": auc_ovr_hard(references, predictions, k)}
