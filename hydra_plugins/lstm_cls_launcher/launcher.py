"""`hydra/launcher=forkserver`: jobs side by side like Hydra's joblib launcher, each in a fresh process forked
from one that has already imported torch and Lightning, so no job pays those ~5 s again.

Python's own forkserver (multiprocessing) does the forking: it starts while the sweeper composes the jobs and
imports `preload` once. Each job then gets a new process of its own (nothing carries over from one job to the
next, as with a fresh command), started in milliseconds. The jobs start in the order the sweeper gives them
(lstm_cls's sweeper: longest first), a new one as soon as one ends. A job whose process dies (killed, out of
memory) fails alone: the others go on, and the sweep exits non-zero at the end, as Hydra does for a job that
raises. Where a platform has no forkserver (Windows) the jobs start as fresh interpreters ("spawn").

The sweep is one unit under signals. Ctrl-C (the terminal sends it to every process of the command) or SIGTERM
(`kill`, or Slurm, which may send it to every process) stops each running job as Ctrl-C stops a run: it saves
`last.ckpt` and writes `metrics.json` with status "interrupted". The command waits for them, names the jobs it
never started (one line, and `not_started` in sweep.json), and exits 130 or 143. A job whose command died
(SIGKILL, out of memory) stops itself the same way: it watches its command, never only its own parent (the
fork server, which lives on while any job does).
"""

# no `from __future__ import annotations`: Hydra loads plugin modules outside sys.modules, where
# dataclasses cannot resolve string annotations
import importlib
import inspect
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cloudpickle
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

log = logging.getLogger(__name__)

# what an lstm_cls job imports: ~5 s of a fresh interpreter's start, paid once by the fork server (pandas
# brings pyarrow, ~1 s; TensorBoard's logger loads matplotlib's Agg). Not lstm_cls.train: as
# `python -m lstm_cls.train` it is each job's __main__, which must not be imported before
PRELOAD = ["torch", "lightning.pytorch", "torchmetrics", "pandas", "torch.utils.tensorboard"]
PRELOAD += ["matplotlib.backends.backend_agg", "tabulate", "hydra", "lstm_cls.data.window_modules"]
PRELOAD += ["lstm_cls.data.sequence_modules", "lstm_cls.model", "lstm_cls.nested", "lstm_cls.checkpoints"]
PRELOAD += ["lstm_cls.fast_path", "lstm_cls.tensorboard"]
SERVER = "lstm_cls.forkserver_exit"  # always first: the server's quiet Ctrl-C and quick exit
# how long a job, once told to stop, may take to save where it got to before it is told again, then killed
GRACE_S = 60.0
# SIGTERM: how long the jobs may have had it already (Slurm signals every process) before it is passed on. Two
# at once would run Lightning's handler inside itself (its log line then fails with a traceback)
NOTICE_S = 1.0


@dataclass
class ForkserverLauncherConf:
    _target_: str = "hydra_plugins.lstm_cls_launcher.launcher.ForkserverLauncher"
    n_jobs: int = -1  # jobs at once; -1: one per core (joblib's meaning)
    preload: Any = field(default_factory=lambda: list(PRELOAD))  # modules the fork server imports once


ConfigStore.instance().store(
    group="hydra/launcher", name="forkserver", node=ForkserverLauncherConf, provider="lstm_cls"
)


def start_method() -> str:
    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


class ForkserverLauncher(Launcher):
    def __init__(self, n_jobs: int = -1, preload: Any = None) -> None:
        self.n_jobs = n_jobs
        self.preload = list(PRELOAD if preload is None else preload)
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None
        self.context: Any = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.task_function, self.hydra_context = config, task_function, hydra_context
        self.context = multiprocessing.get_context(start_method())
        if threading.current_thread() is threading.main_thread():
            # SIGTERM before the jobs start (while composing): exit 143 with a word, through every `finally`
            # (the sweep's lock is released); `launch` takes over from here
            signal.signal(signal.SIGTERM, terminated_early)
        if start_method() == "forkserver":
            from lstm_cls import forkserver_exit

            self.context.set_forkserver_preload([SERVER, *self.preload])
            # start it now: it imports while the sweeper composes the jobs, not after
            forkserver_exit.start()

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        assert self.config is not None and self.task_function is not None and self.hydra_context is not None
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        from lstm_cls import sweeps

        slots = min(sweeps.slots(self.n_jobs), len(job_overrides))
        log.info("forkserver launcher: %d jobs, %d at once, in %s", len(job_overrides), slots, sweep_dir)
        for idx, overrides in enumerate(job_overrides):
            log.info("\t#%d : %s", initial_job_idx + idx, " ".join(filter_overrides(overrides)))
        # the task function by name: the new process imports it (a function of __main__ is found there
        # through multiprocessing's own set-up of __main__), never pickled as code
        task = (self.task_function.__module__, self.task_function.__qualname__)
        # Hydra's context and state (OmegaConf's resolvers are closures): cloudpickle, as joblib's loky
        state = cloudpickle.dumps((self.hydra_context, self.config, Singleton.get_state()))
        waiting = list(enumerate(job_overrides))[::-1]  # popped from the end: the first job first
        running: dict[Any, JobProcess] = {}  # by the pipe each job sends on: its folder, then its result
        returns: list[JobReturn | None] = [None] * len(job_overrides)
        ahead = Ahead(self.hydra_context, self.config, list(enumerate(job_overrides)))
        ahead.start()
        sweeps.forget_not_started(sweep_dir)
        # Ctrl-C reaches the jobs too (one process group): each stops where it is and saves last.ckpt. SIGTERM
        # may reach only this process (`kill`): it is passed on to every job. This process waits for them (the
        # `finally` below) before it reports the interrupt, whatever handler the command had (lstm_cls's exits
        # at once, fine while importing, too soon here)
        main = threading.current_thread() is threading.main_thread()
        handlers = {}
        if main:
            handlers[signal.SIGINT] = signal.signal(signal.SIGINT, signal.default_int_handler)
            handlers[signal.SIGTERM] = signal.signal(signal.SIGTERM, terminate)
        stopped: str | None = None  # "Ctrl-C" or "SIGTERM"
        unstarted: list[int] = []  # jobs whose start a signal cut short

        def collect(receive: Any) -> None:
            """A message from a job: its folder, its result, or end-of-file (the process has ended)."""
            job = running[receive]
            try:
                if job.folder is None:
                    job.folder = receive.recv()
                    return
                returns[job.idx] = cloudpickle.loads(receive.recv_bytes())
            except EOFError:  # the process ended without a word: killed, out of memory, a crash
                job.process.join()
                returns[job.idx] = died(job_overrides[job.idx], job.process.exitcode, job.folder)
            del running[receive]
            receive.close()
            job.process.join()

        try:
            while waiting or running:
                while waiting and len(running) < slots:
                    idx, overrides = waiting.pop()
                    composed = ahead.composed.pop(idx, None)  # None: not yet, the job composes it itself
                    receive, send = self.context.Pipe(duplex=False)
                    fed, feed = self.context.Pipe(duplex=False)
                    p = self.context.Process(
                        target=run_one,
                        args=(send, fed, initial_job_idx + idx, list(overrides), task),
                        name=f"job {initial_job_idx + idx}",
                    )
                    running[receive] = JobProcess(idx, p, send, fed)  # before it starts: a signal finds it
                    p.start()
                    send.close()  # the job holds the only writing end: its end reads as end-of-file here
                    fed.close()
                    # its Hydra state (~70 kB) on a pipe of its own, not in what p.start() hands the fork
                    # server: a signal while that waits (the server importing) leaves the job nothing
                    # half-written to fail on, only an empty pipe (it ends quietly). Sent by a thread: the
                    # next job starts while this one sets itself up and reads it
                    threading.Thread(target=hand_over, args=(feed, (state, composed)), daemon=True).start()
                for receive in multiprocessing.connection.wait(list(running)):
                    collect(receive)
        except KeyboardInterrupt:
            stopped = "Ctrl-C"
        except Terminated:
            stopped = "SIGTERM"
        finally:
            ahead.stop.set()
            try:
                if main:  # a second Ctrl-C or SIGTERM while the jobs save must not leave them behind
                    for sig in handlers:
                        signal.signal(sig, signal.SIG_IGN)
                unstarted = [j.idx for j in running.values() if j.process.pid is None]
                # Ctrl-C: every job had it too; SIGTERM or an error here: tell them
                stop(running, tell=stopped != "Ctrl-C")
            finally:
                for sig, handler in handlers.items():
                    signal.signal(sig, handler)
        if stopped is not None:
            never = [
                job_dir(job_overrides[i], initial_job_idx + i)
                for i in unstarted + [i for i, _ in waiting[::-1]]
            ]
            if never:
                if sweeps.read_state(sweep_dir) is not None:  # lstm_cls's sweeper's sweep.json
                    sweeps.write_state(sweep_dir, not_started=never)
                print(
                    f"not started: {len(never)} job{'s' if len(never) > 1 else ''} ({', '.join(never)}); "
                    "rerun the same command to run them",
                    file=sys.stderr,
                )
            if stopped == "Ctrl-C":
                raise KeyboardInterrupt  # the command's own report: "interrupted", exit 130
            print("interrupted (SIGTERM)", file=sys.stderr)
            raise SystemExit(143)
        return [r for r in returns if r is not None]


def hand_over(feed: Any, payload: Any) -> None:
    """Send a job what it needs to run; a job that has already ended (killed) gets nothing: its own pipe
    tells the launcher so."""
    with feed, suppress(OSError):  # BrokenPipeError: the job's end is closed
        feed.send(payload)


class Terminated(SystemExit):
    """SIGTERM in the launching process: stop the sweep as Ctrl-C does (a SystemExit: exit code 143 from
    wherever it is raised, through every `finally`, with no traceback)."""

    def __init__(self) -> None:
        super().__init__(143)


def terminate(signum: int, frame: Any) -> None:
    raise Terminated()


def terminated_early(signum: int, frame: Any) -> None:
    """SIGTERM while the sweep is set up, before any job runs: nothing to stop, say so and exit 143."""
    print("interrupted (SIGTERM)", file=sys.stderr)
    raise Terminated()


def stop(running: dict[Any, "JobProcess"], tell: bool) -> None:
    """Wait for the running jobs to end, each saving where it got to; `tell`: send each SIGTERM if it has
    not ended within NOTICE_S (it may have had its own). Waits on each job's own pipe (end-of-file: its
    process has ended), not on the fork server, which a SIGTERM to every process may have ended. A job that
    has not ended after GRACE_S is told (again), then killed: no job outlives its command. What they send
    is not read: a stopped sweep reports no results (each job's folder says how far it got), and a message
    the signal cut in two could not be read."""
    for receive, job in list(running.items()):
        job.send.close()  # ours, if a signal came before we closed it: the job's end alone reads as its end
        job.fed.close()
        if job.process.pid is None:  # a signal came before it started: the caller counts it not started
            del running[receive]
            receive.close()
    if not running:
        return
    steps = [(None, NOTICE_S if tell else GRACE_S), (signal.SIGTERM, GRACE_S), (signal.SIGKILL, GRACE_S)]
    for sig, wait_s in steps:
        if sig is not None:
            for job in running.values():
                # its pipe is open: its process has not ended (not `is_alive()`, which asks the fork server)
                with suppress(ProcessLookupError):
                    os.kill(job.process.pid, sig)
        deadline = time.monotonic() + wait_s
        while running and (left := deadline - time.monotonic()) > 0:
            for receive in multiprocessing.connection.wait(list(running), timeout=left):
                try:
                    ended = not os.read(receive.fileno(), 1 << 16)
                except OSError:
                    ended = True
                if ended:
                    job = running.pop(receive)
                    receive.close()
                    job.process.join(timeout=5)  # reaped (spawn); under the fork server, the server reaps
        if not running:
            return
        if sig is not None:
            log.warning("%d jobs have not stopped %.0f s after signal %d", len(running), wait_s, sig)


def job_dir(overrides: Sequence[str], num: int) -> str:
    """A job's folder in the sweep: lstm_cls's sweeper names it in the overrides, else Hydra's default."""
    given = [o.partition("=")[2] for o in overrides if o.startswith("hydra.sweep.subdir=")]
    return given[-1] if given else str(num)


class Ahead(threading.Thread):
    """Composes the jobs' configs here, in launch order, while this process has nothing else to do (the fork
    server importing, the jobs training): a job handed its config skips Hydra's composing (~0.15 s of its
    own). The same call a job makes (`load_sweep_config`), on the same context and config."""

    def __init__(self, hydra_context: HydraContext, config: DictConfig, jobs: list[tuple[int, Any]]) -> None:
        super().__init__(name="compose ahead", daemon=True)
        self.loader, self.config, self.jobs = hydra_context.config_loader, config, jobs
        self.composed: dict[int, bytes] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        for idx, overrides in self.jobs:
            if self.stop.is_set():
                return
            try:
                self.composed[idx] = cloudpickle.dumps(
                    self.loader.load_sweep_config(self.config, list(overrides))
                )
            except Exception:  # the job composes it itself, and fails there as Hydra's launchers report it
                return


@dataclass
class JobProcess:
    idx: int
    process: Any
    send: Any  # the job's end of its pipe, closed here once the job has started
    fed: Any  # the job's end of the pipe its state comes on, closed here likewise
    folder: str | None = None  # its run directory, once the job has composed its config


def died(overrides: Sequence[str], exitcode: int | None, folder: str | None) -> JobReturn:
    """A job whose process ended without sending its result: failed, with the reason in its error.txt (as a
    job that raises writes), so that `report` lists it among the failed jobs and a rerun trains it again."""
    from lstm_cls import rundir, sweeps

    how = f"signal {-exitcode}" if exitcode is not None and exitcode < 0 else f"exit code {exitcode}"
    error = RuntimeError(f"the job's process ended without a result ({how})")
    # a job that wrote its error, or died after completing its own run, keeps its files as they are; a
    # folder another live process holds is not this job's to write in
    if (
        folder is not None
        and not (Path(folder) / "error.txt").exists()
        and not sweeps.completed(Path(folder))
        and rundir.lock_holder(Path(folder)) is None
    ):
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / "error.txt").write_text(f"{type(error).__name__}: {error}\n")
    failed = JobReturn(overrides=list(overrides), status=JobStatus.FAILED)
    failed.return_value = error
    return failed


def resolve(module: str, qualname: str) -> TaskFunction:
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return inspect.unwrap(obj)  # @hydra.main wraps it: the plain function, as Hydra calls it


def run_one(send: Any, fed: Any, idx: int, overrides: list[str], task: tuple[str, str]) -> None:
    """In the job's own process: what Hydra's joblib launcher does in a worker, then the result home.
    On `fed`: Hydra's state, and the job's config if the launching process composed it first (`Ahead`)."""
    # Ctrl-C stops a job as it stops a run (the fork server's own handler, inherited, only ends the server)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    exit_with_command()
    try:
        try:
            state, composed = fed.recv()
        except EOFError:  # the command stopped before it sent them: nothing to do
            sys.exit(143)
        finally:
            fed.close()
        one_job(send, idx, overrides, task, state, composed)
    except KeyboardInterrupt:  # Ctrl-C outside training (composing, data, testing): nothing to save
        sys.exit(130)
    except (BrokenPipeError, ConnectionError):  # the command has gone: its result has nowhere to go
        sys.exit(143)


def one_job(
    send: Any, idx: int, overrides: list[str], task: tuple[str, str], state: bytes, composed: Any
) -> None:
    from lstm_cls import sweeps

    hydra_context, config, singleton_state = cloudpickle.loads(state)
    setup_globals()
    Singleton.set_state(singleton_state)
    if composed is not None:
        sweep_config = cloudpickle.loads(composed)
    else:
        sweep_config = hydra_context.config_loader.load_sweep_config(config, overrides)
    sweep_config = sweeps.numbered(sweep_config, idx)
    HydraConfig.instance().set_config(sweep_config)
    send.send(str(Path(sweep_config.hydra.sweep.dir) / str(sweep_config.hydra.sweep.subdir)))
    ret = run_job(
        hydra_context=hydra_context,
        config=sweep_config,
        task_function=resolve(*task),
        job_dir_key="hydra.sweep.dir",
        job_subdir_key="hydra.sweep.subdir",
    )
    try:  # cloudpickle: Hydra's configs hold classes of plugin modules that plain pickle cannot find
        result = cloudpickle.dumps(ret)
    except Exception as e:  # an exception that does not pickle: its text goes home instead
        try:
            cause = ret.return_value
        except Exception as raised:  # a failed job's: reading its value raises it
            cause = raised
        ret.return_value = RuntimeError(f"{type(cause).__name__}: {cause} ({e})")
        result = cloudpickle.dumps(ret)
    send.send_bytes(result)
    send.close()


STOPPING: list[bool] = []  # a job's process: whether it has been told to stop


def stop_on_sigterm(signum: int, frame: Any) -> None:
    """A job's SIGTERM. While Lightning fits or tests, its own handler runs and calls this one too: it stops
    training at the next batch, saves last.ckpt and writes "interrupted" (lstm_cls.train). Outside (composing,
    reading data): exit 143 at once, nothing to save. A second SIGTERM never cuts short the saving."""
    if STOPPING:
        return
    STOPPING.append(True)
    if signal.getsignal(signal.SIGTERM) is stop_on_sigterm:  # not inside Lightning: nobody else stops it
        raise SystemExit(143)


def exit_with_command() -> None:
    """Stop this job (SIGTERM) when the command that launched it ends, however it ends (SIGKILL included).

    The job's own parent is the fork server, which lives on while any job does, so the Linux parent-death
    signal would never fire; multiprocessing hands each child its launching process's end of a pipe instead
    (`parent_process()`), which reads as ended when that process is gone."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        parent.join()
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="command watch", daemon=True).start()
