"""Evaluation: how well the pipeline answers, and fitting its answer decision.

- ``evaluate``: ``newsqa eval``, reader-only or end to end (an index of the file's contexts,
  optionally with each question's own article removed), through the ``NewsQA`` facade.
- ``metrics``: SQuAD EM/F1, retrieval recall/MRR, thresholds, question types.
- ``report``: per-question results to ``report.json``, ``report.md`` and plots.
- ``calibrate``: ``newsqa calibrate``, the logistic answer decision fitted on ``eval`` results.
"""
