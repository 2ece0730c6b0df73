"""Resuming from a checkpoint (`ckpt_path=`): what carries over into the new run's folder, and what
must match.

A checkpoint is data: no path recorded inside it is opened, copied or trusted (`carry_over`), and the model
and data settings it was trained with are checked against this run's before anything is trained or written
(`check_resume`). Reading the file itself is `lstm_cls.checkpoints.load`'s.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lstm_cls import UserError
from lstm_cls.checkpoints import load, short_value, write_atomic

log = logging.getLogger(__name__)


def carry_over(ckpt_path: Path, checkpoints: Path, out: Path, callbacks: Sequence[Any] = ()) -> Path:
    """A checkpoint whose run goes on in another folder, as if it had always been there: its checkpoint
    callbacks' state points into `checkpoints`, and the best checkpoint it remembers is copied there;
    the result is saved as `out`, which is returned. The old run's files are never touched.

    A checkpoint is data: no path recorded inside it is opened, copied or kept (a file could name any
    file on the machine, and Lightning would test, copy or delete it). The best checkpoint is looked for
    under the name this run's callback gives it (`callbacks`: this trainer's ModelCheckpoint callbacks;
    without them the project's names, best.ckpt and last.ckpt) beside the checkpoint given, and used
    only if it is the one recorded: same model, same best score, not newer. Otherwise the record is
    dropped, with a warning: the best epoch is then chosen among the epochs after the resume."""

    import torch

    ckpt = load(ckpt_path)
    source = Path(ckpt_path).parent
    by_key = {getattr(cb, "state_key", None): cb for cb in callbacks}
    states = ckpt.get("callbacks")
    prepared: list[tuple[Path, Path]] = []  # (found beside the checkpoint, copy in this run)
    for key, state in states.items() if isinstance(states, dict) else []:
        if not isinstance(state, dict) or "dirpath" not in state:  # not a ModelCheckpoint
            continue
        cb = by_key.get(key)
        dirpath = str(cb.dirpath) if cb is not None and cb.dirpath else os.path.realpath(checkpoints)
        # every path Lightning would read back: none survives from the file
        state.update(
            dirpath=dirpath,
            best_model_path="",
            kth_best_model_path="",
            last_model_path="",
            best_k_models={},
        )
        score = state.get("best_model_score")
        if not state.get("monitor") or score is None:
            state["best_model_score"] = None  # the newest-epoch callback: this run writes its own file
            continue
        name = f"{cb.filename}{cb.FILE_EXTENSION}" if cb is not None and cb.filename else "best.ckpt"
        found = _recorded_best(source / name, ckpt, key, score)
        if found is None:
            log.warning(
                "%s: the best checkpoint it records is not %s (missing, or another run's): "
                "the best epoch is chosen among the epochs after the resume",
                ckpt_path,
                source / name,
            )
            state.update(best_model_score=None, kth_value=None)
            continue
        copy = Path(dirpath) / name
        prepared.append((found, copy))
        state.update(
            best_model_path=str(copy),
            kth_best_model_path=str(copy),
            best_k_models={str(copy): score},
            kth_value=score,
        )
    checkpoints.mkdir(parents=True, exist_ok=True)
    for found, copy in prepared:
        if not copy.exists():  # a file of this run is never replaced
            shutil.copyfile(found, copy)
    write_atomic(out, lambda f: torch.save(ckpt, f))
    return out


def _recorded_best(candidate: Path, ckpt: dict[str, Any], key: str, score: Any) -> Path | None:
    """`candidate` when it is the best checkpoint that `ckpt` records under callback `key`: an lstm_cls
    checkpoint (a plain file, not a link) of the same model, whose own record holds the same best score,
    from an epoch no later than `ckpt`'s. None otherwise; nothing in `ckpt` names the file."""
    import torch

    if candidate.is_symlink() or not candidate.is_file():
        return None
    try:
        best = load(candidate)
    except UserError:
        return None
    theirs = (best.get("callbacks") or {}).get(key)
    if not isinstance(theirs, dict):
        return None
    recorded = theirs.get("best_model_score")
    same = (
        isinstance(recorded, torch.Tensor)
        and isinstance(score, torch.Tensor)
        and recorded.shape == score.shape
        and bool(torch.equal(recorded.cpu(), score.cpu()))
    )
    later = not isinstance(best.get("epoch"), int) or best["epoch"] > ckpt.get("epoch", -1)
    if not same or later or best["hyper_parameters"] != ckpt["hyper_parameters"]:
        return None
    return candidate


# data_info keys as the settings a user types; the rest are named data.<key>
DATA_SETTING = {"feature_names": "data.features", "class_names": "the data's classes", "kind": "data"}
# model hyperparameters that are not model.* settings of their own: the data decides them
MODEL_SETTING = {"n_features": "the number of features", "n_classes": "the number of classes"}


def check_resume(
    ckpt: dict[str, Any],
    hparams: dict[str, Any],
    data_info: dict[str, Any],
    where: str,
    standard_reasons: list[str] | None = None,
) -> None:
    """Refuse to resume `ckpt` (loaded by `load`) into a run whose model or data settings differ from the
    ones it was trained with: one UserError naming each setting and both values, before anything of the
    resume is written or trained. A resume goes on with the same model on the same data; Lightning would
    otherwise fail with a size mismatch deep in loading, or go on silently with other data."""
    problems: list[str] = []
    theirs_info = ckpt.get("data_info", {})
    # the source file's path is no setting of the model: the same data may be named otherwise now
    for k in sorted(set(theirs_info) & set(data_info) - {"mean", "std", "source"}):
        if theirs_info[k] != data_info[k]:
            name = DATA_SETTING.get(k, f"data.{k}")
            problems.append(f"{name}={short_value(theirs_info[k])} (this run: {short_value(data_info[k])})")
    if not problems and not _close(theirs_info, data_info):
        # same features and settings, other numbers: another file (or rows added to it)
        problems.append(
            "the data's normalisation (mean and std of the training windows) differs: other data than "
            "the checkpoint was trained on"
        )
    theirs = ckpt.get("hyper_parameters", {})
    for k in sorted(set(theirs) & set(hparams)):
        if theirs[k] != hparams[k] and not (k in MODEL_SETTING and problems):
            name = MODEL_SETTING.get(k, f"model.{k}")
            problems.append(f"{name}={short_value(theirs[k])} (this run: {short_value(hparams[k])})")
    path = ckpt.get("train_path")  # written by the model; absent where saved before lstm_cls recorded it
    ours = "standard" if standard_reasons else "block"
    if standard_reasons is not None and path in ("block", "standard") and path != ours:
        # the two paths count their progress apart (blocks or batches, manual or automatic steps): the
        # other path would restart the step count at 0 and cut a resumed epoch at the wrong batch
        reasons = "; ".join(standard_reasons)
        this = f"Lightning's standard path, for {reasons}" if standard_reasons else "the block path"
        problems.append(f"the {path} training path (this run: {this})")
    if problems:
        raise UserError(
            f"{where} was trained with {'; '.join(problems)}: a resume goes on as the run it continues: "
            "use the checkpoint's settings, or train anew without ckpt_path"
        )


def _close(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """The normalisation statistics of two data_info agree (to float32 rounding)."""
    for k in ("mean", "std"):
        x, y = a.get(k), b.get(k)
        if x is None or y is None:
            continue
        if not isinstance(x, list) or not isinstance(y, list) or len(x) != len(y):
            return False
        for u, v in zip(x, y, strict=True):
            numbers = isinstance(u, (int, float)) and isinstance(v, (int, float))
            if not numbers or not math.isclose(u, v, rel_tol=1e-6, abs_tol=1e-9):
                return False
    return True
