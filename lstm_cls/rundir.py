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
SWEEP_FILES = ("sweep.json", "multirun.yaml")  # what makes a folder a sweep's root
# what a run may have made in its folder before training began: an error then removes these, by name, where
# the folder did not hold them before (and TensorBoard's event files this process wrote)
MADE_BEFORE_TRAINING = (".hydra", "train.log", "baselines.log", LOCK, "provenance.json", "hparams.yaml")
MADE_BEFORE_TRAINING += ("metrics.csv", ".resume.ckpt")


def conflicts(path: Path) -> list[str]:
    """The entries of `path` that a run would write over (Hydra's `.hydra/` included)."""
    if not path.is_dir():
        return []
    found = [n for n in (*RUN_FILES, ".hydra") if (path / n).exists()]
    return found + sorted(p.name for p in path.glob("events.out.tfevents.*"))


def check_writable(path: Path, key: str, shown: Path | None = None) -> None:
    """Refuse a folder that cannot be made or written, before any work: a dangling symbolic link on the way,
    a file where a folder must be, a read-only place. `shown`: the path the user gave for `key`, where `path`
    is the folder it goes into (a tool's output file)."""
    given = shown or path
    p = path
    while not p.exists():
        if p.is_symlink():
            raise UserError(f"{key}={given}: {p} is a symbolic link to nothing ({os.readlink(p)})")
        if p == p.parent:
            break
        p = p.parent
    if not p.is_dir():
        raise UserError(f"{key}={given}: {p} is a file, not a directory")
    if not os.access(p, os.W_OK | os.X_OK):
        raise UserError(f"{key}={given}: {p} cannot be written here (permission denied or read-only)")


def make(path: Path, key: str) -> None:
    """Make a folder a command will write into, or refuse it in one line (what `check_writable` cannot
    see ahead: /proc, a full disk)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"{key}={path} cannot be made ({e.strerror})") from None


def check_run_dir(path: Path, key: str = "hydra.run.dir") -> None:
    """Refuse a run directory that is a file, holds another run's results or a sweep, or is held by a live
    run."""
    if path.exists() and not path.is_dir():
        raise UserError(f"{key}={path} is a file, not a directory")
    if any((path / name).exists() for name in SWEEP_FILES):  # its files would be counted as the sweep's
        raise UserError(f"{key}={path} is a sweep's folder; give a run its own folder (choose another {key})")
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
    run = [n for n in RUN_FILES if (path / n).exists()]
    if run:  # a run's own folder: a sweep's files would mix with its results
        raise UserError(
            f"hydra.sweep.dir={path} holds a run ({', '.join(run)}); choose another hydra.sweep.dir"
        )
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
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # what check_writable cannot see ahead: /proc, a full disk...
        raise UserError(f"{path} cannot be made: {e.strerror}") from None
    lock = path / LOCK
    for _ in range(3):
        try:  # O_EXCL: of two runs starting together, exactly one creates it
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except PermissionError as e:
            raise UserError(f"{path} cannot be written: {e.strerror}") from None
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


# the entries each run directory held before this process touched it (`precheck.hold_run_dir`)
BEFORE: dict[Path, set[str] | None] = {}


def snapshot(path: Path) -> set[str] | None:
    """The entries of `path` before this run: what clean-up after an error must leave alone."""
    return {p.name for p in path.iterdir()} if path.is_dir() else None


def remove_created(path: Path, before: set[str] | None) -> None:
    """After an error before training began: remove what this run made in `path`, by name, nothing else:
    another process may be writing into the same folder, and its files are not this run's."""
    if not path.is_dir():
        return
    ours = set(MADE_BEFORE_TRAINING) - (before or set())
    pid = f".{os.getpid()}."  # TensorBoard names its files events.out.tfevents.<time>.<host>.<pid>.<n>
    for entry in path.iterdir():
        if entry.name in ours or (entry.name.startswith("events.out.tfevents.") and pid in entry.name):
            if entry.name in (before or set()):
                continue
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    if before is None and not any(path.iterdir()):
        path.rmdir()  # the folder itself was this run's, and nothing else is in it
