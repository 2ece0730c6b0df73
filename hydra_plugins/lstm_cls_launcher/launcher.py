"""`hydra/launcher=forkserver`: jobs side by side like Hydra's joblib launcher, each in a fresh process forked
from one that has already imported torch and Lightning, so no job pays those ~5 s again.

Python's own forkserver (multiprocessing) does the forking: it starts while the sweeper composes the jobs and
imports `preload` once. Each job then gets a new process of its own (nothing carries over from one job to the
next, as with a fresh command), started in milliseconds. The jobs start in the order the sweeper gives them
(lstm_cls's sweeper: longest first), a new one as soon as one ends. A job whose process dies (killed, out of
memory) fails alone: the others go on, and the sweep exits non-zero at the end, as Hydra does for a job that
raises. Where a platform has no forkserver (Windows) the jobs start as fresh interpreters ("spawn").
"""

# no `from __future__ import annotations`: Hydra loads plugin modules outside sys.modules, where
# dataclasses cannot resolve string annotations
import importlib
import inspect
import logging
import multiprocessing
import multiprocessing.connection
import signal
import threading
from collections.abc import Sequence
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
from omegaconf import DictConfig, open_dict

log = logging.getLogger(__name__)

# what an lstm_cls job imports: ~5 s of a fresh interpreter's start, paid once by the fork server. Not
# lstm_cls.train: as `python -m lstm_cls.train` it is each job's __main__, which must not be imported before
PRELOAD = [
    "torch",
    "lightning.pytorch",
    "torchmetrics",
    "pandas",  # the data (pyarrow with it: ~1 s)
    "torch.utils.tensorboard",
    "matplotlib.backends.backend_agg",  # TensorBoard's logger loads it
    "tabulate",
    "hydra",
    "lstm_cls.data",
    "lstm_cls.model",
    "lstm_cls.nested",
    "lstm_cls.checkpoints",
    "lstm_cls.fast_path",
    "lstm_cls.tensorboard",
]
SERVER = "lstm_cls.forkserver_exit"  # always last: the server's quick exit


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
        if start_method() == "forkserver":
            from multiprocessing import forkserver

            self.context.set_forkserver_preload([*self.preload, SERVER])
            # start it now: it imports while the sweeper composes the jobs, not after
            forkserver.ensure_running()

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
        running: dict[Any, Job] = {}  # by the pipe each job sends on: its folder, then its result
        returns: list[JobReturn | None] = [None] * len(job_overrides)
        ahead = Ahead(self.hydra_context, self.config, list(enumerate(job_overrides)))
        ahead.start()
        # Ctrl-C reaches the jobs too (one process group): each stops where it is and saves last.ckpt. This
        # process waits for them (the `finally` below) before it reports the interrupt, whatever handler the
        # command had (lstm_cls's exits at once, fine while importing, too soon here)
        main = threading.current_thread() is threading.main_thread()
        handler = signal.signal(signal.SIGINT, signal.default_int_handler) if main else None
        try:
            while waiting or running:
                while waiting and len(running) < slots:
                    idx, overrides = waiting.pop()
                    composed = ahead.composed.pop(idx, None)  # None: not yet, the job composes it itself
                    receive, send = self.context.Pipe(duplex=False)
                    p = self.context.Process(
                        target=run_one,
                        args=(send, initial_job_idx + idx, list(overrides), task, state, composed),
                        name=f"job {initial_job_idx + idx}",
                    )
                    p.start()
                    send.close()  # the job holds the only writing end: its end reads as end-of-file here
                    running[receive] = Job(idx, p)
                for receive in multiprocessing.connection.wait(list(running)):
                    job = running[receive]
                    try:
                        if job.folder is None:
                            job.folder = receive.recv()
                            continue
                        returns[job.idx] = cloudpickle.loads(receive.recv_bytes())
                    except EOFError:  # the process ended without a word: killed, out of memory, a crash
                        job.process.join()
                        returns[job.idx] = died(job_overrides[job.idx], job.process.exitcode, job.folder)
                    del running[receive]
                    receive.close()
                    job.process.join()
        finally:
            ahead.stop.set()
            try:
                for job in running.values():  # after Ctrl-C: stopping on their own
                    job.process.join(timeout=60)
                    if job.process.is_alive():
                        job.process.terminate()
            finally:
                if main:
                    signal.signal(signal.SIGINT, handler)
        return [r for r in returns if r is not None]


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
class Job:
    idx: int
    process: Any
    folder: str | None = None  # its run directory, once the job has composed its config


def died(overrides: Sequence[str], exitcode: int | None, folder: str | None) -> JobReturn:
    """A job whose process ended without sending its result: failed, with the reason in its error.txt (as a
    job that raises writes), so that `report` lists it among the failed jobs and a rerun trains it again."""
    from lstm_cls import sweeps

    how = f"signal {-exitcode}" if exitcode is not None and exitcode < 0 else f"exit code {exitcode}"
    error = RuntimeError(f"the job's process ended without a result ({how})")
    # a job that wrote its error, or died after completing its own run, keeps its files as they are
    if (
        folder is not None
        and not (Path(folder) / "error.txt").exists()
        and not sweeps.completed(Path(folder))
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


def run_one(
    send: Any,
    idx: int,
    overrides: list[str],
    task: tuple[str, str],
    state: bytes,
    composed: bytes | None = None,
) -> None:
    """In the job's own process: what Hydra's joblib launcher does in a worker, then the result home.
    `composed`: the job's config, composed in the launching process (`Ahead`), if it got to it first."""
    hydra_context, config, singleton_state = cloudpickle.loads(state)
    setup_globals()
    Singleton.set_state(singleton_state)
    if composed is not None:
        sweep_config = cloudpickle.loads(composed)
    else:
        sweep_config = hydra_context.config_loader.load_sweep_config(config, overrides)
    with open_dict(sweep_config):
        sweep_config.hydra.job.id = f"{sweep_config.hydra.job.name}_{idx}"
        sweep_config.hydra.job.num = idx
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
        # (reading it through `return_value` would raise it: the dataclass field holds it)
        cause = vars(ret)["_return_value"]
        ret.return_value = RuntimeError(f"{type(cause).__name__}: {cause} ({e})")
        result = cloudpickle.dumps(ret)
    send.send_bytes(result)
    send.close()
