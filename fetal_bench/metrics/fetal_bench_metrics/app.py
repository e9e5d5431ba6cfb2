"""The Hub Space of the ``fetal_bench_metrics`` evaluate module: the card (README.md) and a widget
for one config, read from the module file beside this one (a local path: nothing is fetched).

The config is ``FETAL_BENCH_METRIC`` (a Space variable; default ``macro_f1``): label metrics fit
the widget's table, masks do not (score those with ``evaluate.load(..., config_name="dice")``).
"""

import os

import evaluate
from evaluate.utils import launch_gradio_widget

module = evaluate.load("fetal_bench_metrics.py", config_name=os.environ.get("FETAL_BENCH_METRIC", "macro_f1"))
launch_gradio_widget(module)
