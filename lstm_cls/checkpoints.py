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
import logging
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import lstm_cls
from lstm_cls import UserError

log = logging.getLogger(__name__)

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
        named = _code_named(p, e)
        if named is not None:
            # an intact file whose pickle names Python code (a call such as os.system, or a class:
            # torch.save(model)): weights_only refused to run it, which is what keeps a downloaded file
            # from running code. Said as it is, not as damage: the file is whole, and it is not data
            raise UserError(
                f"{where} holds code; not loaded (it names {named}: Python objects, not plain data, "
                "so not an lstm_cls checkpoint)"
            ) from e
        raise UserError(f"{where} is truncated or corrupt (not a torch checkpoint)") from e


def _code_named(p: Path, error: Exception) -> str | None:
    """The Python global that torch's weights_only loading refused in the file at `p`, when the file is
    intact (a whole zip, its pickle read to its STOP without error); None for anything else.

    torch's message alone cannot tell a refusal from damage (corrupt bytes can read as an odd global);
    the pickle is walked here without running anything (`pickletools.genops` only decodes opcodes)."""
    import pickletools
    import re
    import zipfile

    found = re.search(r"GLOBAL ([\w.]+)", str(error))
    if "Weights only load failed" not in str(error) or not found:
        return None
    try:
        with zipfile.ZipFile(p) as z:
            name = next((n for n in z.namelist() if n.endswith("/data.pkl") or n == "data.pkl"), None)
            if name is None:
                return None
            data = z.read(name)  # checks the member's CRC: damaged bytes raise BadZipFile
        ops = list(pickletools.genops(data))
    except Exception:  # any failure to read or decode: damage, told as such by the caller
        return None
    if not ops or ops[-1][0].name != "STOP":
        return None
    return found.group(1)


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


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def short_value(value: Any, width: int = 60) -> str:
    """A value for an error line: as typed (no quotes around a word), cut to `width` characters."""
    text = value if isinstance(value, str) else json.dumps(value) if _jsonable(value) else repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def check_data_info(ckpt: dict[str, Any], where: str, reads: bool = True) -> dict[str, Any]:
    """The checkpoint's `data_info`, checked to be what naming the outputs needs (and with `reads`, what
    reading a file with it needs: predict, evaluate; export reads none), and to agree with its model: one
    UserError naming what disagrees, never an IndexError or a KeyError from deep inside predict, evaluate
    or export. Returns it."""
    info, hp = ckpt["data_info"], ckpt["hyper_parameters"]

    def bad(what: str) -> UserError:
        return UserError(f"{where} is inconsistent: {what}; it cannot be used")

    for key in ("feature_names", "class_names"):
        names = info.get(key)
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise bad(f"its data_info.{key} is {short_value(names)}, not a list of names")
        if len(set(names)) != len(names):
            raise bad(f"its data_info.{key} names one column twice: {short_value(names)}")
    features, classes = info["feature_names"], info["class_names"]
    if hp.get("n_features") != len(features):
        raise bad(f"its data_info lists {len(features)} features, its model takes {hp.get('n_features')}")
    if hp.get("n_classes") != len(classes):
        raise bad(f"its data_info lists {len(classes)} classes, its model has {hp.get('n_classes')}")
    for key in ("mean", "std"):
        v = info.get(key)
        numbers = isinstance(v, list) and all(_finite(x) for x in v)
        if not numbers or len(v) != len(features):
            raise bad(
                f"its data_info.{key} is {short_value(v)}, not {len(features)} finite numbers (one a feature)"
            )
    if any(x <= 0 for x in info["std"]):
        raise bad(f"its data_info.std holds a scale <= 0: {short_value(info['std'])}")
    if info.get("clip") is not None and not (_finite(info["clip"]) and info["clip"] > 0):
        raise bad(f"its data_info.clip is {short_value(info['clip'])}, not a number > 0")
    if info.get("kind") != "sequences":
        for key, low in (("window", 1), ("stride", 1), ("horizon", 0)):
            if key not in info and (key == "window" or (key == "stride" and reads)):
                raise bad(f"its data_info has no {key}")  # (horizon: absent in checkpoints before it)
            if key not in info:
                continue
            v = info[key]
            if not isinstance(v, int) or isinstance(v, bool) or v < low:
                raise bad(f"its data_info.{key} is {short_value(v)}, not an integer >= {low}")
    for key in ("target", "group", "case"):
        if info.get(key) is not None and not isinstance(info[key], str):
            raise bad(f"its data_info.{key} is {short_value(info[key])}, not a column name")
    from lstm_cls.config import NAN_RULES

    if info.get("nan") is not None and info["nan"] not in NAN_RULES:
        raise bad(f"its data_info.nan is {short_value(info['nan'])}, not one of {', '.join(NAN_RULES)}")
    if info.get("dayfirst") is not None and not isinstance(info["dayfirst"], bool):
        raise bad(f"its data_info.dayfirst is {short_value(info['dayfirst'])}, not true, false or null")
    time = info.get("time")
    if time is not None and not isinstance(time, str):
        if not isinstance(time, list) or not all(isinstance(t, str) for t in time):
            raise bad(f"its data_info.time is {short_value(time)}, not a column name or a list of them")
    return info


def _finite(x: Any) -> bool:
    import math

    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
