"""fetal-bench `hd95_mm` as an `evaluate` metric module.

Computes through fetal_bench.metrics.hd95_mm, the same function the fetal-bench harness uses,
so scores agree exactly. Load offline with evaluate.load("<path to this file>") or
fetal_bench.metrics.load_evaluate_metric("hd95_mm").
"""

import evaluate

from fetal_bench.metrics import hd95_mm
from fetal_bench.metrics._evaluate_support import CITATION, REFERENCE_URLS, mask_features, mean_over_images

_DESCRIPTION = """\
95th-percentile symmetric Hausdorff distance in mm, per image, averaged over images: max of the
two directed 95th percentiles (linear interpolation) of the distances between boundary-pixel
centres, a boundary pixel being a foreground pixel with a 4-connected background neighbour
(MONAI's compute_hausdorff_distance(percentile=95)). Both masks empty: 0; one empty: the image
diagonal hypot(H, W) x pixel size.
"""

_KWARGS_DESCRIPTION = """\
Args:
    predictions (list of 2-D 0/1 arrays or nested lists): predicted masks.
    references (list of 2-D 0/1 arrays): reference masks, same shape as the predictions.
    pixel_size_mm (list of float): isotropic pixel size of each image in mm.
Returns:
    hd95_mm (float): the mean over images
Example:
    >>> m = evaluate.load("fetal_bench/metrics/evaluate_modules/hd95_mm")
    >>> m.compute(predictions=[mask_a], references=[mask_b], pixel_size_mm=[0.15])
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class HD95mm(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=mask_features(pixel_size=True),
            reference_urls=REFERENCE_URLS,
        )

    def _compute(self, predictions, references, pixel_size_mm):
        return {"hd95_mm": mean_over_images(hd95_mm, predictions, references, pixel_size_mm)}
