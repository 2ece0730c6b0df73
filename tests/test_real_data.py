"""The presets on the real files in ../shared/data: skipped, with the reason, where that folder is absent."""

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from lstm_cls.baselines import baselines
from lstm_cls.data import CsvDataModule
from lstm_cls.train import train

from .conftest import SHARED_DATA

pytestmark = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"real data folder {SHARED_DATA} is absent")
ALBURY = SHARED_DATA / "weatherAUS_albury.csv"
ALL = SHARED_DATA / "weatherAUS.csv"
WEATHER = ["data=weather_aus", "callbacks.progress_bar.refresh_rate=0"]


def weather(path: Path, **kw) -> CsvDataModule:
    from hydra.utils import instantiate

    from .conftest import compose_cfg

    cfg = compose_cfg("data=weather_aus", f"data.path={path}", "run_dir=.")
    dm = instantiate(cfg.data, **kw)
    dm.setup("fit")
    return dm


def test_albury_file_and_the_albury_station_of_the_49_station_file_agree():
    # dd-mm-yyyy in one file, ISO in the other: both must give the same days in the same order
    one = weather(ALBURY)
    sub = weather(ALL, groups=["Albury"])
    assert one.class_names == sub.class_names == ["No", "Yes"]
    assert one.series.feature_names == sub.series.feature_names and len(one.series.feature_names) == 13
    assert torch.equal(one.series.y, sub.series.y)
    torch.testing.assert_close(one.series.x, sub.series.x, equal_nan=True)
    raw = pd.read_csv(ALBURY)
    assert len(one.series.x) == len(raw) == 3040
    # the file's first data row is 01-12-2008: after sorting by date it is still first
    assert one.series.x[0, 0] * one.std[0] + one.mean[0] == pytest.approx(raw.MinTemp[0], abs=1e-4)


def test_all_49_stations_are_separate_series_split_within_each():
    dm = weather(ALL)
    assert len(dm.series.bounds) == 49
    sizes = {s: len(w) for s, w in dm.sets.items()}
    assert 0.2 < sizes["test"] / sizes["train"] < 0.26  # a quarter, less the windows lost at the cuts


def test_occupancy_trains_on_one_period_and_tests_on_another(make_cfg):
    occ = SHARED_DATA / "occupancy"
    cfg = make_cfg(
        "data=occupancy",
        f"data.path={occ / 'datatraining.txt'}",
        f"data.test_path={occ / 'datatest.txt'}",
        "trainer.max_epochs=1",
        "model.hidden=8",
        "callbacks.progress_bar.refresh_rate=0",
    )
    metrics = train(cfg)
    assert metrics["windows/test"] == 2665 - 16 + 1  # the whole of datatest.txt
    info = torch.load(Path(cfg.run_dir) / "checkpoints" / "best.ckpt", weights_only=True)["data_info"]
    assert info["feature_names"] == ["Temperature", "Humidity", "Light", "CO2", "HumidityRatio"]
    assert info["class_names"] == ["0", "1"]


def test_albury_baselines_match_the_data_readme(make_cfg):
    out = baselines(make_cfg(*WEATHER, f"data.path={ALBURY}"))
    assert out["majority/acc"] == pytest.approx(0.80, abs=0.01)
    assert out["logreg/acc"] == pytest.approx(0.89, abs=0.015)
    assert json.loads((Path(make_cfg().run_dir) / "baselines.json").read_text()) == out


@pytest.mark.slow
def test_reference_lstm_beats_the_majority_class_on_albury(make_cfg):
    metrics = train(make_cfg(*WEATHER, f"data.path={ALBURY}", "trainer.max_epochs=10"))
    assert metrics["test/acc"] > metrics["test/majority_acc"] + 0.02
