"""hydra/launcher=forkserver: jobs side by side, each forked from a process that imported torch once."""

from __future__ import annotations

import json
import multiprocessing.forkserver
import multiprocessing.resource_tracker
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from lstm_cls import sweeps

from .conftest import ROOT, TINY, run_cli, start_cli, until
from .helpers import metrics

# figures that measure time: everything else must equal a run of its own
TIMINGS = {"fit_seconds", "train_seconds", "test_seconds", "startup_seconds"}
BASE = [a for a in TINY if not a.startswith(("model.hidden", "trainer.max_epochs"))]
# jobs of minutes, two at once, under the forkserver launcher (trainer.max_epochs given by each test)
LONG = ["data.length=20000", "data.window=8", "model.hidden=4", "callbacks.progress_bar.refresh_rate=0"]
LONG += ["hydra/launcher=forkserver", "hydra.launcher.n_jobs=2"]


@pytest.fixture(scope="module")
def forked(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    sweep = tmp_path_factory.mktemp("forkserver") / "sweep"
    r = run_cli(
        "-m",
        *BASE,
        "model.hidden=4,8",
        "trainer.max_epochs=2",
        "seed=1,2",
        "hydra/launcher=forkserver",
        "hydra.launcher.n_jobs=2",
        f"hydra.sweep.dir={sweep}",
        warnings=True,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return sweep, r


def test_every_job_completes_on_one_thread_with_one_line_and_no_warning(forked) -> None:
    sweep, r = forked
    lines = [line for line in r.stdout.splitlines() if line.startswith("job ")]
    assert sorted(line.split(" (")[0] for line in lines) == ["job 0", "job 1", "job 2", "job 3"]
    assert all(": completed, val/best_loss" in line for line in lines), lines
    for job in "0123":
        m = metrics(sweep / job)
        assert m["status"] == "completed" and m["threads"] == 1 and m["epochs"] == 2
        assert not (sweep / job / ".lock").exists()
    assert json.loads((sweep / "sweep.json").read_text())["jobs_at_once"] == 2
    assert "Traceback" not in r.stderr and "Warning" not in r.stderr, r.stderr[-3000:]


def test_a_forked_job_equals_a_run_of_its_own(forked, tmp_path: Path) -> None:
    sweep, _ = forked
    # job 3 is hidden 8, seed 2 (Hydra's order: the last override varies fastest)
    assert "model.hidden=8" in (sweep / "3" / ".hydra" / "overrides.yaml").read_text()
    alone = tmp_path / "alone"
    r = run_cli(*BASE, "model.hidden=8", "trainer.max_epochs=2", "seed=2", f"hydra.run.dir={alone}")
    assert r.returncode == 0, r.stderr[-3000:]
    ours, theirs = metrics(sweep / "3"), metrics(alone)
    assert set(ours) == set(theirs)
    for key in set(theirs) - TIMINGS:
        if isinstance(theirs[key], float):
            assert ours[key] == pytest.approx(theirs[key], rel=1e-6, abs=1e-7), key
        else:
            assert ours[key] == theirs[key], key


def test_a_killed_job_fails_alone_and_says_why(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    # 200 epochs over 20,000 rows run for minutes, and start first (the longest); 1 and 2 epochs take seconds
    args = [*LONG, "trainer.max_epochs=200,1,2", "+hydra.sweeper.nested=false", f"hydra.sweep.dir={sweep}"]
    proc = start_cli("-m", *args, stdout=subprocess.PIPE)
    try:
        lock = sweep / "0" / ".lock"  # job 0 (200 epochs) holds its folder with its own pid
        until(lambda: lock.is_file() and lock.read_text().strip(), proc)
        pid = int(lock.read_text())
        assert pid != proc.pid  # a process of its own, not the command's
        os.kill(pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, err[-3000:]
    assert "the job's process ended without a result (signal 9)" in err
    assert (sweep / "0" / "error.txt").read_text() == (
        "RuntimeError: the job's process ended without a result (signal 9)\n"
    )
    assert not (sweep / "0" / "metrics.json").exists()
    # every other job ran to its end
    done = [d for d in sweep.iterdir() if (d / "metrics.json").is_file()]
    assert len(done) == 2 and all(metrics(d)["status"] == "completed" for d in done)
    assert sum(line.startswith("job ") for line in out.splitlines()) == 2


@pytest.mark.parametrize(
    ("n_jobs", "cores", "expected"),
    [(3, 8, 3), (-1, 8, 8), (None, 8, 8), (-2, 8, 7), (-16, 8, 1), (0, 8, 1), ("2", 8, 1), (True, 8, 1)],
)
def test_n_jobs_reads_as_joblib_reads_it(monkeypatch, n_jobs, cores, expected) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    target = "hydra_plugins.lstm_cls_launcher.launcher.ForkserverLauncher"
    assert sweeps.jobs_at_once({"_target_": target, "n_jobs": n_jobs}) == expected
    assert sweeps.jobs_at_once({"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"}) == 1


def test_the_standard_library_pieces_it_starts_early_are_there() -> None:
    # the launcher starts the fork server as it is set up, so that the imports overlap the composing
    assert callable(multiprocessing.forkserver.ensure_running)
    assert callable(multiprocessing.resource_tracker.ensure_running)  # started first (forkserver_exit.start)
    assert "forkserver" in multiprocessing.get_all_start_methods()


def test_the_fork_servers_quick_exit_does_nothing_anywhere_else() -> None:
    # imported by any other process, the module leaves its exit code alone
    code = "import sys, lstm_cls.forkserver_exit as m; assert not m.in_fork_server(); sys.exit(3)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 3


def test_ctrl_c_stops_every_job_where_it_is_and_exits_130(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    # two long jobs at once; Ctrl-C as a terminal sends it: to the whole process group
    args = [*LONG, "trainer.max_epochs=200", "seed=1,2", f"hydra.sweep.dir={sweep}"]
    proc = start_cli("-m", *args, stdout=subprocess.PIPE, session=True)  # as a terminal's Ctrl-C finds it
    try:
        # both jobs are training: each has saved its newest checkpoint once
        until(lambda: all((sweep / j / "checkpoints" / "last.ckpt").is_file() for j in "01"), proc)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err[-3000:]
    assert err.strip().splitlines()[-1] == "interrupted" and "Traceback" not in err, err[-3000:]
    for job in "01":
        m = metrics(sweep / job)
        assert m["status"] == "interrupted" and m["epochs"] < 200, m
        assert (sweep / job / "checkpoints" / "last.ckpt").is_file()  # where to resume from
        assert not (sweep / job / ".lock").exists()
    assert json.loads((sweep / "sweep.json").read_text())["finished"] is not None


def test_optunas_sweeper_launches_through_it_too(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    r = run_cli(
        "hparams_search=optuna",
        *BASE,
        "trainer.max_epochs=1",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.n_jobs=2",
        "hydra/launcher=forkserver",
        f"hydra.sweep.dir={sweep}",
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert all(metrics(sweep / job)["status"] == "completed" for job in "01")
    assert "best_value" in (sweep / "optimization_results.yaml").read_text()


def test_a_dead_job_is_failed_and_its_error_txt_never_covers_what_it_wrote(tmp_path: Path) -> None:
    from hydra_plugins.lstm_cls_launcher.launcher import died

    # killed before it wrote anything: error.txt says so, and the sweep sees a failure
    ret = died(["seed=1"], -9, str(tmp_path / "a"))
    assert (tmp_path / "a" / "error.txt").read_text() == (
        "RuntimeError: the job's process ended without a result (signal 9)\n"
    )
    with pytest.raises(RuntimeError, match="signal 9"):
        _ = ret.return_value
    # its own error written first: kept
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "error.txt").write_text("UserError: model.hidden must be a positive integer\n")
    died(["seed=1"], 1, str(tmp_path / "b"))
    assert (tmp_path / "b" / "error.txt").read_text().startswith("UserError")
    # completed its run, then died on the way home: no error.txt beside a completed run
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "metrics.json").write_text(json.dumps({"status": "completed"}))
    died(["seed=1"], -9, str(tmp_path / "c"))
    assert not (tmp_path / "c" / "error.txt").exists()
    # never got as far as its folder: nothing written anywhere
    with pytest.raises(RuntimeError, match="exit code 1"):
        _ = died(["seed=1"], 1, None).return_value
    # its folder held by another live process (an earlier attempt's job still saving): not written into
    holder = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        (tmp_path / "d").mkdir()
        (tmp_path / "d" / ".lock").write_text(str(holder.pid))
        died(["seed=1"], -9, str(tmp_path / "d"))
        assert sorted(p.name for p in (tmp_path / "d").iterdir()) == [".lock"]
    finally:
        holder.stdin.close()
        holder.wait()
