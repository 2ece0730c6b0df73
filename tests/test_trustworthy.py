"""Reproducible, resumable and fault-tolerant runs."""

import json
import signal
import subprocess
from pathlib import Path

import lightning as L
import pandas as pd
import pytest
import torch

from lstm_cls import UserError
from lstm_cls.train import train

from .conftest import ROOT, SLOW_RUN, TINY, run_cli, start_cli, until

TIMING = {"fit_seconds", "train_seconds", "test_seconds", "startup_seconds"}


def test_same_config_and_seed_give_identical_metrics(make_cfg, tmp_path):
    a = train(make_cfg(*TINY, run_dir=tmp_path / "a"))
    b = train(make_cfg(*TINY, run_dir=tmp_path / "b"))
    c = train(make_cfg(*TINY, "seed=7", run_dir=tmp_path / "c"))
    same = {k: v for k, v in a.items() if k not in TIMING}
    assert same == {k: v for k, v in b.items() if k not in TIMING}
    assert same != {k: v for k, v in c.items() if k not in TIMING}


def test_run_directory_records_version_and_commit(make_cfg, tmp_path):
    cfg = make_cfg(*TINY, "trainer.max_epochs=1")
    train(cfg)
    made = json.loads((Path(cfg.run_dir) / "provenance.json").read_text())
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    assert made["version"] == "0.1.0" and made["git_commit"] == (head or None)
    assert json.loads((Path(cfg.run_dir) / "metrics.json").read_text())["status"] == "completed"


def test_resume_from_last_checkpoint_to_n_epochs(make_cfg, tmp_path):
    first = make_cfg(*TINY, run_dir=tmp_path / "first")
    train(first)
    last = tmp_path / "first" / "checkpoints" / "last.ckpt"
    resumed = make_cfg(*TINY, f"ckpt_path={last}", "trainer.max_epochs=4", run_dir=tmp_path / "second")
    m = train(resumed)
    assert m["epochs"] == 4
    history = pd.read_csv(tmp_path / "second" / "metrics.csv").dropna(subset=["train/loss"])
    assert history.step.tolist() == [3, 4]  # epochs 1-2 came from the checkpoint
    steps = -(-m["windows/train"] // 32)
    assert (
        torch.load(tmp_path / "second/checkpoints/last.ckpt", weights_only=True)["global_step"] == 4 * steps
    )


class PoisonData(L.Callback):
    """Corrupts the series at the start of epoch 2, as a broken sensor would."""

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch == 1:
            trainer.datamodule.series.x[:] = float("nan")


def test_nan_loss_stops_the_run_naming_epoch_and_step_and_keeps_the_last_good_checkpoint(make_cfg):
    cfg = make_cfg(
        *TINY, "trainer.max_epochs=3", "+callbacks.poison._target_=tests.test_trustworthy.PoisonData"
    )
    with pytest.raises(UserError, match=r"loss became nan at epoch 2, step (\d+)") as e:
        train(cfg)
    steps = -(-int(600 * 0.7 - 8 + 1) // 32)  # optimizer steps in epoch 1
    assert f"step {steps + 1}" in str(e.value)  # the first step of epoch 2
    last = torch.load(Path(cfg.run_dir) / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] == 0 and all(torch.isfinite(v).all() for v in last["state_dict"].values())
    assert not (Path(cfg.run_dir) / "metrics.json").exists()


def start(run_dir: Path, *extra: str) -> subprocess.Popen:
    return start_cli(*SLOW_RUN, *extra, f"hydra.run.dir={run_dir}")


@pytest.mark.slow
def test_sigint_saves_last_checkpoint_and_marks_the_run_interrupted(tmp_path):
    run = tmp_path / "run"
    proc = start(run)
    until((run / "checkpoints" / "last.ckpt").exists, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    m = json.loads((run / "metrics.json").read_text())
    assert m["status"] == "interrupted" and m["epochs"] >= 1
    assert "test/acc" not in m
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    # saved at the interruption (mid-epoch included), not at the last epoch's end
    assert ckpt["global_step"] == m["global_step"] > 0
    assert "interrupted" in err


@pytest.mark.slow
def test_sigkill_mid_epoch_resumes_from_last_checkpoint(tmp_path):
    run = tmp_path / "run"
    proc = start(run)
    until((run / "checkpoints" / "last.ckpt").exists, proc)
    proc.kill()
    proc.communicate()
    done = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] + 1  # epochs it holds
    r = run_cli(
        *SLOW_RUN[:2],
        f"trainer.max_epochs={done + 1}",
        f"ckpt_path={run / 'checkpoints/last.ckpt'}",
        f"hydra.run.dir={tmp_path / 'resumed'}",
        "callbacks.progress_bar.refresh_rate=0",
    )
    assert r.returncode == 0, r.stderr[-2000:]
    m = json.loads((tmp_path / "resumed" / "metrics.json").read_text())
    assert m["epochs"] == done + 1 and m["status"] == "completed"


def test_two_runs_started_together_get_distinct_directories(tmp_path):
    procs = [start_cli(*TINY, "trainer.max_epochs=1", cwd=tmp_path) for _ in range(2)]
    for p in procs:
        assert p.wait(timeout=300) == 0, p.stderr.read()[-2000:]
    runs = list((tmp_path / "outputs" / "runs").iterdir())
    assert len(runs) == 2 and all((r / "metrics.json").is_file() for r in runs)


def test_an_existing_run_directory_is_never_reused(tmp_path):
    run = tmp_path / "mine"
    assert run_cli(*TINY, "trainer.max_epochs=1", f"hydra.run.dir={run}").returncode == 0
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()}
    r = run_cli(*TINY, f"hydra.run.dir={run}")
    assert r.returncode == 2 and "already holds metrics.json" in r.stderr
    assert {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()} == before


def test_resume_ends_with_the_numbers_of_the_run_that_never_stopped(make_cfg, tmp_path):
    whole = train(make_cfg(*TINY, "trainer.max_epochs=5", run_dir=tmp_path / "whole"))
    train(make_cfg(*TINY, run_dir=tmp_path / "first"))  # stopped after epoch 2
    first = tmp_path / "first"
    before = {p: p.stat().st_mtime_ns for p in first.rglob("*") if p.is_file()}
    resumed = train(
        make_cfg(
            *TINY,
            "trainer.max_epochs=5",
            f"ckpt_path={first / 'checkpoints' / 'last.ckpt'}",
            run_dir=tmp_path / "second",
        )
    )
    # same shuffling after the resume, same best-checkpoint record: the test scores the same epoch
    assert {k: v for k, v in resumed.items() if k not in TIMING} == {
        k: v for k, v in whole.items() if k not in TIMING
    }
    assert whole["best_epoch"] <= 2 or resumed["best_epoch"] > 2  # either way, the same epoch
    assert {p: p.stat().st_mtime_ns for p in first.rglob("*") if p.is_file()} == before  # untouched
    assert not (tmp_path / "second" / ".resume.ckpt").exists()  # the prepared copy is gone after fitting
