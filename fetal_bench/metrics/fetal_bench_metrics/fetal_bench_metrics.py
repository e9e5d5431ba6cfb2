"""fetal-bench's metrics as one `evaluate` module; ``config_name`` picks the metric (as `glue` does).

    import evaluate
    dice = evaluate.load("<fetal_bench>/metrics/fetal_bench_metrics", config_name="dice")
    dice.compute(predictions=[mask_a], references=[mask_b])

or ``fetal_bench.metrics.load_evaluate_metric("dice")``. Every key of
``fetal_bench.metrics.METRICS`` is a config; its description, inputs and options come from that
registry, and it computes through the same function the fetal-bench harness scores with.
"""

import evaluate

from fetal_bench.metrics._evaluate_support import CITATION, REFERENCE_URLS, compute, features, inputs_description, spec_of


class FetalBenchMetric(evaluate.Metric):
    def _info(self):
        spec = spec_of(self.config_name)
        return evaluate.MetricInfo(
            description=spec.description,
            citation=CITATION,
            inputs_description=inputs_description(spec),
            features=features(spec),
            reference_urls=REFERENCE_URLS,
        )

    def _compute(self, **columns_and_options):
        return compute(spec_of(self.config_name), **columns_and_options)
