"""Submission readers, under the import path the harness's users know: each kind reads its own
format (:mod:`fetal_bench.tasks.classification`, :mod:`fetal_bench.tasks.segmentation`) with the
shared checks of :mod:`fetal_bench.tasks.submissions`."""

from fetal_bench.tasks.classification import ClassificationSubmission, load_classification_submission
from fetal_bench.tasks.segmentation import load_segmentation_submission
from fetal_bench.tasks.submissions import SubmissionError, submission_sha256

__all__ = ["ClassificationSubmission", "SubmissionError", "load_classification_submission",
           "load_segmentation_submission", "submission_sha256"]
