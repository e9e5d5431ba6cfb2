"""fetal-bench `hc_diff_mm` as an `evaluate` metric module.

Computes through fetal_bench.metrics.hc_diff_mm, the same function the fetal-bench harness uses,
so scores agree exactly. Load offline with evaluate.load("<path to this file>") or
fetal_bench.metrics.load_evaluate_metric("hc_diff_mm").
"""

import evaluate

from fetal_bench.metrics import hc_diff_mm
from fetal_bench.metrics._evaluate_support import CITATION, REFERENCE_URLS, mask_features, mean_over_images

_DESCRIPTION = """\
Signed head circumference difference in mm, per image, averaged over images: HC(prediction) -
reference HC, HC(prediction) = perimeter of the least-squares ellipse fitted to the boundary
pixels of the prediction's largest 8-connected component, times the pixel size. Positive means
over-estimated. A prediction with no usable ellipse measures 0 mm (scores -reference HC).
"""

_KWARGS_DESCRIPTION = """\
Args:
    predictions (list of 2-D 0/1 arrays or nested lists): predicted head masks.
    references (list of float): reference head circumference of each image in mm.
    pixel_size_mm (list of float): isotropic pixel size of each image in mm.
Returns:
    hc_diff_mm (float): the mean over images
Example:
    >>> m = evaluate.load("fetal_bench/metrics/evaluate_modules/hc_diff_mm")
    >>> m.compute(predictions=[mask], references=[174.3], pixel_size_mm=[0.15])
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class HCDiffmm(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=mask_features(pixel_size=True, reference_is_hc=True),
            reference_urls=REFERENCE_URLS,
        )

    def _compute(self, predictions, references, pixel_size_mm):
        return {"hc_diff_mm": mean_over_images(hc_diff_mm, predictions, references, pixel_size_mm)}
