"""Ambiguous input is an `error:` (exit 2), never a silent guess (issue 20): each row is (what was given,
words of the refusal). Dates written two ways in one column, .ts labels equal but for case or undeclared,
rows without a case id, a features string that could be split into letters, a .csv where a .ts belongs.

Most rows run in-process (a fraction of a second); one row per kind goes through the command line, for
its exit code, its one `error:` line and the run folder it must not leave.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lstm_cls import UserError
from lstm_cls.data import CsvDataModule, table_data, tables, times, uea

from .conftest import ROOT, run_cli

# ---- dates: one column, one way of writing them ----

DAYS = pd.date_range("2020-01-01", periods=40)


def dates(form: str, **changed: str) -> list[str]:
    """40 days from 1 January 2020 in `form`, some rows (by index, "r3"=...) written otherwise."""
    out = list(DAYS.strftime(form))
    for key, value in changed.items():
        out[int(key[1:])] = value
    return out


MIXED_DATES = [
    # (the column, data.dayfirst, words): ISO 2020-01-02 among day-first dates was read as 1 February
    (
        dates("%d/%m/%Y", r1="2020-01-02"),
        None,
        "'01/01/2020' at data row 1 (day or month first) and '2020-01-02'",
    ),
    (dates("%Y-%m-%d", r5="06/01/2020"), None, "'2020-01-01' at data row 1 (year first) and '06/01/2020'"),
    (
        dates("%Y-%m-%d", r2="03 Jan 2020"),
        None,
        "(year first) and '03 Jan 2020' at data row 3 (a month's name)",
    ),
    (dates("%Y-%m-%d", r2="20200103"), None, None),  # compact ISO is ISO: read, not refused
    (dates("%d/%m/%Y", r0="01/13/2020"), None, "'13/01/2020' at data row 13 (day first) and '01/13/2020'"),
    (dates("%d/%m/%Y"), False, "data.dayfirst=false, but column 'date' of"),
    (dates("%m/%d/%Y"), True, "data.dayfirst=true, but column 'date' of"),
    (dates("%d/%m/%Y", r4="-"), None, "and '-' at data row 5 (another form)"),
]


def date_table(tmp_path: Path, column: list[str]) -> Path:
    n = len(column)
    df = pd.DataFrame({"date": column, "a": np.arange(n, dtype=float), "label": ["no", "yes"] * (n // 2)})
    df.to_csv(p := tmp_path / "d.csv", index=False)
    return p


@pytest.mark.parametrize(("column", "dayfirst", "words"), MIXED_DATES)
def test_a_date_column_written_two_ways_is_refused_naming_both(tmp_path, column, dayfirst, words):
    p = date_table(tmp_path, column)
    if words is None:
        series = tables.table(tables.read_table(p), "label", time="date", dayfirst=dayfirst)
        assert series.x[:, 0].tolist() == list(range(len(column)))  # file order is date order
        return
    with pytest.raises(UserError) as e:
        tables.table(tables.read_table(p), "label", time="date", dayfirst=dayfirst, where=str(p))
    message = str(e.value)
    assert message.startswith("data.time: ") and words in message and "\n" not in message, message


@pytest.mark.parametrize("form", ["%Y/%m/%d", "%Y.%m.%d", "%Y/%m/%d %H:%M"])
@pytest.mark.parametrize("dayfirst", [None, True, False])
def test_year_first_dates_are_never_read_day_first(form, dayfirst):
    # pandas reads 2020/01/02 day-first as 1 February; year-first is year-month-day, whatever data.dayfirst
    col = pd.Series(DAYS[:15].strftime(form))
    parsed = times.parse_times(col, dayfirst, "date")
    assert (parsed.dt.normalize() == DAYS[:15]).all()


# every way of writing one date this reader knows: (strftime form, its kind, its numeric order)
FORMS = [
    ("%Y-%m-%d", "year", None),
    ("%Y/%m/%d", "year", None),
    ("%d/%m/%Y", "numbers", True),
    ("%m/%d/%Y", "numbers", False),
    ("%d-%m-%Y", "numbers", True),
    ("%d %b %Y", "name", None),
    ("%b %d %Y", "name", None),
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(
        st.tuples(st.integers(0, 3000), st.integers(0, len(FORMS) - 1), st.booleans()),
        min_size=1,
        max_size=12,
    ),
    dayfirst=st.sampled_from([None, True, False]),
)
def test_any_mix_of_date_forms_reads_every_date_as_written_or_is_refused(rows, dayfirst):
    # day and month first, their day is > 12 (a date that shows its own order); other forms, any day
    true, text, kinds = [], [], []
    for offset, f, late in rows:
        form, kind, order = FORMS[f]
        day = pd.Timestamp("2015-01-01") + pd.Timedelta(days=offset)
        if kind == "numbers" and day.day <= 12:
            day += pd.Timedelta(days=13 if late else 16 - day.day)
        true.append(day)
        text.append(day.strftime(form))
        kinds.append((kind, order))
    col = pd.Series(text)
    try:
        parsed = times.parse_times(col, dayfirst, "date")
    except UserError as e:
        assert str(e).startswith("data.time: ") and "\n" not in str(e)
        # refused only for a reason: two ways of writing, or data.dayfirst against the dates
        orders = {o for k, o in kinds if k == "numbers"}
        mixed = len({k for k, _ in kinds}) > 1 or len(orders) > 1
        against = dayfirst is not None and bool(orders) and dayfirst not in orders
        assert mixed or against, (text, dayfirst, str(e))
        return
    assert list(parsed) == true, (text, dayfirst)  # never a date other than the one written


# ---- .ts labels: equal but for case, or not declared ----

TS_HEADER = "@problemName tiny\n@univariate true\n@equalLength true\n@classLabel true {labels}\n@data\n"


def ts_file(tmp_path: Path, labels: str, cases: list[str], name: str = "x_TRAIN.ts") -> Path:
    text = TS_HEADER.format(labels=labels) + "".join(
        f"{i},{i + 1},{i + 2}:{c}\n" for i, c in enumerate(cases)
    )
    (p := tmp_path / name).write_text(text)
    return p


TS_LABELS = [
    # (@classLabel, each case's label, words): A and a were one class, lower-cased; c a class of its own
    ("A a", ["A", "a", "A", "a"], "class labels 'A' and 'a' that differ only in case"),
    ("A B", ["A", "a", "B", "B"], "class labels 'A' and 'a' that differ only in case"),
    ("Up down", ["Up", "down", "up", "down"], "class labels 'Up' and 'up' that differ only in case"),
    ("a b", ["a", "b", "a", "c"], "case 3 (0-based) of"),
    ("a b", ["a", "b", "c", "c"], "has the label 'c' (and 1 more cases), which the header's @classLabel"),
    ("a b", ["a", "b ", "a", "b"], None),  # a trailing space: aeon strips the line, the label is b
    ("Standing Walking", ["Standing", "Walking"], None),
]


@pytest.mark.parametrize(("declared", "cases", "words"), TS_LABELS)
def test_ts_labels_equal_but_for_case_or_undeclared_are_refused(tmp_path, declared, cases, words):
    p = ts_file(tmp_path, declared, cases)
    if words is None:
        read = uea.read_ts(p)
        assert sorted(set(read.y.tolist())) == sorted({c.strip().lower() for c in cases})
        return
    with pytest.raises(UserError) as e:
        uea.read_ts(p)
    message = str(e.value)
    assert message.startswith("data.path: ") and words in message and "\n" not in message, message
    assert "x_TRAIN.ts" in message


def test_a_test_file_spelling_a_class_otherwise_is_refused(tmp_path):
    train = uea.read_ts(ts_file(tmp_path, "Up Down", ["Up", "Down", "Up"]))
    test = uea.read_ts(ts_file(tmp_path, "up down", ["up", "down"], "x_TEST.ts"), "data.test_path")
    with pytest.raises(UserError, match=r"spells a class 'Down' and the test file .* spells it 'down'"):
        uea.check_pair(train, test)
    uea.check_pair(train, uea.read_ts(ts_file(tmp_path, "Up Down", ["Down", "Up"], "ok_TEST.ts")))


def test_ts_labels_keep_their_case_in_the_file_and_fuzzed_spellings_never_merge(tmp_path):
    # any two spellings of one word: refused unless they are the same text
    for a, b in [("ab", "aB"), ("Ab", "AB"), ("ab", "ab")]:
        p = ts_file(tmp_path, f"{a} {b} z" if a != b else f"{a} z", [a, b, "z"], f"{a}{b}.ts")
        if a == b:
            assert sorted(set(uea.read_ts(p).y.tolist())) == [a.lower(), "z"]
        else:
            with pytest.raises(UserError, match="differ only in case"):
                uea.read_ts(p)


@pytest.mark.parametrize(
    ("labels", "words"), [(["Yes", "yes"], "'Yes' and 'yes'"), (["no", "no "], "'no' and 'no '")]
)
def test_table_labels_equal_but_for_case_or_spaces_are_refused(tmp_path, labels, words):
    df = pd.DataFrame({"a": np.arange(60.0), "label": (labels + ["other"]) * 20})
    df.to_csv(p := tmp_path / "t.csv", index=False)
    with pytest.raises(
        UserError, match=rf"^data.target: column 'label' of .* has class labels {words}, equal"
    ):
        tables.table(tables.read_table(p), "label", where=str(p))


# ---- rows without a case (or group) id ----


def case_table(tmp_path: Path, missing: list[int], blank: str | None = None) -> Path:
    rows = [(c, t, float(t) + ord(c), "x" if c in "ace" else "y") for c in "abcdef" for t in range(6)]
    df = pd.DataFrame(rows, columns=["trial", "t", "v", "label"])
    df.loc[missing, "trial"] = None if blank is None else blank
    df.to_csv(p := tmp_path / "cases.csv", index=False)
    return p


@pytest.mark.parametrize(
    ("missing", "blank", "words"),
    [
        ([3, 7, 8], None, "no case id in 3 rows, the first at data row 4 (1-based"),
        ([20], None, "no case id in 1 row, the first at data row 21 (1-based"),
        ([5], "  ", "no case id in 1 row, the first at data row 6 (1-based"),  # blank: no id either
    ],
)
def test_rows_without_a_case_id_are_refused(tmp_path, missing, blank, words):
    p = case_table(tmp_path, missing, blank)
    dm = table_data(case="trial", path=str(p), target="label", time="t", batch_size=4)
    with pytest.raises(UserError) as e:
        dm.setup("fit")
    message = str(e.value)
    assert message.startswith("data.case: column 'trial' of ") and words in message, message


def test_rows_without_a_group_id_are_refused_too(tmp_path):
    df = pd.DataFrame({"site": ["n", "s"] * 30, "a": np.arange(60.0), "label": ["no", "yes"] * 30})
    df.loc[9, "site"] = None
    df.to_csv(p := tmp_path / "g.csv", index=False)
    with pytest.raises(
        UserError, match=r"^data.group: column 'site' of .* no group id in 1 row, the first at data row 10"
    ):
        CsvDataModule(path=str(p), target="label", group="site", window=4).setup("fit")


# ---- a features string is one column, never its letters ----


def xy_table(tmp_path: Path, *columns: str) -> Path:
    n = 60
    df = pd.DataFrame({c: np.arange(n, dtype=float) * (i + 1) for i, c in enumerate(columns)})
    df.assign(label=["no", "yes"] * (n // 2)).to_csv(p := tmp_path / f"{'_'.join(columns)}.csv", index=False)
    return p


def test_a_features_string_is_one_column_from_python(tmp_path):
    p = xy_table(tmp_path, "x", "y", "xy")
    m = CsvDataModule(path=str(p), target="label", features="xy", window=4)
    m.setup("fit")
    assert m.series.feature_names == ["xy"] and m.n_features == 1  # was ["x", "y"]
    m = CsvDataModule(path=str(p), target="label", features=["x", "y"], window=4)
    m.setup("fit")
    assert m.series.feature_names == ["x", "y"]
    with pytest.raises(UserError, match=r"data.features: no column \['ab'\]"):  # was: trained on a and b
        CsvDataModule(path=str(xy_table(tmp_path, "a", "b")), target="label", features="ab").setup("fit")
    assert tables.table(tables.read_table(p), "label", features="xy").feature_names == ["xy"]


def test_a_case_tables_features_string_is_one_column(tmp_path):
    dm = table_data(case="trial", path=str(case_table(tmp_path, [])), target="label", time="t", features="v")
    dm.setup("fit")
    assert dm.info()["feature_names"] == ["v"]


def test_a_groups_string_is_one_group(tmp_path):
    df = pd.DataFrame({"site": ["ab", "a", "b"] * 20, "v": np.arange(60.0), "label": ["no", "yes"] * 30})
    df.to_csv(p := tmp_path / "g.csv", index=False)
    series = CsvDataModule(path=str(p), target="label", group="site", groups="ab", window=4).load()
    assert series.bounds == [(0, 20)]  # the group "ab", not "a" and "b"


# ---- the command line: one error line, exit 2, no run folder ----


def test_cli_mixed_dates_one_error_line_and_no_run_left(tmp_path):
    p = date_table(tmp_path, dates("%d/%m/%Y", r1="2020-01-02"))
    before = p.read_bytes()
    r = run_cli(
        "data=csv",
        f"data.path={p}",
        "data.target=label",
        "data.time=date",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert r.returncode == 2, r.stderr[-2000:]
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: data.time: column 'date'") and "'2020-01-02' at data row 2" in last
    assert "Traceback" not in r.stderr and not (tmp_path / "run").exists() and p.read_bytes() == before


FAST_REFUSALS = [
    # refused by the settings check, before torch or aeon is imported
    ("xy", ["data=csv", "data.features=xy", "data.target=label"], "error: data.features: no column ['xy']"),
    (
        "xy",
        ["data=csv", "data.target=label", "data.dayfirst=maybe"],
        "error: data.dayfirst must be true, false",
    ),
    ("xy", ["data=csv", "data.target=label", "data.dayfirst=1"], "error: data.dayfirst must be true, false"),
    ("ts", ["data=uea", "data.test_path={csv}"], "error: data.test_path: {csv} is not a .ts file"),
    ("ts", ["data=uea", "data.test_path={tmp}/missing.TS"], "error: data.test_path: no such file"),
]


@pytest.mark.parametrize(("kind", "typed", "words"), FAST_REFUSALS)
def test_cli_refusals_before_any_heavy_import(tmp_path, kind, typed, words):
    csv = xy_table(tmp_path, "x", "y")
    train = ts_file(tmp_path, "a b", ["a", "b", "a", "b"])
    first = [f"data.path={csv}"] if kind == "xy" else [f"data.path={train}"]
    args = [t.format(csv=csv, tmp=tmp_path) for t in typed] + first
    code = (
        "import sys\n"
        "from tests.conftest import compose_cfg\n"
        "from lstm_cls import UserError, config\n"
        f"cfg = compose_cfg(*{args!r})\n"
        "try:\n    config.check(cfg)\nexcept UserError as e:\n    print('error:', e)\n"
        "assert not {'torch', 'lightning', 'aeon', 'pandas'} & set(sys.modules), 'imported'\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.startswith(words.format(csv=csv)), r.stdout
    r = run_cli(*args, f"hydra.run.dir={tmp_path / 'run'}")
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith(words.format(csv=csv)), r.stderr
    assert not (tmp_path / "run").exists()
