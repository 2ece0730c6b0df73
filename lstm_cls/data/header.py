"""A table file's column names from its header alone, and the checks that need nothing more.

Imports no torch, pandas or numpy: `config.check` calls these so that a wrong file or column is
refused in well under a second. `tables.read_table` and `tables.table` call them too, so that each
message is written once, here.
"""

from __future__ import annotations

import csv
import gzip
import re
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lstm_cls import UserError

# the names pandas gives a column without one: an empty CSV header field, a saved DataFrame index
_UNNAMED = re.compile(r"Unnamed: \d+(_level_\d+)?|__index_level_\d+__")


def kind(path: str | Path, what: str = "data.path") -> str:
    """The table's kind, "parquet", "gzip" or "text", told by its suffix in any case (`X.CSV` too)."""
    p = Path(path)
    name = p.name.lower()
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith(".csv.gz"):
        return "gzip"
    if name.endswith((".csv", ".txt")):
        return "text"
    raise UserError(f"{what}: {p} is not a .csv, .csv.gz, .txt or .parquet file")


def first_line(e: BaseException) -> str:
    return (str(e).splitlines() or [type(e).__name__])[0]


def row_name(i: object) -> str:
    # i: the row's index from `read_table`, 0 for the first row under the header
    return f"data row {int(i) + 1}"


def at_row(i: object) -> str:
    return f"{row_name(i)} (1-based, header not counted)"


def and_more(n: int) -> str:
    return f" and {n} more" if n else ""


def _filled(line: str) -> bool:
    # pandas skips empty and whitespace-only lines, before the header too (but not a line '""')
    return bool(line.strip(" \t\r\n"))


def _csv_names(p: Path, gz: bool, what: str) -> list[str]:
    opener = gzip.open if gz else open
    try:
        # utf-8-sig: a byte-order mark is not part of the first name (pandas drops it too)
        with opener(p, "rt", encoding="utf-8-sig", errors="strict", newline="") as f:
            records = csv.reader(line for line in f if _filled(line))
            names = next(records, None)
            first = next(records, None)
    except UnicodeDecodeError as e:
        raise UserError(f"{what}: {p} is not a text table: its start is not UTF-8 ({e.reason})") from None
    except (OSError, EOFError, zlib.error, csv.Error) as e:  # a bad .gz, a field over csv's limit
        raise UserError(f"{what}: cannot read {p}: {first_line(e)}") from None
    if names is None:
        raise UserError(f"{what}: {p} is empty")
    if first is not None and len(first) > len(names):
        # pandas would silently take the surplus leading fields as a row index, shifting every column
        raise UserError(
            f"{what}: the first data row of {p} has {len(first)} fields but the header names {len(names)} "
            f"columns {names}; every column needs a name (a saved row index, or a trailing comma?)"
        )
    return [n if n else f"Unnamed: {i}" for i, n in enumerate(names)]  # as pandas names them


def _parquet_names(p: Path, what: str) -> list[str]:
    import pyarrow.parquet as pq  # here: a CSV user never pays for loading it

    try:
        return list(pq.read_schema(p).names)
    except Exception as e:  # pyarrow raises its own kinds (ArrowInvalid, OSError, ...): all mean a bad file
        raise UserError(f"{what}: cannot read {p}: {first_line(e)}") from None


def as_names(value: object) -> list[str] | None:
    """A setting that lists columns (data.features) or values (data.groups) as a list of names.

    A bare string is one name, never split into letters: `data.features=xy` is the column `xy`, and a file
    with columns `x`, `y` and `xy` gets no guess. A bare number (Hydra reads `data.groups=3` as 3) is one
    name too. A list (or Hydra's ListConfig, a tuple) keeps its order; its items become strings, as column
    names in a CSV header are. None stays None (every numeric column; every group).
    """
    if value is None:
        return None
    if isinstance(value, (str, bytes, int, float)):
        return [value.decode() if isinstance(value, bytes) else str(value)]
    return [str(v) for v in value]  # type: ignore[attr-defined]


def duplicates(names: Sequence[object]) -> list[object]:
    """The names that occur more than once, in order of first occurrence."""
    seen: set[object] = set()
    twice: list[object] = []
    for n in names:
        if n in seen and n not in twice:
            twice.append(n)
        seen.add(n)
    return twice


def unnamed(name: object) -> bool:
    """Whether `name` is pandas's name for a column that had none (an empty header field, an index)."""
    return isinstance(name, str) and (name == "" or _UNNAMED.fullmatch(name) is not None)


def columns(path: str | Path, what: str = "data.path") -> list[str]:
    """A .csv, .csv.gz, .txt or .parquet file's column names, reading only its first lines (or schema).

    Empty header fields are named as pandas names them ("Unnamed: 2"). A missing file, another
    suffix, an empty or undecodable file and duplicate names are UserErrors naming `what` and the file.
    """
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{what}: no such file: {p}")
    k = kind(p, what)
    names = _parquet_names(p, what) if k == "parquet" else _csv_names(p, k == "gzip", what)
    twice = duplicates(names)
    if twice:
        # pandas would rename the second 'a' to 'a.1': a feature read under a name it does not have
        raise UserError(f"{what}: {p} has duplicate column names {twice}; each column needs its own name")
    return names


def check_names(
    names: Sequence[object],
    where: str,
    target: str | None,
    features: Sequence[str] | None = None,
    time: str | None = None,
    group: str | None = None,
) -> None:
    """Refuse a target, time, group or feature column that `names` lacks, and overlapping roles."""
    cols = list(names)
    named = (("data.target", target), ("data.time", time), ("data.group", group))
    roles = [(k, n) for k, n in named if n is not None]
    for key, name in roles:
        if name not in cols:
            raise UserError(f"{key}: no column {name!r} in {where}; its columns are {cols}")
    for i, (key, name) in enumerate(roles):
        for other, same in roles[i + 1 :]:
            if name == same:
                raise UserError(f"{key} and {other} both name column {name!r}; each needs its own column")
    if features is None:
        return
    missing = [f for f in features if f not in cols]
    if missing:
        raise UserError(f"data.features: no column {missing} in {where}; its columns are {cols}")
    if target is not None and target in features:
        raise UserError(
            f"data.features: lists the target {target!r}; the label must not be a feature "
            f"(features are {list(features)})"
        )
    twice = duplicates(features)
    if twice:
        raise UserError(f"data.features: lists {twice} more than once; each feature is one column")


def check_columns(path: str | Path, what: str, *roles: Any) -> None:
    """`check_names` (target, features, time, group) on a file's header, before anything loads."""
    check_names(columns(path, what), str(path), *roles)


def time_columns(time: Any) -> list[str]:
    """data.time's columns, in order: none, one (a column name) or several (a list, whose columns' text is
    joined with a space into one timestamp, e.g. separate Date and Time columns)."""
    return [] if time is None else [time] if isinstance(time, str) else list(time)


def plain_time(time: Any) -> str | list[str] | None:
    """data.time as plain data: Hydra hands over a ListConfig, which a checkpoint's data_info, loaded with
    weights_only, could not hold."""
    return time if time is None or isinstance(time, str) else [str(c) for c in time]


def time_setting(time: Any) -> bool:
    """data.time is null, a column name or a non-empty list of distinct column names."""
    if time is None or isinstance(time, str):
        return True
    return (
        isinstance(time, Sequence)
        and len(time) > 0
        and all(isinstance(c, str) for c in time)
        and len(set(time)) == len(time)
    )


def check_time_columns(
    names: Sequence[object], where: str, time: Any, target: str | None, group: str | None
) -> None:
    """A list data.time against a table's column names (a string data.time: `header.check_names`):
    the columns it lacks, all named in one error, and a column that is also the target or the group."""
    if time is None or isinstance(time, str):
        return
    cols = list(names)
    missing = [c for c in time if c not in cols]
    if missing:
        raise UserError(f"data.time: no column {missing} in {where}; its columns are {cols}")
    for key, name in (("data.target", target), ("data.group", group)):
        if name is not None and name in time:
            raise UserError(f"data.time and {key} both name column {name!r}; each needs its own column")
