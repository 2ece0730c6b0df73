"""The results schema (`lstm_cls.metrics`): metrics.json and evaluate's file declare every key they write
and share the test/ keys; one table of settings' short names (`cli.SHORT_NAMES`) for summary.csv and
TensorBoard; one bare tester Trainer."""

from omegaconf import OmegaConf

from lstm_cls import metrics
from lstm_cls.cli import SHORT_NAMES
from lstm_cls.report.read import find_runs, read_sweep
from lstm_cls.tensorboard import job_label

from .helpers import fake_sweep, grid

TEST = {"test/loss": 0.5, "test/acc": 0.75, "test/f1": 0.7, "test/auroc": 0.8}
PER_CLASS = ("classes/", "windows/")  # once per class or split: not declared key by key


def declared(m: dict, schema: type) -> set[str]:
    """The keys of `m` that its TypedDict does not declare."""
    return {k for k in m if not k.startswith(PER_CLASS)} - set(schema.__annotations__)


def test_evaluate_writes_metrics_json_test_keys():
    e = metrics.evaluation("/r/best.ckpt", "/d/new.csv", TEST, {"down": 3, "up": 1}, [[2, 1], [0, 1]])
    assert list(e) == [
        "ckpt_path",
        "data_path",
        *metrics.TEST,
        "windows",
        "classes/down",
        "classes/up",
        "class_names",
        "confusion_matrix",
    ]
    assert (e["windows"], e["classes/up"], e["class_names"]) == (4, 1, ["down", "up"])
    assert not declared(e, metrics.Evaluation)
    assert (
        {k for k in e if k.startswith("test/")}
        == set(metrics.TEST)
        <= set(metrics.RunMetrics.__annotations__)
    )


def test_auroc_is_null_where_a_class_has_no_window_in_both_files():
    # the model logs no test/auroc then (model._epoch_metrics): both files say null, and why
    test = {k: v for k, v in TEST.items() if k != "test/auroc"}
    e = metrics.evaluation("c", "d", test, {"down": 4, "up": 0}, [[4, 0], [0, 0]])
    assert e["test/auroc"] is None and e["test/auroc_undefined"] == "no window of class up"
    m = metrics.completed(
        metrics.scores({}, {}, test, None),
        majority_acc=0.5,
        classes={"test": {"down": 4, "up": 0}},
        windows={"test": 4},
        seconds=dict.fromkeys(metrics.SECONDS, 1.0),
        no_test_window=["up"],
        **dict(best_epoch=1, best_checkpoint="last (no validation)", epochs=1, global_step=2),
        **dict(train_path="block", params_trainable=9, threads=1, world_size=1),
    )
    assert m["test/auroc"] is None and m["test/auroc_undefined"] == "no test window of class up"
    assert not declared(m, metrics.RunMetrics)


def test_summary_csv_and_tensorboard_name_each_setting_alike(tmp_path):
    fake_sweep(tmp_path / "s", *grid("model.hidden=4,8", "seed=1,2"))
    jobs, _, params, _ = read_sweep(tmp_path / "s", find_runs(tmp_path / "s"))
    assert params == list(SHORT_NAMES.values()) and set(params) <= set(jobs.columns)
    # a job of a sweep over the same settings: its TensorBoard run is named with the same words
    sweep = tmp_path / "tb"
    sweep.mkdir()
    hydra = {
        "mode": "MULTIRUN",
        "sweep": {"dir": str(sweep)},
        "overrides": {"task": [f"{k}=1,2" for k in SHORT_NAMES]},
    }
    OmegaConf.save(OmegaConf.create({"hydra": hydra}), sweep / "multirun.yaml")
    this = OmegaConf.merge(hydra, {"overrides": {"task": [f"{k}=2" for k in SHORT_NAMES]}})
    assert job_label(this) == ",".join(f"{name}=2" for name in params)


def test_a_tester_logs_saves_and_shows_nothing():
    from lightning.pytorch.callbacks import ModelSummary

    from lstm_cls.evaluate import tester

    t = tester()
    assert t.loggers == [] and t.checkpoint_callbacks == [] and t.progress_bar_callback is None
    assert not [c for c in t.callbacks if isinstance(c, ModelSummary)]
