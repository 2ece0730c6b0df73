"""Experiment trackers beside TensorBoard and the CSV log: MLflow (`logger=mlflow`), W&B (`logger=wandb`), or
any Lightning logger a `logger` entry names. Each gets the run's settings as it starts and `metrics.json`'s
figures as it ends, so that its last value of each key is the run's final one. TensorBoard gets the same at
the end, through its HParams tab (lstm_cls.tensorboard); the CSV log is what `report` reads, left as it was.

No mlflow, wandb or torch at import: `prepare` imports mlflow only where a `logger` entry is MLflow's.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import importlib.util
import logging
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lstm_cls import UserError
from lstm_cls.entry import in_multirun
from lstm_cls.tensorboard import log_to_tensorboard, run_hparams

if TYPE_CHECKING:
    import lightning as L
    from omegaconf import DictConfig

    from lstm_cls.metrics import RunMetrics

log = logging.getLogger(__name__)

# the package each Lightning logger needs, by the end of its `_target_`
PACKAGES = {
    "MLFlowLogger": "mlflow",
    "WandbLogger": "wandb",
    "CometLogger": "comet_ml",
    "NeptuneLogger": "neptune",
}
SQLITE = "sqlite:///"


def _kind(entry: Any) -> str:
    return str(entry.get("_target_", "") if hasattr(entry, "get") else "").rpartition(".")[2]


def prepare(loggers: Mapping[str, Any] | None) -> None:
    """Before the loggers are built: each tracker's package is installed (else one `error:` line now, not a
    traceback after the data loaded), and an MLflow entry's store and experiment exist."""
    for name, entry in (loggers or {}).items():
        package = PACKAGES.get(_kind(entry))
        if package and importlib.util.find_spec(package) is None:
            extra = " (the lstm_cls[mlflow] extra)" if package == "mlflow" else ""
            raise UserError(
                f"logger.{name} ({entry['_target_']}) needs the {package} package: "
                f"pip install {package}{extra}"
            )
        if package == "mlflow":
            mlflow_experiment(name, entry)


@contextlib.contextmanager
def _store_lock(uri: str, key: str) -> Iterator[None]:
    """One process at a time creates a SQLite store's tables and experiment: the jobs of a parallel sweep
    all start by it, and two creating the tables at once collide. Other stores (a server) need none."""
    if not uri.startswith(SQLITE) or uri.startswith(f"{SQLITE}:memory:"):
        yield
        return
    folder = Path(uri.removeprefix(SQLITE).split("?")[0]).parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"{key}={uri}: its folder {folder} cannot be made ({e.strerror})") from None
    fd = os.open(folder, os.O_RDONLY)  # the store's folder itself: no lock file is left beside the store
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # released as it closes, or as the process ends
        yield
    finally:
        os.close(fd)


def mlflow_experiment(name: str, entry: Mapping[str, Any]) -> str:
    """Create MLflow's store and the entry's experiment where they are new (under `_store_lock`), so that
    the logger finds both; the experiment's id. A new experiment of a SQLite store keeps its artifacts in
    mlartifacts/ beside the file (MLflow's default would be ./mlruns wherever the command ran)."""
    uri = entry.get("tracking_uri") or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        return ""  # Lightning's fallback, a file store under save_dir: MLflow says what it thinks of it
    experiment = entry.get("experiment_name") or "lightning_logs"
    where = entry.get("artifact_location")
    if not where and uri.startswith(SQLITE) and ":memory:" not in uri:
        where = (Path(uri.removeprefix(SQLITE).split("?")[0]).resolve().parent / "mlartifacts").as_uri()
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient  # (importing mlflow sets its loggers' levels: then _quiet)

    with _store_lock(uri, f"logger.{name}.tracking_uri"), _quiet("mlflow", "alembic"):
        try:
            client = MlflowClient(uri)
            found = client.get_experiment_by_name(experiment)
            if found is None:
                if not in_multirun():  # a sweep prints one line per job
                    log.info("MLflow: new experiment %s in %s", experiment, uri)
                try:
                    return client.create_experiment(experiment, artifact_location=where)
                except MlflowException:  # another machine made it first (a server's store): use it
                    found = client.get_experiment_by_name(experiment)
                    if found is None:
                        raise
        except MlflowException as e:
            raise UserError(f"logger.{name}.tracking_uri={uri}: {str(e).strip().splitlines()[0]}") from None
    if found.lifecycle_stage == "deleted":
        raise UserError(
            f"logger.{name}.experiment_name={experiment}: that experiment is deleted in {uri}; restore it "
            f"(mlflow experiments restore --experiment-id {found.experiment_id}) or choose another name"
        )
    return found.experiment_id


@contextlib.contextmanager
def _quiet(*names: str) -> Iterator[None]:
    """Without MLflow's own lines as it creates a store ("Creating initial MLflow database tables...")."""
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _trackers(trainer: L.Trainer) -> list[Any]:
    """The loggers that get the settings and final figures here: all but TensorBoard's (its HParams tab has
    them, lstm_cls.tensorboard) and the CSV log's (`report` reads it; the settings are .hydra/config.yaml)."""
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    return [lg for lg in trainer.loggers if not isinstance(lg, (CSVLogger, TensorBoardLogger))]


def log_settings(trainer: L.Trainer, cfg: DictConfig) -> None:
    """The run's settings as each tracker's parameters, before fitting (the model saves its hyperparameters
    with logger=False): a sweep job's swept settings first, then a single run's (`run_hparams`)."""
    trackers = _trackers(trainer)
    if trackers:
        params = run_hparams(cfg, constant=True)
        for lg in trackers:
            lg.log_hyperparams(params)


def final_figures(metrics: RunMetrics, logged: Mapping[str, float]) -> dict[str, float]:
    """The numbers of `metrics.json` a tracker gets at the run's end: those whose last value logged while
    the run trained (`logged`, each key's) is not that number already (test/acc is; epochs, val/best_loss,
    the counts and seconds are not)."""
    numbers = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return {k: float(v) for k, v in numbers.items() if logged.get(k) != v}


def log_end(trainer: L.Trainer, cfg: DictConfig, model: L.LightningModule, metrics: RunMetrics) -> None:
    """A completed run's end in every logger: TensorBoard's HParams tab, each tracker's `log_figures`."""
    log_to_tensorboard(trainer, cfg, model, metrics)
    log_figures(trainer, model, metrics)


def log_figures(trainer: L.Trainer, model: L.LightningModule, metrics: RunMetrics) -> None:
    """Each tracker's end of a run (a pruned trial's too): at the last epoch's step, the numbers of
    `metrics.json` it does not hold yet (`final_figures`: then each key's last value is the run's final
    figure); MLflow tags the run with the words (status, best_checkpoint...)."""
    from lightning.pytorch.loggers import MLFlowLogger, WandbLogger

    numbers = final_figures(metrics, {k: v for per in model.epoch_metrics.values() for k, v in per.items()})
    words = {k: v for k, v in metrics.items() if isinstance(v, str)}
    for lg in _trackers(trainer):
        lg.log_metrics(numbers, step=int(metrics["epochs"]))
        if isinstance(lg, MLFlowLogger):
            for k, v in words.items():
                lg.experiment.set_tag(lg.run_id, k, v)
        lg.save()
        if isinstance(lg, WandbLogger):  # W&B's run ends here: the next job of a sweep in this process
            lg.experiment.finish()  # would log into it otherwise (Lightning's logger takes wandb.run)


def log_derived(trainer: L.Trainer, cfg: DictConfig, runs: list[tuple[Path, RunMetrics]]) -> None:
    """A sweep's shorter jobs that this job wrote from its first epochs (nested epochs, lstm_cls.nested): an
    MLflow run each, as the job would have logged alone: its settings, every epoch of its metrics.csv, and
    metrics.json's figures at its last epoch. (MLflow's alone: W&B's logger holds one run at a time.)"""
    from lightning.pytorch.loggers import MLFlowLogger
    from omegaconf import OmegaConf

    from lstm_cls.tensorboard import run_name

    for lg in (lg for lg in trainer.loggers if isinstance(lg, MLFlowLogger)):
        for run, metrics in runs:
            hydra = OmegaConf.load(run / ".hydra" / "hydra.yaml")
            shorter = OmegaConf.merge(cfg, {"trainer": {"max_epochs": metrics["epochs"]}})
            tags = {"run_dir": str(run), "mlflow.runName": run_name(hydra) or run.name}
            tags |= {k: v for k, v in metrics.items() if isinstance(v, str)}
            _mlflow_run(
                lg, tags, run_hparams(shorter, hydra, constant=True), _history(run / "metrics.csv"), metrics
            )


def _history(path: Path) -> list[tuple[str, float, int]]:
    """(key, value, step) of each figure a run's metrics.csv holds."""
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    return [
        (k, float(v), int(float(row["step"])))
        for row in rows
        for k, v in row.items()
        if k != "step" and v not in ("", None) and row.get("step") not in ("", None)
    ]


def _mlflow_run(
    lg: Any, tags: dict[str, str], params: dict[str, Any], history: list, metrics: RunMetrics
) -> None:
    """A finished MLflow run in `lg`'s experiment: `tags`, `params`, the `history` of (key, value, step)
    and the final figures of `metrics` not in it yet, just after it, at the run's last epoch."""
    from mlflow.entities import Metric, Param
    from mlflow.tracking.context.registry import resolve_tags

    client, now = lg.experiment, int(time.time() * 1000)
    made = client.create_run(experiment_id=lg.experiment_id, tags=resolve_tags(tags))
    epochs = int(metrics["epochs"])
    final = final_figures(metrics, {k: v for k, v, _ in history})
    figures = [Metric(k, v, now, step) for k, v, step in history]
    figures += [Metric(k, v, now + 1, epochs) for k, v in final.items()]
    settings = [Param(k, str(v)[:250]) for k, v in params.items()]
    for i in range(0, max(len(figures), len(settings)), 100):  # MLflow's limits per batch
        client.log_batch(made.info.run_id, metrics=figures[i : i + 100], params=settings[i : i + 100])
    client.set_terminated(made.info.run_id, "FINISHED")
