"""murmurlm.evaluate: one evaluator for every model.

- :mod:`~murmurlm.evaluate.predictions` — the model-agnostic predictions CSV (read, write, build).
- :mod:`~murmurlm.evaluate.aggregate` — recording-to-patient aggregation rules.
- :mod:`~murmurlm.evaluate.metrics` — per-feature metrics, Challenge 2022 scores, bootstrap.
- :mod:`~murmurlm.evaluate.baselines` — majority and class-prior baselines.
- :mod:`~murmurlm.evaluate.scoring` — ``evaluate_predictions``, ``evaluate_with_baselines``, ``dataset_labels``.
- :mod:`~murmurlm.evaluate.report` — the Markdown/HTML/JSON reports (re-exports the scoring names).

See ``docs/evaluation.md``; the command is ``murmurlm evaluate``.
"""
