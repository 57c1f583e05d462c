"""Evaluation: how good the engine's rankings are, against truth it never reads.

``synthetic`` scores rankings with a generated market's latent truth; ``holdout`` and ``real``
hold out part of real data and ask the engine to recover it (``real`` runs it from ``task``,
``convert``, ``metrics`` and ``baselines``, one topic each). This package sits above
``matching`` (it imports the generator's oracle), so matching never depends on it.
"""
