"""Data sources: each returns a `Series` (raw, un-normalised) for the windowing in `windows.py`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:  # pandas loads in the table functions: synthetic runs start 0.3 s sooner without it
    import pandas as pd

from lstm_cls import UserError, header
from lstm_cls.config import check_time_columns, time_columns
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

    if pd.api.types.is_bool_dtype(col):
        return col.astype(float)
    if pd.api.types.is_numeric_dtype(col):
        return col.astype(float)
    values = col.dropna().astype(str).str.strip().str.lower()
    if len(values) and values.isin(list(_BOOLEAN)).all():
        return col.astype(str).str.strip().str.lower().map(_BOOLEAN)
    return None


# a time of day alone ("14:05", "2:05:00 PM", "2 PM"): pandas would put it on today's date
_CLOCK = r"\d{1,2}(:\d{2}){1,2}([.,]\d+)?\s*([AaPp]\.?[Mm]\.?)?|\d{1,2}\s*[AaPp]\.?[Mm]\.?"


def _row(i: object) -> str:
    # i: the row's index from `read_table`, 0 for the first row under the header
    return f"data row {int(i) + 1}"


def _more(n: int) -> str:
    return f" and {n} more" if n else ""


def _columns(name: str | list[str]) -> str:
    """How messages name data.time's column(s)."""
    if isinstance(name, str):
        return f"column {name!r}"
    return f"columns {list(name)} (joined with a space)"


def time_label(time: str | list[str] | None) -> str | None:
    """The name of the time a table's steps carry (`Series.steps`): the column, or the columns joined with a
    space (data.time=[Date,Time] -> "Date Time"); `predict` names its output column so."""
    return None if time is None else " ".join(time_columns(time))


def time_text(df: pd.DataFrame, time: list[str]) -> pd.Series:
    """The text of several columns joined with a space per row, one timestamp to parse ("2015-02-04" and
    "17:51:00" -> "2015-02-04 17:51:00"); missing (NaN) where any of them is missing."""
    text = df[time[0]].astype(str).str.strip()
    for c in time[1:]:
        text = text + " " + df[c].astype(str).str.strip()
    return text.where(df[time].notna().all(axis=1))


def _datetimes(parsed: pd.Series, name: str | list[str], where: str) -> pd.Series:
    import pandas as pd

    if not pd.api.types.is_datetime64_any_dtype(parsed):  # e.g. Timestamps of several time zones
        raise UserError(
            f"data.time: {_columns(name)} of {where} does not parse as one kind of date/time "
            "(several time zones?); give all times in one zone"
        )
    return parsed


# how a date is written, told by its start: the order of its fields, or a month's name
_YEAR_FIRST = r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}(?!\d)|\d{8}(?!\d)"  # 2020-01-31, 2020/1/31, 20200131
_YEAR_LAST = r"(\d{1,2})[-/.](\d{1,2})[-/.](?:\d{4}|\d{2})(?!\d)"  # 31/01/2020, 01-31-20: day or month first
_MONTH_NAME = (
    r"(?i).*(?<![a-z])(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)"  # 31 Jan 2020, Jan 31 2020
)
_FORMS = {
    "year": "year first",
    "numbers": "day or month first",
    "name": "a month's name",
    "other": "another form",
}


def _example(text: pd.Series, rows: np.ndarray) -> str:
    i = text.index[rows][0]
    return f"{text.loc[i]!r} at {_row(i)}"


def _date_order(text: pd.Series, dayfirst: bool | None, what: str, where: str) -> bool:
    """The day-first setting that parses `text` (stripped date strings, not all ISO) as written, or a
    UserError for a column whose dates are written in more than one way.

    One column, one way of writing dates: pandas parses each value with one `dayfirst` and silently
    reads a value that does not fit it another way (`2020-01-02` day-first is 1 February; `01/13/2020`
    day-first is 13 January). So a column mixing year-first dates with day/month-first ones or month
    names, or whose day/month-first dates show both orders (a first field > 12 in one, a second field
    > 12 in another), or one `dayfirst` contradicts, is refused, naming two values written differently.
    Year-first dates are year-month-day whatever `dayfirst` says. Otherwise day-first unless the dates
    show month-first (a second field > 12) or `dayfirst` is false.
    """
    import pandas as pd

    fields = text.str.extract(f"^{_YEAR_LAST}")
    form = pd.Series("other", index=text.index)
    form[text.str.contains(_MONTH_NAME, regex=True)] = "name"
    form[fields[0].notna().to_numpy()] = "numbers"
    form[text.str.match(_YEAR_FIRST).to_numpy()] = "year"
    kinds = list(dict.fromkeys(form))  # in order of first occurrence
    if len(kinds) > 1:
        a, b = (_example(text, (form == k).to_numpy()) for k in kinds[:2])
        raise UserError(
            f"data.time: {what} of {where} mixes date formats: {a} ({_FORMS[kinds[0]]}) and {b} "
            f"({_FORMS[kinds[1]]}), which one reading cannot both take as written; write every date of the "
            "column one way (ISO 2020-01-31 needs no data.dayfirst)"
        )
    if kinds == ["year"]:
        return False  # year-month-day: pandas would read 2020/01/02 day-first as 1 February
    if kinds != ["numbers"]:
        return True if dayfirst is None else dayfirst
    first, second = (pd.to_numeric(fields[i]).to_numpy() for i in (0, 1))
    day_first, month_first = first > 12, second > 12  # a field > 12 is a day
    if day_first.any() and month_first.any():
        a, b = _example(text, day_first), _example(text, month_first)
        raise UserError(
            f"data.time: {what} of {where} mixes date formats: {a} (day first) and {b} (month first); write "
            "every date of the column in one order"
        )
    if dayfirst is True and month_first.any():
        raise UserError(
            f"data.time: data.dayfirst=true, but {what} of {where} holds {_example(text, month_first)}, "
            "whose second field is a day (> 12): month first; set data.dayfirst=false, or null to tell it "
            "from the data"
        )
    if dayfirst is False and day_first.any():
        raise UserError(
            f"data.time: data.dayfirst=false, but {what} of {where} holds {_example(text, day_first)}, "
            "whose first field is a day (> 12): day first; set data.dayfirst=true, or null to tell it from "
            "the data"
        )
    if dayfirst is None:
        dayfirst = bool(day_first.any()) or not bool(month_first.any())
    return dayfirst


def parse_times(
    col: pd.Series, dayfirst: bool | None, name: str | list[str], where: str = "data.path"
) -> pd.Series:
    """Dates/times: ISO first; otherwise day-first or month-first, told by a field > 12 (or `dayfirst`).

    Numbers (step counts, epoch seconds) are kept as they are: they order the rows with no dates
    made up for them. Times of day without a date and dates without a year are UserErrors: pandas
    would fill in today's date or the year 1, and sort by it. `name`: the column, or the list of columns
    whose joined text `col` is (`time_text`), for messages.
    """
    import pandas as pd

    what = _columns(name)
    if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
        endless = np.isinf(col.to_numpy(float, na_value=np.nan))
        if endless.any():
            i = col.index[endless][0]
            raise UserError(
                f"data.time: {what} of {where} holds {col.loc[i]} at {_row(i)} "
                "(1-based, header not counted); times must be finite"
            )
        return col
    try:
        iso = pd.to_datetime(col, format="ISO8601")
    except (ValueError, TypeError, OverflowError):
        iso = None
    if iso is not None:
        return _datetimes(iso, name, where)
    text = col.dropna().astype(str).str.strip()
    clock = text.str.fullmatch(_CLOCK).to_numpy(bool)
    if clock.any():
        i = text.index[clock][0]
        raise UserError(
            f"data.time: {what} of {where} holds times of day without dates, such as "
            f"{text.loc[i]!r} at {_row(i)} (1-based, header not counted): pandas would put them on today's "
            "date; give full timestamps such as 2020-01-31 14:05:00"
        )
    dayfirst = _date_order(text, dayfirst, what, where)
    try:
        parsed = pd.to_datetime(col, dayfirst=dayfirst, format="mixed")
    except (ValueError, TypeError, OverflowError) as e:
        raise UserError(
            f"data.time: {what} of {where} does not parse as dates: {header.first_line(e)}"
        ) from None
    parsed = _datetimes(parsed, name, where)
    yearless = (parsed.dt.year == 1).to_numpy(bool)  # "Jan 5": pandas makes it the year 1
    if yearless.any():
        i = parsed.index[yearless][0]
        raise UserError(
            f"data.time: {what} of {where} holds dates without a year, such as {col.loc[i]!r} at "
            f"{_row(i)} (1-based, header not counted); give full dates such as 2020-01-31"
        )
    return parsed


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
    if time is not None and not isinstance(time, str):
        time = [str(c) for c in time]  # a ListConfig from the command line, or a checkpoint's list
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
                f"data.time: {_columns(time)} of {where} has no time at {_row(df.index[missing][0])} "
                f"(1-based, header not counted){_more(int(missing.sum()) - 1)}; every row needs one"
            )
    order = [c for c in (group, key) if c is not None]
    if order:
        df = df.sort_values(order, kind="stable")  # stable: without a time column, file order is time order
    rows = df.index.to_numpy()  # each step's row number in the file, before sorting
    df = df.reset_index(drop=True)
    keys = df[group].astype(str).to_numpy() if group is not None else None
    if key is not None:
        _check_repeated_times(df[key], keys, rows, time, group, where)

    skip = (target, group, *time_cols)
    chosen = features if features is not None else [c for c in df.columns if c not in skip]
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

    if target is None:  # prediction on a file without labels
        y_raw = pd.Series(np.nan, index=df.index)
    else:
        y_raw = df[target]
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
        f"{_row(ids.index[missing][0])} (1-based, header not counted); every row needs one (drop those rows, "
        f"or give them their {what}'s id)"
    )


def _check_repeated_times(
    times: pd.Series,
    keys: np.ndarray | None,
    rows: np.ndarray,
    name: str | list[str],
    group: str | None,
    where: str,
) -> None:
    """Refuse a time that occurs twice in one series: its steps' order would be the file's, unsaid."""
    t = times.to_numpy()
    same = t[1:] == t[:-1]  # sorted by group then time: a repeat sits next to its first occurrence
    if keys is not None:
        same &= keys[1:] == keys[:-1]
    if not same.any():
        return
    i = int(np.flatnonzero(same)[0])
    a, b = sorted(rows[[i, i + 1]])
    within = (
        f"within group {keys[i]!r} of column {group!r}"
        if keys is not None
        else "with no data.group (the whole file is one series)"
    )
    raise UserError(
        f"data.time: timestamp {times.iloc[i]} occurs more than once in {_columns(name)} of {where} "
        f"{within}, "
        f"at data rows {a + 1} and {b + 1} (1-based, header not counted){_more(int(same.sum()) - 1)}; "
        "each step of a series needs its own time (set data.group if the file holds several series)"
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
        f"data.features: column {col!r} of {where} holds {df[col].iloc[step]} at {_row(rows[step])} "
        f"(1-based, header not counted); features must be finite and within float32 range "
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
        examples = {n: df[n].dropna().astype(str).iloc[0] for n in text if df[n].notna().any()}
        raise UserError(
            f"{key}: columns {text} of {where} are not numeric (values such as {examples}) but are "
            "numeric features of the training file"
        )


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
