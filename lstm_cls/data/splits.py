"""How one series' steps are cut, as plain integers (imports no torch): chronological train/val/test bounds
and the latest part `data.train_fraction` keeps. The one rule, shared by the settings check (`config`,
which runs before torch is imported) and the windowing (`windows`)."""

from __future__ import annotations

import math


def split_bounds(
    start: int, end: int, val_fraction: float, test_fraction: float
) -> dict[str, tuple[int, int]]:
    """Cut the steps [start, end) of one series chronologically: train, then val, then test."""
    n = end - start
    n_test = int(round(n * test_fraction))
    n_val = int(round(n * val_fraction))
    a, b = start + n - n_val - n_test, start + n - n_test
    return {"train": (start, a), "val": (a, b), "test": (b, end)}


def kept_steps(n: int, fraction: float) -> int:
    """How many of a group's `n` training steps `data.train_fraction` keeps (the latest ones): the nearest
    whole step, rounded as `split_bounds` rounds split fractions."""
    return min(n, int(round(n * fraction)))


def fraction_keeping(need: int, n: int) -> float:
    """The smallest `data.train_fraction`, to three decimals and rounded up, that keeps `need` of `n` steps
    (what an error about too few kept training steps advises)."""
    return math.ceil(need / n * 1000) / 1000
