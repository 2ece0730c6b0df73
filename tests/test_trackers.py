"""logger=mlflow, logger=[tensorboard,mlflow], logger=wandb: each run's settings as the tracker's parameters
and metrics.json's figures as its final metrics, read back as a user would (`mlflow.search_runs`)."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from lstm_cls import UserError, config, trackers
from lstm_cls.tensorboard import run_hparams, run_name

from .conftest import ROOT, TINY, compose_cfg, run_cli


def mlflow_runs(uri: str, monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """The runs of the experiment lstm_cls in the store `uri`, through mlflow.search_runs, as dicts."""
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # what search_runs reads where nothing set another
    table = mlflow.search_runs(experiment_names=["lstm_cls"])
    return table.to_dict("records")


def same_figures(run: dict, metrics: dict) -> None:
    """Every number of metrics.json is the run's final metric of that key, the words are its tags."""
    for key, value in metrics.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            assert run[f"metrics.{key}"] == value, key
        elif isinstance(value, str):
            assert run[f"tags.{key}"] == value, key


@pytest.mark.slow
def test_a_parallel_sweep_logs_every_job_to_one_sqlite_store_under_outputs(tmp_path, monkeypatch):
    # two jobs at once start on a store that does not exist yet: one creates its tables, the other waits.
    # Each trains 2 epochs and writes its 1-epoch sibling from its first (nested epochs): 4 MLflow runs
    sweep = tmp_path / "sweep"
    r = run_cli(
        "-m",
        *TINY,
        "model.hidden=8,12",
        "trainer.max_epochs=1,2",
        "logger=mlflow",
        "hydra/launcher=forkserver",
        "hydra.launcher.n_jobs=2",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("derived from job") == 2
    assert (tmp_path / "outputs" / "mlflow.db").is_file()  # the default store, under where the command ran
    assert not (tmp_path / "mlruns").exists()  # no file store, no artifacts folder where the command ran
    uri = f"sqlite:///{tmp_path}/outputs/mlflow.db"
    runs = mlflow_runs(uri, monkeypatch)
    import mlflow

    seen = set()
    for run in runs:
        job = Path(run["tags.run_dir"])
        assert job.parent == sweep and run["status"] == "FINISHED"
        typed = dict(o.split("=") for o in OmegaConf.load(job / ".hydra" / "overrides.yaml"))
        hidden, epochs = typed["model.hidden"], typed["trainer.max_epochs"]
        # the swept settings, then those every job shares
        assert run["params.model.hidden"] == hidden and run["params.trainer.max_epochs"] == epochs
        assert run["params.model.lr"] == "0.001" and run["params.data.window"] == "8"
        assert run["tags.mlflow.runName"] == f"hidden={hidden},max_epochs={epochs}"  # as TensorBoard names it
        same_figures(run, json.loads((job / "metrics.json").read_text()))
        assert (job / "metrics.csv").is_file()  # the CSV log, which `report` reads, beside MLflow
        history = mlflow.MlflowClient(uri).get_metric_history(run["run_id"], "val/loss")
        assert sorted(m.step for m in history) == list(range(1, int(epochs) + 1))  # one value an epoch
        seen.add((hidden, epochs))
    assert seen == {("8", "1"), ("8", "2"), ("12", "1"), ("12", "2")} and len(runs) == 4


@pytest.mark.slow
def test_tensorboard_and_mlflow_together_with_the_store_from_the_environment(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path}/store/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    run_dir = tmp_path / "run"
    r = run_cli(*TINY, "logger=[tensorboard,mlflow]", f"hydra.run.dir={run_dir}")
    assert r.returncode == 0, r.stderr[-3000:]
    assert list(run_dir.glob("events.out.tfevents.*")) and (run_dir / "metrics.csv").is_file()
    [run] = mlflow_runs(uri, monkeypatch)
    assert run["tags.mlflow.runName"] == "run" and run["tags.run_dir"] == str(run_dir)
    # a single run: the settings TensorBoard's HParams tab gets
    cfg = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    cfg.run_dir = str(run_dir)  # (Hydra's ${hydra:runtime.output_dir})
    expected = run_hparams(cfg)
    assert {k.removeprefix("params."): v for k, v in run.items() if k.startswith("params.")} == {
        k: str(v) for k, v in expected.items()
    }
    same_figures(run, json.loads((run_dir / "metrics.json").read_text()))
    assert run["artifact_uri"].startswith((tmp_path / "store" / "mlartifacts").as_uri())  # beside the store


def test_a_sweep_job_gives_a_tracker_its_swept_settings_first_then_the_rest_and_its_label_as_run_name():
    cfg = compose_cfg("run_dir=x", "model.hidden=32")
    hydra = OmegaConf.create(
        {
            "mode": "MULTIRUN",
            "sweep": {"dir": "/nonexistent"},  # no multirun.yaml: the search space in the job's own config
            "sweeper": {"params": {"model.hidden": "16,32"}},
            "overrides": {"task": ["model.hidden=32"]},
            "runtime": {"output_dir": "/sweep/1"},
        }
    )
    assert run_hparams(cfg, hydra) == {"model.hidden": 32}  # TensorBoard's HParams: the swept one alone
    both = run_hparams(cfg, hydra, constant=True)
    assert list(both)[0] == "model.hidden" and both == {"model.hidden": 32} | run_hparams(cfg)
    assert run_name(hydra) == "hidden=32"
    hydra.mode = "RUN"
    hydra.runtime.output_dir = "/outputs/runs/2026-12-04_18-12-54.123456"
    assert run_name(hydra) == "2026-12-04_18-12-54.123456"
    assert run_name() is None  # outside Hydra (the compose API): the tracker names it


@pytest.mark.parametrize(
    ("choice", "entries"),
    [
        ("logger=mlflow", ["csv", "mlflow"]),  # the CSV log stays: `report` reads it
        ("logger=[tensorboard,mlflow]", ["tensorboard", "csv", "mlflow"]),
        ("logger=wandb", ["csv", "wandb"]),
    ],
)
def test_the_tracker_presets_compose_and_pass_the_settings_check(choice, entries, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = compose_cfg("run_dir=x", choice)
    assert list(cfg.logger) == entries
    config.check(cfg)
    if "wandb" in cfg.logger:  # offline unless told otherwise
        assert cfg.logger.wandb.offline is True and cfg.logger.wandb.save_dir == "x"
    if "mlflow" in cfg.logger:  # a local SQLite store, where no MLFLOW_TRACKING_URI names another
        assert cfg.logger.mlflow.tracking_uri == "sqlite:///outputs/mlflow.db"
    bad = compose_cfg("run_dir=x", choice, "logger.csv.flush_logs_every_n_steps=0")
    with pytest.raises(UserError, match=r"logger\.csv\.flush_logs_every_n_steps must be .*\(got 0\)"):
        config.check(bad)


@pytest.mark.skipif(importlib.util.find_spec("wandb") is not None, reason="wandb is installed")
def test_logger_wandb_without_the_package_is_one_error_naming_it():
    cfg = compose_cfg("run_dir=x", "logger=wandb")
    with pytest.raises(
        UserError, match=r"^logger\.wandb \(.*WandbLogger\) needs the wandb package: pip install wandb"
    ):
        trackers.prepare(cfg.logger)


def test_logger_wandb_runs_offline_into_the_run_folder(tmp_path):
    pytest.importorskip("wandb")
    r = run_cli(*TINY, "logger=wandb", f"hydra.run.dir={tmp_path / 'run'}")
    assert r.returncode == 0, r.stderr[-3000:]
    assert list((tmp_path / "run" / "wandb").glob("offline-run-*"))


def test_a_deleted_experiment_or_a_store_that_cannot_be_made_is_one_error(tmp_path):
    from mlflow.tracking import MlflowClient

    entry = {
        "_target_": "x.MLFlowLogger",
        "tracking_uri": f"sqlite:///{tmp_path}/m.db",
        "experiment_name": "e",
    }
    made = trackers.mlflow_experiment("mlflow", entry)
    assert trackers.mlflow_experiment("mlflow", entry) == made  # found the second time
    client = MlflowClient(entry["tracking_uri"])
    assert client.get_experiment(made).artifact_location == (tmp_path / "mlartifacts").as_uri()
    client.delete_experiment(made)
    with pytest.raises(UserError, match=r"experiment_name=e: .* deleted .*mlflow experiments restore"):
        trackers.mlflow_experiment("mlflow", entry)
    nowhere = entry | {"tracking_uri": "sqlite:////proc/nowhere/m.db"}
    with pytest.raises(
        UserError, match=r"^logger\.mlflow\.tracking_uri=sqlite:////proc/nowhere/m\.db: its folder"
    ):
        trackers.mlflow_experiment("mlflow", nowhere)


def test_no_tracker_is_imported_where_none_is_used():
    code = (
        "import sys, lstm_cls.train, lstm_cls.trackers\n"
        "found = sorted(m for m in sys.modules if m.split('.')[0] in ('mlflow', 'wandb'))\n"
        "assert not found, found\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
