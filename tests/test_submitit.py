"""Sweeps through hydra-submitit-launcher's local executor (`hydra/launcher=submitit_local`): the code path of
its Slurm executor (`hydra/launcher=slurm`) on this machine: the resumable sweeper, nested epochs, the
report's jobs at once, and a preempted job requeued by submitit that resumes as if never stopped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest

from lstm_cls.report import main as report
from lstm_cls.report.timing import most_at_once
from lstm_cls.train import train

from .conftest import ROOT, TINY, run_cli, start_cli, until

TIMING = {"fit_seconds", "train_seconds", "test_seconds", "startup_seconds"}
LOCAL = ["-m", *TINY, "hydra/launcher=submitit_local"]


class Preempt(L.Callback):
    """Sends its own job's process the signal `send` (SIGUSR2, SIGTERM; "none": nothing) once, as epoch `at`
    (1-based) ends: a preemption at an epoch's end, where a resume continues exactly."""

    def __init__(self, send: str = "none", at: int = 1) -> None:
        self.send, self.at = send, at

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.send != "none" and trainer.current_epoch + 1 == self.at:
            os.kill(os.getpid(), signal.Signals[self.send])


def figures(run: Path) -> dict:
    m = json.loads((run / "metrics.json").read_text())
    return {k: v for k, v in m.items() if k not in TIMING}


def mtimes(sweep: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in sweep.glob("[0-9]*/**/*") if p.is_file()}


@pytest.mark.slow
def test_submitit_local_sweep_nests_epochs_runs_jobs_together_and_its_rerun_trains_nothing(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    command = [*LOCAL, "seed=1,2", "trainer.max_epochs=1,2", f"hydra.sweep.dir={sweep}"]
    r = run_cli(*command)
    assert r.returncode == 0, r.stderr[-2000:]
    ran = {d.name: json.loads((d / "metrics.json").read_text()) for d in sweep.glob("[0-9]*")}
    assert sorted(ran) == ["0", "1", "2", "3"] and {m["status"] for m in ran.values()} == {"completed"}
    # nested epochs through the launcher: each seed's 2-epoch job wrote its 1-epoch job's run
    assert sorted(m["epochs"] for m in ran.values() if "derived_from" in m) == [1, 1]
    assert (sweep / ".submitit").is_dir()  # submitit's own folder beside the jobs: the rerun accepts it
    report([str(sweep)])
    # both trained at once: counted from the jobs' own start and end (submitit declares no count)
    assert "2 jobs at once" in capsys.readouterr().out
    before = mtimes(sweep)
    again = run_cli(*command)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "4 of 4 jobs completed earlier" in again.stdout + again.stderr
    assert mtimes(sweep) == before  # nothing trained, nothing written over


def submitit_log(sweep: Path, says: str) -> Path:
    """The stderr log of the sweep's one submitit job whose log says `says`."""
    (log,) = [f for f in (sweep / ".submitit").glob("*/*_0_log.err") if says in f.read_text()]
    return log


def requeue_by_hand(sweep: Path, folder: Path) -> subprocess.CompletedProcess:
    """Start a submitit job (its files in `folder`) again, as Slurm's requeue does (it runs the job's script
    again): submitit's runner on the job's pickled call, in the job's environment."""
    env = {
        **os.environ,
        "PYTHONWARNINGS": "ignore",
        "SUBMITIT_EXECUTOR": "local",
        "SUBMITIT_LOCAL_JOB_ID": folder.name,
        "SUBMITIT_LOCAL_GLOBALID": "0",
        "SUBMITIT_LOCAL_LOCALID": "0",
        "SUBMITIT_LOCAL_NTASKS": "1",
    }
    runner = [sys.executable, "-m", "submitit.core._submit", str(sweep / ".submitit" / "%j")]
    return subprocess.run(runner, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def status(run: Path) -> str | None:
    try:
        return json.loads((run / "metrics.json").read_text())["status"]
    except (OSError, ValueError):
        return None


@pytest.mark.slow
def test_a_preempted_job_saves_is_requeued_and_resumes_as_if_never_stopped(make_cfg, tmp_path):
    sweep = tmp_path / "sweep"
    preempt = [
        "+callbacks.preempt._target_=tests.test_submitit.Preempt",
        "+callbacks.preempt.send=SIGUSR2,SIGTERM",
    ]
    proc = start_cli(*LOCAL, *preempt, "seed=1", f"hydra.sweep.dir={sweep}")
    try:
        train(make_cfg(*TINY, "seed=1", run_dir=tmp_path / "whole"))  # the run never stopped, meanwhile
        # job 1's SIGTERM leaves it without a result: submitit's launcher waits 15 s for one, then fails the
        # sweep; once both jobs have ended there is nothing more to see
        ended = lambda: status(sweep / "0") == "completed" and status(sweep / "1") == "interrupted"  # noqa: E731
        until(lambda: ended() and not (sweep / "1" / ".lock").exists(), proc)
    finally:
        proc.kill()
        proc.communicate()
    whole = figures(tmp_path / "whole")

    # SIGUSR2 (submitit's preemption and time-out signal) as epoch 1 of 2 ends: last.ckpt saved, the job
    # checkpointed and requeued by submitit (the local executor starts it again), resumed from last.ckpt
    (aside,) = (sweep / ".incomplete").iterdir()
    assert aside.name.startswith("0_") and status(aside) == "interrupted"
    assert (aside / "checkpoints" / "last.ckpt").is_file()
    assert "requeued: resuming from" in (sweep / "0" / "train.log").read_text()
    log = submitit_log(sweep, "interrupted (SIGUSR2) after 1 epochs")
    assert "Requeued job" in log.with_name(log.name.replace("_log.err", "_log.out")).read_text()
    assert figures(sweep / "0") == whole  # key by key, as the run that never stopped

    # SIGTERM: the job saves and ends (143): submitit requeues only on its own signal, Slurm on a preemption
    # (PreemptMode=REQUEUE); started again as Slurm's requeue starts it, it resumes likewise
    assert (sweep / "1" / "checkpoints" / "last.ckpt").is_file()
    again = requeue_by_hand(sweep, submitit_log(sweep, "interrupted (SIGTERM) after 1 epochs").parent)
    assert again.returncode == 0, again.stderr[-2000:]
    assert figures(sweep / "1") == whole


def test_the_slurm_preset_without_slurm_is_one_error_line_before_anything_is_written(tmp_path):
    r = run_cli("-m", *TINY, "hydra/launcher=slurm", f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert r.returncode == 2 and r.stderr.startswith("error: hydra/launcher=slurm needs Slurm's sbatch")
    assert "hydra/launcher=submitit_local" in r.stderr and len(r.stderr.splitlines()) == 1
    assert not (tmp_path / "sweep").exists()


def test_jobs_at_once_are_counted_from_the_jobs_own_start_and_end(tmp_path):
    def job(name: str, start: int, end: int) -> Path:
        run = tmp_path / name
        (run / ".hydra").mkdir(parents=True)
        (run / "metrics.json").write_text("{}")
        os.utime(run / ".hydra", (start, start))
        os.utime(run / "metrics.json", (end, end))
        return run

    # 0-10 and 5-15 overlap; 15-20 starts as the second ends; one without metrics.json is not counted
    runs = [job("0", 0, 10), job("1", 5, 15), job("2", 15, 20)]
    (tmp_path / "3" / ".hydra").mkdir(parents=True)
    assert most_at_once([*runs, tmp_path / "3"]) == 2
    assert most_at_once(runs[2:]) == 1 and most_at_once([]) == 1
