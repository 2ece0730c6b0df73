"""Which training path a run takes: the block path, or Lightning's standard one.

The block path (see `lstm_cls.model`) is an optimisation, never a change of meaning. It honours exactly
what it can: epochs, validation every n epochs, val/test batch limits, gradient clipping, schedulers,
callbacks that work per epoch or per optimizer step. Everything that counts or treats training batches
one by one (accumulation, batch limits, step limits, mid-epoch validation, mixed precision, several
devices, callbacks acting per batch) takes Lightning's standard path: one batch per `training_step`,
automatic optimization, exactly as Lightning documents it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import (
    Callback,
    EarlyStopping,
    LearningRateMonitor,
    ModelCheckpoint,
    ProgressBar,
    StochasticWeightAveraging,
)
from lightning.pytorch.strategies import SingleDeviceStrategy
from lightning.pytorch.utilities.model_helpers import is_overridden

FULL_PRECISION = (None, 32, 64, "32", "64", "32-true", "64-true")
# hooks that Lightning calls once per training batch: in the block path they would fire once per block
PER_BATCH_HOOKS = ("on_train_batch_start", "on_train_batch_end", "on_before_zero_grad")
# hooks that Lightning calls once per optimizer step: the block path fires them through Lightning's calls
PER_STEP_HOOKS = ("on_before_backward", "on_after_backward", "on_before_optimizer_step")


def _is_default(value: Any, *defaults: Any) -> bool:
    # 1 (an int: one batch) is not 1.0 (a float: all batches), nor is True 1
    return any(value is d or (type(value) is type(d) and value == d) for d in defaults)


def standard_path_reasons(trainer: Mapping[str, Any], fast: bool, callbacks: list[Callback]) -> list[str]:
    """Why this run must take Lightning's standard path; empty: the block path honours every setting."""
    reasons = [] if fast else ["fast=false"]
    t = dict(trainer)
    checks = {
        "accumulate_grad_batches": (1,),
        "limit_train_batches": (None, 1.0),
        "max_steps": (None, -1),
        "val_check_interval": (None, 1.0),
        "fast_dev_run": (False, 0),
        "overfit_batches": (0, 0.0),
        "num_nodes": (1,),
        # checked by Lightning after every training batch: in blocks, only after every block
        "max_time": (None,),
        "min_steps": (None,),
    }
    for key, defaults in checks.items():
        if key in t and not _is_default(t[key], *defaults):
            reasons.append(f"trainer.{key}={t[key]}")
    if t.get("precision") not in FULL_PRECISION:
        reasons.append(f"trainer.precision={t['precision']}")
    if str(t.get("strategy", "auto")) not in ("auto", "single_device"):
        reasons.append(f"trainer.strategy={t['strategy']}")
    devices = t.get("devices", "auto")
    if not (
        _is_default(devices, 1, "1", "auto") or (isinstance(devices, (list, tuple)) and len(devices) == 1)
    ):
        reasons.append(f"trainer.devices={devices}")
    for cb in callbacks:
        if isinstance(cb, StochasticWeightAveraging):
            reasons.append("StochasticWeightAveraging (it schedules the learning rate itself)")
        elif isinstance(cb, ModelCheckpoint) and (cb._every_n_train_steps or cb._train_time_interval):
            reasons.append("ModelCheckpoint every_n_train_steps / train_time_interval")
        elif isinstance(cb, LearningRateMonitor) and cb.logging_interval == "step":
            reasons.append("LearningRateMonitor(logging_interval='step')")
        elif not isinstance(cb, (ModelCheckpoint, LearningRateMonitor, EarlyStopping, ProgressBar)):
            hooks = [h for h in PER_BATCH_HOOKS if is_overridden(h, cb, parent=Callback)]
            if hooks:
                reasons.append(f"{type(cb).__name__} overrides {', '.join(hooks)}")
    return reasons


def steps_directly(trainer: L.Trainer) -> bool:
    """Whether the block path may step the torch optimizer itself: full precision on one device, and no
    callback that hooks the backward pass or the optimizer step (those need Lightning's calls)."""
    if str(trainer.precision) not in ("32-true", "64-true") or not isinstance(
        trainer.strategy, SingleDeviceStrategy
    ):
        return False
    return not any(is_overridden(h, cb, parent=Callback) for cb in trainer.callbacks for h in PER_STEP_HOOKS)
