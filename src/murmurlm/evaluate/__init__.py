"""murmurlm.evaluate: one evaluator for every model.

- :mod:`~murmurlm.evaluate.predictions` — the model-agnostic predictions CSV (read, write, build).
- :mod:`~murmurlm.evaluate.aggregate` — recording-to-patient aggregation rules.
- :mod:`~murmurlm.evaluate.metrics` — per-feature metrics, Challenge 2022 scores, bootstrap.
- :mod:`~murmurlm.evaluate.baselines` — majority and class-prior baselines.
- :mod:`~murmurlm.evaluate.report` — ``evaluate_predictions`` and the Markdown/HTML/JSON reports.

See ``docs/evaluation.md``; the command is ``murmurlm evaluate``.
"""
