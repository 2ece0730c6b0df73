"""Settings checks, in one place, before anything heavy is imported (this module imports no torch).

Every entry point calls `check(cfg)` on its composed config: a bad value is one `UserError` naming the
key, the value and what is allowed, which the entry point turns into an `error:` line and exit code 2.
Each setting's type and range is declared once, in `lstm_cls.schema`, and checked here by one loop
(`problems`); what is written here by hand are the rules that span keys, and the files a setting names.
"""

from __future__ import annotations

import math
import operator
import shutil
import typing
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any, Literal

from omegaconf import DictConfig, OmegaConf

from lstm_cls import UserError, schema
from lstm_cls.data import header
from lstm_cls.data.header import check_time_columns
from lstm_cls.data.splits import fraction_keeping, kept_steps, split_bounds

NAN_RULES = typing.get_args(schema.NanRule)
SCALES = typing.get_args(schema.Scale)  # data.scale: the one list (lstm_cls.data.scaling applies them)
SWEEP_RESUME = typing.get_args(schema.Resume)  # sweep.resume: how a rerun resumes a sweep (sweeps.py)


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _choices(t: Any) -> list[Any]:
    """The values of a (union of, optional) `Literal`; [] for any other type."""
    if typing.get_origin(t) is Literal:
        return list(typing.get_args(t))
    return [c for a in typing.get_args(t) for c in _choices(a)]


def _parts(t: Any) -> tuple[Any, bool]:
    """A field's type without None, and whether it may be None (`x | None`)."""
    args = [a for a in typing.get_args(t) if a is not type(None)]
    optional = len(args) < len(typing.get_args(t))
    return (args[0] if optional and len(args) == 1 else t), optional


# schema.rule's limits: in words, as a test, as a bracket
BOUNDS = {"above": (">", operator.gt, "("), "min": (">=", operator.ge, "["), "below": ("<", operator.lt, ")")}
BOUNDS["max"] = ("<=", operator.le, "]")


def allowed(t: Any, limits: Mapping[str, Any]) -> str:
    """A field's type and range in words: `a positive integer`, `in (0, 1)`, `one of ce, bce, mse`."""
    (base, optional), choices = _parts(t), _choices(t)
    if "allowed" in limits or choices:
        return limits.get("allowed") or f"one of {', '.join(dict.fromkeys(str(c) for c in choices))}"
    if base is bool:
        return "true, false or null" if optional else "true or false"
    kind = {int: "an integer", float: "a number"}.get(base, "a string")
    low, high = ([k for k in keys if k in limits] for keys in (("above", "min"), ("below", "max")))
    if low and high:
        words = f"in {BOUNDS[low[0]][2]}{limits[low[0]]}, {limits[high[0]]}{BOUNDS[high[0]][2]}"
    elif low and base is int and low[0] == "above" and limits["above"] == 0:
        words = "a positive integer"
    else:
        words = " ".join([kind, *(f"{BOUNDS[k][0]} {limits[k]}" for k in low + high)])
    return f"{words} or null" if optional else words


def fits(t: Any, limits: Mapping[str, Any], v: Any) -> bool:
    """Whether `v` is of type `t` and in the range `limits` (`schema.rule`)."""
    (base, optional), choices = _parts(t), _choices(t)
    if "ok" in limits or v is None:
        return limits["ok"](v) if "ok" in limits else optional
    if choices or base in (bool, str):
        return v in choices and not isinstance(v, bool) if choices else isinstance(v, base)
    number = _int(v) if base is int else _number(v)
    return number and all(BOUNDS[k][1](v, limit) for k, limit in limits.items() if k in BOUNDS)


def problems(node: Mapping[str, Any], cls: type, prefix: str = "") -> list[str]:
    """Every field of the schema `cls` that `node` holds, checked: its type and range, one message each."""
    out = []
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        if f.name not in node or hints[f.name] is Any and "ok" not in f.metadata:
            continue
        if isinstance(node, DictConfig) and OmegaConf.is_interpolation(node, f.name):
            continue  # (${seed}, ${run_dir}: the setting it names is checked)
        v = node[f.name]
        if hints[f.name] in schema.NODES:  # a node of its own (sweep)
            out += problems(v or {}, hints[f.name], f"{prefix}{f.name}.")
        elif not fits(hints[f.name], f.metadata, v):
            out.append(f"{prefix}{f.name} must be {allowed(hints[f.name], f.metadata)} (got {v!r})")
    return out


# where each setting is declared: the data sources' schemas by the key that tells them apart
GROUPS = {"": [schema.Train], "sweep": [schema.Sweep], "model": [schema.Model], "trainer": [schema.Trainer]}
SOURCES = {"length": schema.Synthetic, "name": schema.Uea, "path": schema.Table}
GROUPS["data"] = list(SOURCES.values())


def source(d: Mapping[str, Any]) -> type:
    """The schema of a data source's config."""
    return next((cls for key, cls in SOURCES.items() if key in d), schema.Windows)


def wrong_type(typed: str) -> str | None:
    """The check's own words for an override Hydra refused to compose for its type (`model.lr=abc`)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    o = OverridesParser.create().parse_override(typed)
    group, _, key = o.key_or_group.rpartition(".")
    for cls in GROUPS.get(group, []):
        if key in {f.name for f in fields(cls)}:
            return next(iter(problems({key: o.value()}, cls, f"{group}." if group else "")), None)
    return None


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


def _train_fraction(d: Mapping[str, Any], problems: list[str]) -> None:
    """data.train_fraction: windowed series only, and (data=synthetic, whose length is known before any data
    is made) at least one training window left."""
    f = d.get("train_fraction", 1.0)
    if "name" in d and "train_fraction" in d:  # data=uea: the key only exists there if added with +
        problems.append(
            "data.train_fraction applies to windowed series (data=synthetic, data=csv), not to data=uea's "
            "cases: leave it out"
        )
    elif d.get("case") and f != 1:
        problems.append(
            "data.train_fraction applies to windowed series, not to whole cases (data.case): leave it at 1"
        )
    elif f != 1 and "length" in d and not problems:  # (the keys it uses are each checked on their own)
        length, window, horizon = d.length, d.get("window", 1), d.get("horizon", 0)
        n = split_bounds(0, length, d.val_fraction, d.test_fraction)["train"][1]  # as the data module cuts it
        need = window + horizon  # steps one window and its label take
        if n >= need > kept_steps(n, f):
            problems.append(
                f"data.train_fraction={f} keeps {kept_steps(n, f)} of the {n} training steps, fewer than "
                f"data.window={window} + data.horizon={horizon}: no training window is left; use "
                f"data.train_fraction >= {fraction_keeping(need, n)}"
            )


def _validation_off(cfg: Mapping[str, Any]) -> str | None:
    """Why a run never validates (trainer.limit_val_batches=0, or fewer epochs than between validations)."""
    t = cfg["trainer"]
    epochs, every = t.get("max_epochs") or 0, t.get("check_val_every_n_epoch") or 1
    if t.get("limit_val_batches") in (0, 0.0):
        return f"trainer.limit_val_batches={t['limit_val_batches']}"
    if _int(epochs) and _int(every) and 0 < epochs < every:
        return f"trainer.check_val_every_n_epoch={every} with trainer.max_epochs={epochs}"
    return None


def _spanning(cfg: Mapping[str, Any], multirun: bool) -> list[str]:
    """The rules that span keys (each key's own type and range: `problems`)."""
    d, m, t = cfg["data"], cfg["model"], cfg["trainer"]
    out = []
    if "test_fraction" in d and d.val_fraction + d.test_fraction >= 1:
        out.append("data.val_fraction + data.test_fraction must leave steps for training")
    if "length" in d and d.n_features < d.n_classes:
        out.append(f"data.n_features must be >= data.n_classes (got {d.n_features} < {d.n_classes})")
    if m.get("output") == "tanh" and m.loss != "mse":
        out.append(f"model.output=tanh needs model.loss=mse (-1/+1 targets), got model.loss={m.loss}")
    if m.get("momentum", 0) and m.get("optimizer") != "sgd":
        out.append("model.momentum is for model.optimizer=sgd (Adam and AdamW have their own betas)")
    epochs, max_steps = t.get("max_epochs"), t.get("max_steps", -1)
    if not ((_int(epochs) and epochs > 0) or (epochs in (None, -1) and max_steps > 0)):
        out.append(
            "trainer.max_epochs must be a positive integer, or -1 with trainer.max_steps set "
            f"(got {epochs!r})"
        )
    strategy, devices, nodes = str(t.get("strategy", "auto")), t.get("devices", 1), t.get("num_nodes", 1)
    if multirun and ("ddp" in strategy or devices not in (1, "1", "auto") or nodes != 1):
        out.append(
            "Lightning's DDP is not started inside a Hydra multirun: use trainer.devices=1 and "
            f"trainer.num_nodes=1 (got trainer.strategy={strategy}, devices={devices}, num_nodes={nodes})"
        )
    off = _validation_off(cfg)  # a callback watching a validation metric would fail at the run's end
    for name, cb in (cfg.get("callbacks") or {}).items():
        if (
            off
            and str(cb.get("_target_", "")).endswith("EarlyStopping")
            and str(cb.get("monitor", "")).startswith("val/")
        ):
            out.append(f"callbacks.{name} watches {cb['monitor']}, but {off} turns validation off")
    return out


def check(cfg: Mapping[str, Any], multirun: bool = False) -> None:
    """Reject out-of-range settings of a composed `train` config before any data is read."""
    d = cfg["data"]
    found = problems(cfg, schema.Train) + problems(cfg["model"], schema.Model, "model.")
    found += problems(cfg["trainer"], schema.Trainer, "trainer.") + problems(d, source(d), "data.")
    for group in ("callbacks", "logger"):
        for name, entry in (cfg.get(group) or {}).items():
            found += problems(entry if hasattr(entry, "get") else {}, schema.Numbers, f"{group}.{name}.")
    if not found:
        found = _spanning(cfg, multirun)
    _train_fraction(d, found)
    if found:
        raise UserError("; ".join(found))
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
    is a non-zero integer (-1: every core, -2: all but one; joblib refuses 0). Slurm's (submitit) needs
    Slurm's commands on this machine."""
    target = str(launcher.get("_target_", "")).lower()
    if target.endswith("slurmlauncher") and not (shutil.which("sbatch") and shutil.which("srun")):
        raise UserError(
            "hydra/launcher=slurm needs Slurm's sbatch and srun, which this machine does not have: run the "
            "command on the cluster's login node, or try the sweep here with hydra/launcher=submitit_local"
        )
    if not any(name in target for name in PARALLEL_LAUNCHERS):
        return
    n = launcher.get("n_jobs", -1)
    if n is not None and not (_int(n) and n != 0):
        raise UserError(
            f"hydra.launcher.n_jobs must be a non-zero integer: jobs at once, -1 for every core, -2 for all "
            f"but one (got {n!r})"
        )
