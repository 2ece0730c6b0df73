"""Run and sweep directories: never written over, held by one live run at a time, cleaned only of what
this run made. No torch here: these checks run before Hydra writes anything and before heavy imports."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from lstm_cls import UserError

# what a run writes into its directory: a folder already holding one of these is another run's, or the
# user's own file that a run would overwrite
RUN_FILES = ("metrics.json", "metrics.csv", "provenance.json", "hparams.yaml", "baselines.json")
RUN_FILES += ("checkpoints",)
LOCK = ".lock"


def conflicts(path: Path) -> list[str]:
    """The entries of `path` that a run would write over (Hydra's `.hydra/` included)."""
    if not path.is_dir():
        return []
    found = [n for n in (*RUN_FILES, ".hydra") if (path / n).exists()]
    return found + sorted(p.name for p in path.glob("events.out.tfevents.*"))


def check_run_dir(path: Path, key: str = "hydra.run.dir") -> None:
    """Refuse a run directory that is a file, holds another run's results, or is held by a live run."""
    if path.exists() and not path.is_dir():
        raise UserError(f"{key}={path} is a file, not a directory")
    holder = lock_holder(path)
    if holder is not None:
        raise UserError(f"{key}={path} is in use by a running run (pid {holder}); choose another {key}")
    found = conflicts(path)
    if found:
        raise UserError(
            f"{key}={path} already holds {', '.join(found)}: runs never write over results or your files; "
            f"resume a run with ckpt_path=<run>/checkpoints/last.ckpt, or choose another {key}"
        )


def check_sweep_dir(path: Path) -> None:
    """A sweep folder that already holds a sweep is refused: its jobs' files must keep their settings.
    One with `sweep.json` is lstm_cls's sweeper's: a rerun resumes it if its settings match
    (`lstm_cls.sweeps.check_resume`)."""
    if path.exists() and not path.is_dir():
        raise UserError(f"hydra.sweep.dir={path} is a file, not a directory")
    if (path / "sweep.json").exists():
        return
    if (path / "multirun.yaml").exists() or any(path.glob("*/.hydra")):
        raise UserError(
            f"hydra.sweep.dir={path} already holds a sweep: its finished jobs would be relabelled; "
            "choose another hydra.sweep.dir"
        )


def _lock_pid(path: Path) -> int | None:
    try:
        return int((path / LOCK).read_text().strip())
    except (OSError, ValueError):
        return None


def lock_holder(path: Path) -> int | None:
    """The pid of another live process holding `path`; None if there is no lock, it is ours, or its
    holder died (a killed run leaves a stale lock)."""
    pid = _lock_pid(path)
    if pid is None or pid <= 0 or pid == os.getpid():
        return None
    try:
        os.kill(pid, 0)  # signal 0: only asks whether it is alive
    except ProcessLookupError:
        return None
    except PermissionError:  # alive, another user's
        pass
    return pid


def acquire(path: Path) -> None:
    """Hold `path` for this process until `release`: a second run into it is refused while this one lives."""
    path.mkdir(parents=True, exist_ok=True)
    lock = path / LOCK
    for _ in range(3):
        try:  # O_EXCL: of two runs starting together, exactly one creates it
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            holder = lock_holder(path)
            if holder is not None:
                raise UserError(
                    f"{path} is in use by a running run (pid {holder}); choose another directory"
                ) from None
            if _lock_pid(path) == os.getpid():
                return  # already ours
            lock.unlink(missing_ok=True)  # a dead run's stale lock
            continue
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        return
    raise UserError(f"{path} is in use by another run; choose another directory")


def release(path: Path) -> None:
    if _lock_pid(path) == os.getpid():
        (path / LOCK).unlink(missing_ok=True)


# the entries each explicitly given run directory held before this process touched it (see `guard`)
BEFORE: dict[Path, set[str] | None] = {}


def guard(argv: list[str]) -> None:
    """Before Hydra writes `.hydra/` anywhere: refuse a used `hydra.run.dir` / `hydra.sweep.dir`, note what
    the run directory held, and hold it (two runs started together into one folder: one is refused)."""
    multirun = any(a in ("-m", "--multirun") for a in argv) or "hydra.mode=MULTIRUN" in argv
    for arg in argv:
        key, _, value = arg.partition("=")
        if key == "hydra.run.dir" and not multirun:
            path = Path(value)
            check_run_dir(path)
            BEFORE[path.resolve()] = snapshot(path)
            acquire(path)
        elif key == "hydra.sweep.dir" and multirun:
            check_sweep_dir(Path(value))


def snapshot(path: Path) -> set[str] | None:
    """The entries of `path` before this run: what clean-up after an error must leave alone."""
    return {p.name for p in path.iterdir()} if path.is_dir() else None


def remove_created(path: Path, before: set[str] | None) -> None:
    """After an error before training began: remove what this run made in `path`, nothing else."""
    if not path.is_dir():
        return
    for entry in path.iterdir():
        if before is None or entry.name not in before:
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    if before is None and not any(path.iterdir()):
        path.rmdir()  # the folder itself was this run's
