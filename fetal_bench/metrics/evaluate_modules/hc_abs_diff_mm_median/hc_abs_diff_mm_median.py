"""fetal-bench `hc_abs_diff_mm_median` as an `evaluate` metric module.

Computes through fetal_bench.metrics.hc_abs_diff_mm_median, the same per-image function the
fetal-bench harness uses, and takes the median over images, so scores agree exactly. Load offline
with fetal_bench.metrics.load_evaluate_metric("hc_abs_diff_mm_median").
"""

import evaluate
import numpy as np

from fetal_bench.metrics import hc_abs_diff_mm_median
from fetal_bench.metrics._evaluate_support import CITATION, REFERENCE_URLS, mask_features

_DESCRIPTION = """\
Head circumference absolute difference in mm, per image, median over images: |HC(prediction) -
reference HC| as in hc_abs_diff_mm (a prediction without a usable ellipse scores the reference
HC). The median is not moved by a few failed images, which can dominate the mean.
"""

_KWARGS_DESCRIPTION = """\
Args:
    predictions (list of 2-D 0/1 arrays or nested lists): predicted head masks.
    references (list of float): reference head circumference of each image in mm.
    pixel_size_mm (list of float): isotropic pixel size of each image in mm.
Returns:
    hc_abs_diff_mm_median (float): the median over images
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class HCAbsDiffmmMedian(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=mask_features(pixel_size=True, reference_is_hc=True),
            reference_urls=REFERENCE_URLS,
        )

    def _compute(self, predictions, references, pixel_size_mm):
        values = [hc_abs_diff_mm_median(np.asarray(p), h, s) for p, h, s in zip(predictions, references, pixel_size_mm)]
        if not values:
            raise ValueError("no images to score")
        return {"hc_abs_diff_mm_median": float(np.median(values))}
