"""Checkpoints are data, and resume works from any checkpoint the project saved (issue 20).

Each row: what was done to or with a checkpoint, and what must happen (an `error:` naming it, or a run that
works). Nothing in a checkpoint runs, and no path recorded in one is opened, copied or trusted.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch

from lstm_cls import UserError

from .conftest import TINY, compose_cfg, run_cli
from .helpers import updown_table

WINDOW = 5


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def files(folder: Path) -> dict[Path, str]:
    """Every file under `folder` and its checksum."""
    return {p: digest(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def csv_args(data: Path, *more: str) -> list[str]:
    return [
        "data=csv",
        f"data.path={data}",
        "data.target=label",
        f"data.window={WINDOW}",
        "model.hidden=4",
        "trainer.max_epochs=2",
        "callbacks.progress_bar.refresh_rate=0",
        *more,
    ]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny csv model trained in-process (`<tmp>/run/checkpoints/{best,last}.ckpt`), its data beside it
    (`<tmp>/train.csv`, also the file the tools read)."""
    from lstm_cls.train import train

    tmp = tmp_path_factory.mktemp("trained")
    updown_table(200, 0).to_csv(tmp / "train.csv", index=False)
    train(compose_cfg(f"run_dir={tmp / 'run'}", *csv_args(tmp / "train.csv")))
    return tmp / "run"


def edited(src: Path, dst: Path, edit: Any) -> Path:
    """The checkpoint at `src`, changed by `edit(ckpt)`, saved as plain data at `dst`."""
    ckpt = torch.load(src, weights_only=True)
    edit(ckpt)
    dst.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, dst)
    return dst


class Runs:
    """What a checkpoint that holds code tries to do: write a file (never written: nothing is unpickled)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"echo ran > {self.marker}",))


def code_checkpoint(real: Path, path: Path, marker: Path) -> Path:
    """An intact lstm_cls checkpoint, every key in place, that also carries a pickled os.system call."""
    return edited(
        real, path, lambda c: c.__setitem__("hyper_parameters", {**c["hyper_parameters"], "x": Runs(marker)})
    )


# 1. a checkpoint that holds code: refused as such, in every tool, and never run


def tool_main(tool: str) -> Any:
    from lstm_cls import evaluate, export, predict

    return {"predict": predict.main, "evaluate": evaluate.main, "export": export.main}[tool]


def tool_args(tool: str, ckpt: Path, data: Path, out: Path) -> list[str]:
    if tool == "export":
        return [f"ckpt_path={ckpt}", f"output={out / 'model.onnx'}"]
    suffix = ".json" if tool == "evaluate" else ".csv"
    return [f"ckpt_path={ckpt}", f"data.path={data}", f"output={out / ('scores' + suffix)}"]


@pytest.mark.parametrize("tool", ["predict", "evaluate", "export"])
def test_a_checkpoint_holding_code_is_refused_as_code_by_every_tool(trained, tmp_path, tool):
    marker = tmp_path / "ran.txt"
    ckpt = code_checkpoint(trained / "checkpoints/best.ckpt", tmp_path / "best.ckpt", marker)
    with pytest.raises(UserError) as e:
        tool_main(tool)(tool_args(tool, ckpt, trained.parent / "train.csv", tmp_path / "out"))
    assert str(e.value).startswith(f"ckpt_path: {ckpt} holds code; not loaded"), e.value
    assert "posix.system" in str(e.value) and "corrupt" not in str(e.value)
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_resume_from_a_checkpoint_holding_code_is_refused_as_code(trained, tmp_path):
    # (exit code 2 and no run folder left: the CLI row of section 4, the same refusal path)
    from lstm_cls.train import train

    marker = tmp_path / "ran.txt"
    ckpt = code_checkpoint(trained / "checkpoints/last.ckpt", tmp_path / "last.ckpt", marker)
    cfg = compose_cfg(
        f"run_dir={tmp_path / 'run'}", *csv_args(trained.parent / "train.csv", f"ckpt_path={ckpt}")
    )
    with pytest.raises(UserError) as e:
        train(cfg)
    assert str(e.value).startswith(f"ckpt_path: {ckpt} holds code; not loaded"), e.value
    assert not marker.exists() and not (tmp_path / "run/checkpoints").exists()


def test_code_is_told_apart_from_damage(trained, tmp_path):
    from lstm_cls.checkpoints import load

    marker = tmp_path / "ran.txt"
    whole = code_checkpoint(trained / "checkpoints/best.ckpt", tmp_path / "code.ckpt", marker)
    torch.save(torch.nn.Linear(2, 2), module := tmp_path / "module.ckpt")  # torch.save(model): classes
    (cut := tmp_path / "cut.ckpt").write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    for path, words in [
        (whole, "holds code; not loaded (it names posix.system"),
        (module, "holds code; not loaded (it names torch.nn.modules.linear.Linear"),
        (cut, "is truncated or corrupt"),
    ]:
        with pytest.raises(UserError) as e:
            load(path)
        assert str(e.value).startswith(f"ckpt_path: {path} {words}"), e.value
    assert not marker.exists()


# 2. no path inside a checkpoint is opened, copied or trusted


def pointing_at(target: Path, dirpath: Path) -> Any:
    """An edit that makes every ModelCheckpoint record name `target` (and its folder `dirpath`)."""

    def edit(ckpt: dict[str, Any]) -> None:
        for state in ckpt["callbacks"].values():
            if "dirpath" in state:
                score = state.get("best_model_score")
                state.update(
                    dirpath=str(dirpath),
                    best_model_path=str(target),
                    kth_best_model_path=str(target),
                    last_model_path=str(target),
                    best_k_models={str(target): score if score is not None else torch.tensor(0.0)},
                )

    return edit


@pytest.mark.parametrize("what", ["a file of the user", "a real checkpoint elsewhere"])
def test_a_path_recorded_in_a_checkpoint_is_never_opened_copied_or_removed(trained, tmp_path, what):
    from lstm_cls.train import train

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    if what == "a file of the user":
        (secret := elsewhere / "secret.txt").write_text("my private notes\n")
    else:  # the same model's best checkpoint, even: still not where the checkpoint given lives
        (secret := elsewhere / "best.ckpt").write_bytes((trained / "checkpoints/best.ckpt").read_bytes())
    before = files(elsewhere)
    given = edited(
        trained / "checkpoints/last.ckpt", tmp_path / "given/last.ckpt", pointing_at(secret, elsewhere)
    )
    data = trained.parent / "train.csv"
    m = train(
        compose_cfg(
            f"run_dir={tmp_path / 'new'}", *csv_args(data, "trainer.max_epochs=3", f"ckpt_path={given}")
        )
    )
    assert m["status"] == "completed" and m["epochs"] == 3
    assert files(elsewhere) == before  # still there, unchanged
    new = files(tmp_path / "new")
    assert digest(secret) not in new.values()  # its bytes nowhere in the new run
    assert sorted(p.name for p in (tmp_path / "new/checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    # the new run's own checkpoints record only its own folder
    for state in torch.load(tmp_path / "new/checkpoints/last.ckpt", weights_only=True)["callbacks"].values():
        if "dirpath" in state:
            for p in [state["best_model_path"], state["last_model_path"], *state["best_k_models"]]:
                assert not p or Path(p).parent == (tmp_path / "new/checkpoints").resolve(), p


def test_the_best_checkpoint_beside_the_one_given_is_carried_only_if_it_is_the_recorded_one(
    trained, tmp_path
):
    from lstm_cls.resume import carry_over

    source = tmp_path / "old/checkpoints"
    source.mkdir(parents=True)
    last = source / "last.ckpt"
    last.write_bytes((trained / "checkpoints/last.ckpt").read_bytes())
    best = source / "best.ckpt"
    best.write_bytes((trained / "checkpoints/best.ckpt").read_bytes())
    out = carry_over(last, tmp_path / "a/checkpoints", tmp_path / "a/.resume.ckpt")
    assert (tmp_path / "a/checkpoints/best.ckpt").read_bytes() == best.read_bytes()
    watcher = next(s for s in torch.load(out, weights_only=True)["callbacks"].values() if s.get("monitor"))
    assert watcher["best_model_path"] == str((tmp_path / "a/checkpoints/best.ckpt").resolve())
    # another run's best.ckpt in its place (another best score): not taken, the record dropped
    edited(
        best, best, lambda c: [s.update(best_model_score=torch.tensor(-1.0)) for s in c["callbacks"].values()]
    )
    out = carry_over(last, tmp_path / "b/checkpoints", tmp_path / "b/.resume.ckpt")
    assert not (tmp_path / "b/checkpoints/best.ckpt").exists()
    watcher = next(s for s in torch.load(out, weights_only=True)["callbacks"].values() if s.get("monitor"))
    assert watcher["best_model_path"] == "" and watcher["best_model_score"] is None


# 3. resume from a checkpoint saved mid-epoch (Ctrl-C, SIGTERM), both training paths


class SignalAt(L.Callback):
    """Sends this process `sig` just before optimizer step `step`: a Ctrl-C or a cluster's SIGTERM landing
    mid-epoch. (on_before_optimizer_step keeps the block path: it is no per-batch hook.)"""

    def __init__(self, step: int, sig: int) -> None:
        self.step, self.sig, self.sent = step, sig, False

    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Any
    ) -> None:
        if trainer.global_step == self.step and not self.sent:
            self.sent = True
            signal.raise_signal(self.sig)


@pytest.fixture
def keep_signal_handlers() -> Iterator[None]:
    # Lightning sets SIGINT to ignored after a Ctrl-C: this process's handlers are put back
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for s, h in saved.items():
        signal.signal(s, h)


@pytest.mark.usefixtures("keep_signal_handlers")
@pytest.mark.parametrize(
    ("path", "sig", "code"),
    [
        # blocks of 4 batches: Lightning looks for SIGTERM between blocks, so the epoch needs several
        ("data.block=4", signal.SIGINT, 130),
        ("fast=false", signal.SIGINT, 130),
        ("data.block=4", signal.SIGTERM, 143),
        ("fast=false", signal.SIGTERM, 143),
    ],
)
def test_resume_from_a_checkpoint_saved_mid_epoch(tmp_path, path, sig, code):
    from lstm_cls.train import train

    stop = [
        "+callbacks.stop._target_=tests.test_ckpt_trust.SignalAt",
        "+callbacks.stop.step=5",  # of 13 steps an epoch: inside the first epoch
        f"+callbacks.stop.sig={int(sig)}",
    ]
    first = tmp_path / "first"
    with pytest.raises(SystemExit) as e:
        train(compose_cfg(f"run_dir={first}", *TINY, path, *stop))
    assert e.value.code == code
    assert json.loads((first / "metrics.json").read_text())["status"] == "interrupted"
    last = first / "checkpoints/last.ckpt"
    saved = torch.load(last, weights_only=True)
    assert saved["epoch"] == 0 and 0 < saved["global_step"] < 13  # mid-epoch
    m = train(compose_cfg(f"run_dir={tmp_path / 'resumed'}", *TINY, path, f"ckpt_path={last}"))
    assert m["status"] == "completed" and m["epochs"] == 2
    # the interrupted epoch goes on (standard path: its remaining batches) or, in the block path, its
    # interrupted block is taken again: never fewer steps than the run that never stopped
    assert m["global_step"] >= 26
    if path == "fast=false":
        assert m["global_step"] == 26
    rows = list(csv.DictReader((tmp_path / "resumed/metrics.csv").open()))
    assert any(r.get("train/loss") for r in rows) and any(r.get("lr") for r in rows)


# 4. resume with other settings: refused first, naming the setting and both values


@pytest.mark.parametrize(
    ("typed", "words"),
    [
        ("model.hidden=6", "model.hidden=4 (this run: 6)"),
        ("model.head=3", "model.head=10 (this run: 3)"),
        ("model.lr=0.01", "model.lr=0.001 (this run: 0.01)"),
        ("model.bidirectional=true", "model.bidirectional=false (this run: true)"),
        ("data.features=[a]", 'data.features=["a", "b"] (this run: ["a"])'),
        ("data.window=7", "data.window=5 (this run: 7)"),
        ("fast=false", "the block training path (this run: Lightning's standard path, for fast=false)"),
    ],
)
def test_resume_with_other_settings_is_refused_naming_them(trained, tmp_path, typed, words):
    from lstm_cls.train import train

    last = trained / "checkpoints/last.ckpt"
    cfg = compose_cfg(
        f"run_dir={tmp_path / 'run'}", *csv_args(trained.parent / "train.csv", typed, f"ckpt_path={last}")
    )
    with pytest.raises(UserError) as e:
        train(cfg)
    assert str(e.value).startswith(f"ckpt_path: {last} was trained with "), e.value
    assert words in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "run/checkpoints").exists()


def test_resume_of_another_shape_is_one_error_line_and_leaves_no_run(trained, tmp_path):
    last = trained / "checkpoints/last.ckpt"
    before = files(trained)
    run = tmp_path / "run"
    r = run_cli(
        *csv_args(trained.parent / "train.csv", "model.hidden=6", f"ckpt_path={last}"), f"hydra.run.dir={run}"
    )
    assert r.returncode == 2, r.stderr[-2000:]
    assert (
        r.stderr.strip()
        .splitlines()[-1]
        .startswith(f"error: ckpt_path: {last} was trained with model.hidden=4")
    )
    assert "Traceback" not in r.stderr and "size mismatch" not in r.stderr and not run.exists()
    assert files(trained) == before


# 5. a checkpoint whose parts disagree, given to predict / evaluate / export


def set_info(**changes: Any) -> Any:
    return lambda c: c["data_info"].update(changes)


def drop_info(key: str) -> Any:
    return lambda c: c["data_info"].pop(key)


def set_hparams(**changes: Any) -> Any:
    return lambda c: c["hyper_parameters"].update(changes)


def shrink_weight(key: str) -> Any:
    return lambda c: c["state_dict"].update({key: c["state_dict"][key][:, :1]})


INCONSISTENT = [
    (set_info(feature_names=["a"]), "its data_info lists 1 features, its model takes 2"),
    (set_info(class_names=["down", "up", "side"]), "its data_info lists 3 classes, its model has 2"),
    (set_info(class_names="down"), "its data_info.class_names is down, not a list of names"),
    (set_info(feature_names=["a", "a"]), "its data_info.feature_names names one column twice"),
    (set_info(mean=[0.0]), "its data_info.mean is [0.0], not 2 finite numbers"),
    (set_info(std=[1.0, 0.0]), "its data_info.std holds a scale <= 0"),
    (drop_info("window"), "its data_info has no window"),
    (set_info(stride="1"), "its data_info.stride is 1, not an integer >= 1"),
    (set_info(nan="zero"), "its data_info.nan is zero, not one of ffill, drop, error"),
    (set_info(clip=-1.0), "its data_info.clip is -1.0, not a number > 0"),
    (set_hparams(n_features=3), "its data_info lists 2 features, its model takes 3"),
    (set_hparams(hidden=5), "its weight net.lstm.weight_ih_l0 is [16, 2], its hyper_parameters"),
    (shrink_weight("net.fc1.weight"), "its weight net.fc1.weight is [10, 1]"),
    (lambda c: c["state_dict"].pop("net.fc2.bias"), "it lacks net.fc2.bias"),
    (set_hparams(hidden="four"), "its hyper_parameters build no network"),
]


@pytest.mark.parametrize("tool", ["predict", "evaluate", "export"])
@pytest.mark.parametrize(("edit", "words"), INCONSISTENT)
def test_a_checkpoint_whose_parts_disagree_is_named_by_every_tool(trained, tmp_path, tool, edit, words):
    ckpt = edited(trained / "checkpoints/best.ckpt", tmp_path / "best.ckpt", edit)
    with pytest.raises(UserError) as e:
        tool_main(tool)(tool_args(tool, ckpt, trained.parent / "train.csv", tmp_path / "out"))
    msg = str(e.value)
    assert msg.startswith(f"ckpt_path: {ckpt} is inconsistent: ") and words in msg, msg
    assert "\n" not in msg and not (tmp_path / "out").exists()


# 6. a class missing from validation or test: no AUROC logged for that split, as metrics.json says


def test_a_split_without_a_class_logs_no_auroc_anywhere(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from lstm_cls.train import train

    rng = np.random.default_rng(0)
    n = 240
    label = np.where(np.arange(n) < 150, rng.integers(0, 2, n), 0)  # after row 150: class 0 only
    pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "y": label}).to_csv(
        p := tmp_path / "t.csv", index=False
    )
    run = tmp_path / "run"
    args = ["data=csv", f"data.path={p}", "data.target=y", "data.window=4", "model.hidden=4"]
    m = train(
        compose_cfg(f"run_dir={run}", *args, "trainer.max_epochs=2", "callbacks.progress_bar.refresh_rate=0")
    )
    assert m["classes/val/1"] == 0 and m["classes/test/1"] == 0 and m["classes/train/1"] > 0
    assert m["test/auroc"] is None
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert any(r.get("val/loss") for r in rows) and any(r.get("test/loss") for r in rows)
    assert not any(r.get("val/auroc") or r.get("test/auroc") for r in rows), rows
    assert any(r.get("train/auroc") for r in rows)  # the training windows hold both classes: logged
    events = EventAccumulator(str(run), size_guidance={"scalars": 0})
    events.Reload()
    tags = events.Tags()["scalars"]
    assert "val/loss" in tags and "train/auroc" in tags
    assert "val/auroc" not in tags and "test/auroc" not in tags
