"""Nested epochs: the longest job of a group writes the shorter jobs' runs from its own first epochs.

Runs that differ only in `trainer.max_epochs` share their first epochs exactly (same seed, same data
order, nothing that reads the epoch count: `sweeps.nest_blocker`). So a run of E epochs is the first E
epochs of a longer one. `Snapshots` keeps, at the moment E epochs are done, what a run of E epochs ends
with: its checkpoints (the best one within E epochs, and the newest) and its end-of-training figures.
After fitting, `write_runs` tests each best-within-E checkpoint and writes the shorter run's folder:
checkpoints, `metrics.json` (with `derived_from`), `metrics.csv`, TensorBoard events, provenance.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import lightning as L
import pandas as pd

from lstm_cls.checkpoints import carry_over, write_json_atomic

# the figures of a run that depend on how long it trained; everything else is the longer run's own
EPOCH_KEYS = ("train/loss", "train/acc", "val/loss", "val/acc", "val/best_loss", "best_epoch", "epochs")


class Snapshots(L.Callback):
    """At the start of epoch E (E epochs done), keep what a run of `max_epochs=E` would have ended with."""

    def __init__(self, targets: list[dict[str, Any]]) -> None:
        self.targets = {int(t["epochs"]): Path(t["dir"]) for t in targets}
        self.taken: dict[int, dict[str, Any]] = {}
        self.started = 0.0

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.started = time.perf_counter()

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # the checkpoint callbacks saved epoch E's files at its end: they are on disk now
        if trainer.current_epoch in self.targets and trainer.current_epoch not in self.taken:
            self.take(trainer, pl_module, trainer.current_epoch)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # early stopping ended training before some counts: a run of that many epochs stops here too
        for epochs in sorted(set(self.targets) - set(self.taken)):
            self.take(trainer, pl_module, epochs)

    def take(self, trainer: L.Trainer, model: L.LightningModule, epochs: int) -> None:
        if not trainer.is_global_zero:
            return
        run = self.targets[epochs]
        ckpts = run / "checkpoints"
        watcher = next((c for c in trainer.checkpoint_callbacks if getattr(c, "monitor", None)), None)
        newest = next((c for c in trainer.checkpoint_callbacks if not getattr(c, "monitor", None)), None)
        last = Path(newest.best_model_path) if newest and newest.best_model_path else None
        # the newest checkpoint, with the checkpoint callbacks' state pointing into the shorter run's
        # folder (its best file is copied beside it): resuming it continues that run, not this one
        if last and last.is_file():
            carry_over(last, ckpts, ckpts / last.name)
        best = ""
        if watcher and watcher.best_model_path:
            best = str(ckpts / Path(watcher.best_model_path).name)
            if not Path(best).exists():
                shutil.copy2(watcher.best_model_path, best)
        self.taken[epochs] = {
            "train": dict(model.epoch_metrics.get("train", {})),
            "val": dict(model.epoch_metrics.get("val", {})),
            "best": best,
            "best_score": float(watcher.best_model_score) if best else None,
            "epochs": trainer.current_epoch,
            "global_step": trainer.global_step,
            "fit_seconds": time.perf_counter() - self.started,
            "wall": time.time(),
            "val_seconds": model.seconds["val"],
        }


def csv_rows(source: Path, epochs: int, test: dict[str, float]) -> pd.DataFrame:
    """The longer run's metrics.csv cut to its first `epochs` epochs, and this run's own test row."""
    table = pd.read_csv(source)
    tests = [c for c in table.columns if c.startswith("test/")]
    testing = table[tests].notna().any(axis=1) if tests else pd.Series(False, index=table.index)
    rows = table[~testing & (table["step"] <= epochs)]
    test_row = (
        {c: None for c in table.columns} | {"step": epochs} | {k: v for k, v in test.items() if k in table}
    )
    return pd.concat([rows, pd.DataFrame([test_row])], ignore_index=True)


def tensorboard_events(
    source: Path, run: Path, cfg: Any, model: L.LightningModule, metrics: dict[str, Any], epochs: int
) -> None:
    """The shorter run's TensorBoard run: the longer run's per-epoch scalars and weight histograms of its
    first `epochs` epochs, then its own test scalars, final values and HParams entry."""
    from omegaconf import OmegaConf
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter

    from lstm_cls.tensorboard import FINAL, TB_DIR, job_label, write_final

    hydra_cfg = OmegaConf.load(run / ".hydra" / "hydra.yaml")
    label = job_label(hydra_cfg)
    log_dir = run / TB_DIR / label if label else run
    events = EventAccumulator(str(source), size_guidance={"scalars": 0, "histograms": 0})
    events.Reload()
    writer = SummaryWriter(str(log_dir))
    tags = events.Tags()
    for tag in tags.get("scalars", []):
        if tag.startswith(("test/", FINAL)):  # the longer run's test and end: this run has its own
            continue
        for e in events.Scalars(tag):
            if e.step <= epochs:
                writer.add_scalar(tag, e.value, e.step, walltime=e.wall_time)
    for tag in tags.get("histograms", []):
        for e in events.Histograms(tag):
            if e.step <= epochs:
                h = e.histogram_value
                writer.add_histogram_raw(
                    tag,
                    h.min,
                    h.max,
                    h.num,
                    h.sum,
                    h.sum_squares,
                    h.bucket_limit,
                    h.bucket,
                    e.step,
                    e.wall_time,
                )
    for key, value in model.epoch_metrics.get("test", {}).items():
        writer.add_scalar(key, value, epochs)
    write_final(
        writer, log_dir, OmegaConf.merge(cfg, {"trainer": {"max_epochs": epochs}}), model, metrics, hydra_cfg
    )
    writer.close()


def write_runs(
    snapshots: Snapshots,
    model: L.LightningModule,
    dm: L.LightningDataModule,
    long_run: Path,
    long_metrics: dict[str, Any],
    accelerator: str,
    cfg: Any,
    tensorboard_dir: str | None = None,
) -> list[Path]:
    """Test each shorter run's best checkpoint and write its folder, `metrics.json` last (the mark of a
    completed run). `tensorboard_dir`: the longer run's TensorBoard folder (None: no TensorBoard logger)."""
    from lstm_cls.checkpoints import load

    written = []
    for epochs, snap in sorted(snapshots.taken.items()):
        run = snapshots.targets[epochs]
        # a Trainer without loggers: the longer run's metrics.csv and events must not get these tests
        tester = L.Trainer(
            accelerator=accelerator,
            devices=1,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
        )
        before = model.seconds["test"]
        tester.test(model, datamodule=dm, ckpt_path=snap["best"] or None, verbose=False, weights_only=True)
        test = dict(model.epoch_metrics.get("test", {}))
        metrics = dict(long_metrics)
        metrics.update({k: snap["train"].get(k) for k in ("train/loss", "train/acc")})
        metrics.update({k: snap["val"].get(k) for k in ("val/loss", "val/acc")})
        metrics["val/best_loss"] = snap["best_score"] if snap["best"] else snap["val"].get("val/loss")
        metrics.update({f"test/{k}": test.get(f"test/{k}") for k in ("loss", "acc", "f1", "auroc")})
        if long_metrics.get("test/auroc") is None and "test/auroc_undefined" in long_metrics:
            metrics["test/auroc"] = None  # the same test split misses the same class
        metrics["best_epoch"] = load(snap["best"])["epoch"] + 1 if snap["best"] else snap["epochs"]
        metrics["epochs"] = snap["epochs"]
        metrics["global_step"] = snap["global_step"]
        metrics["fit_seconds"] = round(snap["fit_seconds"], 3)
        if model.first_step_at:
            metrics["train_seconds"] = round(snap["wall"] - model.first_step_at - snap["val_seconds"], 3)
        metrics["test_seconds"] = round(model.seconds["test"] - before, 3)
        metrics["derived_from"] = long_run.name  # the job that trained these epochs (same sweep folder)
        csv_rows(long_run / "metrics.csv", snap["epochs"], test).to_csv(run / "metrics.csv", index=False)
        for name in ("hparams.yaml", "provenance.json"):
            if (long_run / name).exists():
                shutil.copy2(long_run / name, run / name)
        (run / "train.log").write_text(
            f"derived from job {long_run.name} of this sweep (nested epochs): it trained these "
            f"{snap['epochs']} epochs as its first, with the same seed and data order\n"
        )
        if tensorboard_dir is not None:
            tensorboard_events(Path(tensorboard_dir), run, cfg, model, metrics, snap["epochs"])
        write_json_atomic(run / "metrics.json", metrics)
        written.append(run)
    return written
