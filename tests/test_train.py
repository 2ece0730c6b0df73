"""Config composition, the training entry in-process, and the CLI in a subprocess."""

import json
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lstm_cls import UserError, config
from lstm_cls.train import train

from .conftest import CONF, TINY, run_cli

METRIC_KEYS = {
    "status",
    "train/loss",
    "train/acc",
    "val/loss",
    "val/acc",
    "test/loss",
    "test/acc",
    "test/f1",
    "test/auroc",
    "test/majority_acc",
    "best_epoch",
    "best_checkpoint",  # which checkpoint was tested: "best (lowest val/loss)" or "last (no validation)"
    "epochs",
    "params_trainable",
    "windows/train",
    "windows/val",
    "windows/test",
    "fit_seconds",
    "val/best_loss",
    "threads",
    "train_seconds",
    "test_seconds",
    "startup_seconds",
    "global_step",
    "train_path",
    "world_size",
}


@pytest.mark.parametrize(
    "option",
    [f"{p.parent.name}={p.stem}" for p in sorted(CONF.glob("*/*.yaml"))],
)
def test_every_config_group_option_composes(make_cfg, option):
    cfg = make_cfg(option)
    assert cfg.model.hidden > 0 and cfg.data.batch_size > 0


def test_default_is_the_reference_recipe(make_cfg):
    cfg = make_cfg()
    assert (cfg.model.hidden, cfg.model.head, cfg.model.lr, cfg.model.loss) == (32, 10, 0.001, "ce")
    assert (cfg.data.batch_size, cfg.trainer.max_epochs, cfg.model.dropout) == (32, 100, 0.0)
    assert cfg.data.n_features == 13 and cfg.data.n_classes == 2 and cfg.threads == 1
    # command-line values win over the experiment preset
    assert make_cfg("model.hidden=8", "trainer.max_epochs=3").model.hidden == 8


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.hidden=0", "model.hidden must be a positive integer"),
        ("data.batch_size=-1", "data.batch_size must be a positive integer"),
        ("data.window=0", "data.window must be a positive integer"),
        ("data.val_fraction=1.5", "data.val_fraction must be in (0, 1)"),
        ("data.test_fraction=0", "data.test_fraction must be in (0, 1)"),
        ("model.loss=hinge", "model.loss must be one of ce, bce, mse"),
    ],
)
def test_out_of_range_settings_are_rejected(make_cfg, override, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        config.check(make_cfg(override))


def test_train_writes_metrics_checkpoints_and_tensorboard(make_cfg, tmp_path):
    cfg = make_cfg(*TINY, "trainer.max_epochs=3")
    metrics = train(cfg)
    run = Path(cfg.run_dir)
    saved = json.loads((run / "metrics.json").read_text())
    classes = {f"classes/{s}/{c}" for s in ("train", "val", "test") for c in ("0", "1")}
    assert set(saved) == METRIC_KEYS | classes and saved["status"] == "completed"
    assert sum(saved[f"classes/train/{c}"] for c in ("0", "1")) == saved["windows/train"]
    assert {k: v for k, v in saved.items() if k != "status"} == pytest.approx(
        {k: v for k, v in metrics.items() if k != "status"}
    )
    assert saved["best_checkpoint"] == "best (lowest val/loss)"
    assert saved["epochs"] == 3 and 1 <= saved["best_epoch"] <= 3 and saved["params_trainable"] == 816
    assert saved["windows/train"] > saved["windows/test"] > 0
    assert all(0 <= saved[k] <= 1 for k in ("train/acc", "val/acc", "test/acc", "test/f1", "test/auroc"))
    assert (run / "checkpoints" / "last.ckpt").is_file()
    # one optimizer step per batch of 32, blocks or not: global_step counts them all
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 3 * -(-saved["windows/train"] // 32)
    ckpt = torch.load(run / "checkpoints" / "best.ckpt", weights_only=True)  # plain data only
    assert ckpt["epoch"] + 1 == saved["best_epoch"]
    info = ckpt["data_info"]
    assert info["feature_names"] == [f"x{i}" for i in range(13)] and info["class_names"] == ["0", "1"]
    assert len(info["mean"]) == len(info["std"]) == 13 and (info["window"], info["horizon"]) == (8, 0)
    assert ckpt["hyper_parameters"]["hidden"] == 8

    events = EventAccumulator(str(run), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    tags = events.Tags()["scalars"]
    for tag in (
        "train/loss",
        "train/acc",
        "train/f1",
        "train/auroc",
        "val/loss",
        "val/acc",
        "gap/acc",
        "gap/loss",
        "test/acc",
    ):
        assert tag in tags, tag
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2, 3]  # once per epoch, counted from 1
    gaps = [e.value for e in events.Scalars("gap/acc")]
    train_acc = [e.value for e in events.Scalars("train/acc")]
    val_acc = [e.value for e in events.Scalars("val/acc")]
    assert gaps == pytest.approx([t - v for t, v in zip(train_acc, val_acc, strict=True)], abs=1e-6)
    assert "hp_metric" not in tags
    assert "test/confusion_matrix" in events.Tags()["images"]
    plugins = events.PluginTagToContent("hparams")
    assert plugins, "no HParams data"
    session = b"".join(plugins.values())
    assert b"model.hidden" in session and b"test/acc" in session


def test_cli_writes_a_dated_run_directory(tmp_path):
    r = run_cli(*TINY, cwd=tmp_path)  # conf/ is found from the package, outputs/ lands in cwd
    assert r.returncode == 0, r.stderr[-2000:]
    runs = list((tmp_path / "outputs" / "runs").iterdir())
    assert len(runs) == 1
    run = runs[0]
    assert (run / ".hydra" / "config.yaml").is_file()
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 2
    assert list(run.glob("events.out.tfevents.*")) and (run / "metrics.csv").is_file()
    assert "Trainable params: 816" in r.stdout


def test_cli_bad_setting_is_one_error_line_and_leaves_no_run(tmp_path):
    r = run_cli(*TINY, "model.hidden=0", cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1].startswith("error: model.hidden must be a positive integer")
    assert "Traceback" not in r.stderr
    assert not list((tmp_path / "outputs").glob("runs/*"))


def test_cli_too_short_series_names_the_lengths(tmp_path):
    r = run_cli(*TINY, "data.length=40", "data.window=8", hydra_dir := f"hydra.run.dir={tmp_path / 'r'}")
    assert r.returncode == 2, r.stderr[-2000:]
    assert "error: no val window" in r.stderr and "[5] steps" in r.stderr, r.stderr
    assert not (tmp_path / "r").exists(), hydra_dir
