"""Data sources: each returns a `Series` (raw, un-normalised) for the windowing in `windows.py`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:  # pandas loads in the table functions: synthetic runs start 0.3 s sooner without it
    import pandas as pd

from lstm_cls import UserError
from lstm_cls.windows import Series

log = logging.getLogger(__name__)

_BOOLEAN = {"yes": 1.0, "no": 0.0, "true": 1.0, "false": 0.0}


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


def read_table(path: str | Path, what: str = "data.path") -> pd.DataFrame:
    """A .csv, .csv.gz, .txt (comma-separated) or .parquet file as a DataFrame; bad files are UserErrors."""
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise UserError(f"{what}: no such file: {p}")
    try:
        if p.name.endswith(".parquet"):
            df = pd.read_parquet(p)
        elif p.name.endswith((".csv", ".csv.gz", ".txt")):
            df = pd.read_csv(p)
        else:
            raise UserError(f"{what}: {p} is not a .csv, .csv.gz, .txt or .parquet file")
    except pd.errors.EmptyDataError:
        raise UserError(f"{what}: {p} is empty") from None
    except (OSError, ValueError, pd.errors.ParserError) as e:
        if isinstance(e, UserError):
            raise
        raise UserError(f"{what}: cannot read {p}: {str(e).splitlines()[0]}") from None
    if len(df) == 0:
        raise UserError(f"{what}: {p} has a header but no rows")
    return df


def _as_numeric(col: pd.Series) -> pd.Series | None:
    """Numbers as float; Yes/No and True/False as 1/0; None for anything else."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(col):
        return col.astype(float)
    if pd.api.types.is_numeric_dtype(col):
        return col.astype(float)
    values = col.dropna().astype(str).str.strip().str.lower()
    if len(values) and values.isin(list(_BOOLEAN)).all():
        return col.astype(str).str.strip().str.lower().map(_BOOLEAN)
    return None


def parse_times(col: pd.Series, dayfirst: bool | None, name: str) -> pd.Series:
    """Dates/times: ISO first; otherwise day-first or month-first, told by a field > 12 (or `dayfirst`)."""
    import pandas as pd

    try:
        return pd.to_datetime(col, format="ISO8601")
    except (ValueError, TypeError):
        pass
    if dayfirst is None:
        fields = col.dropna().astype(str).str.extract(r"^(\d{1,2})[-/.](\d{1,2})[-/.]")
        first, second = (pd.to_numeric(fields[i], errors="coerce") for i in (0, 1))
        dayfirst = bool((first > 12).any()) or not bool((second > 12).any())
    try:
        return pd.to_datetime(col, dayfirst=dayfirst, format="mixed")
    except (ValueError, TypeError) as e:
        raise UserError(
            f"data.time: column {name!r} does not parse as dates: {str(e).splitlines()[0]}"
        ) from None


def _class_name(v: object) -> str:
    """1.0 -> "1": an integer target with missing values arrives as floats."""
    return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)


def table(
    df: pd.DataFrame,
    target: str | None,
    features: list[str] | None = None,
    time: str | None = None,
    group: str | None = None,
    groups: list | None = None,
    nan: str = "ffill",
    dayfirst: bool | None = None,
    classes: list[str] | None = None,
    where: str = "data.path",
) -> Series:
    """A DataFrame as a `Series`: sorted by group then time, labels as class indices (-1 where missing).

    `classes` fixes the class names (for validation/test files, the training file's); otherwise they
    are the target's values in sorted order.
    """
    import pandas as pd

    cols = list(df.columns)
    for key, name in (("data.target", target), ("data.time", time), ("data.group", group)):
        if name is not None and name not in df.columns:
            raise UserError(f"{key}: no column {name!r} in {where}; its columns are {cols}")
    if features is not None:
        missing = [f for f in features if f not in df.columns]
        if missing:
            raise UserError(f"data.features: no column {missing} in {where}; its columns are {cols}")
    if groups is not None:
        if group is None:
            raise UserError("data.groups needs data.group: the column whose values are separate series")
        present = set(df[group].astype(str))
        unknown = [g for g in groups if str(g) not in present]
        if unknown:
            raise UserError(f"data.groups: no group {unknown} in column {group!r} of {where}")
        df = df[df[group].astype(str).isin([str(g) for g in groups])]

    if time is not None:
        df = df.assign(**{time: parse_times(df[time], dayfirst, time)})
    order = [c for c in (group, time) if c is not None]
    if order:
        df = df.sort_values(order, kind="stable")  # stable: without a time column, file order is time order
    rows = df.index.to_numpy()  # each step's row number in the file, before sorting
    df = df.reset_index(drop=True)

    chosen = features if features is not None else [c for c in df.columns if c not in (target, time, group)]
    numeric = {c: _as_numeric(df[c]) for c in chosen}
    bad = [c for c in chosen if numeric[c] is None]
    if features is not None and bad:
        examples = {c: df[c].dropna().astype(str).iloc[0] for c in bad if df[c].notna().any()}
        raise UserError(f"data.features: not numeric: {bad} (values such as {examples})")
    if bad:
        log.info("features: left out %d non-numeric columns: %s", len(bad), bad)
    names = [c for c in chosen if numeric[c] is not None]
    if not names:
        raise UserError(f"no numeric feature column in {where}; its columns are {cols}")
    x = np.stack([numeric[c].to_numpy(np.float32) for c in names], axis=1)

    if group is not None:
        keys = df[group].astype(str).to_numpy()
        starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
        bounds = list(zip(starts.tolist(), np.r_[starts[1:], len(df)].tolist(), strict=True))
        group_names = keys[starts].tolist()
    else:
        bounds, group_names = [(0, len(df))], None
    if nan == "error" and np.isnan(x).any():
        counts = {n: int(k) for n, k in zip(names, np.isnan(x).sum(0), strict=True) if k}
        raise UserError(f"data.nan=error: missing feature values in {where}: {counts}")
    if nan == "ffill":  # carry the last value forward, never across a group boundary
        filled = (
            pd.DataFrame(x).groupby(np.repeat(np.arange(len(bounds)), [b - a for a, b in bounds])).ffill()
        )
        x = filled.to_numpy(np.float32)

    if target is None:  # prediction on a file without labels
        y_raw = pd.Series(np.nan, index=df.index)
    else:
        y_raw = df[target]
    present = y_raw.dropna()
    if classes is None:
        values = sorted(present.unique().tolist(), key=lambda v: (isinstance(v, str), v))
        classes = [_class_name(v) for v in values]
        if len(classes) < 2:
            raise UserError(f"data.target: column {target!r} has {len(classes)} class {classes}; need >= 2")
    index = {c: i for i, c in enumerate(classes)}
    labels = y_raw.map(lambda v: index.get(_class_name(v), -2) if pd.notna(v) else -1).to_numpy(np.int64)
    if (labels == -2).any():
        unknown = sorted({_class_name(v) for v in y_raw[labels == -2]})
        raise UserError(
            f"data.target in {where}: classes {unknown} do not occur in the training file {classes}"
        )
    # pandas may hand out read-only arrays; torch wants writable ones (copied only when needed)
    x, labels = (np.require(a, requirements="W") for a in (x, labels))
    steps = df[time].to_numpy() if time is not None else rows
    return Series(torch.from_numpy(x), torch.from_numpy(labels), bounds, names, classes, steps, group_names)


def group_lengths(series: Series) -> list[int]:
    return [b - a for a, b in series.bounds]


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
