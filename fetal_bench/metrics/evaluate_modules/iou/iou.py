"""fetal-bench `iou` as an `evaluate` metric module.

Computes through fetal_bench.metrics.iou, the same function the fetal-bench harness uses,
so scores agree exactly. Load offline with evaluate.load("<path to this file>") or
fetal_bench.metrics.load_evaluate_metric("iou").
"""

import evaluate

from fetal_bench.metrics import iou
from fetal_bench.metrics._evaluate_support import CITATION, REFERENCE_URLS, mask_features, mean_over_images

_DESCRIPTION = """\
Intersection over union |P ∩ T| / |P ∪ T| per image, averaged over images. Both masks empty:
1.0; one empty: 0.0.
"""

_KWARGS_DESCRIPTION = """\
Args:
    predictions (list of 2-D 0/1 arrays or nested lists): predicted masks.
    references (list of 2-D 0/1 arrays): reference masks, same shape as the predictions.
Returns:
    iou (float): the mean over images
Example:
    >>> m = evaluate.load("fetal_bench/metrics/evaluate_modules/iou")
    >>> m.compute(predictions=[mask_a], references=[mask_b])
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class IoU(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=mask_features(pixel_size=False),
            reference_urls=REFERENCE_URLS,
        )

    def _compute(self, predictions, references):
        return {"iou": mean_over_images(iou, predictions, references)}
