"""Nested epochs: the longest job of a group writes the shorter jobs' runs from its own first epochs.

Runs that differ only in `trainer.max_epochs` share their first epochs exactly (same seed, same data
order, nothing that reads the epoch count: `sweeps.nest_blocker`). So a run of E epochs is the first E
epochs of a longer one. `Snapshots` keeps, at the moment E epochs are done, what a run of E epochs ends
with: its checkpoints (the best one within E epochs, and the newest) and its end-of-training figures.
After fitting, `write_runs` tests each best-within-E checkpoint and writes the shorter run's folder:
checkpoints, `metrics.json` (with `derived_from`), `metrics.csv`, TensorBoard events, provenance.
"""

from __future__ import annotations

import csv
import shutil
import time
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import OmegaConf

from lstm_cls import metrics as run_metrics
from lstm_cls.checkpoints import write_json_atomic
from lstm_cls.resume import carry_over


def best_checkpoint(best: str, watcher: Any, validated: bool) -> str:
    """What a run tested, for metrics.json ("best_checkpoint"): the checkpoint of the lowest validation
    loss, else its last epoch's weights (no validation ran, or no callback keeps the best)."""
    if best:
        return f"{Path(best).stem} (lowest {watcher.monitor})"
    return "last (no validation)" if not validated else "last (no callback keeps the best)"


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
        kept = ""
        if last and last.is_file():
            kept = str(carry_over(last, ckpts, ckpts / last.name))
        best = ""
        if watcher and watcher.best_model_path:
            best = str(ckpts / Path(watcher.best_model_path).name)
            if not Path(best).exists():
                shutil.copy2(watcher.best_model_path, best)
        self.taken[epochs] = {
            "train": dict(model.epoch_metrics.get("train", {})),
            "val": dict(model.epoch_metrics.get("val", {})),
            "best": best,
            "last": kept,
            "best_score": float(watcher.best_model_score) if best else None,
            # what a run of these epochs tests and says it tested (train.best_checkpoint): with no
            # validation within them (check_val_every_n_epoch > epochs), its last epoch
            "chosen": best_checkpoint(best, watcher, validated=bool(model.epoch_metrics.get("val"))),
            "epochs": trainer.current_epoch,
            "global_step": trainer.global_step,
            "fit_seconds": time.perf_counter() - self.started,
            "wall": time.time(),
            "val_seconds": model.seconds["val"],
        }


def csv_rows(source: Path, epochs: int, test: dict[str, float], target: Path) -> None:
    """Write the longer run's metrics.csv cut to its first `epochs` epochs, and this run's own test row,
    to `target`. Copied as text, never through floats parsed and printed again: every digit is kept, as a
    separate run's CSV logger writes it (its csv.DictWriter: repr of each float, empty for none)."""
    with source.open(newline="") as f:
        reader = csv.DictReader(f)
        columns = list(reader.fieldnames or [])
        table = list(reader)
    tests = [c for c in columns if c.startswith("test/")]
    if "step" not in columns:
        raise RuntimeError(f"{source} has no step column: the shorter run's history cannot be cut from it")

    def step(row: dict[str, str]) -> float:
        try:
            return float(row["step"])
        except (TypeError, ValueError):
            return float("inf")  # no epoch: after every cut

    rows = [r for r in table if not any(r.get(c) for c in tests) and step(r) <= epochs]
    test_row = {c: "" for c in columns} | {"step": epochs} | {k: v for k, v in test.items() if k in columns}
    rows.append(test_row)
    # a column the shorter run never logged (validation only after its epochs) is not in its file either
    columns = [c for c in columns if c == "step" or any(r.get(c) not in ("", None) for r in rows)]
    with target.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


class _FirstEpochs:
    """A SummaryWriter that drops what comes after epoch `epochs` (the histograms the model adds itself)."""

    def __init__(self, writer: Any, epochs: int) -> None:
        self.writer, self.epochs = writer, epochs

    def add_histogram_raw(self, tag: str, *args: Any, global_step: int | None = None, **kw: Any) -> None:
        if global_step is None or global_step <= self.epochs:
            self.writer.add_histogram_raw(tag, *args, global_step=global_step, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.writer, name)


class FirstEpochsLogger(TensorBoardLogger):
    """A shorter job's TensorBoard run, written while the longer job trains: everything logged for its
    first `epochs` epochs, nothing after. (Reading the longer run's events back afterwards took ~2 s each.)
    In its folder `run`, under its own label (`tb/max_epochs=10,...`)."""

    def __init__(self, epochs: int, run: Path) -> None:
        from lstm_cls.tensorboard import tb_version

        self.hydra_cfg = OmegaConf.load(
            run / ".hydra" / "hydra.yaml"
        )  # the shorter job's, read once (~60 ms)
        super().__init__(str(run), name="", version=tb_version(self.hydra_cfg), default_hp_metric=False)
        self.epochs = epochs

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        if step is None or step <= self.epochs:  # the step is the epoch count (the model logs it)
            super().log_metrics(metrics, step)

    @property
    def experiment(self) -> Any:
        return _FirstEpochs(TensorBoardLogger.experiment.fget(self), self.epochs)


def tensorboard_loggers(snapshots: Snapshots) -> dict[int, FirstEpochsLogger]:
    """A TensorBoard run for each shorter job."""
    return {epochs: FirstEpochsLogger(epochs, run) for epochs, run in snapshots.targets.items()}


def tensorboard_end(logger: FirstEpochsLogger, cfg: Any, model: L.LightningModule, metrics: dict) -> None:
    """The shorter run's own test scalars, final values and HParams entry, at its epoch count."""
    from lstm_cls.tensorboard import write_final

    writer = logger.experiment
    for key, value in model.epoch_metrics.get("test", {}).items():
        writer.add_scalar(key, value, logger.epochs)
    shorter = OmegaConf.merge(cfg, {"trainer": {"max_epochs": logger.epochs}})
    write_final(writer, logger.log_dir, shorter, model, metrics, logger.hydra_cfg)
    logger.finalize("success")


def write_runs(
    snapshots: Snapshots,
    model: L.LightningModule,
    dm: L.LightningDataModule,
    long_run: Path,
    long_metrics: dict[str, Any],
    accelerator: str,
    cfg: Any,
    tensorboard: dict[int, FirstEpochsLogger] | None = None,
) -> list[tuple[Path, dict[str, Any]]]:
    """Test each shorter run's best checkpoint and write its folder, `metrics.json` last (the mark of a
    completed run); returns each folder with the metrics written there. `tensorboard`: the shorter runs'
    loggers (`tensorboard_loggers`), if any."""
    from lstm_cls.checkpoints import load
    from lstm_cls.evaluate import tester

    written = []
    # the longer run's metrics.csv and events must not get these tests: a tester logs nothing
    trainer = tester(accelerator)
    for epochs, snap in sorted(snapshots.taken.items()):
        run = snapshots.targets[epochs]
        before = model.seconds["test"]
        # the weights a run of these epochs tests: its best checkpoint (else its newest), loaded here; with
        # ckpt_path= Lightning would warn that this tester lacks the checkpoint callbacks that wrote it
        if not (snap["best"] or snap["last"]):  # sweeps.nest_blocker keeps such a sweep from nesting
            raise RuntimeError(f"no checkpoint of epoch {epochs} was saved: {run} cannot be written")
        tested = load(snap["best"] or snap["last"])
        model.load_state_dict(tested["state_dict"])
        trainer.test(model, datamodule=dm, verbose=False)
        test = dict(model.epoch_metrics.get("test", {}))
        metrics = run_metrics.derived(
            long_metrics,
            run_metrics.scores(
                snap["train"], snap["val"], test, snap["best_score"] if snap["best"] else None
            ),
            {
                "fit_seconds": snap["fit_seconds"],
                "train_seconds": snap["wall"] - model.first_step_at - snap["val_seconds"]
                if model.first_step_at
                else long_metrics.get("train_seconds"),
                "test_seconds": model.seconds["test"] - before,
            },
            best_epoch=tested["epoch"] + 1 if snap["best"] else snap["epochs"],
            best_checkpoint=snap["chosen"],
            epochs=snap["epochs"],
            global_step=snap["global_step"],
            derived_from=long_run.name,  # the job that trained these epochs (same sweep folder)
        )
        csv_rows(long_run / "metrics.csv", snap["epochs"], test, run / "metrics.csv")
        for name in ("hparams.yaml", "provenance.json"):
            if (long_run / name).exists():
                shutil.copy2(long_run / name, run / name)
        (run / "train.log").write_text(
            f"derived from job {long_run.name} of this sweep (nested epochs): it trained these "
            f"{snap['epochs']} epochs as its first, with the same seed and data order\n"
        )
        if tensorboard and epochs in tensorboard:
            tensorboard_end(tensorboard[epochs], cfg, model, metrics)
        write_json_atomic(run / run_metrics.FILE, metrics)
        written.append((run, metrics))
    return written
