"""TensorBoard: a sweep's runs named by their swept values, HParams of the swept settings, final tags last."""

import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import metadata

from lstm_cls.tensorboard import FINAL, flat, job_label, run_hparams, swept_keys

from .conftest import compose_cfg, run_cli


def write_multirun(sweep: Path, task: list[str], params: dict | None = None) -> Path:
    """A multirun.yaml as Hydra writes it into hydra.sweep.dir: the sweep's own override strings."""
    sweep.mkdir(parents=True, exist_ok=True)
    hydra = {"mode": "MULTIRUN", "sweep": {"dir": str(sweep)}, "sweeper": {"params": params}}
    hydra["overrides"] = {"task": task, "hydra": [f"hydra.sweep.dir={sweep}"]}
    OmegaConf.save(OmegaConf.create({"seed": 1, "hydra": hydra}), sweep / "multirun.yaml")
    return sweep


def job(sweep: Path, task: list[str], mode: str = "MULTIRUN") -> dict:
    """A job's Hydra runtime config: the sweep's folder and this job's own values."""
    return OmegaConf.create({"mode": mode, "sweep": {"dir": str(sweep)}, "overrides": {"task": task}})


def test_swept_keys_of_a_command_line_sweep(tmp_path):
    task = ["model.hidden=8,32,128", "data.length=400", "data.batch_size=16,64", "+trainer.profiler=a,b"]
    assert swept_keys(write_multirun(tmp_path, task)) == [
        "model.hidden",
        "data.batch_size",
        "trainer.profiler",
    ]
    # a -m with single values sweeps nothing; a folder without multirun.yaml is no sweep
    assert swept_keys(write_multirun(tmp_path / "one", ["model.hidden=8", "seed=3"])) == []
    assert swept_keys(tmp_path / "nothing") == []


def test_swept_keys_of_a_preset(tmp_path):
    # the overfitting preset's grid, in hydra.sweeper.params, as Hydra composes it
    cfg = compose_cfg("experiment=overfitting", "run_dir=.", hydra_config=True)
    (tmp_path / "multirun.yaml").write_text(OmegaConf.to_yaml(cfg))
    assert swept_keys(tmp_path) == ["model.hidden", "data.batch_size", "trainer.max_epochs"]


def test_swept_keys_of_a_preset_and_the_command_line(tmp_path):
    params = {"model.hidden": "8,32,128", "data.batch_size": "16,32", "trainer.max_epochs": "10,50"}
    # Hydra's BasicSweeper: the preset's params first, then the command line; the later value of a key
    # decides (data.batch_size=64 is no longer swept), the first keeps its place
    task = ["experiment=overfitting", "seed=1,2,3", "data.batch_size=64", "trainer.max_epochs=20,40"]
    assert swept_keys(write_multirun(tmp_path, task, params)) == [
        "model.hidden",
        "trainer.max_epochs",
        "seed",
    ]


def test_swept_keys_reads_lists_and_quoted_strings_as_hydra_does(tmp_path):
    task = [
        "callbacks=[default,early_stopping],[default]",  # a sweep over two lists
        "data.features=[a,b]",  # one list: not a sweep
        "data.path='a,b.csv'",  # a comma inside quotes: not a sweep
        "data.target='rain','sun'",  # two quoted strings
        "model.dropout=choice(0.1, 0.2)",
        "~model.head",
    ]
    assert swept_keys(write_multirun(tmp_path, task)) == ["callbacks", "data.target", "model.dropout"]


def test_job_label_names_the_swept_values_in_short_form(tmp_path):
    sweep = write_multirun(
        tmp_path, ["model.hidden=8,32", "data.batch_size=32,128", "trainer.max_epochs=20,40"]
    )
    this = ["model.hidden=32", "data.batch_size=128", "trainer.max_epochs=40"]
    # the names summary.csv's columns have (cli.SHORT_NAMES)
    label = "hidden=32,batch_size=128,max_epochs=40"
    assert job_label(job(sweep, this)) == label == job_label(OmegaConf.create({"hydra": job(sweep, this)}))
    assert job_label(job(sweep, this, mode="RUN")) is None  # a single run keeps its folder
    assert job_label(job(write_multirun(tmp_path / "one", ["model.hidden=8"]), ["model.hidden=8"])) is None


def test_job_label_short_names_and_odd_values(tmp_path):
    task = [
        "seed=1,2",
        "model.lr=1e-3,1e-2",
        "model.dropout=0,0.5",
        "model.weight_decay=0,0.1",
        "data.train_fraction=0.5,1.0",
        "callbacks=[default,early_stopping],[default]",
        "data.path=a/x.csv,b/x.csv",
        "model.patience=1,2",
        "+callbacks.early_stopping.patience=3,4",
        "data.window=8,16",
    ]
    sweep = write_multirun(tmp_path, task)
    this = [
        "seed=2",
        "model.lr=0.001",
        "model.dropout=0.5",
        "model.weight_decay=0.1",
        "data.train_fraction=0.5",
        "callbacks=[default,early_stopping]",
        "data.path=b/x.csv",
        "model.patience=1",
        "+callbacks.early_stopping.patience=4",
        "data.window=16",
    ]
    assert job_label(job(sweep, this)) == (
        "seed=2,lr=0.001,dropout=0.5,weight_decay=0.1,train_fraction=0.5,callbacks=[default,early_stopping],"
        "path=b_x.csv,"
        # two keys both called "patience": each by its full key
        "model.patience=1,callbacks.early_stopping.patience=4,window=16"
    )


def test_job_label_of_a_long_sweep_stays_one_folder_name(tmp_path):
    keys = [f"data.setting_number_{i}" for i in range(30)]
    sweep = write_multirun(tmp_path, [f"{k}=1,2" for k in keys])
    label = job_label(job(sweep, [f"{k}=2" for k in keys]))
    assert label is not None and len(label.encode()) <= 200 and "/" not in label
    assert label != job_label(job(sweep, [f"{k}=1" for k in keys]))


def test_hparams_list_the_swept_settings_alone_in_a_multirun(tmp_path):
    cfg = compose_cfg("run_dir=.", "model.hidden=32", "data.batch_size=128")
    sweep = write_multirun(
        tmp_path, ["data.batch_size=32,128", "model.hidden=8,32", "callbacks=[default],[x]"]
    )
    this = job(sweep, ["data.batch_size=128", "model.hidden=32", "callbacks=[default]"])
    # in sweep order, under full keys, typed where the config holds the value, as typed for a group
    assert run_hparams(cfg, this) == {"data.batch_size": 128, "model.hidden": 32, "callbacks": "[default]"}
    single = run_hparams(cfg, job(sweep, [], mode="RUN"))
    assert single == run_hparams(cfg)  # outside Hydra (compose API): the same as a single run
    assert {"model.hidden", "model.lr", "data.batch_size", "seed", "trainer.max_epochs"} <= set(single)
    assert not {k for k in single if k.split(".")[0] not in ("model", "data", "seed", "trainer")}


def test_flat():
    assert flat({"model": {"_target_": "x", "hidden": 32, "w": [1, 2]}, "seed": 1}) == {
        "model.hidden": 32,
        "model.w": "[1, 2]",
        "seed": 1,
    }


def test_logger_version_is_empty_without_hydra_and_the_module_imports_no_torch():
    # compose API: Hydra is not initialised, the resolver gives today's folder (the run directory)
    assert compose_cfg("run_dir=.").logger.tensorboard.version == ""
    code = "import sys, lstm_cls.tensorboard; assert not {'torch', 'lightning'} & set(sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def test_final_tags_sort_after_train_and_val():
    # TensorBoard's scalar dashboard orders tag groups by character code (compareTagNames), as sorted() does
    groups = ["gap", "test", "train", "val", "lr", "norm", FINAL.split("/")[0]]
    assert sorted(groups)[-1] == FINAL.split("/")[0] and FINAL.endswith("/")


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    sweep = tmp_path_factory.mktemp("tb") / "s"
    tiny = [
        "trainer.max_epochs=1",
        "data.length=400",
        "data.window=8",
        "callbacks.progress_bar.refresh_rate=0",
    ]
    r = run_cli("-m", "model.hidden=4,8", *tiny, f"hydra.sweep.dir={sweep}")
    assert r.returncode == 0, r.stderr[-3000:]
    return sweep


def events(run: Path) -> EventAccumulator:
    acc = EventAccumulator(str(run), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def test_a_sweep_names_each_tensorboard_run_by_its_swept_values(sweep):
    runs = {}
    for job_dir in sorted(p for p in sweep.iterdir() if p.is_dir()):
        # the run directory keeps its files; only TensorBoard's events move into tb/<label>
        for f in ("metrics.json", "metrics.csv", "checkpoints", ".hydra"):
            assert (job_dir / f).exists(), f
        assert not list(job_dir.glob("events.out.tfevents.*"))
        (label,) = [p.name for p in (job_dir / "tb").iterdir()]
        assert list((job_dir / "tb" / label).glob("events.out.tfevents.*"))
        runs[label] = job_dir / "tb" / label
    assert sorted(runs) == ["hidden=4", "hidden=8"]

    for label, run in runs.items():
        acc = events(run)
        content = acc.PluginTagToContent("hparams")
        start = metadata.parse_session_start_info_plugin_data(content[metadata.SESSION_START_INFO_TAG])
        experiment = metadata.parse_experiment_plugin_data(content[metadata.EXPERIMENT_TAG])
        # the swept setting alone: data.length, trainer.max_epochs... are the same in every job
        assert list(start.hparams) == ["model.hidden"] == [h.name for h in experiment.hparam_infos]
        assert f"hidden={start.hparams['model.hidden'].number_value:.0f}" == label
        metrics = [m.name.tag for m in experiment.metric_infos]
        assert {"test/acc", "val/loss", f"{FINAL}best_epoch", f"{FINAL}val/best_loss"} <= set(metrics)
        scalars = acc.Tags()["scalars"]
        assert set(metrics) <= set(scalars)  # the HParams table reads each metric tag's latest scalar
        assert acc.Scalars(f"{FINAL}epochs")[-1].value == 1
        final = [t for t in scalars if t.startswith(FINAL)]
        assert final and not [t for t in scalars if t.startswith("final/")]
        # TensorBoard orders tag groups by character code: the final ones come after train/ and val/
        groups = sorted({t.split("/")[0] for t in scalars})
        assert groups[-1] == FINAL.split("/")[0] and groups.index("val") < groups.index(groups[-1])
