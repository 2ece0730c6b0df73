"""data=csv: small tables written by the tests, one per rule, and every bad input."""

import gzip
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from lstm_cls import UserError
from lstm_cls.data import CsvDataModule, tables
from lstm_cls.train import train

from .conftest import run_cli


def frame(n: int = 60, seed: int = 0, **extra) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {"a": np.arange(n, dtype=float), "b": rng.normal(size=n), "label": ["no", "yes"] * (n // 2)}
    )
    return df.assign(**extra)


def dm(path: Path, **kw) -> CsvDataModule:
    kw = {"target": "label", "window": 4, "batch_size": 8, "val_fraction": 0.2, "test_fraction": 0.2, **kw}
    m = CsvDataModule(path=str(path), **kw)
    m.setup("fit")
    return m


def raw_windows(m: CsvDataModule, split: str) -> np.ndarray:
    """The split's windows, un-normalised: [windows, timesteps, features]."""
    x, _ = m.sets[split][list(range(len(m.sets[split])))]
    return (x * m.std + m.mean).numpy()


def test_string_target_classes_sorted_and_yes_no_features_numeric(tmp_path, caplog):
    p = tmp_path / "t.csv"
    frame(rain=["Yes", "No", None] * 20, note=["x"] * 60).to_csv(p, index=False)
    with caplog.at_level("INFO"):
        m = dm(p)
    assert m.class_names == ["no", "yes"]
    assert m.series.feature_names == ["a", "b", "rain"]  # "note" is not numeric: left out
    assert "left out 1 non-numeric columns: ['note']" in caplog.text
    w = raw_windows(m, "train")
    np.testing.assert_allclose(w[0, :, 0], [0, 1, 2, 3], atol=1e-4)  # rows in file order
    np.testing.assert_allclose(w[0, :3, 2], [1, 0, 0], atol=1e-5)  # Yes 1, No 0, None ffilled from No


def test_groups_never_share_a_window_and_every_split_sees_every_group(tmp_path):
    n = 40
    df = pd.DataFrame(
        {
            "station": ["B", "A"] * n,
            "a": np.r_[np.arange(n), 1000 + np.arange(n)].reshape(2, n).T.ravel(),
            "label": [0, 1, 1, 0] * (n // 2),
        }
    )
    df.to_csv(p := tmp_path / "g.csv", index=False)
    m = dm(p, group="station")
    assert [b - a for a, b in m.series.bounds] == [n, n]
    for split in ("train", "val", "test"):
        first = raw_windows(m, split)[:, :, 0]
        groups = first >= 1000
        assert (groups.all(1) | (~groups).all(1)).all(), f"a {split} window spans two stations"
        assert groups.all(1).any() and (~groups).all(1).any(), f"{split} lacks a station"
        assert np.allclose(np.diff(first, axis=1), 1, atol=1e-3)  # consecutive steps of one station
    assert CsvDataModule(
        path=str(p), target="label", group="station", groups=["A"], window=4
    ).load().bounds == [(0, n)]


@pytest.mark.parametrize(
    ("dates", "dayfirst"),
    [
        (pd.date_range("2020-01-01", periods=60).strftime("%Y-%m-%d"), None),
        (pd.date_range("2020-01-01", periods=60).strftime("%d-%m-%Y"), None),  # told apart by days > 12
        (pd.date_range("2020-01-01", periods=60).strftime("%m/%d/%Y"), None),
        (pd.date_range("2020-01-01", periods=60).strftime("%d-%m-%Y"), True),
    ],
)
def test_dates_in_either_order_are_parsed_and_sorted(tmp_path, dates, dayfirst):
    df = frame(date=dates).iloc[::-1]  # written newest first: the time column must restore the order
    df.to_csv(p := tmp_path / "d.csv", index=False)
    m = dm(p, time="date", dayfirst=dayfirst)
    np.testing.assert_allclose(raw_windows(m, "train")[0, :, 0], [0, 1, 2, 3], atol=1e-4)


def test_three_integer_classes_train_end_to_end(tmp_path, make_cfg):
    df = frame(90).assign(label=np.arange(90) % 3 * 10)
    df.to_csv(p := tmp_path / "three.csv", index=False)
    cfg = make_cfg(
        "data=csv",
        f"data.path={p}",
        "data.target=label",
        "data.window=4",
        "model.hidden=4",
        "trainer.max_epochs=1",
        "callbacks.progress_bar.refresh_rate=0",
    )
    metrics = train(cfg)
    ckpt = torch.load(Path(cfg.run_dir) / "checkpoints" / "best.ckpt", weights_only=True)
    assert ckpt["data_info"]["class_names"] == ["0", "10", "20"]
    assert ckpt["state_dict"]["net.fc2.weight"].shape == (3, 10)
    assert metrics["test/majority_acc"] == pytest.approx(1 / 3, abs=0.1)


@pytest.mark.parametrize(("rule", "kept", "nan_dropped"), [("ffill", 31, 1), ("drop", 23, 9)])
def test_nan_rules_fill_within_series_or_drop_windows(tmp_path, caplog, rule, kept, nan_dropped):
    # 60 rows, window 4: the training part is rows 0..35, i.e. window starts 0..32 (33 windows)
    df = frame(60)
    df.loc[[0, 10, 30], "b"] = np.nan  # row 0 has nothing before it to carry forward
    df.loc[20, "label"] = None  # drops exactly the window ending on row 20
    df.to_csv(p := tmp_path / "n.csv", index=False)
    with caplog.at_level("INFO"):
        m = dm(p, nan=rule)
    # drop: start 0, starts 7..10 and 27..30 hold a NaN, start 17 ends on the missing label
    # ffill: rows 10 and 30 are filled; only start 0 (NaN at row 0) and start 17 go
    assert len(m.sets["train"]) == kept
    assert (
        f"dropped 1 windows with a missing label, {nan_dropped} holding a missing feature value"
        in caplog.text
    )
    if rule == "ffill":
        w = raw_windows(m, "train")
        row = [i for i in range(len(w)) if np.isclose(w[i, 3, 0], 10, atol=1e-3)][
            0
        ]  # window ending on row 10
        assert w[row, 3, 1] == pytest.approx(df.loc[9, "b"], abs=1e-4)


def test_nan_error_rule_names_the_column(tmp_path):
    df = frame(60)
    df.loc[5, "b"] = np.nan
    df.to_csv(p := tmp_path / "n.csv", index=False)
    with pytest.raises(UserError, match=r"data.nan=error: missing feature values .*\{'b': 1\}"):
        dm(p, nan="error")


def test_horizon_labels_a_later_step(tmp_path):
    df = frame(60).assign(label=np.arange(60) % 5)
    df.to_csv(p := tmp_path / "h.csv", index=False)
    m = dm(p, horizon=2)
    x, y = m.sets["train"][[0, 7]]
    last = (x[:, -1, 0] * m.std[0] + m.mean[0]).round()  # feature a is the row number
    assert y.tolist() == ((last + 2) % 5).long().tolist()


def test_separate_val_and_test_files_use_training_statistics(tmp_path):
    frame(60).to_csv(train_p := tmp_path / "train.csv", index=False)
    frame(20).assign(a=lambda d: d.a - 100).to_csv(val_p := tmp_path / "val.csv", index=False)
    frame(30).assign(a=lambda d: d.a + 500).to_csv(test_p := tmp_path / "test.parquet", index=False)
    frame(30).assign(a=lambda d: d.a + 500).to_parquet(test_p, index=False)
    m = dm(train_p, test_path=str(test_p), val_path=str(val_p))
    assert len(m.sets["test"]) == 30 - 4 + 1  # the whole test file, windowed
    assert len(m.sets["val"]) == 20 - 4 + 1
    assert len(m.sets["train"]) == 60 - 4 + 1  # nothing carved from the training file
    assert m.mean[0].item() == pytest.approx(np.arange(60).mean(), rel=1e-5)  # training file only
    np.testing.assert_allclose(raw_windows(m, "val")[0, :, 0], [-100, -99, -98, -97], atol=1e-3)
    np.testing.assert_allclose(raw_windows(m, "test")[0, :, 0], [500, 501, 502, 503], atol=1e-3)


def test_csv_gz_and_parquet_read_like_csv(tmp_path):
    frame(60).to_csv(tmp_path / "t.csv.gz", index=False)
    frame(60).to_parquet(tmp_path / "t.parquet", index=False)
    a, b = dm(tmp_path / "t.csv.gz"), dm(tmp_path / "t.parquet")
    assert torch.equal(a.series.x, b.series.x) and a.class_names == b.class_names


def write(tmp_path: Path, name: str, text: str) -> Path:
    (p := tmp_path / name).write_text(text)
    return p


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        (
            None,
            ["data.path=/nonexistent/x.csv", "data.target=y"],
            "error: data.path: no such file: /nonexistent/x.csv",
        ),
        (("e.csv", ""), ["data.target=y"], "is empty"),
        (("bad.parquet", "not parquet"), ["data.target=y"], "cannot read"),
        (("h.csv", "a,y\n"), ["data.target=y"], "has a header but no rows"),
        (("c.csv", "a,b\n1,2\n"), ["data.target=y"], "data.target: no column 'y' in"),
        (("c.csv", "a,b\n1,2\n"), ["data.target=b", "data.features=[a,zz]"], "no column ['zz']"),
        (
            ("s.csv", "a,s,y\n" + "1,x,0\n2,z,1\n" * 20),
            ["data.target=y", "data.features=[a,s]"],
            "data.features: not numeric: ['s']",
        ),
        (
            ("short.csv", "a,y\n" + "1,0\n2,1\n" * 3),
            ["data.target=y", "data.window=16"],
            "shorter than one window: lengths [6]",
        ),
        (("one.csv", "a,y\n" + "1,0\n" * 50), ["data.target=y"], "has 1 class ['0']; need >= 2"),
        (("d.csv", "a,a,y\n" + "1,2,0\n3,4,1\n" * 20), ["data.target=y"], "duplicate column names ['a']"),
        (("i.csv", "a,y\n" + "1,0\ninf,1\n" * 20), ["data.target=y"], "holds inf at data row 2 (1-based"),
        (None, ["data.target=y", "data.nan=mean"], "data.nan must be one of ffill, drop, error"),
        (None, ["data.target=y", "data.batch_size=0"], "data.batch_size must be a positive integer"),
    ],
)
def test_bad_input_is_one_error_line_exit_2_and_no_run(tmp_path, setup, args, message):
    path = [f"data.path={write(tmp_path, *setup)}"] if setup else []
    run = tmp_path / "run"
    r = run_cli("data=csv", *path, *args, f"hydra.run.dir={run}")
    assert r.returncode == 2, r.stderr[-1500:]
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last, r.stderr[-1500:]
    assert "Traceback" not in r.stderr
    assert not run.exists()


def test_preset_without_path_says_which_file_and_where(tmp_path):
    r = run_cli("data=weather_aus", f"hydra.run.dir={tmp_path / 'run'}")
    assert r.returncode == 2
    assert "data.path is not set: pass data.path=../shared/data/weatherAUS.csv" in r.stderr
    assert "Kaggle" in r.stderr and not (tmp_path / "run").exists()


def test_val_and_test_files_are_matched_to_the_training_columns_by_name(tmp_path):
    frame(60).to_csv(train_p := tmp_path / "train.csv", index=False)
    # the same columns in another order: feature a must still be feature a
    frame(20).assign(a=lambda d: d.a - 100)[["b", "label", "a"]].to_csv(
        val_p := tmp_path / "v.csv", index=False
    )
    m = dm(train_p, val_path=str(val_p))
    assert m.series.feature_names == ["a", "b"]
    np.testing.assert_allclose(raw_windows(m, "val")[0, :, 0], [-100, -99, -98, -97], atol=1e-3)
    frame(20).drop(columns="b").to_csv(nob := tmp_path / "nob.csv", index=False)
    with pytest.raises(
        UserError, match=r"data.test_path: .*nob.csv lacks the training file's features \['b'\]"
    ):
        dm(train_p, test_path=str(nob))
    frame(20, c=1.5).to_csv(more := tmp_path / "more.csv", index=False)
    with pytest.raises(
        UserError, match=r"data.val_path: .*more.csv has numeric columns \['c'\] that are not"
    ):
        dm(train_p, val_path=str(more))
    frame(20, c=1.5).to_csv(more, index=False)  # with data.features given, extra columns are not used
    assert dm(train_p, val_path=str(more), features=["b", "a"]).series.feature_names == ["b", "a"]
    frame(20).assign(b="x").to_csv(text := tmp_path / "text.csv", index=False)
    with pytest.raises(UserError, match=r"data.val_path: columns \['b'\] of .*text.csv are not numeric"):
        dm(train_p, val_path=str(text))


def test_target_among_features_and_duplicate_column_names_are_refused(tmp_path):
    frame(60).assign(label=np.arange(60) % 2).to_csv(p := tmp_path / "t.csv", index=False)
    with pytest.raises(UserError, match=r"data.features: lists the target 'label'"):
        dm(p, features=["a", "label"])
    write(tmp_path, "d.csv", "a,b,a,label\n" + "1,2,3,0\n4,5,6,1\n" * 30)  # pandas would call the second a.1
    with pytest.raises(UserError, match=r"d.csv has duplicate column names \['a'\]"):
        dm(tmp_path / "d.csv")


@pytest.mark.parametrize("value", ["inf", "-inf", "1e308", "-3.5e38"])
def test_non_finite_or_float32_overflowing_features_name_column_and_row(tmp_path, value):
    df = frame(60).astype({"b": object})
    df.loc[5, "b"] = value
    df.loc[40, "b"] = value  # only the first is named
    df.iloc[::-1].to_csv(p := tmp_path / "f.csv", index=False)  # newest first: file row 20 sorts later
    with pytest.raises(UserError, match=r"column 'b' of .*f.csv holds .*at data row 20 \(1-based"):
        dm(p)
    frame(60).assign(b=3e38).to_csv(p, index=False)  # within float32 range: fine
    assert dm(p).series.x[:, 1].isfinite().all()


def test_times_of_day_dateless_and_repeated_timestamps_are_refused(tmp_path):
    minutes = pd.date_range("2020-01-01", periods=60, freq="min")
    frame(time=minutes.strftime("%H:%M:%S")).to_csv(p := tmp_path / "t.csv", index=False)
    with pytest.raises(UserError, match=r"data.time: column 'time' .* holds times of day without dates"):
        dm(p, time="time")
    frame(time=minutes.strftime("%b %d %H:%M")).to_csv(p, index=False)
    with pytest.raises(UserError, match=r"data.time: column 'time' .* holds dates without a year"):
        dm(p, time="time")
    days = list(pd.date_range("2020-01-01", periods=30).strftime("%Y-%m-%d"))
    frame(day=days * 2).to_csv(p, index=False)  # two sites in one file, without data.group
    with pytest.raises(
        UserError, match=r"timestamp 2020-01-01 00:00:00 occurs more than once .* no data.group"
    ):
        dm(p, time="day")
    frame(day=days * 2, site=["A"] * 31 + ["B"] * 29).to_csv(p, index=False)  # 2020-01-01 twice in A
    with pytest.raises(UserError, match=r"timestamp 2020-01-01 .* within group 'A' of column 'site'"):
        dm(p, time="day", group="site")
    frame(day=days * 2, site=["A"] * 30 + ["B"] * 30).to_csv(p, index=False)  # once per site: fine
    assert [b - a for a, b in dm(p, time="day", group="site").series.bounds] == [30, 30]
    frame(day=[d if i != 7 else "" for i, d in enumerate(days * 2)]).to_csv(p, index=False)
    with pytest.raises(UserError, match=r"data.time: column 'day' .* has no time at data row 8"):
        dm(p, time="day")
    frame(step=np.arange(60)[::-1] * 10).to_csv(p, index=False)  # numbers order the rows as they are
    m = dm(p, time="step")
    np.testing.assert_allclose(raw_windows(m, "train")[0, :, 0], [59, 58, 57, 56], atol=1e-4)
    assert tables.table(tables.read_table(p), "label", time="step").steps[:3].tolist() == [0, 10, 20]


@pytest.mark.parametrize("name", ["X.CSV", "x.Csv.GZ", "X.PARQUET", "X.TXT"])
def test_file_suffixes_in_any_case(tmp_path, name):
    p = tmp_path / name
    frame(60).to_parquet(p, index=False) if "PARQUET" in name else frame(60).to_csv(p, index=False)
    assert dm(p).series.feature_names == ["a", "b"]


def test_unnamed_columns_and_rows_longer_than_the_header_are_refused(tmp_path):
    frame(60).to_csv(p := tmp_path / "i.csv")  # with pandas's index: a column without a name
    with pytest.raises(UserError, match=r"columns \['Unnamed: 0'\] of .*i.csv have no name in the header"):
        dm(p)
    assert dm(p, features=["a", "b"]).series.feature_names == ["a", "b"]  # not used: fine
    write(tmp_path, "r.csv", "a,b,label\n" + "0,1,2,0\n9,8,7,1\n" * 30)  # pandas would make a an index
    with pytest.raises(UserError, match=r"first data row of .*r.csv has 4 fields but the header names 3"):
        dm(tmp_path / "r.csv")


def test_header_reads_names_and_refuses_bad_files_without_pandas(tmp_path):
    from lstm_cls.data import header

    frame(4).to_csv(p := tmp_path / "t.csv", index=False)
    (gz := tmp_path / "t.Csv.Gz").write_bytes(gzip.compress(p.read_bytes()))
    frame(4).to_parquet(pq := tmp_path / "t.parquet", index=False)
    assert header.columns(p) == header.columns(gz) == header.columns(pq) == ["a", "b", "label"]
    assert header.columns(write(tmp_path, "bom.txt", '\ufeff\n"x",,z\n1,2,3\n')) == ["x", "Unnamed: 1", "z"]
    (binary := tmp_path / "bin.csv").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    (badgz := tmp_path / "bad.csv.gz").write_bytes(b"not gzip")
    for path, message in [
        (tmp_path / "none.csv", r"data.val_path: no such file: .*none.csv"),
        (
            write(tmp_path, "t.tsv", "a\tb\n"),
            r"data.val_path: .*t.tsv is not a .csv, .csv.gz, .txt or .parquet file",
        ),
        (write(tmp_path, "e.csv", "\n \n"), r"data.val_path: .*e.csv is empty"),
        (binary, r"data.val_path: .*bin.csv is not a text table"),
        (badgz, r"data.val_path: cannot read .*bad.csv.gz"),
        (write(tmp_path, "bad.parquet", "PAR1"), r"data.val_path: cannot read .*bad.parquet"),
        (write(tmp_path, "d.csv", "a,b,a\n"), r"data.val_path: .*d.csv has duplicate column names \['a'\]"),
    ]:
        with pytest.raises(UserError, match=message):
            header.columns(path, "data.val_path")
        with pytest.raises(UserError, match=message.replace("val_path", "path")):
            tables.read_table(path)  # the same checks, the same words
    for args, message in [
        (("rain",), r"data.target: no column 'rain' in .*t.csv; its columns are \['a', 'b', 'label'\]"),
        (("label", ["a", "zz"]), r"data.features: no column \['zz'\]"),
        (("label", ["a", "label"]), r"data.features: lists the target 'label'"),
        (("label", None, "day"), r"data.time: no column 'day'"),
        (("label", None, None, "site"), r"data.group: no column 'site'"),
        (("label", None, "label"), r"data.target and data.time both name column 'label'"),
    ]:
        with pytest.raises(UserError, match=message):
            header.check_columns(p, "data.path", *args)
    header.check_columns(p, "data.path", "label", ["b", "a"])
    # quick enough for config.check: no torch, pandas or numpy behind it
    code = (
        "import sys; from lstm_cls import UserError; from lstm_cls.data import header\n"
        f"try: header.check_columns({str(p)!r}, 'data.path', 'rain')\n"
        "except UserError as e: print(e)\n"
        "assert not {'torch', 'pandas', 'numpy'} & set(sys.modules), sorted(sys.modules)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("data.target: no column 'rain' in ")  # (how fast: make bench, not a test)
