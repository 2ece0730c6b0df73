"""lstm_cls.data's house rules: a source's settings are declared once, in the function that reads them, and
every data module keeps the same scaling and the same data_info keys."""

from __future__ import annotations

import inspect
from pathlib import Path

import pandas as pd
import pytest
from omegaconf import OmegaConf

from lstm_cls import UserError
from lstm_cls.data import CaseTableDataModule, CsvDataModule, SequenceDataModule, SyntheticDataModule, tables

CONF = Path(__file__).resolve().parents[1] / "conf" / "data"
# how a table is read: tables.table's settings, less those a data module sets itself
READING = set(inspect.signature(tables.table).parameters) - {"df", "target", "classes", "where", "group_key"}
SCALING = ["feature_names", "class_names", "mean", "std", "scale", "clip"]


def test_the_reading_settings_are_declared_once_in_tables_table():
    assert READING == {"features", "time", "group", "groups", "nan", "dayfirst"}
    assert READING <= set(OmegaConf.load(CONF / "csv.yaml"))  # every one reaches the data module from conf
    for module in (CsvDataModule, CaseTableDataModule):
        assert not READING & set(inspect.signature(module.__init__).parameters), module


def long_table(tmp_path: Path) -> Path:
    """Three sites' days, day first, in shuffled rows; v counts the days of each site."""
    rows = [
        {
            "site": s,
            "day": f"{d % 28 + 1:02d}/{d // 28 + 1:02d}/2020",
            "v": float(d),
            "w": "text",
            "y": d % 3 % 2,
        }
        for s in ("south", "north", "east")
        for d in range(80)
    ]
    frame = pd.DataFrame(rows).sample(frac=1.0, random_state=0)
    frame.to_csv(path := tmp_path / "long.csv", index=False)
    return path


def test_every_reading_setting_reaches_the_table(tmp_path):
    path = long_table(tmp_path)
    given = {"features": "v", "time": ["day"], "group": "site", "groups": ["north", "south"], "nan": "error"}
    dm = CsvDataModule(path=str(path), target="y", dayfirst=True, window=4, **given)
    dm.setup("fit")
    # "v", never its letters; two groups of 80 days, each sorted by its day-first dates
    assert dm.feature_names == ["v"] and dm.series.bounds == [(0, 80), (80, 160)]
    x = dm.series.x[:, 0]
    assert bool((x[1:80] > x[:79]).all()) and bool((x[81:] > x[80:159]).all())
    info = dm.info()
    assert list(info) == [
        *SCALING,
        "window",
        "stride",
        "horizon",
        "target",
        "time",
        "group",
        "dayfirst",
        "nan",
    ]
    assert (info["time"], info["group"], info["dayfirst"], info["nan"]) == (["day"], "site", True, "error")
    with pytest.raises(UserError, match="data.dayfirst=false, but"):
        CsvDataModule(path=str(path), target="y", dayfirst=False, window=4, **given).setup("fit")
    with pytest.raises(TypeError, match="no_such_setting"):
        CsvDataModule(path=str(path), target="y", no_such_setting=1)


def test_data_info_keys_and_a_checkpoint_s_scaling_for_every_kind(tmp_path):
    stats = {"scale": "robust", "clip": 1.5}
    synthetic = SyntheticDataModule(length=600, n_features=2, window=4)
    synthetic.setup("fit")
    assert list(synthetic.info()) == [*SCALING, "window", "stride", "horizon"]
    pinned = SyntheticDataModule(length=600, n_features=2, window=4, stats={**synthetic.info(), **stats})
    pinned.setup("fit")
    assert (pinned.scale, pinned.clip, pinned.mean.tolist()) == ("robust", 1.5, synthetic.mean.tolist())
    assert float(pinned.series.x.abs().max()) == 1.5

    rows = [
        {"trial": f"t{c}", "step": t, "a": float(c + t), "label": "xy"[c % 2]}
        for c in range(20)
        for t in range(5)
    ]
    pd.DataFrame(rows).to_csv(path := tmp_path / "cases.csv", index=False)
    cases = CaseTableDataModule(case="trial", path=str(path), target="label", time="step", batch_size=4)
    cases.setup("fit")
    assert list(cases.info()) == ["kind", *SCALING, "max_length", "source", "case", "target", "time", "nan"]
    pinned = CaseTableDataModule(
        case="trial", path=str(path), target="label", time="step", stats={**cases.info(), **stats}
    )
    pinned.setup("fit")
    assert (pinned.scale, pinned.clip, pinned.std.tolist()) == ("robust", 1.5, cases.std.tolist())
    assert max(float(s.x.abs().max()) for s in pinned.sets.values()) == 1.5

    archive = SequenceDataModule(name="BasicMotions", clip=2.0)
    archive.setup("fit")
    assert list(archive.info()) == ["kind", *SCALING, "max_length", "source"]
    assert (archive.n_features, archive.n_classes, archive.info()["clip"]) == (6, 4, 2.0)
