"""Train one run: `python -m lstm_cls.train [overrides]` (Hydra; `-m` for sweeps)."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hydra
from omegaconf import DictConfig, OmegaConf

from lstm_cls import STARTED, UserError, config, pruning, rundir, trackers
from lstm_cls import metrics as run_metrics
from lstm_cls.checkpoints import write_json_atomic
from lstm_cls.entry import cli, in_multirun, rank_zero, run_task
from lstm_cls.tensorboard import register_resolver

if TYPE_CHECKING:
    import lightning as L

ROOT = Path(__file__).resolve().parents[1]

# torch and lightning take ~4 s to import: they load in train(), after the settings were checked

log = logging.getLogger(__name__)


def quiet_libraries() -> None:
    """Silence what the README explains once, in every process that trains (called by `fit_and_test`, once
    Lightning is imported: a sweep's job may run in a process of its own)."""
    # num_workers=0 is deliberate: worker processes only compete with training for 2 cores
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    # the run directory already holds Hydra's .hydra/ when the CSV logger starts (and nothing is deleted)
    warnings.filterwarnings("ignore", ".*exists and is not empty.*")
    warnings.filterwarnings("ignore", ".*LeafSpec.*is deprecated.*")  # inside Lightning 2.6 itself
    warnings.filterwarnings("ignore", ".*smaller than the logging interval.*")  # nothing is logged per step
    # validation off (limit_val_batches=0): the best-checkpoint callback has nothing to watch, and the run
    # tests its last epoch instead (metrics.json: best_checkpoint). With validation run, Lightning raises
    warnings.filterwarnings("ignore", ".*could not find the monitored key.*")
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(getattr(f, "__name__", "") == "no_tips" for f in rank_zero.filters):

        def no_tips(r: logging.LogRecord) -> bool:  # an advertisement for a cloud logger, every run
            return "litlogger" not in r.getMessage()

        rank_zero.addFilter(no_tips)
    # Lightning gives its loggers console handlers of their own ("INFO: ..." on stderr): its lines then
    # came twice, once there and once through Hydra's handlers. One way: through Hydra's (console and
    # train.log), which a sweep job turns to its train.log alone
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        lg = logging.getLogger(name)
        for h in list(lg.handlers):
            if type(h) is logging.StreamHandler:
                lg.removeHandler(h)
        lg.propagate = True


def write_provenance(run_dir: Path) -> None:
    """What made this run, beside Hydra's composed config: version, git commit, command, libraries."""
    import lightning
    import torch

    from lstm_cls import __version__

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    in_checkout = (ROOT / ".git").exists()
    made = {
        "version": __version__,
        "git_commit": git("rev-parse", "HEAD") if in_checkout else None,
        "git_dirty": bool(git("status", "--porcelain")) if in_checkout else None,
        "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "lightning": lightning.__version__,
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(run_dir / "provenance.json", made)


def resolve_class_weights(setting: Any, train_labels: Any, n_classes: int) -> list[float] | None:
    """model.class_weights -> one plain float per class: "balanced" is n / (classes * count), as in
    scikit-learn, from the training windows' labels."""
    if setting in (None, "none"):
        return None
    if setting == "balanced":
        import torch

        counts = torch.bincount(train_labels, minlength=n_classes).double()
        return (len(train_labels) / (n_classes * counts.clamp(min=1))).tolist()
    if len(setting) != n_classes:
        raise UserError(f"model.class_weights has {len(setting)} weights, the data has {n_classes} classes")
    return [float(w) for w in setting]


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit, test the best checkpoint, write `metrics.json`; returns its content."""
    register_resolver()  # the TensorBoard logger's version (conf/logger/tensorboard.yaml), whoever calls
    config.check(cfg, multirun=in_multirun())
    trackers.prepare(cfg.get("logger"))  # their packages; MLflow's store, made by one job at a time
    run_dir = Path(cfg.run_dir)
    if not rank_zero():  # another process of a DDP run (Lightning's, torchrun's, srun's): the first holds it
        return fit_and_test(cfg, run_dir)
    found = [f for f in rundir.conflicts(run_dir) if f != ".hydra"]  # Hydra wrote this run's own
    if found and in_multirun() and os.environ.get("SUBMITIT_EXECUTOR"):  # requeued: resumes (requeue.py)
        from lstm_cls import requeue

        done, found = requeue.resume(cfg, run_dir), []
        if done is not None:
            return done
    if found:
        raise UserError(
            f"{run_dir} already holds {', '.join(found)}: runs never write over results or your files; "
            "choose another directory"
        )
    rundir.acquire(run_dir)  # released on every way out, Ctrl-C and errors included
    try:
        return fit_and_test(cfg, run_dir)
    finally:
        rundir.release(run_dir)


def fit_and_test(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    import lightning as L
    import torch
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from lstm_cls.checkpoints import AtomicCheckpointIO, load
    from lstm_cls.fast_path import standard_path_reasons
    from lstm_cls.resume import carry_over

    quiet_libraries()  # Lightning is imported now: its own console handler can go
    multirun = in_multirun()
    # a sweep prints one line per job (`job_line`); the rest of a job's output goes to its train.log
    say = log.info if multirun else print
    if multirun:
        root = logging.getLogger()
        for h in list(root.handlers):
            if type(h) is logging.StreamHandler:  # Hydra's console handler; its file handler stays
                root.removeHandler(h)

    accelerator = str(cfg.trainer.get("accelerator"))
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise UserError(
            f"trainer.accelerator={accelerator}: torch {torch.__version__} sees no CUDA GPU on this machine; "
            "train on the CPU with trainer=default"
        )
    torch.set_num_threads(cfg.threads)
    L.seed_everything(cfg.seed, workers=True, verbose=False)

    dm = hydra.utils.instantiate(cfg.data)
    dm.setup("fit")
    n_classes = len(dm.class_names)
    if cfg.model.loss == "bce" and n_classes != 2:
        raise UserError(f"model.loss=bce needs 2 classes, the data has {n_classes}")
    train_labels = dm.sets["train"].labels()
    weights = resolve_class_weights(cfg.model.get("class_weights"), train_labels, n_classes)
    model = hydra.utils.instantiate(
        cfg.model, n_features=dm.n_features, n_classes=n_classes, class_weights=weights, _convert_="all"
    )
    model.data_info = dm.info()
    say(model.summary())
    # windows per class of each split, by class name
    counts = {
        s: dict(zip(dm.class_names, torch.bincount(w.labels(), minlength=n_classes).tolist(), strict=True))
        for s, w in dm.sets.items()
    }
    absent = {s: [c for c, k in per.items() if k == 0] for s, per in counts.items()}
    for split, per in counts.items():
        say(f"{split} windows per class: " + ", ".join(f"{c} {k:,}" for c, k in per.items()))
        if absent[split] and split != "train":  # a chronological split of real data can miss a rare class
            log.warning(
                "the %s windows hold no class %s: its per-class scores are undefined", split, absent[split]
            )
    shares = torch.tensor(list(counts["train"].values())) / len(train_labels)
    # on a small archive "epochs" is a poor unit: say how many optimizer steps the recipe gets
    steps, epochs = -(-len(train_labels) // cfg.data.batch_size), cfg.trainer.max_epochs
    total = f", {steps * epochs:,} over {epochs} epochs" if epochs and epochs > 0 else ""
    rows = f"{len(train_labels):,} rows, batch {cfg.data.batch_size}"
    say(f"optimizer steps: {steps:,} per epoch ({rows}){total}")

    loggers = [build(f"logger.{k}", c) for k, c in (cfg.get("logger") or {}).items()]
    callbacks = [build(f"callbacks.{k}", c) for k, c in (cfg.get("callbacks") or {}).items()]
    if multirun:  # no progress bars from jobs running side by side: one line per job at its end
        callbacks = [c for c in callbacks if not isinstance(c, L.pytorch.callbacks.ProgressBar)]
    pruner = pruning.callback(run_dir)  # a trial of hparams_search=optuna: val/loss to its pruner each epoch
    callbacks += [pruner] if pruner else []
    snapshots, shorter_tb = nested_snapshots(run_dir), {}
    if snapshots:  # this job's first epochs are shorter jobs of the sweep: keep what they end with
        from lstm_cls.nested import tensorboard_loggers

        callbacks.append(snapshots)
        if any(isinstance(lg, L.pytorch.loggers.TensorBoardLogger) for lg in loggers):
            shorter_tb = tensorboard_loggers(snapshots)  # fed while this run trains, up to their epochs
            loggers.extend(shorter_tb.values())
    trainer_cfg = OmegaConf.to_container(cfg.trainer, resolve=True)
    if multirun:
        trainer_cfg["enable_progress_bar"] = False
    reasons = standard_path_reasons(trainer_cfg, cfg.get("fast", True), callbacks)
    if reasons:
        # one batch per training_step, automatic optimization: every setting exactly as Lightning documents
        log.info("training path: Lightning's standard path (one batch per step), for %s", "; ".join(reasons))
    else:
        # Lightning raises for these under manual optimization: the block path clips at each step itself
        model.clip = (
            trainer_cfg.pop("gradient_clip_val", None),
            trainer_cfg.pop("gradient_clip_algorithm", None),
        )
        model.automatic_optimization = False
        log.info(
            "training path: blocks of %d batches per training_step, one optimizer step per batch", dm.block
        )
    # checkpoints written atomically: a full disk or a kill mid-write leaves the previous good file
    trainer: L.Trainer = build(
        "trainer", trainer_cfg, logger=loggers or False, callbacks=callbacks, plugins=[AtomicCheckpointIO()]
    )

    if trainer.is_global_zero:
        write_provenance(run_dir)
    resume_from = None
    if cfg.ckpt_path:  # the first process prepares it before the others (DDP) join it in fit and load it
        resume = run_dir / ".resume.ckpt"
        resume_from = resume
        if trainer.is_global_zero:
            from lstm_cls.resume import check_resume

            # the checkpoint's model and data against this run's, before checkpoints/ exists: a refusal
            # leaves nothing that looks like a run (run_task() removes what this run wrote by name)
            where = f"ckpt_path: {cfg.ckpt_path}"
            check_resume(load(cfg.ckpt_path), dict(model.hparams), model.data_info, where, reasons)
            checkpoints = run_dir / "checkpoints"
            resume_from = carry_over(Path(cfg.ckpt_path), checkpoints, resume, trainer.checkpoint_callbacks)
    trackers.log_settings(trainer, cfg)  # MLflow's, W&B's parameters (TensorBoard's come at the end)
    t0 = time.perf_counter()
    # from here Ctrl-C raises KeyboardInterrupt again: Lightning stops training gracefully (see interrupted)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from lstm_cls.requeue import watch

    preempted = watch() if multirun else None  # a submitit job: its preemption signal stops as SIGTERM
    try:
        trainer.fit(model, datamodule=dm, ckpt_path=resume_from, weights_only=True)
    except SIGTERMException:  # Lightning stops at the next batch when SIGTERM arrives (Slurm, Docker...)
        interrupted(trainer, model, run_dir, "SIGTERM", 143, preempted)
    except SystemExit:  # Lightning turns Ctrl-C into a graceful stop and sys.exit(1)
        if not trainer.interrupted:
            raise
        interrupted(trainer, model, run_dir, "Ctrl-C", 130)
    finally:
        if preempted is not None:  # submitit's handler again: it requeues the job at once
            preempted.end()
        if resume_from and trainer.is_global_zero:  # every process has restored from it: not needed
            resume_from.unlink(missing_ok=True)
    if pruner and pruner.pruned_at:  # stopped by Optuna's pruner: not tested; metrics.json says "pruned"
        metrics = pruner.finish(trainer, model, run_dir)
        if trainer.is_global_zero:  # MLflow's, W&B's run: its figures so far, status pruned
            trackers.log_figures(trainer, model, metrics)
        if multirun and trainer.is_global_zero:
            print(job_line(run_dir, metrics))
        return metrics
    fit_seconds = time.perf_counter() - t0
    fit_end = time.time()

    # the checkpoint kept by validation loss (the other one keeps the newest epoch); a run that never
    # validated (limit_val_batches=0, or fewer epochs than check_val_every_n_epoch) has none: its last
    # epoch's weights are tested, as last.ckpt holds them, and metrics.json says so
    watcher = next((c for c in trainer.checkpoint_callbacks if getattr(c, "monitor", None)), None)
    best = watcher.best_model_path if watcher else ""
    trainer.test(model, datamodule=dm, ckpt_path=best or None, verbose=False, weights_only=True)
    best_epoch = load(best)["epoch"] + 1 if best else trainer.current_epoch
    from lstm_cls.nested import best_checkpoint

    chosen = best_checkpoint(best, watcher, validated=bool(model.epoch_metrics.get("val")))
    em = model.epoch_metrics
    ended = run_metrics.scores(
        em.get("train", {}),
        em.get("val", {}),
        em.get("test", {}),
        float(watcher.best_model_score) if best else None,
    )
    metrics = run_metrics.completed(
        ended,
        majority_acc=float((dm.sets["test"].labels() == shares.argmax()).float().mean()),
        classes=counts,
        best_epoch=best_epoch,
        best_checkpoint=chosen,
        epochs=trainer.current_epoch,
        global_step=trainer.global_step,
        train_path="standard" if reasons else "block",
        params_trainable=sum(p.numel() for p in model.parameters() if p.requires_grad),
        windows={s: len(w) for s, w in dm.sets.items()},
        seconds={
            "fit_seconds": fit_seconds,
            # first training step to the end of fitting, less the validation passes (set-up is start-up's);
            # the test pass; and command start to the first training step
            "train_seconds": fit_end - model.first_step_at - model.seconds["val"]
            if model.first_step_at
            else None,
            "test_seconds": model.seconds["test"],
            "startup_seconds": model.first_step_at - JOB_STARTED[0] if model.first_step_at else None,
        },
        threads=torch.get_num_threads(),  # what this run trained with: one per job in a sweep
        world_size=trainer.world_size,
        no_test_window=absent["test"],
    )
    if trainer.world_size > 1:
        trainer.strategy.barrier("metrics")  # "completed" only once every process got here
    if trainer.is_global_zero:  # under DDP, the metrics were reduced over every process already
        write_json_atomic(run_dir / run_metrics.FILE, metrics)
        trackers.log_end(trainer, cfg, model, metrics)  # TensorBoard's HParams, each tracker's final figures
        log.info("metrics: %s", json.dumps(metrics))
        if multirun:
            print(job_line(run_dir, metrics))
        if snapshots:
            from lstm_cls.nested import write_runs

            shorter = write_runs(snapshots, model, dm, run_dir, metrics, accelerator, cfg, shorter_tb)
            trackers.log_derived(trainer, cfg, shorter)  # an MLflow run for each shorter job too
            for run, written in shorter:
                log.info("nested epochs: wrote %s from this run's first epochs", run)
                print(job_line(run, written))
    return metrics


def _figure(value: Any, digits: int) -> str:
    """A number of a job's line, or "none" where the run has none (no validation: no val/best_loss)."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return f"{value:.{digits}f}" if number else "none"


def job_line(run_dir: Path, metrics: dict[str, Any]) -> str:
    """A sweep job's one line: its folder and overrides, status, best validation loss, test accuracy and
    seconds (from the job's start; a derived job's: the seconds its longer job took to reach its epochs)."""
    overrides = run_dir / ".hydra" / "overrides.yaml"
    typed = " ".join(OmegaConf.load(overrides)) if overrides.is_file() else ""
    seconds = metrics["fit_seconds"] if "derived_from" in metrics else time.time() - JOB_STARTED[0]
    derived = f", derived from job {metrics['derived_from']}" if "derived_from" in metrics else ""
    return (
        f"job {run_dir.name} ({typed}): {metrics['status']}, "
        f"val/best_loss {_figure(metrics.get('val/best_loss'), 4)}, "
        f"test/acc {_figure(metrics.get('test/acc'), 3)}, {seconds:.1f} s{derived}"
    )


def nested_snapshots(run_dir: Path) -> Any:
    """In a sweep, the `Snapshots` callback when this job writes shorter jobs' runs (lstm_cls.sweeps)."""
    if not in_multirun():
        return None
    from hydra.core.hydra_config import HydraConfig

    from lstm_cls import sweeps

    targets = sweeps.derived_jobs(Path(HydraConfig.get().sweep.dir), run_dir)
    if not targets:
        return None
    from lstm_cls.nested import Snapshots

    return Snapshots(targets)


def build(key: str, node: Any, **kwargs: Any) -> Any:
    """hydra.utils.instantiate, with a setting Lightning refuses (`trainer.strategy=bogus`,
    `+trainer.profiler=x`) turned into one `error:` line naming the config key."""
    from hydra.errors import InstantiationException

    try:
        return hydra.utils.instantiate(node, **kwargs)
    except InstantiationException as e:
        cause = e.__cause__ or e
        raise UserError(
            f"{key}: {str(cause).splitlines()[0] if str(cause) else type(cause).__name__}"
        ) from None


def interrupted(
    trainer: L.Trainer, model: L.LightningModule, run_dir: Path, why: str, code: int, preempted: Any = None
) -> None:
    """Ctrl-C or SIGTERM: keep where training got to in last.ckpt, say so in metrics.json, exit 130 / 143;
    after submitit's preemption signal (`preempted`), submitit requeues the job instead (lstm_cls.requeue)."""
    last = run_dir / "checkpoints" / "last.ckpt"
    trainer.save_checkpoint(last)
    em = model.epoch_metrics
    metrics = run_metrics.interrupted(
        em.get("train", {}), em.get("val", {}), trainer.current_epoch, trainer.global_step
    )
    write_json_atomic(run_dir / run_metrics.FILE, metrics)
    requeued = preempted is not None and preempted.received
    print(
        f"interrupted ({preempted.signal.name if requeued else why}) after {trainer.current_epoch} epochs; "
        + (f"requeued: the job resumes from {last}" if requeued else f"resume with ckpt_path={last}"),
        file=sys.stderr,
    )
    if requeued:
        preempted.requeue()
    sys.exit(code)


# when this run started: the command's start, or in a multirun the job's own (a worker process runs many)
JOB_STARTED = [STARTED]


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    if in_multirun():
        JOB_STARTED[0] = time.time()
    metrics = run_task(train, cfg)
    return metrics.get(cfg.get("optimized_metric"))


if __name__ == "__main__":
    cli(main, "train")
