"""fetal-bench `auc` as an `evaluate` metric module.

Computes through fetal_bench.metrics.auc, the same function the fetal-bench harness uses,
so scores agree exactly. Load offline with evaluate.load("<path to this file>") or
fetal_bench.metrics.load_evaluate_metric("auc").
"""

import evaluate

from fetal_bench.metrics import auc
from fetal_bench.metrics._evaluate_support import CITATION, REFERENCE_URLS, score_features

_DESCRIPTION = """\
ROC AUC of a score for the positive class (a sample is positive when its class index equals
`positive`): the probability that a random positive scores above a random negative, ties
counting one half; None when only positives or only negatives are present.
"""

_KWARGS_DESCRIPTION = """\
Args:
    prediction_scores (list of float): the positive class's score (e.g. probability) per sample.
    references (list of int): true class index per sample.
    positive (int, optional): the positive class index; default 1.
Returns:
    auc (float or None): the score, None when only one of positive/negative is present
Example:
    >>> m = evaluate.load("fetal_bench/metrics/evaluate_modules/auc")
    >>> m.compute(prediction_scores=[0.1, 0.8, 0.6, 0.3], references=[0, 1, 0, 1])
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Auc(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=score_features(),
            reference_urls=REFERENCE_URLS,
        )

    def _compute(self, prediction_scores, references, positive=1):
        return {"auc": auc(references, prediction_scores, positive)}
