"""Optuna's study as the sweeper and its trials share it (`hparams_search=optuna`), and the pruning callback.

The sweeper (`hydra_plugins/lstm_cls_sweeper/optuna_sweeper.py`) creates the study before any job starts
and gives each job its trial's number (`hydra.sweeper.trial`). A job re-attaches to that trial through the
study's storage (by study name and trial number), reports `val/loss` after every validation epoch and asks
the pruner, built from the same `hydra.sweeper.pruner` as the sweeper's, whether to stop. A pruned trial
stops at the end of that epoch, as early stopping does; its metrics.json says `"status": "pruned"` and the
epochs it trained, and the sweeper tells Optuna the trial was pruned.

No torch here at import (the sweeper imports this module in Hydra's process); Optuna loads when used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

DB = "optuna.db"  # the study's SQLite file, beside the sweep's job folders, unless hydra.sweeper.storage
MONITOR = "val/loss"  # what each epoch reports to the pruner


def storage_url(storage: str | None, sweep_dir: Path | str) -> str:
    """`hydra.sweeper.storage`, or the sweep's own SQLite file (an absolute path: every job finds it)."""
    return storage or f"sqlite:///{(Path(sweep_dir) / DB).resolve()}"


def storage(url: str) -> Any:
    """Optuna's storage for `url`; SQLite waits up to a minute for a lock, as jobs report side by side."""
    import optuna

    if url.startswith("sqlite:"):
        return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})
    return optuna.storages.get_storage(url)


def pruner(node: Any) -> Any:
    """`hydra.sweeper.pruner` built: a `_target_` node (optuna.pruners.MedianPruner...), or none (null)."""
    import optuna
    from hydra.utils import instantiate

    return instantiate(node) if node else optuna.pruners.NopPruner()


def trial(study_name: str, url: str, number: int, pruner_node: Any) -> Any:
    """Trial `number` of the study, re-attached through its storage, with the sweeper's pruner."""
    import optuna

    store = storage(url)
    study = optuna.load_study(study_name=study_name, storage=store, pruner=pruner(pruner_node))
    study_id = store.get_study_id_from_name(study_name)
    return optuna.trial.Trial(study, store.get_trial_id_from_study_id_trial_number(study_id, number))


def callback(run_dir: Path) -> Any:
    """In a job of Optuna's sweeper, the callback that reports to its trial; None in any other run."""
    from hydra.core.hydra_config import HydraConfig

    from lstm_cls.entry import in_multirun

    if not in_multirun():
        return None
    h = HydraConfig.get()
    number = h.sweeper.get("trial")
    if number is None:
        return None
    url = storage_url(h.sweeper.get("storage"), h.sweep.dir)
    return _callback_class()(lambda: trial(h.sweeper.study_name, url, number, h.sweeper.get("pruner")))


def _callback_class() -> type:
    """The Lightning callback, made here so that importing this module never imports Lightning."""
    import lightning as L

    from lstm_cls import metrics
    from lstm_cls.checkpoints import write_json_atomic

    class Pruning(L.Callback):
        """Reports `val/loss` after each validation epoch to the trial; stops training where the pruner says
        so (on every process, under DDP: the first one decides). Lightning's public hooks only."""

        def __init__(self, attach: Any) -> None:
            self.attach, self.trial, self.pruned_at = attach, None, None

        def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            if trainer.is_global_zero:
                self.trial = self.attach()

        def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            if trainer.sanity_checking:
                return
            prune = False
            epoch = trainer.current_epoch + 1  # epochs trained, as metrics.json counts them
            loss = trainer.callback_metrics.get(MONITOR)
            if trainer.is_global_zero and self.trial is not None and loss is not None:
                self.trial.report(float(loss), step=epoch)
                prune = self.trial.should_prune()
            if trainer.world_size > 1:
                prune = trainer.strategy.broadcast(prune)
            if prune:
                trainer.should_stop, self.pruned_at = True, epoch

        def finish(self, trainer: L.Trainer, model: Any, run_dir: Path) -> dict[str, Any]:
            """A pruned run's metrics.json (how far it got), written by the first process; returned."""
            em = model.epoch_metrics
            m = metrics.pruned(
                em.get("train", {}), em.get("val", {}), trainer.current_epoch, trainer.global_step
            )
            if trainer.is_global_zero:
                write_json_atomic(run_dir / metrics.FILE, m)
            return dict(m)

    return Pruning
