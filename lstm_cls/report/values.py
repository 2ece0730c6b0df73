"""A setting's values as the report shows, compares and groups them; a metric's column as numbers, and the
majority-class floor read off it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from omegaconf import OmegaConf


def label(value: Any) -> str:
    """A setting as one readable string: lists and mappings as [a, b] and {k: v}, anything else as str()."""
    if OmegaConf.is_config(value):
        value = OmegaConf.to_container(value, resolve=True)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(label(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {label(v)}" for k, v in value.items()) + "}"
    # pandas holds a null setting (class_weights: null) as NaN in a column of strings
    return "None" if value is None or (isinstance(value, float) and value != value) else str(value)


def varies(values: pd.Series) -> bool:
    """Whether jobs differ in a setting (null counts as a value)."""
    return values.map(label).nunique() > 1


def is_numeric(values: pd.Series) -> bool:
    """Whether a setting's values are numbers (plotted on a number line) rather than categories."""
    return pd.api.types.infer_dtype(values, skipna=True) in ("integer", "floating", "mixed-integer-float")


def numbers(df: pd.DataFrame, col: str) -> pd.Series:
    """A column as floats (NaN where absent or null)."""
    return pd.to_numeric(df[col], errors="coerce") if col in df else pd.Series(np.nan, index=df.index)


def groups(df: pd.DataFrame, cols: list[str], sort: bool = False) -> list[tuple[dict, pd.DataFrame]]:
    """df split by the values of cols ({setting: value}, rows), in the order the jobs first show them
    unless sorted; without cols, df whole."""
    if not cols:
        return [({}, df)]
    return [
        (dict(zip(cols, key if isinstance(key, tuple) else (key,), strict=True)), grp)
        for key, grp in df.groupby(cols, dropna=False, sort=sort)
    ]


def majority(jobs: pd.DataFrame) -> tuple[float, str] | None:
    """The jobs' majority-class test accuracy: its mean, and as words (one value, or the range it spans)."""
    floor = numbers(jobs, "test/majority_acc").dropna()
    if floor.empty:
        return None
    lo, hi = f"{floor.min():.3f}", f"{floor.max():.3f}"
    return floor.mean(), lo if lo == hi else f"{lo} to {hi}"
