"""Data sources: each returns a `Series` (raw, un-normalised) for the windowing in `windows.py`."""

from __future__ import annotations

import numpy as np
import torch

from lstm_cls.windows import Series, UserError


def synthetic(
    length: int = 8000,
    n_features: int = 13,
    n_classes: int = 2,
    noise: float = 0.1,
    signal: float = 0.4,
    regime: float = 20.0,
    seed: int = 0,
    chunk: int = 1 << 20,
) -> Series:
    """One multivariate series whose class is a hidden regime that one step alone barely reveals.

    A hidden regime (Markov chain: it switches to another class with probability 1/`regime` per
    step, so runs last `regime` steps on average) shifts the mean of the features it owns (feature j
    belongs to class j % n_classes) by `signal`; every feature also carries N(0, 1) noise. The label
    at a step is its regime. One step is weak evidence; integrating the preceding steps, as a
    recurrent model can, is strong evidence. Each label is then replaced by another class with
    probability `noise`, which a large enough model memorises: the overfitting to study.
    """
    if length <= 0 or n_classes < 2 or n_features < n_classes or regime < 1 or not 0 <= noise < 1:
        raise UserError(
            "synthetic data needs data.length > 0, data.n_classes >= 2, data.n_features >= data.n_classes, "
            f"data.regime >= 1 and 0 <= data.noise < 1 (got length={length}, n_features={n_features}, "
            f"n_classes={n_classes}, regime={regime}, noise={noise})"
        )
    rng = np.random.default_rng(seed)
    # regime: a random start, then at each switch a jump to one of the other classes
    jumps = np.where(rng.random(length) < 1 / regime, rng.integers(1, n_classes, length), 0)
    jumps[0] = rng.integers(n_classes)
    z = np.cumsum(jumps) % n_classes  # [steps]
    shift = np.zeros((n_classes, n_features), np.float32)
    for c in range(n_classes):
        shift[c, c::n_classes] = signal
    x = rng.standard_normal((length, n_features), dtype=np.float32)
    for i in range(0, length, chunk):  # in chunks: no second full-size temporary
        x[i : i + chunk] += shift[z[i : i + chunk]]
    y = z.astype(np.int64)
    flip = rng.random(length) < noise
    y[flip] = (y[flip] + rng.integers(1, n_classes, int(flip.sum()))) % n_classes
    return Series(
        x=torch.from_numpy(x),
        y=torch.from_numpy(y),
        bounds=[(0, length)],
        feature_names=[f"x{i}" for i in range(n_features)],
        class_names=[str(c) for c in range(n_classes)],
    )
