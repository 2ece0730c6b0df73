"""Tables as published, not as pandas writes them: UCI's Air Quality file (`;` separator, comma decimals,
`-200` for missing, times written 18.00.00) read with data.sep, data.decimal and data.na_values, trained on
and predicted from with the checkpoint alone."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lstm_cls import UserError
from lstm_cls.config import check
from lstm_cls.data import header, tables
from lstm_cls.train import train

from .conftest import run_cli

AIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "AirQualityUCI.csv"
AS_PUBLISHED = ['data.sep=";"', 'data.decimal=","', "data.na_values=[-200]", "data.time=[Date,Time]"]


def air_quality(path: Path, hours: int, seed: int, label: bool = True) -> Path:
    """A file in the Air Quality form: `Date;Time;CO(GT);...`, `10/03/2004;18.00.00;2,6;...`, -200 missing."""
    rng = np.random.default_rng(seed)
    t = pd.date_range("2004-03-10 18:00", periods=hours, freq="h")
    co = np.round(2 + np.sin(np.arange(hours) / 5) + rng.normal(0, 0.3, hours), 1)
    temp = np.round(13 + 5 * np.sin(np.arange(hours) / 24), 1)
    cells = {
        "Date": t.strftime("%d/%m/%Y"),
        "Time": t.strftime("%H.%M.%S"),
        "CO(GT)": [f"{v:.1f}".replace(".", ",") for v in co],
        "PT08.S1(CO)": rng.integers(900, 1500, hours).astype(str),
        "T": [f"{v:.1f}".replace(".", ",") for v in temp],
    }
    cells["T"][3] = "-200"  # missing, as the file writes it
    cells["PT08.S1(CO)"][5] = "-200"
    if label:
        cells["high(CO)"] = np.where(co > 2, "yes", "no")  # brackets in a name, as CO(GT) has
    pd.DataFrame(cells).to_csv(path, sep=";", index=False)
    return path


def test_header_and_reader_honour_the_separator_and_the_defaults_stay(tmp_path):
    f = air_quality(tmp_path / "air.csv", 30, 0)
    assert header.columns(f, sep=";") == ["Date", "Time", "CO(GT)", "PT08.S1(CO)", "T", "high(CO)"]
    with pytest.raises(
        UserError, match=r"has 3 fields but the header names 1 .*another separator than data.sep=','"
    ):
        header.columns(f)  # comma decimals split the rows, not the header
    df = tables.read_table(f, **tables.reading({"sep": ";", "decimal": ",", "na_values": [-200]}))
    assert df["CO(GT)"].dtype == float and np.isnan(df["T"][3]) and np.isnan(df["PT08.S1(CO)"][5])
    s = tables.table(df, "high(CO)", time=["Date", "Time"])
    assert str(s.steps[1]) == "2004-03-10T19:00:00.000000"  # 10/03/2004 19.00.00
    assert (
        s.feature_names[2] == "T" and s.x[3, 2].item() == s.x[2, 2].item()
    )  # -200: missing, carried forward
    # a checkpoint made before these settings: read as always
    assert tables.reading({}) == {"sep": ",", "decimal": ".", "na_values": None}


def test_air_quality_as_published_trains_and_predicts_with_the_checkpoint_alone(tmp_path, make_cfg):
    f = air_quality(tmp_path / "air.csv", 160, 0)
    cfg = make_cfg(
        "data=csv",
        f"data.path={f}",
        *AS_PUBLISHED,
        'data.target="high(CO)"',  # quoted for Hydra: data.target=high(CO) reads as a function call
        'data.features=["CO(GT)","PT08.S1(CO)",T]',
        "data.window=6",
        "model.hidden=8",
        "trainer.max_epochs=2",
        "callbacks.progress_bar.refresh_rate=0",
    )
    check(cfg)
    train(cfg)
    ckpt = tmp_path / "run" / "checkpoints" / "best.ckpt"
    new = air_quality(tmp_path / "new.csv", 40, 1, label=False)
    out = tmp_path / "p.csv"
    r = run_cli(f"ckpt_path={ckpt}", f"data.path={new}", f"output={out}", module="lstm_cls.predict")
    assert r.returncode == 0, r.stderr[-2000:]
    p = pd.read_csv(out)
    assert list(p.columns) == ["Date Time", "predicted", "p_no", "p_yes"] and len(p) == 40 - 6 + 1
    assert p["Date Time"].iloc[0] == "2004-03-10 23:00:00"  # 10/03/2004 18.00.00 + 5 hours, day first


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ['data.sep=""'],
            "data.sep must be one character, not a letter, digit, quote or line break (got '')",
        ),
        (['data.sep="ab"'], "data.sep must be one character"),
        (['data.decimal=";"', 'data.sep=";"'], "data.decimal must differ from data.sep (both are ';')"),
        (["data.na_values={a:1}"], "data.na_values must be null, a value or a list of values"),
    ],
)
def test_bad_reading_settings_are_refused_before_anything_is_read(make_cfg, tmp_path, args, message):
    f = air_quality(tmp_path / "air.csv", 30, 0)
    with pytest.raises(UserError) as e:
        check(make_cfg("data=csv", f"data.path={f}", "data.target=T", *args))
    assert message in str(e.value)


def test_a_wrong_separator_is_one_error_line_naming_data_sep(tmp_path):
    f = air_quality(tmp_path / "air.csv", 30, 0)
    r = run_cli("data=csv", f"data.path={f}", "data.target=T", f"hydra.run.dir={tmp_path / 'run'}")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: data.path: the first data row of") and "data.sep=','" in last


def test_parquet_takes_no_text_settings(tmp_path, make_cfg):
    f = tmp_path / "t.parquet"
    pd.DataFrame({"a": [1.0, 2.0], "y": [0, 1]}).to_parquet(f)
    with pytest.raises(UserError, match=r"data.sep=';': for .csv/.txt files; data.path=.* is a .parquet"):
        check(make_cfg("data=csv", f"data.path={f}", "data.target=y", 'data.sep=";"'))


@pytest.mark.skipif(not AIR.is_file(), reason=f"{AIR} is absent (UCI Air Quality, not shipped)")
def test_the_real_air_quality_file_reads(tmp_path):
    df = tables.read_table(AIR, **tables.reading({"sep": ";", "decimal": ",", "na_values": [-200]}))
    s = tables.table(df, None, features=["CO(GT)", "T", "RH"], time=["Date", "Time"])
    assert len(s.x) > 9000
