"""Settings checks, in one place, before anything heavy is imported (this module imports no torch).

Every entry point calls `check(cfg)` on its composed config: a bad value is one `UserError` naming the
key, the value and what is allowed, which the entry point turns into an `error:` line and exit code 2.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lstm_cls import UserError
from lstm_cls.data import header
from lstm_cls.data.header import check_time_columns, time_setting
from lstm_cls.data.splits import fraction_keeping, kept_steps, split_bounds

NAN_RULES = ("ffill", "drop", "error")
SCALES = ("standard", "robust", "none")  # data.scale: the one list (lstm_cls.data.scaling applies them)
LOSSES = ("ce", "bce", "mse")
OUTPUTS = ("softmax", "tanh")
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULERS = ("none", "cosine", "step", "plateau")
CLIP_ALGORITHMS = (None, "norm", "value")
# Lightning's precision names (lightning.fabric.connector._PRECISION_INPUT), and their short forms
PRECISIONS = (None, 16, 32, 64, "16", "32", "64", "bf16", "16-mixed", "bf16-mixed", "32-true", "64-true")
PRECISIONS += ("16-true", "bf16-true", "transformer-engine", "transformer-engine-float16")


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _problems_train_fraction(d: Mapping[str, Any], fractions_ok: bool, problems: list[str]) -> None:
    """data.train_fraction: (0, 1], windowed series only, and (data=synthetic, whose length is known before
    any data is made) at least one training window left."""
    f = d.get("train_fraction", 1.0)
    if "name" in d and "train_fraction" in d:  # data=uea: the key only exists there if added with +
        problems.append(
            "data.train_fraction applies to windowed series (data=synthetic, data=csv), not to data=uea's "
            "cases: leave it out"
        )
        return
    if not (_number(f) and 0 < f <= 1):
        problems.append(f"data.train_fraction must be in (0, 1] (got {f!r})")
        return
    if d.get("case") and f != 1:
        problems.append(
            "data.train_fraction applies to windowed series, not to whole cases (data.case): leave it at 1"
        )
        return
    if f == 1 or "length" not in d or not fractions_ok:
        return
    length, window, horizon = d.length, d.get("window", 1), d.get("horizon", 0)
    if not all(_int(v) and v >= 0 for v in (length, window, horizon)):
        return  # reported on their own
    n = split_bounds(0, length, d.val_fraction, d.test_fraction)["train"][1]  # as the data module cuts it
    need = window + horizon  # steps one window and its label take
    if n >= need > kept_steps(n, f):
        problems.append(
            f"data.train_fraction={f} keeps {kept_steps(n, f)} of the {n} training steps, fewer than "
            f"data.window={window} + data.horizon={horizon}: no training window is left; use "
            f"data.train_fraction >= {fraction_keeping(need, n)}"
        )


def _batches(v: Any) -> bool:
    """Lightning's limit_*_batches / overfit_batches: an int counts batches, a float is a fraction."""
    return v is None or (_int(v) and v >= 0) or (isinstance(v, float) and 0.0 <= v <= 1.0)


def _problems_model(m: Mapping[str, Any], problems: list[str]) -> None:
    for key in ("hidden", "head", "num_layers", "step_size"):
        if key in m and not (_int(m[key]) and m[key] > 0):
            problems.append(f"model.{key} must be a positive integer (got {m[key]!r})")
    if not (_int(m.get("patience", 0)) and m.get("patience", 0) >= 0):
        problems.append(f"model.patience must be an integer >= 0 (got {m['patience']!r})")
    if not (_number(m.dropout) and 0 <= m.dropout < 1):
        problems.append(f"model.dropout must be in [0, 1) (got {m.dropout!r})")
    if not (_number(m.lr) and m.lr > 0):
        problems.append(f"model.lr must be a number > 0 (got {m.lr!r})")
    for key in ("weight_decay", "momentum"):
        if not (_number(m.get(key, 0)) and m.get(key, 0) >= 0):
            problems.append(f"model.{key} must be a number >= 0 (got {m[key]!r})")
    if not (_number(m.get("gamma", 0.1)) and 0 < m.get("gamma", 0.1) < 1):
        problems.append(f"model.gamma must be in (0, 1) (got {m['gamma']!r})")
    for key in ("bidirectional", "keras_parity"):
        if not isinstance(m.get(key, False), bool):
            problems.append(f"model.{key} must be true or false (got {m[key]!r})")
    for key, allowed in (
        ("loss", LOSSES),
        ("output", OUTPUTS),
        ("optimizer", OPTIMIZERS),
        ("scheduler", SCHEDULERS),
    ):
        if key in m and m[key] not in allowed:
            problems.append(f"model.{key} must be one of {', '.join(allowed)} (got {m[key]!r})")
    if m.get("output") == "tanh" and m.loss != "mse":
        problems.append(f"model.output=tanh needs model.loss=mse (-1/+1 targets), got model.loss={m.loss}")
    if m.get("momentum", 0) and m.get("optimizer") != "sgd":
        problems.append("model.momentum is for model.optimizer=sgd (Adam and AdamW have their own betas)")
    w = m.get("class_weights")
    if not (
        w in (None, "none", "balanced")
        or (isinstance(w, (list, tuple)) and w and all(_number(x) and x > 0 for x in w))
    ):
        problems.append(f"model.class_weights must be none, balanced or a list of numbers > 0 (got {w!r})")


def _problems_trainer(t: Mapping[str, Any], problems: list[str], multirun: bool) -> None:
    max_steps = t.get("max_steps", -1)
    if not (_int(max_steps) and (max_steps == -1 or max_steps > 0)):
        problems.append(f"trainer.max_steps must be -1 (no limit) or a positive integer (got {max_steps!r})")
    epochs = t.get("max_epochs")
    if not ((_int(epochs) and epochs > 0) or (epochs in (None, -1) and _int(max_steps) and max_steps > 0)):
        problems.append(
            "trainer.max_epochs must be a positive integer, or -1 with trainer.max_steps set "
            f"(got {epochs!r})"
        )
    v = t.get("min_epochs")
    if v is not None and not (_int(v) and v >= 0):
        problems.append(f"trainer.min_epochs must be an integer >= 0 or null (got {v!r})")
    v = t.get("check_val_every_n_epoch")
    if v is not None and not (_int(v) and v >= 1):
        problems.append(f"trainer.check_val_every_n_epoch must be a positive integer or null (got {v!r})")
    v = t.get("accumulate_grad_batches", 1)
    if not (_int(v) and v >= 1):
        problems.append(f"trainer.accumulate_grad_batches must be an integer >= 1 (got {v!r})")
    clip = t.get("gradient_clip_val")
    if clip is not None and not (_number(clip) and clip >= 0):
        problems.append(f"trainer.gradient_clip_val must be a number >= 0 or null (got {clip!r})")
    if t.get("gradient_clip_algorithm") not in CLIP_ALGORITHMS:
        problems.append(
            f"trainer.gradient_clip_algorithm must be norm or value (got {t['gradient_clip_algorithm']!r})"
        )
    for key in ("limit_train_batches", "limit_val_batches", "limit_test_batches", "overfit_batches"):
        if not _batches(t.get(key)):
            problems.append(
                f"trainer.{key} must be an integer >= 0 (batches) or a float in [0, 1] (a fraction) "
                f"(got {t[key]!r})"
            )
    v = t.get("val_check_interval")
    if not (v is None or (_int(v) and v > 0) or (isinstance(v, float) and 0 < v <= 1)):
        problems.append(
            f"trainer.val_check_interval must be an integer > 0 (batches) or a float in (0, 1] (got {v!r})"
        )
    v = t.get("fast_dev_run", False)
    if not (isinstance(v, bool) or (_int(v) and v >= 0)):
        problems.append(f"trainer.fast_dev_run must be true, false or a number of batches (got {v!r})")
    if t.get("precision") not in PRECISIONS:
        allowed = ", ".join(str(p) for p in PRECISIONS if isinstance(p, str) and "-" in p)
        problems.append(f"trainer.precision must be one of {allowed} (got {t['precision']!r})")
    devices = t.get("devices", 1)
    if not (
        devices == "auto" or (_int(devices) and devices >= 1) or devices == -1 or isinstance(devices, list)
    ):
        problems.append(f"trainer.devices must be a positive integer, -1, auto or a list (got {devices!r})")
    several = "ddp" in str(t.get("strategy", "auto")) or devices not in (1, "1", "auto")
    if multirun and several:
        problems.append("Lightning's DDP is not started inside a Hydra multirun: use trainer.devices=1")


# the numeric settings of the callbacks and loggers conf/ ships: (smallest value, integers only)
NUMERIC_KEYS = {
    "refresh_rate": (0, True),
    "patience": (0, True),
    "min_delta": (0, False),
    "save_top_k": (-1, True),
    "every_n_epochs": (0, True),
    "flush_logs_every_n_steps": (1, True),
    "swa_lrs": (0, False),
    "swa_epoch_start": (0, False),
}


def _problems_numbers(group: str, entries: Mapping[str, Any], problems: list[str]) -> None:
    """Types and ranges of the callbacks' and loggers' numeric settings (Lightning would fail mid-run)."""
    for name, entry in entries.items():
        for key, (low, integer) in NUMERIC_KEYS.items():
            v = entry.get(key) if hasattr(entry, "get") else None
            if v is None:
                continue
            if not ((_int(v) if integer else _number(v)) and v >= low):
                kind = "an integer" if integer else "a number"
                problems.append(f"{group}.{name}.{key} must be {kind} >= {low} (got {v!r})")


def _problems_callbacks(callbacks: Mapping[str, Any], t: Mapping[str, Any], problems: list[str]) -> None:
    """A callback that watches a validation metric in a run that never validates would fail at its end."""
    epochs, every = t.get("max_epochs") or 0, t.get("check_val_every_n_epoch") or 1
    off = None
    if t.get("limit_val_batches") in (0, 0.0):
        off = f"trainer.limit_val_batches={t['limit_val_batches']}"
    elif _int(epochs) and _int(every) and 0 < epochs < every:
        off = f"trainer.check_val_every_n_epoch={every} with trainer.max_epochs={epochs}"
    for name, cb in callbacks.items():
        if off and str(cb.get("_target_", "")).endswith("EarlyStopping"):
            if str(cb.get("monitor", "")).startswith("val/"):
                problems.append(f"callbacks.{name} watches {cb['monitor']}, but {off} turns validation off")


def _check_ts_files(d: Mapping[str, Any]) -> None:
    """data=uea's two files: .ts by their suffix (as `uea.read_ts` asks), then present; here, so that a .csv
    given as data.test_path is refused before aeon and torch are imported, not seconds later."""
    for key in ("path", "test_path"):
        value = d.get(key)
        if not value:
            continue
        if Path(str(value)).suffix.lower() != ".ts":
            raise UserError(f"data.{key}: {value} is not a .ts file (the UEA/UCR archive's format)")
        if not Path(str(value)).is_file():
            raise UserError(f"data.{key}: no such file: {value}")


WINDOWING = Path(__file__).resolve().parents[1] / "conf" / "data" / "_windows.yaml"  # window, stride, horizon


def _check_whole_cases(d: Mapping[str, Any]) -> None:
    """data.case reads each case whole, as one sequence: the keys of long series and their windows do not
    apply. A window, stride or horizon is given where it differs from conf/data/_windows.yaml's, the values
    every table source is composed with; refused, not dropped without a word."""
    if d.get("group") or d.get("val_path"):
        raise UserError("data.case: a case is a whole sequence: data.group and data.val_path do not apply")
    from omegaconf import OmegaConf

    windowing = OmegaConf.load(WINDOWING)
    given = [f"data.{k}={d[k]}" for k in ("window", "stride", "horizon") if k in d and d[k] != windowing[k]]
    if given:
        raise UserError(
            f"data.case: a case is a whole sequence: {' and '.join(given)} "
            f"{'does' if len(given) == 1 else 'do'} not apply (leave the windowing keys out)"
        )


SWEEP_RESUME = ("auto", "force")  # lstm_cls.sweeps.RESUME: how a rerun into a sweep's folder resumes it


def _problems_sweep(sweep: Mapping[str, Any], problems: list[str]) -> None:
    """`sweep.resume` (conf/train.yaml): auto or force (the sweeper reads it; a single run checks it too)."""
    v = sweep.get("resume", "auto") if hasattr(sweep, "get") else sweep
    if v not in SWEEP_RESUME:
        problems.append(f"sweep.resume must be one of {', '.join(SWEEP_RESUME)} (got {v!r})")


def check(cfg: Mapping[str, Any], multirun: bool = False) -> None:
    """Reject out-of-range settings of a composed `train` config before any data is read."""
    d, m = cfg["data"], cfg["model"]
    problems: list[str] = []
    for key, value in [
        ("data.batch_size", d.batch_size),
        ("data.window", d.get("window", 1)),
        ("data.stride", d.get("stride", 1)),
        ("data.block", d.get("block", 1)),
        ("data.eval_batch_size", d.get("eval_batch_size", 1)),
        ("threads", cfg["threads"]),
    ]:
        if not (_int(value) and value > 0):
            problems.append(f"{key} must be a positive integer (got {value!r})")
    if not (_int(d.get("num_workers", 0)) and d.get("num_workers", 0) >= 0):
        problems.append(f"data.num_workers must be an integer >= 0 (got {d.num_workers!r})")
    if not (_int(d.get("horizon", 0)) and d.get("horizon", 0) >= 0):
        problems.append(f"data.horizon must be an integer >= 0 (got {d.horizon!r})")
    fractions_ok = True
    for key in ("val_fraction", "test_fraction"):
        if key in d and not (_number(d[key]) and 0 < d[key] < 1):
            problems.append(f"data.{key} must be in (0, 1) (got {d[key]!r})")
            fractions_ok = False
    if fractions_ok and "test_fraction" in d and d.val_fraction + d.test_fraction >= 1:
        problems.append("data.val_fraction + data.test_fraction must leave steps for training")
    if "length" in d:  # data=synthetic: the generator's own settings
        for key in ("length", "n_features", "n_classes"):
            if not (_int(d[key]) and d[key] >= (2 if key == "n_classes" else 1)):
                problems.append(
                    f"data.{key} must be an integer >= {2 if key == 'n_classes' else 1} (got {d[key]!r})"
                )
        if _int(d.n_features) and _int(d.n_classes) and d.n_features < d.n_classes:
            problems.append(f"data.n_features must be >= data.n_classes (got {d.n_features} < {d.n_classes})")
        if not (_number(d.noise) and 0 <= d.noise < 1):
            problems.append(f"data.noise must be in [0, 1) (got {d.noise!r})")
        if not (_number(d.regime) and d.regime >= 1):
            problems.append(f"data.regime must be a number >= 1 (got {d.regime!r})")
        if not _number(d.signal):
            problems.append(f"data.signal must be a number (got {d.signal!r})")
    _problems_train_fraction(d, fractions_ok, problems)
    if "nan" in d and d.nan not in NAN_RULES:
        problems.append(f"data.nan must be one of {', '.join(NAN_RULES)} (got {d.nan!r})")
    if "scale" in d and d.scale not in SCALES:
        problems.append(f"data.scale must be one of {', '.join(SCALES)} (got {d.scale!r})")
    clip = d.get("clip")
    if clip is not None and not (_number(clip) and math.isfinite(clip) and clip > 0):
        problems.append(f"data.clip must be a number > 0, or null for no clipping (got {clip!r})")
    if not time_setting(d.get("time")):
        problems.append(
            "data.time must be a column name or a non-empty list of distinct column names, "
            f"e.g. data.time=[Date,Time] (got {d.time!r})"
        )
    if not (_int(cfg.get("seed", 0)) and 0 <= cfg.get("seed", 0) < 2**32):
        problems.append(f"seed must be an integer in [0, 2**32) (got {cfg['seed']!r})")
    if not isinstance(cfg.get("fast", True), bool):
        problems.append(f"fast must be true or false (got {cfg['fast']!r})")
    _problems_model(m, problems)
    _problems_trainer(cfg["trainer"], problems, multirun)
    _problems_callbacks(cfg.get("callbacks") or {}, cfg["trainer"], problems)
    _problems_sweep(cfg.get("sweep") or {}, problems)
    for group in ("callbacks", "logger"):
        _problems_numbers(group, cfg.get(group) or {}, problems)
    if problems:
        raise UserError("; ".join(problems))
    ckpt = cfg.get("ckpt_path")
    if ckpt and not Path(ckpt).is_file():
        raise UserError(f"ckpt_path: no such file: {ckpt}")
    if "name" in d:  # labelled sequences (data=uea): a shipped data set by name, or two .ts files
        if bool(d.name) == bool(d.path):
            raise UserError(
                "data=uea needs data.name=NAME (e.g. BasicMotions) or data.path=X_TRAIN.ts, not both"
            )
        if d.path and not d.test_path:
            raise UserError("data.test_path is not set: pass the TEST .ts file beside data.path=X_TRAIN.ts")
        _check_ts_files(d)
    elif "path" in d:  # a table source: its files must exist before anything is built
        if d.get("case"):
            _check_whole_cases(d)
        if not d.path:
            raise UserError(f"data.path is not set: {d.get('hint') or 'pass data.path=FILE'}")
        if not d.get("target"):
            raise UserError("data.target is not set: pass data.target=COLUMN, the label column")
        if not (d.get("dayfirst") is None or isinstance(d.get("dayfirst"), bool)):  # `maybe`: a truthy guess
            raise UserError(f"data.dayfirst must be true, false or null (got {d.dayfirst!r})")
        features = header.as_names(d.get("features"))  # a bare string is one column, never its letters
        time, group = d.get("time"), d.get("group") or d.get("case")
        for key in ("path", "val_path", "test_path"):
            if d.get(key):  # existence, format and column names, from the header alone (no pandas)
                one_time = time if isinstance(time, str) else None  # a list: checked just below
                header.check_columns(d[key], f"data.{key}", d.target, features, one_time, group)
                check_time_columns(header.columns(d[key], f"data.{key}"), str(d[key]), time, d.target, group)


# launchers that run n_jobs side by side (Hydra's joblib, lstm_cls's forkserver), as joblib reads n_jobs
PARALLEL_LAUNCHERS = ("joblib", "forkserver")


def check_launcher(launcher: Mapping[str, Any]) -> None:
    """`hydra.launcher.*` numbers, checked like every setting: joblib's and the forkserver launcher's n_jobs
    is a non-zero integer (-1: every core, -2: all but one; joblib refuses 0)."""
    target = str(launcher.get("_target_", "")).lower()
    if not any(name in target for name in PARALLEL_LAUNCHERS):
        return
    n = launcher.get("n_jobs", -1)
    if n is not None and not (_int(n) and n != 0):
        raise UserError(
            f"hydra.launcher.n_jobs must be a non-zero integer: jobs at once, -1 for every core, -2 for all "
            f"but one (got {n!r})"
        )
