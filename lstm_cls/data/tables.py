"""A table file (.csv, .csv.gz, .txt, .parquet) read as a `Series`: its columns checked, its rows sorted by
group and time, its labels as class indices. Every bad table is a one-line UserError naming the row."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:  # pandas loads in the table functions: synthetic runs start 0.3 s sooner without it
    import pandas as pd

from lstm_cls import UserError
from lstm_cls.data import header
from lstm_cls.data.header import and_more, at_row, check_time_columns, plain_time, time_columns
from lstm_cls.data.series import Series
from lstm_cls.data.times import check_repeated_times, columns_named, parse_times, time_text

log = logging.getLogger(__name__)

_BOOLEAN = {"yes": 1.0, "no": 0.0, "true": 1.0, "false": 0.0}


def read_table(path: str | Path, what: str = "data.path") -> pd.DataFrame:
    """A .csv, .csv.gz, .txt (comma-separated) or .parquet file as a DataFrame; bad files are UserErrors.

    Rows keep their file order, indexed 0, 1, ... (`table` names a bad row by it).
    """
    import pandas as pd

    p = Path(path)
    names = header.columns(p, what)  # existence, suffix, encoding, duplicate names: one set of messages
    k = header.kind(p, what)
    try:
        if k == "parquet":
            import pyarrow.parquet as pq

            # ignore_metadata: a saved index comes back as a column, as in the schema, not as the index
            df = pq.ParquetFile(p).read().to_pandas(ignore_metadata=True)
        else:
            df = pd.read_csv(p, compression="gzip" if k == "gzip" else None, encoding="utf-8")
    except pd.errors.EmptyDataError:
        raise UserError(f"{what}: {p} is empty") from None
    except Exception as e:  # pandas, zlib and pyarrow each raise their own kinds for a bad file
        raise UserError(f"{what}: cannot read {p}: {header.first_line(e)}") from None
    if list(df.columns) != names or not df.index.equals(pd.RangeIndex(len(df))):
        # the header as pandas read it is not the one checked: refuse rather than guess which is meant
        raise UserError(
            f"{what}: cannot read the header of {p} unambiguously: {names} as a CSV header, "
            f"{list(df.columns)} as pandas reads it"
        )
    if len(df) == 0:
        raise UserError(f"{what}: {p} has a header but no rows")
    return df


def _as_numeric(col: pd.Series) -> pd.Series | None:
    """Numbers as float; Yes/No and True/False as 1/0; None for anything else."""
    import pandas as pd

    if pd.api.types.is_numeric_dtype(col):  # bool too
        return col.astype(float)
    values = col.dropna().astype(str).str.strip().str.lower()
    if len(values) and values.isin(list(_BOOLEAN)).all():
        return col.astype(str).str.strip().str.lower().map(_BOOLEAN)
    return None


def _examples(df: pd.DataFrame, cols: list[str]) -> dict[str, str]:
    return {c: df[c].dropna().astype(str).iloc[0] for c in cols if df[c].notna().any()}


def _class_name(v: object) -> str:
    """1.0 -> "1": an integer target with missing values arrives as floats."""
    return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)


def table(
    df: pd.DataFrame,
    target: str | None,
    features: str | list[str] | None = None,
    time: str | list[str] | None = None,
    group: str | None = None,
    groups: list | None = None,
    nan: str = "ffill",
    dayfirst: bool | None = None,
    classes: list[str] | None = None,
    where: str = "data.path",
    group_key: str = "data.group",
) -> Series:
    """A DataFrame as a `Series`: sorted by group then time, labels as class indices (-1 where missing).

    `df` is as `read_table` returns it: its index is each row's place in the file, which errors name.
    `classes` fixes the class names (for validation/test files, the training file's); otherwise they
    are the target's values in sorted order. `time`: a column, or a list of columns whose text, joined
    with a space, is one timestamp (separate Date and Time columns). `group_key`: the setting that named
    `group` (data.group, or data.case for a table of cases), for messages.
    """
    import pandas as pd

    cols = list(df.columns)
    twice = header.duplicates(cols)
    if twice:
        raise UserError(f"{where} has duplicate column names {twice}; each column needs its own name")
    time = plain_time(time)
    # a bare string is one column (one group), never its letters: features="xy" is the column "xy"
    features, groups = header.as_names(features), header.as_names(groups)
    header.check_names(cols, where, target, features, time if isinstance(time, str) else None, group)
    check_time_columns(cols, where, time, target, group)
    time_cols = time_columns(time)
    if group is not None:
        _check_group_ids(df[group], group, group_key, where)
    if groups is not None:
        if group is None:
            raise UserError("data.groups needs data.group: the column whose values are separate series")
        present = set(df[group].astype(str))
        unknown = [g for g in groups if str(g) not in present]
        if unknown:
            raise UserError(f"data.groups: no group {unknown} in column {group!r} of {where}")
        df = df[df[group].astype(str).isin([str(g) for g in groups])]

    # the column that holds the parsed times, the sort key: data.time, or the first of its columns (all of
    # them are left out of the features, so nothing else reads it)
    key = time_cols[0] if time_cols else None
    if time is not None:
        raw = df[key] if len(time_cols) == 1 else time_text(df, time_cols)
        df = df.assign(**{key: parse_times(raw, dayfirst, time, where)})
        missing = df[key].isna().to_numpy(bool)
        if missing.any():  # sorting would put such rows at the end of their series, out of order
            raise UserError(
                f"data.time: {columns_named(time)} of {where} has no time at {at_row(df.index[missing][0])}"
                f"{and_more(int(missing.sum()) - 1)}; every row needs one"
            )
    order = [c for c in (group, key) if c is not None]
    if order:
        df = df.sort_values(order, kind="stable")  # stable: without a time column, file order is time order
    rows = df.index.to_numpy()  # each step's row number in the file, before sorting
    df = df.reset_index(drop=True)
    keys = df[group].astype(str).to_numpy() if group is not None else None
    if key is not None:
        check_repeated_times(df[key], keys, rows, time, group, where)

    skip = (target, group, *time_cols)
    chosen = features if features is not None else [c for c in df.columns if c not in skip]
    numeric = {c: _as_numeric(df[c]) for c in chosen}
    bad = [c for c in chosen if numeric[c] is None]
    if features is not None and bad:
        raise UserError(f"data.features: not numeric: {bad} (values such as {_examples(df, bad)})")
    if bad:
        log.info("features: left out %d non-numeric columns: %s", len(bad), bad)
    names = [c for c in chosen if numeric[c] is not None]
    if not names:
        raise UserError(f"no numeric feature column in {where}; its columns are {cols}")
    if features is None:
        nameless = [c for c in names if header.unnamed(c)]
        if nameless:  # most often a saved row index: a counter that would pass for a feature
            raise UserError(
                f"data.features: columns {nameless} of {where} have no name in the header but hold "
                "numbers (a saved row index?); name or drop them, or list the features in data.features"
            )
    with np.errstate(over="ignore"):  # 1e308 -> inf in float32: refused just below, by name and row
        x = np.stack([numeric[c].to_numpy(np.float32) for c in names], axis=1)
    _check_finite(x, df, names, rows, where)

    if keys is not None:
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

    y_raw = (
        df[target] if target is not None else pd.Series(np.nan, index=df.index)
    )  # None: predict, no labels
    present = y_raw.dropna()
    if classes is None:
        values = sorted(present.unique().tolist(), key=lambda v: (isinstance(v, str), v))
        classes = [_class_name(v) for v in values]
        _check_label_spellings(classes, target, where)
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
    steps = df[key].to_numpy() if key is not None else rows
    return Series(torch.from_numpy(x), torch.from_numpy(labels), bounds, names, classes, steps, group_names)


def _check_label_spellings(classes: list[str], target: str | None, where: str) -> None:
    """Refuse class labels equal but for case or surrounding spaces ("Yes", "yes", "Yes "): almost surely one
    class typed two ways, which would silently train as two."""
    seen: dict[str, str] = {}
    for c in classes:
        other = seen.setdefault(c.strip().casefold(), c)
        if other != c:
            raise UserError(
                f"data.target: column {target!r} of {where} has class labels {other!r} and {c!r}, equal but "
                "for case or spaces: they would be two classes; spell each class one way"
            )


def _check_group_ids(ids: pd.Series, group: str, key: str, where: str) -> None:
    """Refuse rows without a group (case) id: a missing or blank id names no series, and each such row would
    become a nameless series (a one-row case) of its own, trained and scored."""
    text = ids.astype(str).str.strip()
    missing = (ids.isna() | (text == "")).to_numpy(bool)
    if not missing.any():
        return
    n, what = int(missing.sum()), "case" if key == "data.case" else "group"
    raise UserError(
        f"{key}: column {group!r} of {where} has no {what} id in {n} row{'s' if n > 1 else ''}, the first at "
        f"{at_row(ids.index[missing][0])}; every row needs one (drop those rows, or give them their "
        f"{what}'s id)"
    )


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _check_finite(x: np.ndarray, df: pd.DataFrame, names: list[str], rows: np.ndarray, where: str) -> None:
    """Refuse inf, -inf and values beyond float32 range (1e308 becomes inf): they would poison the
    normalisation's mean and std, and so every window. NaN is left to `data.nan`."""
    bad = np.isinf(x)
    if not bad.any():
        return
    at = np.argwhere(bad)  # (step, feature) pairs in sorted order
    first = at[np.lexsort((at[:, 1], rows[at[:, 0]]))[0]]  # the first in the file, then the leftmost
    step, col = int(first[0]), names[int(first[1])]
    cols = [n for n, k in zip(names, bad.any(0), strict=True) if k]
    raise UserError(
        f"data.features: column {col!r} of {where} holds {df[col].iloc[step]} at {at_row(rows[step])}; "
        "features must be finite and within float32 range "
        f"(|x| <= {_FLOAT32_MAX:.3g}); columns with such values: {cols}"
    )


def same_features(
    df: pd.DataFrame, names: list[str], skip: tuple[str | None, ...], where: str, key: str, exact: bool
) -> None:
    """Refuse a validation/test file whose features are not the training file's `names`.

    Columns are matched by name, never by position. With `exact` (no data.features given) a numeric
    column the training file lacks as a feature is refused too: it would have been one, had the
    file been the training file. `skip`: target, time and group.
    """
    cols = list(df.columns)
    missing = [n for n in names if n not in cols]
    if missing:
        raise UserError(
            f"{key}: {where} lacks the training file's features {missing} (columns are matched by name); "
            f"its columns are {cols}"
        )
    if exact:
        extra = [c for c in cols if c not in names and c not in skip and _as_numeric(df[c]) is not None]
        if extra:
            raise UserError(
                f"{key}: {where} has numeric columns {extra} that are not features of the training file "
                f"{names}; drop them, or list the features in data.features"
            )
    text = [n for n in names if _as_numeric(df[n]) is None]
    if text:
        raise UserError(
            f"{key}: columns {text} of {where} are not numeric (values such as {_examples(df, text)}) but "
            "are numeric features of the training file"
        )
