"""fetal-bench `dice` as an `evaluate` metric module.

Computes through fetal_bench.metrics.dice, the same function the fetal-bench harness uses,
so scores agree exactly. Load offline with evaluate.load("<path to this file>") or
fetal_bench.metrics.load_evaluate_metric("dice").
"""

import evaluate

from fetal_bench.metrics import dice
from fetal_bench.metrics._evaluate_support import CITATION, REFERENCE_URLS, mask_features, mean_over_images

_DESCRIPTION = """\
Dice coefficient 2|P ∩ T| / (|P| + |T|) per image, averaged over images. Both masks empty: 1.0;
one empty: 0.0.
"""

_KWARGS_DESCRIPTION = """\
Args:
    predictions (list of 2-D 0/1 arrays or nested lists): predicted masks.
    references (list of 2-D 0/1 arrays): reference masks, same shape as the predictions.
Returns:
    dice (float): the mean over images
Example:
    >>> m = evaluate.load("fetal_bench/metrics/evaluate_modules/dice")
    >>> m.compute(predictions=[mask_a], references=[mask_b])
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Dice(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=mask_features(pixel_size=False),
            reference_urls=REFERENCE_URLS,
        )

    def _compute(self, predictions, references):
        return {"dice": mean_over_images(dice, predictions, references)}
