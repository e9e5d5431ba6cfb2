"""fetal-bench `hc_no_ellipse_rate` as an `evaluate` metric module.

Computes through fetal_bench.metrics.hc_no_ellipse_rate, the same per-image function the
fetal-bench harness uses, averaged over images. Load offline with
fetal_bench.metrics.load_evaluate_metric("hc_no_ellipse_rate").
"""

import evaluate

from fetal_bench.metrics import hc_no_ellipse_rate
from fetal_bench.metrics._evaluate_support import CITATION, REFERENCE_URLS, mask_features, mean_over_images

_DESCRIPTION = """\
Share of images whose predicted head mask gives no usable ellipse: empty, degenerate, or an
ellipse with more than 5% of its area outside the image. Those are the images hc_abs_diff_mm
charges the full reference HC.
"""

_KWARGS_DESCRIPTION = """\
Args:
    predictions (list of 2-D 0/1 arrays or nested lists): predicted head masks.
    references (list of float): reference head circumference of each image in mm (not used; the
        same inputs as hc_abs_diff_mm).
    pixel_size_mm (list of float): pixel size of each image in mm (not used).
Returns:
    hc_no_ellipse_rate (float): the share of images, in [0, 1]
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class HCNoEllipseRate(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=mask_features(pixel_size=True, reference_is_hc=True),
            reference_urls=REFERENCE_URLS,
        )

    def _compute(self, predictions, references, pixel_size_mm):
        return {"hc_no_ellipse_rate": mean_over_images(hc_no_ellipse_rate, predictions)}
