"""Data sources: each returns a `Series` (raw, un-normalised) for the windowing in `windows.py`."""

from __future__ import annotations

import numpy as np
import torch

from lstm_cls.windows import Series, UserError


def synthetic(
    length: int = 4000,
    n_features: int = 13,
    n_classes: int = 2,
    noise: float = 0.15,
    lag: int = 8,
    seed: int = 0,
) -> Series:
    """One multivariate series whose label needs the last `lag` steps, with label noise.

    Features are i.i.d. N(0, 1). With a = sum of feature 0 and b = sum of feature 1 over the last
    `lag` steps, the clean label is the bin of the score a*b: for 2 classes "a and b have the same
    sign" (an XOR of two temporal sums: no single step and no linear model predicts it). More classes
    cut the score at its quantiles. Each label is then replaced by another class with probability
    `noise`, which a large enough model will memorise: that is the overfitting to study.
    """
    if length <= 0 or n_features < 2 or n_classes < 2 or lag <= 0 or not 0 <= noise < 1:
        raise UserError(
            "synthetic data needs data.length > 0, data.n_features >= 2, data.n_classes >= 2, "
            f"data.lag > 0 and 0 <= data.noise < 1 (got length={length}, n_features={n_features}, "
            f"n_classes={n_classes}, lag={lag}, noise={noise})"
        )
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((length, n_features), dtype=np.float32)
    cs = np.cumsum(x[:, :2], axis=0, dtype=np.float64)  # [steps, 2]
    cs[lag:] -= cs[:-lag].copy()  # moving sums over the last `lag` steps (fewer at the very start)
    score = cs[:, 0] * cs[:, 1]
    if n_classes == 2:
        y = (score > 0).astype(np.int64)
    else:
        cuts = np.quantile(score, np.linspace(0, 1, n_classes + 1)[1:-1])
        y = np.searchsorted(cuts, score).astype(np.int64)
    flip = rng.random(length) < noise
    y[flip] = (y[flip] + rng.integers(1, n_classes, int(flip.sum()))) % n_classes
    return Series(
        x=torch.from_numpy(x),
        y=torch.from_numpy(y),
        bounds=[(0, length)],
        feature_names=[f"x{i}" for i in range(n_features)],
        class_names=[str(c) for c in range(n_classes)],
    )
