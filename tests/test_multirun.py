"""Hydra multiruns on Hydra's launchers and sweepers (joblib, submitit_local, Optuna) and the sweep report."""

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from .conftest import TINY, run_cli

# the report table's columns (more may follow)
COLUMNS = (
    "job hidden batch_size max_epochs seed lr status best_epoch epochs train/acc val/acc test/acc train/loss "
    "val/loss test/loss best/val/loss best/val/acc best/train/acc gap/acc gap/loss fit_seconds"
).split()


def jobs(sweep: Path) -> list[Path]:
    return sorted((p for p in sweep.iterdir() if p.is_dir()), key=lambda p: int(p.name))


@pytest.fixture(scope="module")
def joblib_sweep(tmp_path_factory) -> Path:
    sweep = tmp_path_factory.mktemp("sweep") / "s"
    r = run_cli(
        "-m",
        *TINY,
        "model.hidden=4,8",
        "data.batch_size=16,64",
        "trainer.max_epochs=3",
        "hydra/launcher=joblib",
        f"hydra.sweep.dir={sweep}",
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return sweep


def test_joblib_multirun_writes_one_run_per_job_each_on_one_thread(joblib_sweep):
    runs = jobs(joblib_sweep)
    assert [p.name for p in runs] == ["0", "1", "2", "3"]
    seen = set()
    for run in runs:
        m = json.loads((run / "metrics.json").read_text())
        assert m["epochs"] == 3 and m["threads"] == 1
        assert list(run.glob("tb/*/events.out.tfevents.*")) and (run / "metrics.csv").is_file()
        seen.add(m["params_trainable"])
    assert seen == {360, 816}  # hidden 4 (4*4*(13+4) + 16 + 50 + 22) and hidden 8 both ran


def test_report_table_has_a_row_per_job_and_the_figures(joblib_sweep):
    r = run_cli(str(joblib_sweep), module="lstm_cls.report")
    assert r.returncode == 0, r.stderr[-2000:]
    table = pd.read_csv(joblib_sweep / "summary.csv")
    assert len(table) == 4 and set(COLUMNS) <= set(table.columns)
    assert sorted(zip(table.hidden, table.batch_size, strict=True)) == [(4, 16), (4, 64), (8, 16), (8, 64)]
    assert (table.status == "completed").all() and (table.max_epochs == 3).all()
    # the value at the best epoch comes from the per-epoch history
    for _, row in table.iterrows():
        hist = pd.read_csv(joblib_sweep / str(row.job) / "metrics.csv").groupby("step").first()
        assert row["best/val/loss"] == pytest.approx(hist["val/loss"].min())
        assert row["gap/acc"] == pytest.approx(hist["gap/acc"].iloc[-1])
    md = (joblib_sweep / "summary.md").read_text()
    assert "4 completed, 0 failed" in md and "## Per configuration" in md
    for png in ("learning_curves.png", "gap.png", "test_acc.png"):
        assert (joblib_sweep / png).stat().st_size > 10_000, png


@pytest.mark.skipif(torch.cuda.is_available(), reason="the failing job asks for a GPU this machine lacks")
def test_one_failing_job_does_not_stop_the_others_and_the_sweep_fails(tmp_path):
    # a job that fails only once it runs (its settings pass every check: they are refused before any job
    # starts, tests/test_run_dirs.py): a GPU on a machine without one
    sweep = tmp_path / "s"
    r = run_cli("-m", *TINY, "trainer.accelerator=gpu,cpu", f"hydra.sweep.dir={sweep}")
    assert r.returncode != 0
    failed, ok = jobs(sweep)
    assert "sees no CUDA GPU" in (failed / "error.txt").read_text()
    assert not (failed / "metrics.json").exists()
    assert json.loads((ok / "metrics.json").read_text())["epochs"] == 2
    r = run_cli(str(sweep), module="lstm_cls.report")
    table = pd.read_csv(sweep / "summary.csv")
    assert table.status.tolist() == ["failed", "completed"]
    assert "## Failed jobs" in (sweep / "summary.md").read_text()
    assert "sees no CUDA GPU" in table.error[0]


def test_report_on_a_running_sweep_a_single_run_and_an_empty_folder(joblib_sweep, tmp_path):
    running = tmp_path / "running"
    (running / "0" / ".hydra").mkdir(parents=True)
    for f in ("config.yaml", "overrides.yaml"):
        (running / "0" / ".hydra" / f).write_text((joblib_sweep / "0" / ".hydra" / f).read_text())
    (running / "0" / "metrics.csv").write_text((joblib_sweep / "0" / "metrics.csv").read_text())
    assert run_cli(str(running), module="lstm_cls.report").returncode == 0
    assert pd.read_csv(running / "summary.csv").status.tolist() == ["running"]
    single = joblib_sweep / "1"
    assert run_cli(str(single), module="lstm_cls.report").returncode == 0
    assert len(pd.read_csv(single / "summary.csv")) == 1
    r = run_cli(str(tmp_path / "nothing"), module="lstm_cls.report")
    assert r.returncode == 2 and r.stderr.strip() == f"error: {tmp_path / 'nothing'}: no such directory"
    (tmp_path / "empty").mkdir()
    r = run_cli(str(tmp_path / "empty"), module="lstm_cls.report")
    assert r.returncode == 2 and "no runs here" in r.stderr


def test_overfitting_experiment_holds_the_grid(make_cfg):
    from .conftest import compose_cfg

    cfg = compose_cfg("experiment=overfitting", "run_dir=.", hydra_config=True)
    assert dict(cfg.hydra.sweeper.params) == {
        "model.hidden": "8,32,128",
        "data.batch_size": "16,32,128",
        "trainer.max_epochs": "10,50,100",
    }
    assert cfg.model.hidden == 32 and cfg.model.lr == 0.001  # on top of the reference recipe


def test_ddp_is_refused_inside_a_multirun(tmp_path):
    sweep = tmp_path / "ddp"
    r = run_cli("-m", *TINY, "trainer.strategy=ddp", f"hydra.sweep.dir={sweep}")
    assert r.returncode == 2 and "DDP is not started inside a Hydra multirun" in r.stderr.splitlines()[-1]
    assert not sweep.exists()  # refused before the sweep began: no job folder
