"""How the Hydra commands (`python -m lstm_cls.train`, `lstm_cls.baselines`) start and end: what a command's
process sets up first, the check before Hydra writes anything, and the one `error:` exit.

Importing this module does nothing: each command calls `cli` from its `if __name__ == "__main__":` block.
No torch here."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lstm_cls import UserError, exit_on_interrupt, rundir
from lstm_cls.cli import fail

if TYPE_CHECKING:
    from omegaconf import DictConfig


class Refused(BaseException):
    """A UserError on its way out of Hydra to the command's `cli`, which prints its `error:` line (exit 2).

    Hydra reports any Exception raised inside it (the app, the sweeper) itself, in its own words and with
    exit code 1; a BaseException, as KeyboardInterrupt and SystemExit are, passes through it untouched."""

    def __init__(self, error: UserError) -> None:
        super().__init__(str(error))
        self.error = error


def start() -> None:
    """A command's process set-up, before anything else runs: Ctrl-C exits 130 without a traceback while
    the command starts (`train` hands Ctrl-C back to Python just before fitting), and lstm_cls's OmegaConf
    resolvers exist before the config is composed or resolved. Hydra hands the resolvers on to the jobs
    its launchers run elsewhere (joblib, forkserver, submitit), with the rest of its state."""
    from lstm_cls import schema
    from lstm_cls.tensorboard import register_resolver

    signal.signal(signal.SIGINT, exit_on_interrupt)
    register_resolver()
    schema.register()


# where a launcher tells a process its rank among all of a run's, in Lightning's order (its
# lightning.fabric.utilities.rank_zero._get_rank, read here without importing Lightning; tests/test_ranks.py
# holds the two together): torchrun's RANK; the LOCAL_RANK of the processes Lightning's own DDP launcher
# starts (before SLURM_PROCID, which a Slurm job sets even where Lightning starts the processes); srun's
# SLURM_PROCID; LSF's JSM_NAMESPACE_RANK
RANK_VARIABLES = ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK")
# how many processes the launchers that start a run's processes together started (srun's count of the
# job step's tasks: a Slurm job's SLURM_NTASKS is set where one process runs, in salloc's shell or sbatch's)
STARTED_TOGETHER = {
    "RANK": "WORLD_SIZE",
    "SLURM_PROCID": "SLURM_STEP_NUM_TASKS",
    "JSM_NAMESPACE_RANK": "JSM_NAMESPACE_SIZE",
}


def launcher_variable() -> str | None:
    """The variable that holds this process's rank (RANK_VARIABLES), None for a process no launcher
    started."""
    return next((key for key in RANK_VARIABLES if os.environ.get(key) is not None), None)


def global_rank() -> int:
    """This process's rank among all of the run's processes, as Lightning reads it before training (0
    where no launcher set one)."""
    key = launcher_variable()
    return int(os.environ[key]) if key else 0


def rank_zero() -> bool:
    """Whether this process is the run's first (or only) one, which alone checks, holds and writes the
    run's folder: rank 0 of all its processes, on every launcher (Lightning's, torchrun, srun). NODE_RANK
    too: Lightning's own launcher on a second node is started by hand with NODE_RANK=1 and no rank yet."""
    return global_rank() == 0 and os.environ.get("NODE_RANK", "0") == "0"


def started_together() -> int:
    """How many processes a launcher started together for this run (torchrun, srun), each running this
    command; 1 for a single process and for Lightning's own DDP launcher, which starts its processes itself
    once the first one is training."""
    size = STARTED_TOGETHER.get(launcher_variable() or "")
    return int(os.environ.get(size, "1")) if size else 1


def in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def run_task(task: Callable[[DictConfig], dict[str, Any]], cfg: DictConfig) -> dict[str, Any]:
    """Run `task`; a UserError leaves no run directory and becomes the command's one `error:` line (exit
    code 2, by way of `Refused`).

    In a multirun the job records its error in `error.txt` and raises it instead, so Hydra goes on with
    the other jobs and the sweep still exits non-zero at the end.
    """
    run_dir = Path(cfg.run_dir)
    try:
        return task(cfg)
    except Exception as e:
        if in_multirun():
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "error.txt").write_text(f"{type(e).__name__}: {e}\n")
            raise
        if not isinstance(e, UserError):
            raise
        # refused before training: leave nothing that looks like a run, and remove only what this run made
        # (a folder you gave keeps your files; the other processes of a DDP run leave the first one's)
        if rank_zero() and not (run_dir / "checkpoints").exists():
            rundir.remove_created(run_dir, rundir.BEFORE.get(run_dir.resolve()))
        raise Refused(e) from None


def cli(app: Callable[[], Any], config_name: str) -> None:
    """A Hydra app's command line (train, baselines): the command is composed and checked before Hydra
    writes anything (`lstm_cls.precheck`); a UserError, raised here or inside Hydra, is one `error:` line
    with exit code 2; Ctrl-C without a traceback."""
    start()
    from lstm_cls.precheck import precheck

    held = None
    try:
        # (Lightning's DDP launcher restarts this command for the other processes, into the same directory)
        together = started_together()
        if rank_zero():
            held = precheck(sys.argv[1:], config_name, processes=together)
        elif together > 1:  # torchrun's or srun's: each checks the settings; the first holds the folder
            precheck(sys.argv[1:], config_name, first=False, processes=together)
            # and writes .hydra/ and train.log there; this one logs to its own file (as Lightning's do)
            sys.argv += ["hydra.output_subdir=null", f"hydra.job.name={config_name}_rank_{global_rank()}"]
        app()
    except UserError as e:
        fail(e)
    except Refused as e:
        fail(e.error)
    except KeyboardInterrupt:  # Ctrl-C outside fitting (imports, data, testing): no traceback
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    finally:
        if held is not None:
            rundir.release(held)
