"""The papers' training protocols: versioned YAML configs and one runner each.

>>> from fetal_bench.protocols import list_protocols, run_protocol
>>> summary = run_protocol("sam-few-shot", "out/sam-few-shot", overrides={"profile": "tiny"})

A protocol trains every variant it lists (``fetal_bench.training.train``), scores each one
(``fetal_bench.evaluation.evaluate``, plus the protocol's own measure where the paper's differs),
and writes under ``OUTPUT``::

    protocol_config.json   the resolved config (registered YAML + profile + overrides) and its sha256
    runs/<run>/            one training run each (a checkpoint; re-running resumes/skips it)
    results/<run>.json     fetal-bench result files (`fetal-bench leaderboard build --results` reads them)
    summary.json, summary.csv   one row per run, the scores the paper reports

Configs live in ``fetal_bench/protocols/configs/*.yaml``; each cites its paper and holds the
paper's settings as defaults, a ``tiny`` profile that runs on the phantom set in seconds, and
what the full run needs (docs/protocols.md).
"""

from fetal_bench.protocols.registry import PROTOCOLS, Protocol, get_protocol, list_protocols, load_config, run_protocol

__all__ = ["PROTOCOLS", "Protocol", "get_protocol", "list_protocols", "load_config", "run_protocol"]
