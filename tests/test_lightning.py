"""Lightning as documented: Trainer arguments and callbacks do what Lightning's docs say, in both paths.

Optimizer steps are read from last.ckpt's `global_step` and compared with Lightning's own rule. The
tiny run below has 413 training windows: 13 batches of 32 per epoch.
"""

import inspect
import json
import math
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import lightning as L
import pandas as pd
import pytest
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from lstm_cls.fast_path import standard_path_reasons
from lstm_cls.model import LSTMClassifier
from lstm_cls.train import resolve_class_weights, train

from .conftest import CONF, TINY, compose_cfg, run_cli

BATCHES = 13  # ceil(413 / 32) training batches per epoch of TINY


def fit(make_cfg, tmp_path: Path, name: str, *overrides: str) -> tuple[dict, dict]:
    """Train TINY with overrides into tmp_path/name; metrics.json and last.ckpt's counters."""
    cfg = make_cfg(*TINY, *overrides, run_dir=tmp_path / name)
    metrics = train(cfg)
    last = tmp_path / name / "checkpoints" / "last.ckpt"
    ckpt = torch.load(last, weights_only=True) if last.exists() else {}
    return metrics, ckpt


class GradNorms(Callback):
    """Records, at every optimizer step, the gradient the optimizer stepped with (after any clipping)."""

    seen: dict[str, list[tuple[float, float]]] = {}

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        record = GradNorms.seen.setdefault(trainer.default_root_dir, [])

        def hook(optimizer: torch.optim.Optimizer, args: tuple, kwargs: dict) -> None:
            grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
            norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
            record.append((float(norm), max(float(g.abs().max()) for g in grads)))

        # a post-hook: in Lightning's automatic path the gradients exist only once its closure has run
        trainer.optimizers[0].register_step_post_hook(hook)


@pytest.mark.parametrize(("algorithm", "value"), [("norm", 0.05), ("value", 0.002)])
def test_gradient_clipping_in_the_block_path_is_lightnings_own(make_cfg, tmp_path, algorithm, value):
    rec = "+callbacks.grad_norms._target_=tests.test_lightning.GradNorms"
    clip = [f"trainer.gradient_clip_val={value}", f"trainer.gradient_clip_algorithm={algorithm}"]
    fast, _ = fit(make_cfg, tmp_path, "fast", rec, *clip)
    std, _ = fit(make_cfg, tmp_path, "std", rec, *clip, "fast=false")
    free, _ = fit(make_cfg, tmp_path, "free", rec)
    assert (fast["train_path"], std["train_path"]) == ("block", "standard")
    a, b, c = (GradNorms.seen[str(tmp_path / n)] for n in ("fast", "std", "free"))
    assert len(a) == len(b) == 2 * BATCHES
    torch.testing.assert_close(torch.tensor(a), torch.tensor(b), rtol=1e-4, atol=1e-7)
    which = 0 if algorithm == "norm" else 1  # total norm, or the largest single gradient value
    assert max(s[which] for s in a) <= value * 1.0001
    assert max(s[which] for s in c) > 2 * value  # without clipping they are larger: the test bites
    assert fast["train/loss"] == pytest.approx(std["train/loss"], rel=1e-4)


def test_block_path_and_standard_path_train_the_same_model(make_cfg, tmp_path):
    fast, a = fit(make_cfg, tmp_path, "fast")
    std, b = fit(make_cfg, tmp_path, "std", "fast=false")
    assert a["global_step"] == b["global_step"] == 2 * BATCHES
    for k in ("train/loss", "val/loss", "test/loss", "test/acc"):
        assert fast[k] == pytest.approx(std[k], rel=1e-4, abs=1e-6), k
    for k, v in a["state_dict"].items():
        torch.testing.assert_close(v, b["state_dict"][k], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    ("overrides", "steps"),
    [
        (["trainer.accumulate_grad_batches=4"], 2 * math.ceil(BATCHES / 4)),
        (["trainer.limit_train_batches=3"], 2 * 3),
        (["trainer.limit_train_batches=0.5"], 2 * int(BATCHES * 0.5)),
        (["trainer.max_steps=5", "trainer.max_epochs=-1"], 5),
        (["trainer.overfit_batches=2"], 2 * 2),
        (["trainer.precision=bf16-mixed"], 2 * BATCHES),
    ],
)
def test_batch_level_settings_take_the_standard_path_and_count_as_lightning(
    make_cfg, tmp_path, overrides, steps
):
    m, ckpt = fit(make_cfg, tmp_path, "run", *overrides)
    assert m["train_path"] == "standard" and m["status"] == "completed"
    assert ckpt["global_step"] == m["global_step"] == steps


class Counts(Callback):
    """Counts validation and test batches and passes, and the per-step hooks, per run directory."""

    seen: dict[str, dict[str, int]] = {}

    def _add(self, trainer: L.Trainer, key: str) -> None:
        counts = Counts.seen.setdefault(trainer.default_root_dir, {})
        counts[key] = counts.get(key, 0) + 1

    def on_validation_batch_end(self, trainer, *args) -> None:
        self._add(trainer, "val_batches")

    def on_validation_epoch_end(self, trainer, *args) -> None:
        self._add(trainer, "val_passes")

    def on_test_batch_end(self, trainer, *args) -> None:
        self._add(trainer, "test_batches")


class StepHooks(Callback):
    seen: dict[str, dict[str, int]] = {}

    def _add(self, trainer: L.Trainer, key: str) -> None:
        counts = StepHooks.seen.setdefault(trainer.default_root_dir, {})
        counts[key] = counts.get(key, 0) + 1

    def on_before_backward(self, trainer, pl_module, loss) -> None:
        self._add(trainer, "before_backward")

    def on_after_backward(self, trainer, pl_module) -> None:
        self._add(trainer, "after_backward")

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        self._add(trainer, "before_optimizer_step")


COUNTS = "+callbacks.counts._target_=tests.test_lightning.Counts"


@pytest.mark.parametrize(
    ("overrides", "path", "val_passes", "val_batches", "test_batches"),
    [
        # 68 val / 98 test windows: one batch each at eval_batch_size 1024, 3 and 4 at 32
        ([], "block", 2, 2, 1),
        (
            ["data.eval_batch_size=32", "trainer.limit_val_batches=2", "trainer.limit_test_batches=1"],
            "block",
            2,
            4,
            1,
        ),
        (["data.eval_batch_size=32", "trainer.limit_val_batches=0.5"], "block", 2, 2 * int(3 * 0.5), 4),
        (["trainer.max_epochs=4", "trainer.check_val_every_n_epoch=2"], "block", 2, 2, 1),
        (["trainer.val_check_interval=5"], "standard", 4, 4, 1),  # after batches 5 and 10 of each epoch
        (["trainer.val_check_interval=0.5"], "standard", 4, 4, 1),  # every int(13 * 0.5) = 6 batches
    ],
)
def test_validation_and_test_batches_are_counted_as_lightning(
    make_cfg, tmp_path, overrides, path, val_passes, val_batches, test_batches
):
    m, _ = fit(make_cfg, tmp_path, "run", COUNTS, *overrides)
    counts = Counts.seen[str(tmp_path / "run")]
    assert m["train_path"] == path
    assert (counts["val_passes"], counts["val_batches"], counts["test_batches"]) == (
        val_passes,
        val_batches,
        test_batches,
    )


def test_gap_is_logged_only_for_epochs_that_were_validated(make_cfg, tmp_path):
    fit(make_cfg, tmp_path, "run", "trainer.max_epochs=4", "trainer.check_val_every_n_epoch=2")
    history = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert history.dropna(subset=["gap/acc"]).step.tolist() == [2, 4]
    assert history.dropna(subset=["train/loss"]).step.tolist() == [1, 2, 3, 4]


def test_fast_dev_run_runs_one_batch_and_still_reports(make_cfg, tmp_path):
    m, _ = fit(make_cfg, tmp_path, "run", "trainer.fast_dev_run=true")
    assert m["train_path"] == "standard" and m["global_step"] == 1 and m["status"] == "completed"
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["global_step"] == 1


def test_early_stopping_stops_and_min_epochs_holds_it_back(make_cfg, tmp_path):
    # min_delta 100: val/loss never improves enough, so patience 1 stops after the second epoch
    stop = ["callbacks=[default,early_stopping]", "callbacks.early_stopping.patience=1"]
    stop += ["callbacks.early_stopping.min_delta=100", "trainer.max_epochs=6"]
    m, _ = fit(make_cfg, tmp_path, "a", *stop)
    assert m["train_path"] == "block" and m["epochs"] == 2 and m["global_step"] == 2 * BATCHES
    m, _ = fit(make_cfg, tmp_path, "b", *stop, "trainer.min_epochs=4")
    assert m["epochs"] == 4 and m["global_step"] == 4 * BATCHES


@pytest.mark.parametrize("fast", ["true", "false"])
def test_per_step_hooks_fire_once_per_optimizer_step_in_both_paths(make_cfg, tmp_path, fast):
    m, ckpt = fit(
        make_cfg,
        tmp_path,
        "run",
        "+callbacks.hooks._target_=tests.test_lightning.StepHooks",
        "trainer.gradient_clip_val=0.05",
        f"fast={fast}",
    )
    assert m["train_path"] == ("block" if fast == "true" else "standard")
    counts = StepHooks.seen[str(tmp_path / "run")]
    assert counts == {
        k: ckpt["global_step"] for k in ("before_backward", "after_backward", "before_optimizer_step")
    }
    assert ckpt["global_step"] == 2 * BATCHES


@pytest.mark.parametrize(
    ("scheduler", "expected"),
    [
        (["model.scheduler=step", "model.step_size=1", "model.gamma=0.5"], [1e-3, 5e-4, 2.5e-4]),
        (["model.scheduler=cosine"], [1e-3 * (1 + math.cos(math.pi * e / 3)) / 2 for e in range(3)]),
    ],
)
def test_schedulers_step_once_per_epoch_in_both_paths_and_reach_the_lr_monitor(
    make_cfg, tmp_path, scheduler, expected
):
    monitor = "callbacks=[default,lr_monitor]"
    for fast in ("true", "false"):
        m, _ = fit(make_cfg, tmp_path, fast, *scheduler, monitor, "trainer.max_epochs=3", f"fast={fast}")
        assert m["train_path"] == ("block" if fast == "true" else "standard")
        history = pd.read_csv(tmp_path / fast / "metrics.csv")
        assert history["lr"].dropna().tolist() == pytest.approx(expected, rel=1e-5)
        assert history["lr-Adam"].dropna().tolist() == pytest.approx(expected, rel=1e-5)


def test_plateau_scheduler_is_stepped_on_val_loss_alike_in_both_paths(make_cfg, tmp_path):
    # patience 0, and an lr so large that val/loss wanders: the plateau cuts the rate at least once
    plateau = ["model.scheduler=plateau", "model.patience=0", "model.gamma=0.5", "model.lr=0.05"]
    lrs = {}
    for fast in ("true", "false"):
        fit(make_cfg, tmp_path, fast, *plateau, "trainer.max_epochs=5", f"fast={fast}")
        lrs[fast] = pd.read_csv(tmp_path / fast / "metrics.csv")["lr"].dropna().tolist()
    assert lrs["true"] == pytest.approx(lrs["false"])
    assert lrs["true"][0] == pytest.approx(0.05) and min(lrs["true"]) < 0.05


def test_stochastic_weight_averaging_takes_the_standard_path_and_trains(make_cfg, tmp_path):
    m, ckpt = fit(make_cfg, tmp_path, "run", "callbacks=[default,swa]", "trainer.max_epochs=3")
    assert m["train_path"] == "standard" and m["status"] == "completed"
    assert ckpt["global_step"] == 3 * BATCHES


@pytest.mark.parametrize(
    ("name", "kind", "extra"),
    [
        ("adam", torch.optim.Adam, {}),
        ("adamw", torch.optim.AdamW, {}),
        ("sgd", torch.optim.SGD, {"momentum": 0.9}),
    ],
)
def test_optimizer_choice_and_weight_decay(name, kind, extra):
    opt = LSTMClassifier(optimizer=name, weight_decay=0.01, lr=0.01, **extra).configure_optimizers()
    assert type(opt) is kind
    group = opt.param_groups[0]
    assert group["weight_decay"] == 0.01 and group["lr"] == 0.01
    assert group.get("momentum", 0.9) == 0.9


def test_weight_decay_shrinks_the_weights(make_cfg, tmp_path):
    _, plain = fit(make_cfg, tmp_path, "plain", "model.optimizer=adamw")
    _, decayed = fit(make_cfg, tmp_path, "decayed", "model.optimizer=adamw", "model.weight_decay=10.0")
    norm = lambda c: sum(float(v.norm()) for k, v in c["state_dict"].items() if "weight" in k)  # noqa: E731
    # AdamW: each of the 26 steps multiplies the weights by 1 - lr * decay = 0.99 (0.77 in all)
    assert norm(decayed) < 0.85 * norm(plain)


def test_balanced_class_weights_are_inverse_training_frequency_and_weight_the_loss():
    labels = torch.tensor([0, 0, 0, 1])
    w = resolve_class_weights("balanced", labels, 2)
    assert w == pytest.approx([4 / (2 * 3), 4 / (2 * 1)])
    assert resolve_class_weights("none", labels, 2) is None
    assert resolve_class_weights([1, 3], labels, 2) == [1.0, 3.0]
    m = LSTMClassifier(n_features=3, class_weights=w)
    logits, y = torch.randn(6, 2), torch.tensor([0, 1, 1, 0, 0, 1])
    torch.testing.assert_close(
        m.loss_fn(logits, y), torch.nn.functional.cross_entropy(logits, y, weight=torch.tensor(w))
    )
    # bce: the same weighted mean, sum(w[y] * loss) / sum(w[y])
    b = LSTMClassifier(n_features=3, loss="bce", class_weights=w)
    per = torch.nn.functional.binary_cross_entropy_with_logits(
        logits[:, :1][:, 0], y.float(), reduction="none"
    )
    wy = torch.tensor(w)[y]
    torch.testing.assert_close(b.loss_fn(logits[:, :1], y), (per * wy).sum() / wy.sum())


def test_tanh_output_is_trained_against_minus_one_plus_one():
    m = LSTMClassifier(n_classes=3, loss="mse", output="tanh")
    logits, y = torch.tensor([[2.0, 0.0, -1.0]]), torch.tensor([1])
    expected = ((torch.tanh(logits[0]) - torch.tensor([-1.0, 1.0, -1.0])) ** 2).mean()
    torch.testing.assert_close(m.loss_fn(logits, y), expected)
    p = m.probabilities(logits)
    torch.testing.assert_close(p.sum(1), torch.ones(1))
    assert int(p.argmax()) == 0  # the arg-max of the tanh units


def test_every_new_knob_keeps_checkpoints_plain_data(make_cfg, tmp_path):
    knobs = [
        "model.optimizer=sgd",
        "model.momentum=0.9",
        "model.weight_decay=0.001",
        "model.scheduler=cosine",
    ]
    knobs += ["model.class_weights=balanced", "model.loss=mse", "model.output=tanh"]
    m, ckpt = fit(make_cfg, tmp_path, "run", *knobs)
    hp = ckpt["hyper_parameters"]  # loaded with weights_only=True above
    assert hp["optimizer"] == "sgd" and hp["scheduler"] == "cosine" and hp["output"] == "tanh"
    assert isinstance(hp["class_weights"], list) and all(type(w) is float for w in hp["class_weights"])
    model = LSTMClassifier.from_checkpoint(tmp_path / "run" / "checkpoints" / "best.ckpt")
    assert model.hparams.class_weights == hp["class_weights"] and m["status"] == "completed"


def test_listed_trainer_arguments_carry_lightnings_defaults():
    text = (CONF / "trainer" / "default.yaml").read_text()
    ours = compose_cfg("run_dir=.").trainer
    lightning_defaults = {k: p.default for k, p in inspect.signature(L.Trainer.__init__).parameters.items()}
    listed = text.split("# Lightning's defaults", 1)[1]
    keys = [line.split(":")[0] for line in listed.strip().splitlines()]
    needed = {
        "gradient_clip_val",
        "gradient_clip_algorithm",
        "accumulate_grad_batches",
        "limit_train_batches",
    }
    needed |= {"limit_val_batches", "limit_test_batches", "max_steps", "val_check_interval", "precision"}
    needed |= {"check_val_every_n_epoch", "fast_dev_run", "overfit_batches", "min_epochs", "strategy"}
    assert needed <= set(keys)
    for k in keys:
        assert ours[k] == lightning_defaults[k], k


def test_edited_group_files_take_effect_and_cm3_is_still_the_reference(tmp_path):
    conf = tmp_path / "conf"
    shutil.copytree(CONF, conf)
    model = conf / "model" / "lstm.yaml"
    model.write_text(model.read_text().replace("hidden: 32", "hidden: 64"))
    trainer = conf / "trainer" / "default.yaml"
    trainer.write_text(trainer.read_text().replace("max_epochs: 100", "max_epochs: 7"))
    weather = conf / "data" / "weather_aus.yaml"
    weather.write_text(weather.read_text() + "batch_size: 64\n")
    cfg = compose_cfg("run_dir=.", conf=conf)
    assert (cfg.model.hidden, cfg.trainer.max_epochs) == (64, 7)
    assert compose_cfg("run_dir=.", "data=weather_aus", conf=conf).data.batch_size == 64
    ref = compose_cfg("run_dir=.", "experiment=cm3", conf=conf)
    assert (ref.model.hidden, ref.trainer.max_epochs, ref.data.batch_size) == (32, 100, 32)
    # and the shipped files: the default composition is the reference recipe
    shipped = compose_cfg("run_dir=.")
    assert shipped.model == compose_cfg("run_dir=.", "experiment=cm3").model


def test_window_and_loader_keys_are_written_once():
    keys = (
        "window",
        "stride",
        "horizon",
        "batch_size",
        "block",
        "eval_batch_size",
        "val_fraction",
        "num_workers",
    )
    shared = compose_cfg("run_dir=.", "data=synthetic").data
    for source in ("synthetic", "csv"):  # the two sources: presets build on csv
        lines = (CONF / "data" / f"{source}.yaml").read_text().splitlines()
        assert not [k for k in keys if any(line.startswith(f"{k}:") for line in lines)], source
        assert {k: compose_cfg("run_dir=.", f"data={source}").data[k] for k in keys} == {
            k: shared[k] for k in keys
        }


def test_path_choice_reads_lightnings_callbacks():
    # the block path reads ModelCheckpoint's step interval (a private attribute): this fails if it moves
    assert standard_path_reasons({}, True, [ModelCheckpoint(every_n_train_steps=5)])
    assert standard_path_reasons({}, True, [ModelCheckpoint(train_time_interval=timedelta(minutes=5))])
    assert not standard_path_reasons({}, True, [ModelCheckpoint(monitor="val/loss")])
    assert standard_path_reasons({"limit_train_batches": 1}, True, [])  # an int: one batch
    assert not standard_path_reasons({"limit_train_batches": 1.0}, True, [])  # a float: all of them
    assert standard_path_reasons({"max_time": "00:00:01:00"}, True, [])  # checked after every batch
    assert standard_path_reasons({}, True, [Counts()]) == []  # validation hooks only
    assert standard_path_reasons({}, True, [StepHooks()]) == []  # per-step hooks: Lightning's calls


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainer.gradient_clip_val=-1", "trainer.gradient_clip_val must be a number >= 0"),
        ("trainer.gradient_clip_algorithm=l3", "trainer.gradient_clip_algorithm must be one of norm, value"),
        ("trainer.accumulate_grad_batches=0", "trainer.accumulate_grad_batches must be an integer >= 1"),
        ("trainer.limit_train_batches=1.5", "trainer.limit_train_batches must be an integer >= 0"),
        ("trainer.val_check_interval=0", "trainer.val_check_interval must be an integer > 0"),
        ("trainer.precision=fp8", "trainer.precision must be one of"),
        ("model.scheduler=linear", "model.scheduler must be one of none, cosine, step, plateau"),
        ("model.optimizer=lbfgs", "model.optimizer must be one of adam, adamw, sgd"),
        ("model.output=tanh", "model.output=tanh needs model.loss=mse"),
        ("model.class_weights=heavy", "model.class_weights must be none, balanced or a list"),
        ("model.weight_decay=-0.1", "model.weight_decay must be a number >= 0"),
    ],
)
def test_senseless_trainer_and_model_settings_are_one_error_line(tmp_path, override, message):
    r = run_cli(*TINY, override, f"hydra.run.dir={tmp_path / 'r'}")
    assert r.returncode == 2, r.stderr[-2000:]
    assert r.stderr.strip().splitlines()[-1].startswith(f"error: {message}"), r.stderr[-500:]
    assert "Traceback" not in r.stderr and not (tmp_path / "r").exists()


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_trains_to_the_end(tmp_path):
    run = tmp_path / "ddp"
    r = run_cli(*TINY, "trainer.strategy=ddp", "trainer.devices=2", f"hydra.run.dir={run}", timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((run / "metrics.json").read_text())
    assert m["train_path"] == "standard" and m["world_size"] == 2 and m["status"] == "completed"
    # Lightning's DistributedSampler: each process gets ceil(413 / 2) = 207 windows, 7 batches of 32
    assert m["global_step"] == 2 * math.ceil(math.ceil(413 / 2) / 32)
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == m["global_step"]
    # rank 0 alone writes the run's files: one TensorBoard writer set, one provenance, one metrics.json
    assert len(list(run.glob("metrics*.json"))) == 1 and (run / "provenance.json").is_file()
    assert (run / "train_ddp_process_1.log").is_file()  # the second process ran, into the same folder


def test_the_config_checks_import_no_torch():
    # they run before the ~4 s of torch and Lightning imports: a bad setting is refused at once
    code = (
        "import sys, lstm_cls.config, lstm_cls.cli, lstm_cls.train, lstm_cls.checkpoints, lstm_cls.rundir; "
    )
    code += "assert not {'torch', 'lightning', 'pandas'} & set(sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


class ReadSteps(Callback):
    seen: dict[str, object] = {}

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        progress = trainer.fit_loop.epoch_loop.manual_optimization.optim_step_progress
        ReadSteps.seen[trainer.default_root_dir] = (
            progress.total.completed,
            trainer.global_step,
            pl_module.direct,
        )


def test_the_block_paths_step_counter_is_lightnings_own(make_cfg, tmp_path):
    # the direct step advances `fit_loop.epoch_loop.manual_optimization.optim_step_progress` itself (not a
    # public attribute): if Lightning moves it or stops deriving global_step from it, this fails
    m, _ = fit(make_cfg, tmp_path, "run", "+callbacks.read._target_=tests.test_lightning.ReadSteps")
    assert ReadSteps.seen[str(tmp_path / "run")] == (2 * BATCHES, 2 * BATCHES, True)
    assert m["train_path"] == "block" and m["global_step"] == 2 * BATCHES
