"""Fuzzing the table readers: whatever a file holds, the answer is a Series or a UserError, never a crash."""

import csv
import gzip
import io
import math
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lstm_cls import UserError
from lstm_cls.data import header
from lstm_cls.data import tables as data_tables
from lstm_cls.data.series import Series

FUZZ = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# bytes that look like a table often enough to get past the parser: commas, quotes, newlines, numbers
TABLE_BYTES = st.one_of(
    st.binary(max_size=400),
    st.text(alphabet=',\n\r"\t 0123456789.-+eEinfaINFNyesno:T/é\x00', max_size=400).map(str.encode),
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def read(path: Path, data: st.DataObject) -> Series | None:
    """read_table, then table with a column of the file as target (and maybe another as time)."""
    df = data_tables.read_table(path)
    target = data.draw(st.sampled_from(list(df.columns)))
    rest = [c for c in df.columns if c != target]
    time = data.draw(st.none() | st.sampled_from(rest)) if rest else None
    return data_tables.table(df, target, time=time, where=str(path))


@FUZZ
@given(
    raw=TABLE_BYTES, suffix=st.sampled_from([".csv", ".CSV", ".csv.gz", ".txt", ".parquet"]), data=st.data()
)
def test_any_bytes_give_columns_a_series_or_a_user_error(folder, raw, suffix, data):
    path = folder / f"x{suffix}"
    path.write_bytes(gzip.compress(raw) if suffix == ".csv.gz" else raw)  # a bad .gz once is enough
    for step in (lambda: header.columns(path), lambda: read(path, data)):
        try:
            step()
        except UserError:
            pass


@FUZZ
@given(raw=TABLE_BYTES)
def test_gzipped_text_reads_like_the_text(folder, raw):
    # the same bytes, plain and gzipped: the same columns or the same refusal
    (plain := folder / "p.csv").write_bytes(raw)
    (packed := folder / "p.csv.gz").write_bytes(gzip.compress(raw))
    answers = []
    for p in (plain, packed):
        try:
            answers.append(header.columns(p))
        except UserError as e:
            answers.append(str(e).replace(str(p), "FILE"))
    assert answers[0] == answers[1]


NAMES = st.sampled_from(["a", "b", "label", "t", "g", "", " ", "a ", "Unnamed: 0", "x,y", 'q"', "é", "a.1"])
FINITE = st.floats(-1e6, 1e6) | st.integers(-1000, 1000)
# one kind of cell per column, as in real tables, so that some tables get through to the windows
KINDS = {
    "number": FINITE
    | FINITE
    | FINITE
    | st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -1e39, 2**70]),
    "label": st.sampled_from(["yes", "no", "maybe", "", 0, 1]),
    "yes/no": st.sampled_from(["Yes", "No", "true", "FALSE", ""]),
    "text": st.text(max_size=5),
    "time": st.builds("2020-01-{:02d}".format, st.integers(1, 28))
    | st.sampled_from(["14:05:00", "Jan 5", "", "2020-13-01", "2020-01-01T00:00:00+05:00", "3"]),
    "anything": st.one_of(
        st.floats(),
        st.integers(-(2**70), 2**70),
        st.sampled_from(["", "NA", "inf", "-inf", "1e308", "2020-01-02", "14:05:00"]),
        st.text(max_size=6),
    ),
}


@st.composite
def tables(draw: st.DrawFn) -> tuple[list[str], list[str], list[list[object]]]:
    """Column names, each column's kind, and the rows."""
    unique = draw(st.integers(0, 4)) > 0  # duplicate names one time in five
    names = draw(st.lists(NAMES | st.text(max_size=4), min_size=2, max_size=6, unique=unique))
    kinds = [draw(st.sampled_from(["number", "number", "label", *KINDS])) for _ in names]
    n = draw(st.integers(0, 25))
    rows = [[draw(KINDS[k]) for k in kinds] for _ in range(n)]
    for j, k in enumerate(kinds):
        if k == "time" and draw(st.booleans()):  # half the time columns: distinct days, shuffled
            for row, day in zip(rows, draw(st.permutations(range(n))), strict=True):
                row[j] = str(date(2020, 1, 1) + timedelta(days=day))
    return names, kinds, rows


@FUZZ
@given(table=tables(), data=st.data())
def test_random_tables_give_a_series_or_a_user_error(folder, table, data):
    names, kinds, rows = table
    text = io.StringIO()
    csv.writer(text).writerows([names, *rows])  # \r\n: fields holding \r or \n are quoted
    (path := folder / "t.csv").write_text(text.getvalue(), encoding="utf-8", newline="")
    # roles mostly on distinct columns, so that tables get past the checks of the names
    labels = [n for n, k in zip(names, kinds, strict=True) if k == "label"]
    target = data.draw(st.sampled_from(labels if labels and data.draw(st.booleans()) else names))
    others = [n for n in names if n != target] or names
    times = [n for n, k in zip(names, kinds, strict=True) if k == "time" and n != target] or others
    time = data.draw(st.none() | st.sampled_from(times))
    group = data.draw(st.none() | st.none() | st.sampled_from([n for n in others if n != time] or others))
    features = data.draw(st.none() | st.lists(st.sampled_from(others), max_size=3, unique=True))
    nan = data.draw(st.sampled_from(["ffill", "drop", "error"]))
    try:
        df = data_tables.read_table(path)
        s = data_tables.table(df, target, features, time, group, nan=nan, where=str(path))
    except UserError:
        return
    assert isinstance(s, Series)
    # what comes back is what the file says: its own names, no duplicates, no inf, every row once
    assert set(s.feature_names) <= set(header.columns(path)) and len(set(s.feature_names)) == len(
        s.feature_names
    )
    assert target not in s.feature_names
    assert not np.isinf(s.x.numpy()).any()
    assert len(s.x) <= len(rows)  # fewer where csv.writer wrote a blank line, which pandas skips
    if features is not None:
        assert s.feature_names == features  # the order asked for
    else:  # the file's order
        assert s.feature_names == [c for c in header.columns(path) if c in s.feature_names]


@FUZZ
@given(
    n=st.integers(2, 30),
    width=st.integers(1, 4),
    grouped=st.booleans(),
    timed=st.booleans(),
    data=st.data(),
)
def test_clean_tables_keep_each_value_in_its_row_and_series(folder, n, width, grouped, timed, data):
    # float32 values survive the CSV round trip exactly: every one must land where its row sorts to
    cell = st.floats(-(2.0**100), 2.0**100, width=32)
    cols = {f"f{j}": data.draw(st.lists(cell, min_size=n, max_size=n)) for j in range(width)}
    labels = [
        "no",
        "yes",
        *data.draw(st.lists(st.sampled_from(["no", "yes"]), min_size=n - 2, max_size=n - 2)),
    ]
    df = pd.DataFrame({**cols, "label": labels})
    if grouped:
        df["site"] = data.draw(st.lists(st.sampled_from(["north", "south", "east"]), min_size=n, max_size=n))
    if timed:  # distinct days in a shuffled order, distinct within each group
        days = data.draw(st.permutations(range(n)))
        df["day"] = [str(date(2021, 3, 1) + timedelta(days=d)) for d in days]
    df.to_csv(path := folder / "clean.csv", index=False)
    time, group = ("day" if timed else None), ("site" if grouped else None)
    s = data_tables.table(data_tables.read_table(path), "label", time=time, group=group, where=str(path))
    order = [c for c in (group, time) if c]
    expected = df.sort_values(order, kind="stable") if order else df
    assert s.feature_names == list(cols)
    np.testing.assert_array_equal(s.x.numpy(), expected[list(cols)].to_numpy(np.float32))
    assert s.y.tolist() == [["no", "yes"].index(v) for v in expected["label"]]
    if timed:
        assert [str(t.date()) for t in pd.to_datetime(s.steps)] == expected["day"].tolist()
    else:
        assert s.steps.tolist() == expected.index.tolist()
    if grouped:
        sizes = expected["site"].value_counts().sort_index()
        assert s.group_names == sizes.index.tolist()
        assert [b - a for a, b in s.bounds] == sizes.tolist()
