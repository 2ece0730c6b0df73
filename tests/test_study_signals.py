"""Signals for the overfitting study: a learning curve (data.train_fraction), the weight norms per epoch,
and the remedies preset (dropout x weight decay x early stopping)."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hydra.core.override_parser.overrides_parser import OverridesParser
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lstm_cls import UserError, config, precheck
from lstm_cls.data import CsvDataModule, SyntheticDataModule
from lstm_cls.data.series import synthetic
from lstm_cls.precheck import grid
from lstm_cls.train import train

from .conftest import TINY, compose_cfg, run_cli

# ---------------------------------------------------------------- data.train_fraction: a learning curve


def synthetic_dm(**kw) -> SyntheticDataModule:
    m = SyntheticDataModule(**{"length": 8000, "window": 16, "seed": 7, **kw})
    m.setup("fit")
    return m


def whole(m, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Every window of a split in one batch: x [windows, timesteps, features], y [windows]."""
    ws = m.sets[split]
    return ws[list(range(len(ws)))]


def test_fraction_keeps_val_and_test_and_the_latest_training_windows():
    full, part = synthetic_dm(), synthetic_dm(train_fraction=0.3)
    # the training part is steps [0, 5600) of 8000 (1000 val, 1400 test); 0.3 keeps steps [3920, 5600)
    for split in ("val", "test"):
        assert torch.equal(part.sets[split].starts, full.sets[split].starts), split
        assert torch.equal(part.sets[split].labels(), full.sets[split].labels()), split
        # the same steps: un-normalised, the windows agree value for value
        raw_full, raw_part = (whole(m, split)[0] * m.std + m.mean for m in (full, part))
        torch.testing.assert_close(raw_part, raw_full, atol=1e-4, rtol=0)
    t_full, t_part = full.sets["train"].starts, part.sets["train"].starts
    assert len(t_full) == 5600 - 16 + 1 and len(t_part) == 1680 - 16 + 1
    assert len(t_part) / len(t_full) == pytest.approx(0.3, abs=0.005)
    # the latest ones: the tail of the full run's windows, none reaching back before the kept steps
    assert torch.equal(t_part, t_full[-len(t_part) :])
    assert int(t_part.min()) == 3920 and int(t_part.max()) + 16 == 5600


def test_fraction_normalises_with_the_kept_steps_and_pinned_stats_give_the_same_tensors():
    raw = synthetic(length=8000, seed=7).x.double()
    part = synthetic_dm(train_fraction=0.3)
    torch.testing.assert_close(part.mean, raw[3920:5600].mean(0).float(), atol=1e-5, rtol=0)
    torch.testing.assert_close(part.std, raw[3920:5600].std(0, unbiased=False).float(), atol=1e-5, rtol=0)
    assert not torch.allclose(part.mean, raw[:5600].mean(0).float(), atol=1e-3)  # not the whole part's
    # with one normaliser for both (a checkpoint's, as evaluate passes it), val and test are bit-identical
    full = synthetic_dm()
    pinned = synthetic_dm(train_fraction=0.3, stats={"mean": full.mean.tolist(), "std": full.std.tolist()})
    for split in ("val", "test"):
        for a, b in zip(whole(pinned, split), whole(full, split), strict=True):
            assert torch.equal(a, b), split
    assert len(pinned.sets["train"]) == 1665


def group_table(path: Path) -> None:
    """Two stations, 200 and 120 days; feature `a` = 1000 * station + day, so a value names its step."""
    rows = [
        (g, d, 1000 * k + d, d % 2) for k, (g, n) in enumerate((("A", 200), ("B", 120))) for d in range(n)
    ]
    pd.DataFrame(rows, columns=["station", "day", "a", "label"]).to_csv(path, index=False)


def csv_dm(path: Path, **kw) -> CsvDataModule:
    m = CsvDataModule(
        path=str(path),
        target="label",
        time="day",
        group="station",
        window=4,
        val_fraction=0.2,
        test_fraction=0.2,
        **kw,
    )
    m.setup("fit")
    return m


def first_steps(m: CsvDataModule, split: str) -> list[int]:
    """The `a` value (1000 * station + day) of each window's first step."""
    x = whole(m, split)[0] * m.std + m.mean
    return sorted(round(v) for v in x[:, 0, 0].tolist())


def test_fraction_keeps_the_latest_part_of_every_group(tmp_path):
    group_table(p := tmp_path / "g.csv")
    full, half = csv_dm(p), csv_dm(p, train_fraction=0.5)
    for split in ("val", "test"):
        assert torch.equal(half.sets[split].starts, full.sets[split].starts)
        assert first_steps(half, split) == first_steps(full, split)
    # training days: A 0-119 (of 200), B 0-71 (of 120); half keeps A 60-119 and B 36-71, windows of 4
    assert first_steps(half, "train") == [*range(60, 117), *range(1036, 1069)]
    assert [s for s in first_steps(full, "train") if s % 1000 >= (60 if s < 1000 else 36)] == first_steps(
        half, "train"
    )


def test_fraction_leaving_no_training_window_is_one_clear_error(tmp_path):
    group_table(p := tmp_path / "g.csv")
    # A keeps round(120 * 0.02) = 2 days, B round(72 * 0.02) = 1: a window needs 4
    with pytest.raises(
        UserError, match=r"data.train_fraction=0.02 leaves no training window: .* 2 of 120 steps"
    ):
        csv_dm(p, train_fraction=0.02)
    with pytest.raises(UserError, match=r"use data.train_fraction >= 0.034"):  # 4 / 120, rounded up
        csv_dm(p, train_fraction=0.02)
    assert len(csv_dm(p, train_fraction=0.034).sets["train"]) == 1  # A keeps 4 days: one window


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.train_fraction=0", "data.train_fraction must be in (0, 1] (got 0.0)"),
        ("data.train_fraction=1.5", "data.train_fraction must be in (0, 1] (got 1.5)"),
        ("data.train_fraction=-0.2", "data.train_fraction must be in (0, 1] (got -0.2)"),
        ("data.train_fraction=half", "data.train_fraction must be in (0, 1] (got 'half')"),
        # 600 steps: 420 train; 0.01 keeps 4, a window of 8 needs 8 (8 / 420 = 0.019, rounded up)
        ("data.train_fraction=0.01", "data.train_fraction=0.01 keeps 4 of the 420 training steps"),
    ],
)
def test_bad_fraction_is_refused_before_any_data(override, message):
    with pytest.raises(UserError) as e:  # (Hydra types data.train_fraction as it composes)
        config.check(precheck.composed("train", ["run_dir=.", *TINY, override]))
    assert str(e.value).startswith(message)
    if "keeps" in message:
        assert str(e.value).endswith("use data.train_fraction >= 0.02")


def test_the_settings_check_and_the_data_module_agree_where_windows_run_out():
    # the check sees data=synthetic's length before any data is made: it must refuse exactly the fractions
    # that leave the data module no training window (8 steps needed of 420)
    for f in np.round(np.linspace(0.012, 0.03, 37), 4).tolist():
        cfg = compose_cfg("run_dir=.", *TINY, f"data.train_fraction={f}")
        try:
            config.check(cfg)
            refused = False
        except UserError:
            refused = True
        m = SyntheticDataModule(length=600, window=8, seed=1, train_fraction=f)
        if refused:
            with pytest.raises(UserError, match="leaves no training window"):
                m.setup("fit")
        else:
            m.setup("fit")
            assert len(m.sets["train"]) >= 1, f
    assert config.kept_steps(420, 0.0178) == 7 and config.kept_steps(420, 0.0185) == 8  # both sides seen


def test_fraction_is_refused_for_whole_cases():
    uea = compose_cfg("run_dir=.", "data=uea", "data.name=BasicMotions", "+data.train_fraction=0.5")
    with pytest.raises(UserError, match="data.train_fraction applies to windowed series .* not to data=uea"):
        config.check(uea)
    case = ("data=csv", "data.path=x.csv", "data.target=y", "data.case=trial", "data.train_fraction=0.5")
    with pytest.raises(UserError, match=r"not to whole cases \(data.case\)"):
        config.check(compose_cfg("run_dir=.", *case))


def test_bad_fraction_on_the_command_line_is_one_error_line(tmp_path):
    r = run_cli(*TINY, "data.train_fraction=0", f"hydra.run.dir={tmp_path / 'r'}")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1] == "error: data.train_fraction must be in (0, 1] (got 0.0)"
    assert "Traceback" not in r.stderr and not (tmp_path / "r").exists()


# ---------------------------------------------------------------- weight norms, once per epoch


def norms_of(state: dict[str, torch.Tensor]) -> dict[str, float]:
    """The norms from a state dict, by hand: LSTM weight matrices only (no biases), and each Linear's."""
    lstm = [v for k, v in state.items() if k.startswith("net.lstm.weight_")]
    assert len(lstm) == 2  # weight_ih_l0, weight_hh_l0 of one layer
    return {
        "norm/lstm": float(sum(v.double().square().sum() for v in lstm).sqrt()),
        "norm/fc1": float(state["net.fc1.weight"].double().norm()),
        "norm/fc2": float(state["net.fc2.weight"].double().norm()),
    }


@pytest.mark.parametrize(("fast", "path"), [("true", "block"), ("false", "standard")])
def test_weight_norms_are_logged_once_per_epoch_in_both_paths(make_cfg, tmp_path, fast, path):
    run = tmp_path / "run"
    metrics = train(make_cfg(*TINY, f"fast={fast}", run_dir=run))
    assert metrics["train_path"] == path and metrics["epochs"] == 2
    csv = pd.read_csv(run / "metrics.csv")
    names = ["norm/lstm", "norm/fc1", "norm/fc2"]
    logged = csv.dropna(subset=names)
    assert logged["step"].tolist() == [1, 2]  # one row per epoch, epochs counted from 1
    assert logged[names].notna().all().all()
    state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    expected = norms_of(state)
    for k in names:
        assert logged[k].iloc[-1] == pytest.approx(expected[k], abs=1e-5), k
        assert logged[k].iloc[0] != pytest.approx(logged[k].iloc[1], abs=1e-6), k  # the weights moved
    # biases left out: with them (keras_parity's forget-gate bias starts at 1) the LSTM figure is larger
    with_biases = sum(v.double().square().sum() for k, v in state.items() if k.startswith("net.lstm.")).sqrt()
    assert float(with_biases) > expected["norm/lstm"] + 0.1

    # and a histogram of every trainable tensor per epoch in TensorBoard, drawn from the same weights
    events = EventAccumulator(str(run), size_guidance={"histograms": 0})
    events.Reload()
    tags = set(events.Tags()["histograms"])
    trainable = {"lstm.weight_ih_l0", "lstm.weight_hh_l0", "lstm.bias_ih_l0", "fc1.weight", "fc1.bias"}
    trainable |= {"fc2.weight", "fc2.bias"}
    assert tags == {f"weights/{n}" for n in trainable}  # not the frozen zero bias_hh_l0
    for name in ("fc1.weight", "lstm.weight_hh_l0"):
        seen = events.Histograms(f"weights/{name}")
        assert [h.step for h in seen] == [1, 2]
        last, w = seen[-1].histogram_value, state[f"net.{name}"].double()
        assert last.num == w.numel()
        assert last.sum_squares == pytest.approx(float(w.square().sum()), rel=1e-5)


# ---------------------------------------------------------------- the remedies preset


def remedies_jobs() -> tuple[object, list[list[str]]]:
    """The composed preset (with Hydra's config) and the jobs its sweeper launches: the grid of Hydra's basic
    sweeper, built where lstm_cls's sweeper builds it (tests/test_house.py: it is Hydra's)."""
    cfg = compose_cfg("run_dir=.", "experiment=remedies", hydra_config=True)
    params = [f"{k}={v}" for k, v in cfg.hydra.sweeper.params.items()]
    jobs = grid(OverridesParser.create().parse_overrides(params))
    return cfg, [[typed for _, typed in job] for job in jobs]


def test_remedies_preset_is_the_overfitting_recipe_under_54_jobs():
    cfg, jobs = remedies_jobs()
    assert (cfg.model.hidden, cfg.data.batch_size, cfg.trainer.max_epochs) == (128, 16, 100)
    reference = compose_cfg("run_dir=.", "experiment=cm3").model
    for k in ("head", "lr", "loss", "output", "keras_parity", "optimizer", "scheduler", "num_layers"):
        assert cfg.model[k] == reference[k], k  # the cm3 recipe otherwise
    assert len(jobs) == 54 == len({tuple(j) for j in jobs})
    axes: dict[str, set[str]] = {}
    for job in jobs:
        for o in job:
            key, value = o.split("=", 1)
            axes.setdefault(key, set()).add(value)
    assert axes == {
        "model.dropout": {"0.0", "0.2", "0.5"},
        "model.weight_decay": {"0.0", "0.0001", "0.01"},
        "callbacks": {"[default]", "[default,early_stopping]"},
        "seed": {"1", "2", "3"},
    }


def test_remedies_jobs_switch_early_stopping_and_keep_the_checkpoints():
    _, jobs = remedies_jobs()
    on = next(j for j in jobs if "callbacks=[default,early_stopping]" in j and "model.dropout=0.5" in j)
    off = next(j for j in jobs if "callbacks=[default]" in j and "model.weight_decay=0.01" in j)
    composed = {}
    for name, job in (("on", on), ("off", off)):
        cfg = compose_cfg("run_dir=.", "experiment=remedies", *job)
        config.check(cfg, multirun=True)
        assert {"model_checkpoint", "last_checkpoint"} <= set(cfg.callbacks), name
        assert cfg.callbacks.model_checkpoint.monitor == "val/loss"
        assert cfg.model.hidden == 128, name  # the preset still applies under the job's overrides
        composed[name] = cfg
    es = composed["on"].callbacks.early_stopping
    assert es._target_.endswith("EarlyStopping") and (es.monitor, es.patience) == ("val/loss", 10)
    assert composed["on"].model.dropout == 0.5
    assert "early_stopping" not in composed["off"].callbacks
    assert composed["off"].model.weight_decay == 0.01


@pytest.mark.slow
def test_remedies_sweep_runs_with_early_stopping_off_and_on(tmp_path):
    sweep = tmp_path / "s"
    # one point of the grid per early-stopping choice, tiny settings: the preset's axes replaced by one value
    r = run_cli(
        "-m",
        "experiment=remedies",
        *TINY,
        "model.dropout=0.2",
        "model.weight_decay=0",
        "seed=1",
        "hydra/launcher=basic",
        f"hydra.sweep.dir={sweep}",
    )
    assert r.returncode == 0, r.stderr[-3000:]
    runs = [p.parent.parent for p in sweep.glob("*/.hydra/config.yaml")]
    assert len(runs) == 2
    switched = set()
    for run in runs:
        has_es = "callbacks=[default,early_stopping]" in (run / ".hydra" / "overrides.yaml").read_text()
        saved = (run / ".hydra" / "config.yaml").read_text()
        assert ("early_stopping:" in saved) == has_es and "last_checkpoint:" in saved
        m = json.loads((run / "metrics.json").read_text())
        assert m["status"] == "completed" and m["epochs"] == 2
        switched.add(has_es)
    assert switched == {False, True}
