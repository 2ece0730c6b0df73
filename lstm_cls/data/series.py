"""A `Series`: one or more time series laid end to end, what every long-series source returns (raw, not
scaled) for the windowing; and the embedded source, the synthetic generator (`data=synthetic`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lstm_cls import UserError


@dataclass
class Series:
    """One or more time series laid end to end.

    x: [steps, features] float32; y: [steps] int64 class index, -1 where the label is missing;
    bounds: [(start, end)] of each separate series (group), in x's step index.
    steps: what names each step in the source (its time, or its row number in the file), if known;
    group_names: the name of each group in `bounds`, if the source has groups.
    """

    x: torch.Tensor
    y: torch.Tensor
    bounds: list[tuple[int, int]]
    feature_names: list[str]
    class_names: list[str]
    steps: np.ndarray | None = None
    group_names: list[str] | None = None


def concat(parts: list[Series]) -> Series:
    """Series laid end to end (training file first), their groups kept apart."""
    offset, bounds = 0, []
    for p in parts:
        bounds += [(a + offset, b + offset) for a, b in p.bounds]
        offset += len(p.x)
    return Series(
        torch.cat([p.x for p in parts]),
        torch.cat([p.y for p in parts]),
        bounds,
        parts[0].feature_names,
        parts[0].class_names,
    )


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
    # independent streams: the features do not change with the label noise, nor the regimes with the features
    rng_z, rng_x, rng_y = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
    shift = np.zeros((n_classes, n_features), np.float32)
    for c in range(n_classes):
        shift[c, c::n_classes] = signal
    x = np.empty((length, n_features), np.float32)
    y = np.empty(length, np.int64)
    state = int(rng_z.integers(n_classes))
    for i in range(0, length, chunk):  # in chunks: no full-size temporaries beside x and y
        n = min(chunk, length - i)
        # the regime: at each switch, a jump to one of the other classes
        jumps = np.where(rng_z.random(n) < 1 / regime, rng_z.integers(1, n_classes, n), 0)
        z = (state + np.cumsum(jumps)) % n_classes
        state = int(z[-1])
        rng_x.standard_normal(out=x[i : i + n], dtype=np.float32)
        x[i : i + n] += shift[z]
        flip = rng_y.random(n) < noise
        z[flip] = (z[flip] + rng_y.integers(1, n_classes, int(flip.sum()))) % n_classes
        y[i : i + n] = z
    return Series(
        x=torch.from_numpy(x),
        y=torch.from_numpy(y),
        bounds=[(0, length)],
        feature_names=[f"x{i}" for i in range(n_features)],
        class_names=[str(c) for c in range(n_classes)],
    )
