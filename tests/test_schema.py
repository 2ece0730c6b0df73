"""Every setting is typed once (lstm_cls/schema.py): Hydra types the overrides as it composes, the settings
check reads the same fields, and a config composed without the schemas (the Python API) still composes."""

import dataclasses
import pickle
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from lstm_cls import UserError, config, precheck, schema

from .conftest import ROOT, compose_cfg, run_cli

SOURCES = {"synthetic": schema.Synthetic, "csv": schema.Table, "weather_aus": schema.Table, "uea": schema.Uea}


@pytest.mark.parametrize(("data", "cls"), SOURCES.items())
def test_each_group_is_typed_by_its_schema_and_declares_every_key(data, cls):
    cfg = compose_cfg("run_dir=.", f"data={data}")
    for node, typed in ((cfg, schema.Train), (cfg.model, schema.Model), (cfg.trainer, schema.Trainer)):
        assert OmegaConf.get_type(node) is schema.NODES[typed]
        assert list(node) == [f.name for f in dataclasses.fields(typed)]  # a key of the yaml: declared once
    assert OmegaConf.get_type(cfg.data) is schema.NODES[cls]
    assert sorted(cfg.data) == sorted(f.name for f in dataclasses.fields(cls))
    assert pickle.loads(pickle.dumps(cfg)) == cfg  # as a launcher hands a job its config


@pytest.mark.parametrize(
    ("typed", "words"),
    [
        ("model.hidden=abc", "model.hidden must be a positive integer (got 'abc')"),
        ("trainer.max_epochs=1.5", "trainer.max_epochs must be an integer or null (got 1.5)"),
        ("model.loss=xyz", "model.loss must be one of ce, bce, mse (got 'xyz')"),
        ("data.val_fraction=null", "data.val_fraction must be in (0, 1) (got None)"),
    ],
)
def test_a_wrong_type_is_refused_as_hydra_composes_in_the_checks_words(typed, words):
    with pytest.raises(UserError, match="^" + words.replace("(", r"\(").replace(")", r"\)") + "$"):
        config.check(precheck.composed("train", [typed]))


def test_a_wrong_type_on_the_command_line_is_one_error_line(tmp_path):
    r = run_cli("model.hidden=abc", f"hydra.run.dir={tmp_path / 'r'}")
    assert (
        r.returncode == 2 and r.stderr.strip() == "error: model.hidden must be a positive integer (got 'abc')"
    )
    assert not (tmp_path / "r").exists()


def test_a_key_added_with_plus_still_composes():
    cfg = compose_cfg("run_dir=.", "+trainer.profiler=simple", "data=uea", "+data.train_fraction=0.5")
    assert cfg.trainer.profiler == "simple"
    with pytest.raises(UserError, match="data.train_fraction applies to windowed series"):
        config.check(cfg)


def test_every_range_is_checked_from_the_schema():
    limits = [(cls, f) for cls in SOURCES.values() for f in dataclasses.fields(cls) if f.metadata]
    assert len(limits) > 20
    for cls, f in limits:
        low = f.metadata.get("above", f.metadata.get("min"))
        if low is None:
            continue
        bad = low - 1 if "min" in f.metadata else low
        found = config.problems({f.name: bad}, cls, "data.")
        assert found and found[0].startswith(f"data.{f.name} must be") and f"(got {bad!r})" in found[0]


def test_without_the_schemas_the_config_still_composes_untyped():
    # the Python API (docs/tools.md) composes with Hydra alone: the schemas are `optional` defaults
    code = (
        "import sys, hydra\n"
        "from omegaconf import OmegaConf\n"
        "with hydra.initialize_config_dir(config_dir=sys.argv[1], version_base='1.3'):\n"
        "    cfg = hydra.compose('train', overrides=['model.hidden=16'])\n"
        "assert cfg.model.hidden == 16 and OmegaConf.get_type(cfg.model) is dict\n"
        "assert 'torch' not in sys.modules\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code, str(ROOT / "conf")], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr[-2000:]
