"""A table's time column(s): dates and times parsed as written, or refused with the row that says why."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

from lstm_cls import UserError
from lstm_cls.data.header import and_more, at_row, first_line, row_name, time_columns

# a time of day alone ("14:05", "2:05:00 PM", "2 PM"): pandas would put it on today's date
_CLOCK = r"\d{1,2}(:\d{2}){1,2}([.,]\d+)?\s*([AaPp]\.?[Mm]\.?)?|\d{1,2}\s*[AaPp]\.?[Mm]\.?"


def columns_named(name: str | list[str]) -> str:
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
            f"data.time: {columns_named(name)} of {where} does not parse as one kind of date/time "
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
    return f"{text.loc[i]!r} at {row_name(i)}"


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

    what = columns_named(name)
    if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
        endless = np.isinf(col.to_numpy(float, na_value=np.nan))
        if endless.any():
            i = col.index[endless][0]
            raise UserError(
                f"data.time: {what} of {where} holds {col.loc[i]} at {at_row(i)}; times must be finite"
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
    advice = ": pandas would put them on today's date; give full timestamps such as 2020-01-31 14:05:00"
    _refuse(text, clock, "times of day without dates", advice, what, where)
    dayfirst = _date_order(text, dayfirst, what, where)
    try:
        parsed = pd.to_datetime(col, dayfirst=dayfirst, format="mixed")
    except (ValueError, TypeError, OverflowError) as e:
        raise UserError(f"data.time: {what} of {where} does not parse as dates: {first_line(e)}") from None
    parsed = _datetimes(parsed, name, where)
    yearless = (parsed.dt.year == 1).to_numpy(bool)  # "Jan 5": pandas makes it the year 1
    _refuse(col, yearless, "dates without a year", "; give full dates such as 2020-01-31", what, where)
    return parsed


def _refuse(values: pd.Series, bad: np.ndarray, holds: str, advice: str, what: str, where: str) -> None:
    if bad.any():
        i = values.index[bad][0]
        raise UserError(
            f"data.time: {what} of {where} holds {holds}, such as {values.loc[i]!r} at {at_row(i)}{advice}"
        )


def check_repeated_times(
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
        f"data.time: timestamp {times.iloc[i]} occurs more than once in {columns_named(name)} of {where} "
        f"{within}, "
        f"at data rows {a + 1} and {b + 1} (1-based, header not counted){and_more(int(same.sum()) - 1)}; "
        "each step of a series needs its own time (set data.group if the file holds several series)"
    )
