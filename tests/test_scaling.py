"""data.time as several columns (Date and Time), data.scale (standard, robust, none) and data.clip: from the
settings check through training and the checkpoint's data_info to predict."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from lstm_cls import UserError, config, precheck
from lstm_cls.cli import parse
from lstm_cls.data import CaseTableDataModule, CsvDataModule, tables
from lstm_cls.data.scaling import channel_stats, fit_robust, fit_scaler, scale_
from lstm_cls.data.sequences import pad
from lstm_cls.data.windows import split_segments
from lstm_cls.model import LSTMClassifier
from lstm_cls.predict import DEFAULTS, predict
from lstm_cls.train import train

from .conftest import compose_cfg, run_cli

SPLIT = {"val_fraction": 0.2, "test_fraction": 0.2}


def occupancy(n: int = 80, seed: int = 0) -> pd.DataFrame:
    """A room-occupancy-like table with separate Date (dd/mm/yyyy) and Time columns, four readings a day:
    rows sharing a Date are told apart by their Time only. Feature `a` counts the steps in time order."""
    rng = np.random.default_rng(seed)
    when = pd.date_range("2015-02-04 05:00", periods=n, freq="6h")
    a = np.arange(n, dtype=float)
    return pd.DataFrame(
        {
            "Date": when.strftime("%d/%m/%Y"),  # days beyond 12: told to be day-first, as one column would be
            "Time": when.strftime("%H:%M:%S"),
            "a": a,
            "light": rng.normal(size=n) * 10 + 400,
            "Occupancy": (np.sin(a / 3) > 0).astype(int),
        }
    ).sample(frac=1, random_state=seed)  # shuffled rows: only the combined timestamp can order them


def spiky(n: int = 200, seed: int = 0) -> pd.DataFrame:
    """EEG-like channels: mostly small values, a few huge spikes; a constant channel; a label."""
    rng = np.random.default_rng(seed)
    eeg = rng.normal(4000, 30, size=n)
    eeg[rng.choice(n, 6, replace=False)] = 715_897.0
    return pd.DataFrame(
        {
            "eeg": eeg,
            "other": rng.normal(size=n),
            "flat": np.full(n, 7.0),  # zero IQR and std: scaled by 1, as a constant feature always was
            "label": np.where(rng.normal(size=n) > 0, "open", "closed"),
        }
    )


def module(path: Path, **kw) -> CsvDataModule:
    m = CsvDataModule(path=str(path), target=kw.pop("target", "label"), window=4, batch_size=8, **SPLIT, **kw)
    m.setup("fit")
    return m


def train_cfg(make_cfg, path: Path, *extra: str):
    return make_cfg(
        "data=csv",
        f"data.path={path}",
        "data.window=4",
        "data.val_fraction=0.2",
        "data.test_fraction=0.2",
        "model.hidden=4",
        "trainer.max_epochs=1",
        "callbacks.progress_bar.refresh_rate=0",
        *extra,
    )


# data.time as a list of columns


def test_date_and_time_columns_sort_the_series_by_their_joined_timestamp(tmp_path):
    df = occupancy()
    df.to_csv(p := tmp_path / "room.csv", index=False)
    m = module(p, target="Occupancy", time=["Date", "Time"])
    assert m.series.feature_names == ["a", "light"]  # Date and Time are the time, never features
    raw = m.series.x[:, 0] * m.std[0] + m.mean[0]  # feature a, un-scaled: the steps in time order
    np.testing.assert_allclose(raw.numpy(), np.arange(len(df)), atol=1e-3)
    x, _ = m.sets["train"][list(range(len(m.sets["train"])))]
    steps = (x[:, :, 0] * m.std[0] + m.mean[0]).numpy()
    assert np.allclose(np.diff(steps, axis=1), 1, atol=1e-3)  # every window: consecutive readings
    assert m.info()["time"] == ["Date", "Time"]  # what was given, so that predict reads a file alike
    expected = pd.to_datetime(df.Date + " " + df.Time, dayfirst=True).sort_values().to_numpy()
    series = tables.table(tables.read_table(p), "Occupancy", time=["Date", "Time"])
    np.testing.assert_array_equal(series.steps, expected)  # day-first, and 4 times within each day
    # the same text as one column gives the same timestamps
    one = df.assign(When=df.Date + " " + df.Time).drop(columns=["Date", "Time"])
    one.to_csv(q := tmp_path / "one.csv", index=False)
    np.testing.assert_array_equal(
        tables.table(tables.read_table(q), "Occupancy", time="When").steps, expected
    )


def test_missing_time_columns_are_one_error_naming_them(tmp_path):
    occupancy().to_csv(p := tmp_path / "room.csv", index=False)
    df = tables.read_table(p)
    with pytest.raises(UserError, match=r"data\.time: no column \['Clock', 'Hour'\] in .*its columns are"):
        tables.table(df, "Occupancy", time=["Date", "Clock", "Hour"])
    with pytest.raises(UserError, match="data.time and data.target both name column 'Occupancy'"):
        tables.table(df, "Occupancy", time=["Date", "Occupancy"])
    run = tmp_path / "run"
    r = run_cli(
        "data=csv",
        f"data.path={p}",
        "data.target=Occupancy",
        "data.time=[Date,Clock]",
        f"hydra.run.dir={run}",
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert r.stderr.strip().splitlines() == [
        f"error: data.time: no column ['Clock'] in {p}; its columns are ['Date', 'Time', 'a', 'light', "
        "'Occupancy']"
    ]
    assert not run.exists()


def test_a_missing_part_of_a_timestamp_names_the_row(tmp_path):
    df = occupancy().sort_index()
    df.loc[5, "Time"] = None
    df.to_csv(p := tmp_path / "room.csv", index=False)
    with pytest.raises(
        UserError, match=r"columns \['Date', 'Time'\] \(joined with a space\) .* no time at data row 6"
    ):
        module(p, target="Occupancy", time=["Date", "Time"])


def test_predict_reads_a_date_and_time_file_as_training_did(make_cfg, tmp_path):
    occupancy(80, 0).to_csv(p := tmp_path / "room.csv", index=False)
    cfg = train_cfg(make_cfg, p, "data.target=Occupancy", "data.time=[Date,Time]")
    train(cfg)
    ckpt = f"{cfg.run_dir}/checkpoints/best.ckpt"
    assert torch.load(ckpt, weights_only=True)["data_info"]["time"] == ["Date", "Time"]
    new = occupancy(30, 1).drop(columns="Occupancy")  # shuffled, no labels
    new.to_csv(q := tmp_path / "new.csv", index=False)
    out = tmp_path / "p.csv"
    got = predict(parse(DEFAULTS, [f"ckpt_path={ckpt}", f"data.path={q}", f"output={out}"]))
    assert list(got.columns) == ["Date Time", "predicted", "p_0", "p_1"]
    assert len(got) == 30 - 4 + 1
    ends = pd.to_datetime(new.Date + " " + new.Time, dayfirst=True).sort_values().iloc[3:]
    np.testing.assert_array_equal(pd.to_datetime(got["Date Time"]).to_numpy(), ends.to_numpy())


# data.scale and data.clip


def test_robust_statistics_are_the_training_steps_median_and_iqr(tmp_path):
    df = spiky()
    df.loc[160:, ["eeg", "other"]] = 1e6  # validation and test: they must not move the statistics
    df.to_csv(p := tmp_path / "eeg.csv", index=False)
    m = module(p, scale="robust")
    ((a, b),) = split_segments(m.series, **SPLIT)["train"]
    assert (a, b) == (0, 120)
    train_steps = df[["eeg", "other", "flat"]].to_numpy(np.float32)[a:b].astype(np.float64)
    q1, median, q3 = np.percentile(train_steps, [25, 50, 75], axis=0)
    np.testing.assert_allclose(m.mean.numpy(), median.astype(np.float32), rtol=1e-6)
    np.testing.assert_allclose(m.std.numpy()[:2], (q3 - q1)[:2].astype(np.float32), rtol=1e-5)
    assert m.std[2] == 1 and m.mean[2] == 7  # a constant feature: zero IQR falls back to 1
    scaled = m.series.x[a:b, 0].numpy()
    assert np.median(scaled) == pytest.approx(0, abs=1e-6)  # the typical step is near 0 ...
    assert np.percentile(scaled, 75) - np.percentile(scaled, 25) == pytest.approx(1, rel=1e-5)
    # ... where mean/std scaling squashes it to about nothing beside the spikes
    standard = module(p).series.x[a:b, 0].numpy()
    assert np.percentile(standard, 75) - np.percentile(standard, 25) < 0.01


def test_fit_robust_ignores_nans_and_takes_every_segment():
    x = torch.randn(300, 3)
    x[::7, 1] = float("nan")
    x[:, 2] = float("nan")  # nothing to go by: left as it is
    segments = [(0, 50), (120, 200)]
    centre, spread = fit_robust(x, segments)
    steps = torch.cat([x[a:b] for a, b in segments]).double().numpy()
    q1, q2, q3 = np.nanpercentile(steps[:, :2], [25, 50, 75], axis=0)
    np.testing.assert_allclose(centre[:2].numpy(), q2, rtol=1e-6)
    np.testing.assert_allclose(spread[:2].numpy(), q3 - q1, rtol=1e-6)
    assert centre[2] == 0 and spread[2] == 1
    torch.testing.assert_close(fit_scaler(x, segments, "robust")[0], centre)


def test_none_leaves_values_unchanged(tmp_path):
    df = spiky()
    df.to_csv(p := tmp_path / "eeg.csv", index=False)
    m = module(p, scale="none")
    assert m.mean.tolist() == [0, 0, 0] and m.std.tolist() == [1, 1, 1]
    np.testing.assert_array_equal(m.series.x.numpy(), df[["eeg", "other", "flat"]].to_numpy(np.float32))
    assert m.info()["scale"] == "none" and m.info()["clip"] is None


def test_scale_applies_mean_std_then_clip_in_chunks():
    x = torch.randn(1000, 4) * 5
    stats = {"mean": [1.0, 2.0, 3.0, 4.0], "std": [2.0, 2.0, 4.0, 0.5]}
    want = (x - torch.tensor(stats["mean"])) / torch.tensor(stats["std"])
    torch.testing.assert_close(scale_(x.clone(), stats, chunk=64), want)  # no "clip": an older checkpoint
    torch.testing.assert_close(scale_(x.clone(), {**stats, "clip": 1.5}, chunk=64), want.clamp(-1.5, 1.5))
    torch.testing.assert_close(scale_(x.clone(), stats, 0.5), want.clamp(-0.5, 0.5))
    nan = torch.tensor([[float("nan"), 1.0, 1.0, 1.0]])
    assert scale_(nan, {**stats, "clip": 1.0})[0, 0].isnan()  # left to data.nan's window rule


def test_clip_bounds_every_scaled_value_and_the_checkpoint_keeps_the_scaling(make_cfg, tmp_path):
    spiky().to_csv(p := tmp_path / "eeg.csv", index=False)
    cfg = train_cfg(make_cfg, p, "data.target=label", "data.scale=robust", "data.clip=3")
    train(cfg)
    info = torch.load(f"{cfg.run_dir}/checkpoints/best.ckpt", weights_only=True)["data_info"]
    m = module(p, scale="robust", clip=3)
    assert m.series.x.abs().max() == 3  # the spikes sit at the bound; nothing beyond it
    assert info["scale"] == "robust" and info["clip"] == 3.0 and isinstance(info["clip"], float)
    assert info["mean"] == m.mean.tolist() and info["std"] == m.std.tolist()
    assert info["mean"] == m.info()["mean"] and info["clip"] == m.info()["clip"]


def test_predict_gives_the_test_pass_probabilities_for_a_robust_clipped_model(make_cfg, tmp_path):
    df = spiky(240, 1).assign(day=pd.date_range("2020-01-01", periods=240).strftime("%Y-%m-%d"))
    df.to_csv(p := tmp_path / "eeg.csv", index=False)
    cfg = train_cfg(make_cfg, p, "data.target=label", "data.time=day", "data.scale=robust", "data.clip=2")
    train(cfg)
    ckpt = f"{cfg.run_dir}/checkpoints/best.ckpt"
    model = LSTMClassifier.from_checkpoint(ckpt)
    m = module(p, time="day", scale="robust", clip=2)
    assert m.mean.tolist() == model.data_info["mean"] and m.std.tolist() == model.data_info["std"]
    test = m.sets["test"]
    x, _ = test[list(range(len(test)))]
    assert x.abs().max() == 2  # spikes in the test windows, clipped
    with torch.no_grad():
        expected = model.probabilities(model(x)).numpy()
    ends = pd.to_datetime(df.day.to_numpy()[test.starts + 3])  # each test window's last day (rows in order)
    df.drop(columns="label").to_csv(q := tmp_path / "new.csv", index=False)
    got = predict(parse(DEFAULTS, [f"ckpt_path={ckpt}", f"data.path={q}", f"output={tmp_path / 'p.csv'}"]))
    got = got.set_index(pd.to_datetime(got.day)).loc[ends]
    np.testing.assert_allclose(got[["p_closed", "p_open"]].to_numpy(), expected, atol=1e-6)


def test_labelled_sequences_scale_and_clip_per_channel(tmp_path):
    cases = [np.array([[1.0, 5.0], [2.0, 5.0], [400.0, 5.0]], np.float32), np.array([[3.0, 5.0]], np.float32)]
    mean, std = channel_stats(cases, "robust")
    q1, q2, q3 = np.percentile(np.concatenate(cases).astype(np.float64), [25, 50, 75], axis=0)
    np.testing.assert_allclose(mean.numpy(), q2)
    assert std[0].item() == pytest.approx(q3[0] - q1[0])
    assert std[1] == 1  # a constant channel
    x, lengths = pad(cases, mean, std, clip=1.0)
    assert x.abs().max() == 1 and torch.all(x[1, 1:] == 0)  # clipped; padding stays zero
    none = channel_stats(cases, "none")
    assert none[0].tolist() == [0, 0] and none[1].tolist() == [1, 1]
    # a table of cases (data.case) takes the same settings into its data_info
    rng = np.random.default_rng(0)
    rows = [
        {"trial": f"t{c}", "step": t, "a": rng.normal() * (1000 if t == 3 else 1), "label": "xy"[c % 2]}
        for c in range(30)
        for t in range(6)
    ]
    pd.DataFrame(rows).to_csv(p := tmp_path / "cases.csv", index=False)
    dm = CaseTableDataModule(
        case="trial", path=str(p), target="label", time=["step"], scale="robust", clip=2.5, batch_size=4
    )
    dm.setup("fit")
    info = dm.info()
    assert (info["scale"], info["clip"], info["time"]) == ("robust", 2.5, ["step"])
    assert max(float(s.x.abs().max()) for s in dm.sets.values()) == 2.5


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.scale=minmax", "data.scale must be one of standard, robust, none (got 'minmax')"),
        ("data.clip=0", "data.clip must be a number > 0, or null for no clipping (got 0.0)"),
        ("data.clip=-1.5", "data.clip must be a number > 0, or null for no clipping (got -1.5)"),
        ("data.clip=big", "data.clip must be a number > 0, or null for no clipping (got 'big')"),
        ("data.time=[]", "data.time must be a column name or a non-empty list of distinct column names"),
        ("data.time=[Date,Date]", "data.time must be a column name or a non-empty list of distinct column"),
    ],
)
def test_settings_check_refuses_bad_scale_clip_and_time(override, message):
    with pytest.raises(UserError) as e:
        config.check(precheck.composed("train", ["run_dir=.", "data=csv", override]))  # Hydra types it
    assert message in str(e.value)


def test_settings_check_takes_good_scale_and_clip():
    config.check(compose_cfg("run_dir=.", "data.scale=robust", "data.clip=2.5"))
    config.check(compose_cfg("run_dir=.", "data=uea", "data.name=BasicMotions", "data.scale=none"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["data.scale=minmax"], "error: data.scale must be one of standard, robust, none (got 'minmax')"),
        (["data.clip=0"], "error: data.clip must be a number > 0, or null for no clipping (got 0.0)"),
        (["data=uea", "data.name=BasicMotions", "data.clip=no"], "error: data.clip must be a number > 0"),
    ],
)
def test_bad_scale_or_clip_is_one_error_line_and_exit_2(tmp_path, args, message):
    r = run_cli(*args, f"hydra.run.dir={tmp_path / 'run'}")
    assert r.returncode == 2, r.stderr[-2000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), lines
    assert not (tmp_path / "run").exists()
