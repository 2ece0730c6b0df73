"""A sweep under hydra/launcher=forkserver is one unit under signals: each row is (what was sent, to whom,
exit code, what the jobs and sweep.json say), and no process of the sweep outlives its command.

Every sweep here runs in a session of its own (`start_new_session`), so that "every process of the sweep"
is "every process of that session": the command, the fork server, the resource tracker and the jobs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from lstm_cls import UserError, sweeps

from .conftest import run_cli, start_cli, until
from .helpers import metrics

# jobs that train for minutes (an epoch of 3,000 rows takes a fraction of a second) but save last.ckpt
# after their first epoch: a signal then finds them training
LONG = [
    "data.length=3000",
    "data.window=8",
    "model.hidden=4",
    "trainer.max_epochs=1000",
    "callbacks.progress_bar.refresh_rate=0",
    "hydra/launcher=forkserver",
    "hydra.launcher.n_jobs=2",
]


@contextmanager
def sweeping(sweep: Path, *args: str) -> Iterator[subprocess.Popen]:
    """`python -m lstm_cls.train -m ...` in a session of its own, SIGINT at its default (as a terminal's
    Ctrl-C finds it); whatever the test finds, no process of that session outlives it."""
    with start_cli("-m", *args, f"hydra.sweep.dir={sweep}", stdout=subprocess.PIPE, session=True) as proc:
        try:
            yield proc
        finally:
            with suppress(ProcessLookupError):  # none left: the test saw them all end
                os.killpg(proc.pid, signal.SIGKILL)


def stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat after the command name: [state, ppid, pgrp, session, ...]; None if gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rpartition(")")[2].split()


def alive(pid: int) -> bool:
    """Running (a zombie has ended: only its exit status waits to be read)."""
    s = stat(pid)
    return s is not None and s[0] not in ("Z", "X")


def in_session(sid: int) -> list[int]:
    """Every live process of session `sid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if (
            entry.name.isdigit()
            and (s := stat(int(entry.name)))
            and s[3] == str(sid)
            and alive(int(entry.name))
        ):
            found.append(int(entry.name))
    return found


def training(sweep: Path, jobs: str, proc: subprocess.Popen) -> dict[str, int]:
    """Wait until each job of `jobs` has saved last.ckpt once (failing at once if the sweep `proc` ends
    first); the pid in its `.lock` (its own process)."""

    def pids() -> dict[str, int] | None:
        found = {}
        for j in jobs:
            try:
                found[j] = int((sweep / j / ".lock").read_text())
            except (OSError, ValueError):
                return None
            if not (sweep / j / "checkpoints" / "last.ckpt").is_file():
                return None
        return found

    until(pids, proc)
    return pids() or {}


def stop(proc: subprocess.Popen, sig: int, group: bool) -> str:
    """Send `sig` to the command (`group`: to every process of it); its stderr once it has ended."""
    (os.killpg if group else os.kill)(proc.pid, sig)
    return proc.communicate(timeout=120)[1]


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# (what was done, signal, to every process of the command, exit code, the command's last line)
SIGNALS = [
    ("kill <pid>: SIGTERM to the command alone", signal.SIGTERM, False, 143, "interrupted (SIGTERM)"),
    ("Slurm: SIGTERM to every process", signal.SIGTERM, True, 143, "interrupted (SIGTERM)"),
    ("Ctrl-C: SIGINT to every process", signal.SIGINT, True, 130, "interrupted"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("case", "sig", "group", "code", "last"), SIGNALS, ids=[s[0] for s in SIGNALS])
def test_a_signal_stops_every_job_as_ctrl_c_does_and_names_the_jobs_never_started(
    tmp_path: Path, case: str, sig: int, group: bool, code: int, last: str
) -> None:
    sweep = tmp_path / "sweep"
    with sweeping(sweep, *LONG, "seed=1,2,3") as proc:  # two at once: job 2 waits for a free slot
        pids = training(sweep, "01", proc)
        err = stop(proc, sig, group)
        assert proc.returncode == code, err[-3000:]
        assert "Traceback" not in err, err[-3000:]
        lines = err.strip().splitlines()
        assert lines[-2:] == ["not started: 1 job (2); rerun the same command to run them", last], lines[-6:]
        until(lambda: not in_session(proc.pid), timeout=30)  # the fork server and resource tracker follow
    for job, pid in pids.items():
        m = metrics(sweep / job)
        assert m["status"] == "interrupted" and m["epochs"] < 1000, m
        assert (sweep / job / "checkpoints" / "last.ckpt").is_file()  # where to resume from
        assert not (sweep / job / ".lock").exists() and not (sweep / job / "error.txt").exists()
        assert not alive(pid), f"job {job} outlived its command"
    assert not (sweep / "2" / "metrics.json").exists()
    state = json.loads((sweep / "sweep.json").read_text())
    assert state["not_started"] == ["2"] and state["finished"] is not None


@pytest.mark.slow
def test_sigkill_of_the_command_leaves_no_job_training(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    with sweeping(sweep, *LONG, "seed=1,2") as proc:
        pids = training(sweep, "01", proc)
        # SIGKILL to the command alone (out of memory, `kill -9`): it cannot pass anything on
        err = stop(proc, signal.SIGKILL, group=False)  # returns once every holder of its output is gone
        assert proc.returncode == -signal.SIGKILL
        until(lambda: not any(alive(p) for p in pids.values()), timeout=60)
        until(lambda: not in_session(proc.pid), timeout=30)
    assert "Traceback" not in err, err[-3000:]
    for job in pids:  # each job stopped itself as SIGTERM stops it
        m = metrics(sweep / job)
        assert m["status"] == "interrupted" and m["epochs"] < 1000, m
        assert (sweep / job / "checkpoints" / "last.ckpt").is_file()
        assert not (sweep / job / ".lock").exists() and not (sweep / job / "error.txt").exists()


# (what was done, signal, to every process of the command, exit code, the command's last line)
EARLY = [
    ("Ctrl-C", signal.SIGINT, True, 130, "interrupted"),
    ("kill <pid>", signal.SIGTERM, False, 143, "interrupted (SIGTERM)"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("case", "sig", "group", "code", "last"), EARLY, ids=[s[0] for s in EARLY])
def test_a_signal_while_the_fork_server_imports_is_quiet_everywhere(
    tmp_path: Path, case: str, sig: int, group: bool, code: int, last: str
) -> None:
    sweep = tmp_path / "sweep"
    with sweeping(sweep, *LONG, "seed=1,2") as proc:

        def server() -> bool:  # started as the launcher is set up; it then imports torch for seconds
            return any(
                "forkserver import main" in Path(f"/proc/{p}/cmdline").read_text(errors="replace")
                for p in in_session(proc.pid)
                if Path(f"/proc/{p}/cmdline").exists()
            )

        until(server, proc, timeout=60)
        err = stop(proc, sig, group)
        assert proc.returncode == code, err[-3000:]
        assert "Traceback" not in err and "KeyboardInterrupt" not in err, err[-3000:]
        assert err.strip().splitlines()[-1] == last
        until(lambda: not in_session(proc.pid), timeout=30)
    assert not list(sweep.glob("*/metrics.json"))


@pytest.fixture
def live_pid():
    """A live process of ours that is not this one (a job still saving, as a rerun finds it)."""
    holder = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    yield holder.pid
    holder.stdin.close()
    holder.wait()


def earlier_attempt(sweep: Path, holder: int) -> dict[str, bytes]:
    """A sweep of two jobs killed mid-way: job 0's folder still held by `holder`, job 1's lock stale."""
    jobs = [["seed=1"], ["seed=2"]]
    sweep.mkdir()
    (sweep / "sweep.json").write_text(json.dumps({"overrides": jobs, "dirs": ["0", "1"], "finished": None}))
    for job in "01":
        (sweep / job / "checkpoints").mkdir(parents=True)
        (sweep / job / "checkpoints" / "last.ckpt").write_bytes(b"where it got to")
    (sweep / "0" / ".lock").write_text(str(holder))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    (sweep / "1" / ".lock").write_text(dead.stdout.decode().strip())  # a process that has ended
    return files(sweep)


def test_set_aside_never_moves_a_folder_a_live_process_holds(tmp_path: Path, live_pid: int) -> None:
    sweep = tmp_path / "sweep"
    before = earlier_attempt(sweep, live_pid)
    with pytest.raises(UserError, match=rf"{sweep / '0'} is in use by a running job \(pid {live_pid}\)"):
        sweeps.set_aside(sweep, sweep / "1")  # any job's folder: nothing moves while one is held
    assert files(sweep) == before and not (sweep / sweeps.ASIDE).exists()


def test_set_aside_moves_a_folder_whose_holder_has_ended(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    earlier_attempt(sweep, 0)  # job 0: no valid holder; job 1: a holder that has ended
    for job in "01":
        moved = sweeps.set_aside(sweep, sweep / job)
        assert moved is not None and (moved / "checkpoints" / "last.ckpt").read_bytes() == b"where it got to"
        assert not (sweep / job).exists()


def test_a_rerun_while_a_job_of_the_killed_attempt_still_saves_is_refused(
    tmp_path: Path, live_pid: int
) -> None:
    # the command was SIGKILLed a moment ago; its jobs are stopping themselves; the same command again
    sweep = tmp_path / "sweep"
    before = earlier_attempt(sweep, live_pid)
    r = run_cli("-m", "seed=1,2", f"hydra.sweep.dir={sweep}", timeout=120)
    assert r.returncode == 2, r.stderr[-3000:]
    assert r.stderr.strip().splitlines() == [
        f"error: {sweep / '0'} is in use by a running job (pid {live_pid}), an earlier attempt of this sweep "
        "still stopping: nothing was moved; rerun when it has ended"
    ]
    # nothing moved, nothing written (no multirun.yaml, the sweep's lock released)
    assert files(sweep) == before
