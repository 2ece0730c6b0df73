"""Reading and writing checkpoints safely.

- `load`: the one guarded way to read an lstm_cls checkpoint. `weights_only=True` (no code runs while
  loading), and every way a file can be wrong (missing, empty, truncated, corrupt, not ours, from an
  incompatible version) is one `UserError` line, never a traceback from deep inside torch.
- `write_atomic` / `write_json_atomic`: a file is either the old one or the complete new one, never half
  written: a full disk or a kill mid-write must not leave a truncated best.ckpt or metrics.json.
- `AtomicCheckpointIO`: Lightning's checkpoint writer, through `write_atomic`
  (`Trainer(plugins=[AtomicCheckpointIO()])`).

No Lightning import here at module level: `predict` and `export` use `load` without paying ~4 s for it;
`AtomicCheckpointIO` imports Lightning the first time it is asked for.
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import lstm_cls
from lstm_cls import UserError

# what every lstm_cls checkpoint holds, besides Lightning's own keys (epoch, global_step, ...)
REQUIRED = ("state_dict", "hyper_parameters", "data_info")
# the LightningModule holds the network as `net`; before 0.1 the weights sat at the top ("lstm.", "fc1.")
NET_PREFIX = "net."
OLD_PREFIXES = ("lstm.", "fc1.", "fc2.")


def load(path: str | Path, what: str = "ckpt_path") -> dict[str, Any]:
    """The checkpoint at `path` as plain data, checked to be an lstm_cls checkpoint of this version.

    `what` names the setting the path came from, for the error line (`ckpt_path: ... is empty`).
    """
    p = Path(path)
    where = f"{what}: {path}"
    if p.is_dir():
        raise UserError(f"{where} is a directory, not a checkpoint file")
    if not p.exists():
        raise UserError(f"{where}: no such file")
    try:
        # opened here so that an unreadable file is told apart from a corrupt one below
        with open(p, "rb"):
            pass
        size = p.stat().st_size
    except OSError as e:
        raise UserError(f"{where} could not be read: {e.strerror or e}") from e
    if size == 0:
        raise UserError(f"{where} is empty (0 bytes): it was not written to the end")
    ckpt = _torch_load(p, where)
    _check(ckpt, where)
    return ckpt


def _torch_load(p: Path, where: str) -> Any:
    import torch  # here, not at the top: writing metrics.json must not cost torch's import

    try:
        with warnings.catch_warnings():
            # damaged bytes read as an odd pickle protocol warn before they fail: the error says it all
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:
        # Exception, not BaseException: Ctrl-C still stops. Damaged bytes surface as almost anything
        # (RuntimeError from the zip reader, UnpicklingError, EOFError, KeyError, IndexError, TypeError,
        # UnicodeDecodeError, OSError from a bad seek, MemoryError from a huge size...): all mean the same
        if "Unsupported global" in str(e):
            # a valid pickle holding Python objects (torch.save(model), not a state dict): refused by
            # weights_only, which is what keeps a downloaded file from running code
            raise UserError(
                f"{where} is not an lstm_cls checkpoint (it holds Python objects, not plain data)"
            ) from e
        raise UserError(f"{where} is truncated or corrupt (not a torch checkpoint)") from e


def _check(ckpt: Any, where: str) -> None:
    import torch

    """Raise a UserError unless `ckpt` is an lstm_cls checkpoint this version can use."""
    if not isinstance(ckpt, dict):
        raise UserError(f"{where} is not an lstm_cls checkpoint (it holds a {type(ckpt).__name__})")
    # the version first: a newer layout may well lack the keys checked below, and "too new" says why
    if "lstm_cls_version" in ckpt:
        _check_version(ckpt["lstm_cls_version"], where)
    state = ckpt.get("state_dict")
    if isinstance(state, dict) and not _has_net(state) and any(_starts(k, OLD_PREFIXES) for k in state):
        raise UserError(
            f"{where} is from an older lstm_cls layout (weights lstm.*/fc1.*, this version reads "
            f"net.lstm.*/net.fc1.*): retrain with lstm_cls {lstm_cls.__version__}"
        )
    missing = [k for k in REQUIRED if k not in ckpt]
    if missing:
        # a bare torch.save(model.state_dict()) is a dict of tensors: say so, it is the usual mistake
        if ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
            problem = "a bare state_dict of tensors: no hyper_parameters or data_info"
        else:
            problem = f"no {', '.join(missing)}"
        raise UserError(f"{where} is not an lstm_cls checkpoint ({problem})")
    for k in REQUIRED:
        if not isinstance(ckpt[k], dict):
            raise UserError(
                f"{where} is not an lstm_cls checkpoint ({k} is a {type(ckpt[k]).__name__}, not a dict)"
            )
    if not _has_net(ckpt["state_dict"]):
        raise UserError(
            f"{where} is not an lstm_cls checkpoint (its state_dict has no {NET_PREFIX}* weights)"
        )


def _check_version(version: Any, where: str) -> None:
    ours = _major_minor(lstm_cls.__version__)
    theirs = _major_minor(version) if isinstance(version, str) else None
    if theirs is None:
        raise UserError(f"{where} has an unreadable lstm_cls_version ({version!r})")
    # major.minor: a patch release keeps the checkpoint layout, a minor one may change it
    if theirs != ours:
        raise UserError(
            f"{where} was written by lstm_cls {version}, incompatible with this version "
            f"{lstm_cls.__version__} (major.minor differ)"
        )


def _major_minor(version: str) -> tuple[int, int] | None:
    parts = version.strip().split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return None


def _starts(key: Any, prefixes: str | tuple[str, ...]) -> bool:
    # keys of a damaged file may be anything: only strings count
    return isinstance(key, str) and key.startswith(prefixes)


def _has_net(state: dict[Any, Any]) -> bool:
    return any(_starts(k, NET_PREFIX) for k in state)


def write_atomic(path: str | Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write `path` through `write(file)` all at once: the previous file stays until the new one is
    complete and on disk, then replaces it in one step (`os.replace`).

    On any error the temporary file is removed; an OSError (disk full, quota, I/O error) becomes a
    UserError. The directory must exist.
    """
    target = Path(path)
    existed = target.exists()
    # same directory: os.replace is atomic only within one filesystem. Hidden, named after the target
    # and the process, so a leftover of a killed run is recognisable and two runs never share one
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())  # the bytes on disk before the rename, or a crash can leave an empty file
        os.replace(tmp, target)
    except BaseException as e:  # KeyboardInterrupt too: no temporary file left behind, then re-raised
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(e, OSError):
            kept = "the previous file is kept" if existed else "nothing was written"
            raise UserError(f"could not write {path}: {e.strerror or e}; {kept}") from e
        raise
    _fsync_dir(target.parent)


def _fsync_dir(directory: Path) -> None:
    # makes the rename itself durable; the file is already complete, so a failure here (a filesystem
    # or OS that cannot fsync a directory) is not an error
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_json_atomic(path: str | Path, obj: Any) -> None:
    """`obj` as indented JSON (the project's format: indent 2, final newline), written atomically."""
    # serialised first: an object JSON cannot hold fails before any file is touched
    data = (json.dumps(obj, indent=2) + "\n").encode()
    write_atomic(path, lambda f: f.write(data))


def _make_atomic_checkpoint_io() -> type:
    import torch
    from fsspec.implementations.local import LocalFileSystem
    from lightning.fabric.utilities.cloud_io import get_filesystem
    from lightning.fabric.utilities.types import _PATH
    from lightning.pytorch.plugins.io import TorchCheckpointIO

    class AtomicCheckpointIO(TorchCheckpointIO):
        """Lightning's TorchCheckpointIO, writing local files through `write_atomic`: a checkpoint is the
        previous one or the complete new one, and a full disk is one UserError line."""

        def save_checkpoint(
            self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None
        ) -> None:
            fs = get_filesystem(path)
            if not isinstance(fs, LocalFileSystem):
                # remote storage (s3://...): Lightning's own transaction-based write
                return super().save_checkpoint(checkpoint, path, storage_options)
            if storage_options is not None:  # as TorchCheckpointIO: it has no use for them
                raise TypeError(
                    "`Trainer.save_checkpoint(..., storage_options=...)` with `storage_options` arg"
                    f" is not supported for `{self.__class__.__name__}`."
                )
            fs.makedirs(os.path.dirname(path), exist_ok=True)
            # looked up at call time (not `from torch import save`) so tests can stand in for it
            write_atomic(path, lambda f: torch.save(checkpoint, f))

    # found by pickle (and by repr) as lstm_cls.checkpoints.AtomicCheckpointIO, through __getattr__
    AtomicCheckpointIO.__module__ = __name__
    AtomicCheckpointIO.__qualname__ = "AtomicCheckpointIO"
    return AtomicCheckpointIO


_lazy: dict[str, type] = {}


def __getattr__(name: str) -> Any:
    # PEP 562: `from lstm_cls.checkpoints import AtomicCheckpointIO` imports Lightning only then
    if name == "AtomicCheckpointIO":
        if name not in _lazy:
            _lazy[name] = _make_atomic_checkpoint_io()
        return _lazy[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def carry_over(ckpt_path: Path, checkpoints: Path, out: Path) -> Path:
    """A checkpoint whose run goes on in another folder, as if it had always been there: copy the old
    run's checkpoints that the checkpoint callbacks remember (the best one above all) into `checkpoints`,
    point their state there, and save the result as `out`. Lightning would otherwise drop the
    best-checkpoint record when the directory changes, and a resumed run would test the best epoch after
    the resume instead of the true best. The old run's files are never touched. Returns `out`."""
    import shutil

    import torch

    ckpt = load(ckpt_path)
    checkpoints.mkdir(parents=True, exist_ok=True)

    def moved(path: str) -> str:
        old = Path(path)
        if not path or not old.is_file():
            return path
        new = checkpoints / old.name
        if not new.exists():
            shutil.copy2(old, new)
        return str(new)

    for state in ckpt.get("callbacks", {}).values():
        if "dirpath" not in state:  # not a ModelCheckpoint
            continue
        for key in ("best_model_path", "kth_best_model_path", "last_model_path"):
            state[key] = moved(state.get(key, ""))
        state["best_k_models"] = {moved(k): v for k, v in state.get("best_k_models", {}).items()}
        state["dirpath"] = str(checkpoints)
    write_atomic(out, lambda f: torch.save(ckpt, f))
    return out
