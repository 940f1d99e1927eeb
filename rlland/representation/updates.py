"""The representation diagnostics of a run at update resolution, read back (reference A.3 ``get_rank_diff``).

`rlland.train` writes every logged update's metrics as ``updates/<name>`` [seed, U] (with ``updates/iteration``
and ``updates/steps`` [U]) in ``metrics.h5``; the agents log ``repr/start/...`` and ``repr/end/...`` pairs (the
features under the parameters at the start and at the end of each update). The study also logs their difference,
``batch/diff/<metric>`` = end - start, for every metric logged under both (``get_rank_diff``); here it is computed
from the logged arrays rather than on the device (no extra work in the training kernel).
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

START, END, DIFF = "repr/start/", "repr/end/", "repr/diff/"


def end_minus_start(metrics: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``{k with "repr/diff/": end - start}`` for every key holding ``"repr/end/"`` whose ``"repr/start/"``
    counterpart is also in ``metrics`` (any prefix: ``updates/``, ``train/``, none). Arrays of the same shape;
    NaN where either is NaN (a non-logging iteration)."""
    out = {}
    for k, end in metrics.items():
        if END in k and k.replace(END, START, 1) in metrics:
            start = np.asarray(metrics[k.replace(END, START, 1)], np.float64)
            out[k.replace(END, DIFF, 1)] = np.asarray(end, np.float64) - start
    return out
