"""The studies: one module per figure, each following one protocol.

A study module provides

``NAME``
    the figure's name: ``figures/NAME.png``, ``.pdf`` and ``.csv``; ``approxlab figures --only NAME``.
``compute(profile="quick", **options) -> pandas.DataFrame``
    the tidy data, computed in the calling process (``profile`` is ``"quick"`` or ``"full"``). A study
    whose compute takes ``device`` runs there (``approxlab figures --device cuda``).
``draw(df) -> matplotlib.figure.Figure``
    the figure from that data alone, so a committed CSV redraws it anywhere.

and may set

``REQUIRES = "cuda"``
    what it needs to compute; without it the runner redraws the committed CSV instead.
``SERIAL = "timing"``
    why it must run serially in one process (its rows carry timings): ``--jobs`` / ``--scheduler`` are
    ignored for it, and it is not cached.
``problems(df) -> list[str]``
    what in the data is a failure (the runner prints them and exits 1 after writing the figure);
``summary(df) -> str``
    a short text the runner prints after writing the figure.

Studies import the library, :mod:`approxlab.experiments.sweep` (cached cells), ``style`` and other
studies' public functions; never the runner (:mod:`approxlab.experiments.figures`). They are registered
here by explicit import, in the order ``approxlab figures`` runs them.
"""

from . import (
    bridge, features_by_kind, features_vs_entropy, gpu_validation, kernel_error, learned_maps, lesson_exercise,
    model_swap, rational_degree, speed_vs_length, variance_shrinkage, window_hybrid,
)

#: every study by name, in the order ``approxlab figures`` runs them
STUDIES = {module.NAME: module for module in (
    rational_degree, kernel_error, bridge, features_vs_entropy, lesson_exercise, speed_vs_length, gpu_validation,
    features_by_kind, learned_maps, model_swap, window_hybrid, variance_shrinkage,
)}

__all__ = ["STUDIES"]
