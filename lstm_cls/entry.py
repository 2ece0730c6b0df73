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


def rank_zero() -> bool:
    """Whether this process is the first (or only) one: Lightning's DDP launcher sets LOCAL_RANK and
    NODE_RANK in the processes it starts; only the first writes the run's files."""
    return os.environ.get("LOCAL_RANK", "0") == "0" and os.environ.get("NODE_RANK", "0") == "0"


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
        if not (run_dir / "checkpoints").exists():  # refused before training: leave nothing that looks
            # like a run, and remove only what this run made (a folder you gave keeps your files)
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
        if rank_zero():
            held = precheck(sys.argv[1:], config_name)
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
