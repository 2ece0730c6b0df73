"""A sweep's job under hydra-submitit-launcher (`hydra/launcher=submitit_local`, `hydra/launcher=slurm`):
preempted or out of time, it saves where it got to and is requeued; started again, it resumes from there.

submitit's job process answers its preemption signal (SIGUSR2, or `SUBMITIT_PREEMPT_SIGNAL`: Slurm sends it
`signal_delay_s` before the time limit; submitit's preemption sends SIGTERM, then it) by calling the
launcher's `checkpoint` (Hydra's gives back the same job) and requeueing the job: exit code 144 under the
local executor, whose controller starts the job again; `scontrol requeue` on Slurm. It ignores SIGTERM: a
Slurm partition that preempts with PreemptMode=REQUEUE requeues the job itself.

While the job fits, either signal stops training at the next batch (`last.ckpt`, `metrics.json`
"interrupted", as `lstm_cls.train` stops on SIGTERM); after the preemption signal submitit's own handler then
requeues the job. The job's next start finds that attempt in its folder: its files go to the sweep's
`.incomplete/<job>_<time>/` (train.log and .hydra/ stay) and the job resumes from its `last.ckpt`, as
`ckpt_path=` resumes any run. No torch here.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lstm_cls import metrics, rundir, sweeps

log = logging.getLogger(__name__)

KEEP = (".hydra", "train.log", rundir.LOCK)  # what the job's next start writes on in place


def submitit_job() -> bool:
    """Whether this process runs a job that submitit started (its environment says so)."""
    return bool(os.environ.get("SUBMITIT_EXECUTOR"))


def preemption_signal() -> signal.Signals:
    """submitit's preemption and time-out signal (submitit.JobEnvironment.USR_SIG)."""
    return signal.Signals["SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2")]


class Preemption:
    """While fitting: the preemption signal stops training as SIGTERM does (Lightning's handler, then), and
    `requeue` hands over to submitit's handler once where training got to is saved."""

    def __init__(self) -> None:
        self.signal = preemption_signal()
        self.submitit: Callable[..., Any] | Any = signal.getsignal(self.signal)
        self.received = False
        signal.signal(self.signal, self.stop)

    def stop(self, signum: int, frame: Any) -> None:
        self.received = True
        stop = signal.getsignal(signal.SIGTERM)  # Lightning's while it fits: stops at the next batch
        if callable(stop):
            stop(signal.SIGTERM, frame)

    def end(self) -> None:
        """Fitting is over: submitit's handler answers the signal again (it requeues the job at once)."""
        signal.signal(self.signal, self.submitit)

    def requeue(self) -> None:
        """After the preemption signal: submitit checkpoints the job (the launcher's `checkpoint`) and
        requeues it; this process then exits (144 under the local executor)."""
        self.end()
        if self.received and callable(self.submitit):
            self.submitit(self.signal, None)


def watch() -> Preemption | None:
    """In a submitit job: the preemption signal answered as `Preemption` says (None elsewhere)."""
    return Preemption() if submitit_job() else None


def resume(cfg: Any, run_dir: Path) -> dict[str, Any] | None:
    """A submitit job whose folder holds an earlier attempt: started again by submitit's requeue or
    Slurm's. Its metrics where that attempt completed (nothing to train); else None, with `cfg.ckpt_path`
    set to the attempt's last.ckpt where it saved one (`started_again`)."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    if sweeps.completed(run_dir):
        log.info("requeued: this job had completed; its results are kept as they are")
        return metrics.read(run_dir)
    last = started_again(run_dir, Path(HydraConfig.get().sweep.dir))
    if last is not None:
        with open_dict(cfg):
            cfg.ckpt_path = str(last)
    return None


def started_again(run_dir: Path, sweep_dir: Path) -> Path | None:
    """A submitit job started again (requeued) in the folder its earlier start wrote: move that attempt's
    files aside to `.incomplete/` and return its `last.ckpt` to resume from; None when it saved none or the
    job writes shorter jobs' runs from its first epochs (nested epochs: it trains again from the start)."""
    aside = sweeps.aside(sweep_dir, run_dir.name)
    aside.mkdir()
    for entry in sorted(run_dir.iterdir()):
        if entry.name not in KEEP:
            os.replace(entry, aside / entry.name)
    last = aside / "checkpoints" / "last.ckpt"
    log.info("requeued: the earlier attempt's files were moved to %s", aside)
    if not last.is_file():
        return None
    if sweeps.derived_jobs(sweep_dir, run_dir):
        log.info("requeued: this job writes shorter jobs' runs from its first epochs, so it trains again")
        return None
    log.info("requeued: resuming from %s", last)
    return last
