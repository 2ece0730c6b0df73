"""Summarise a sweep: `python -m lstm_cls.report SWEEP_DIR`.

Reads every job's config (.hydra/), metrics.json and per-epoch metrics.csv, and writes into SWEEP_DIR:
summary.csv and summary.md (a header with the sweep's wall time, training time and efficiency; a row per
job, means and spreads over seeds per configuration, what stopping earlier would have given, and every
figure it drew, linked), learning_curves.png, gap.png and test_acc.png, and where the sweep has them
remedies.png (dropout, weight decay, early stopping), learning_curve.png (data.train_fraction) and
weight_norms.png (norm/* columns of metrics.csv).
Works on a sweep still running, and on a single run directory. A job whose files cannot be read is
skipped with one line on stderr; the rest of the sweep is still reported.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np
import pandas as pd
import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from lstm_cls import UserError, cli, sweeps
from lstm_cls.checkpoints import write_json_atomic

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# always shown, under short names; other swept keys are added under their full name
KNOWN = {
    "model.hidden": "hidden",
    "data.batch_size": "batch_size",
    "trainer.max_epochs": "max_epochs",
    "seed": "seed",
    "model.lr": "lr",
}
AT_END = ["train/loss", "train/acc", "val/loss", "val/acc", "test/loss", "test/acc", "test/f1"]
# numbers newer runs write beside AT_END (older ones lack them): the majority-class floor, the training size
OPTIONAL = ["test/majority_acc", "windows/train"]
# the overfitting remedies a sweep may vary; early_stopping is read off the composed config (on/off)
REMEDIES = ["model.dropout", "model.weight_decay", "early_stopping"]
TRAIN_FRACTION = "data.train_fraction"
NORMS = ["norm/lstm", "norm/fc1", "norm/fc2"]  # per-epoch L2 norm of each layer's weights (metrics.csv)
# every figure the report may write, in the order summary.md shows them
FIGURES = [
    "learning_curves.png",
    "gap.png",
    "test_acc.png",
    "remedies.png",
    "learning_curve.png",
    "weight_norms.png",
]
# gids: the line of means, and its error bars or band (the spread over seeds, drawn only where there are two)
MEAN, SPREAD = "mean", "spread"


class Unreadable(Exception):
    """A job's file that cannot be read or is not what training writes: that job is skipped, not the sweep."""


@dataclass
class Job:
    """One run directory's files, read and checked before any table is made."""

    run: Path
    cfg: DictConfig
    overrides: list[str]
    metrics: dict | None  # None: no metrics.json yet (failed, or still running)
    error: str | None  # error.txt of a failed job
    hist: pd.DataFrame
    hist_problem: str | None = None  # why metrics.csv could not be used (the job is reported without it)


def find_runs(root: Path) -> list[Path]:
    """Run directories under root (root itself for a single run): those holding .hydra/config.yaml, less
    the unfinished attempts a resumed sweep moved aside (`.incomplete/`: their job ran again). In a sweep
    folder, only its jobs: those sweep.json lists where it lists them, and never the folder itself (a run
    someone wrote into a sweep's root is not one of its jobs)."""
    found = sorted(
        p.parent.parent
        for p in root.glob("**/.hydra/config.yaml")
        if ".incomplete" not in p.parent.parent.relative_to(root).parts
    )
    dirs = sweep_dirs(root)
    if dirs is not None:
        listed = {(root / d).resolve() for d in dirs}
        found = [r for r in found if r.resolve() in listed]
    elif (root / "multirun.yaml").is_file() and any(r != root for r in found):
        found = [r for r in found if r != root]
    return sorted(found, key=lambda p: (len(p.parts), int(p.name) if p.name.isdigit() else p.name))


def not_jobs(root: Path, runs: list[Path]) -> list[Path]:
    """Run directories under root that are not jobs of the sweep there (`find_runs` leaves them out)."""
    found = {p.parent.parent for p in root.glob("**/.hydra/config.yaml")}
    found = {r for r in found if ".incomplete" not in r.relative_to(root).parts}
    return sorted(found - set(runs))


def sweep_dirs(root: Path) -> list[str] | None:
    """The job folders sweep.json lists (None: no sweep.json, or one without `dirs`, as Optuna's sweeper
    and older versions leave). A `dirs` of another shape is a UserError naming the file and the field."""
    f = root / "sweep.json"
    try:
        state = json.loads(f.read_text())
    except (OSError, ValueError):  # absent, or unreadable: the timing says so (read_sweep_json)
        return None
    if not isinstance(state, dict) or "dirs" not in state:
        return None
    problem = sweeps.state_problem(state)
    if problem:
        raise UserError(f"{f}: {problem}")
    return list(state["dirs"])


def _cannot_read(name: str, e: Exception) -> Unreadable:
    why = "not UTF-8 text" if isinstance(e, UnicodeDecodeError) else getattr(e, "strerror", None) or str(e)
    return Unreadable(f"{name} cannot be read ({why})")


def _load_yaml(run: Path, name: str) -> DictConfig | ListConfig:
    try:
        return OmegaConf.load(run / name)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1} column {mark.column + 1})" if mark else ""
        raise Unreadable(f"{name} is not valid YAML{where}") from None
    except OmegaConfBaseException as e:
        raise Unreadable(f"{name} is not a valid config ({str(e).splitlines()[0]})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise _cannot_read(name, e) from None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _numbers(df: pd.DataFrame, col: str) -> pd.Series:
    """A column as floats (NaN where absent or null)."""
    return pd.to_numeric(df[col], errors="coerce") if col in df else pd.Series(np.nan, index=df.index)


def read_metrics(run: Path) -> dict | None:
    """metrics.json, checked: a JSON object with the keys its status implies, numbers where numbers go."""
    f = run / "metrics.json"
    if not f.is_file():
        return None
    try:
        m = json.loads(f.read_text())
    except json.JSONDecodeError as e:
        raise Unreadable(f"metrics.json is not valid JSON (line {e.lineno} column {e.colno})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise _cannot_read("metrics.json", e) from None
    if not isinstance(m, dict):
        raise Unreadable(f"metrics.json is not a JSON object (it holds a {type(m).__name__})")
    status = m.get("status", "completed")
    if not isinstance(status, str):
        raise Unreadable(f"metrics.json: status is {status!r}, not a word")
    # an interrupted run writes only how far it got; a completed one writes every figure (some may be null)
    need = ["epochs", *(["best_epoch", *AT_END] if status == "completed" else [])]
    missing = [k for k in need if k not in m]
    if missing:
        raise Unreadable(f"metrics.json lacks {', '.join(missing)}")
    numbers = [*need, "fit_seconds", *OPTIONAL]
    bad = next((k for k in numbers if m.get(k) is not None and not _is_number(m[k])), None)
    if bad:
        raise Unreadable(f"metrics.json: {bad} is {m[bad]!r}, not a number")
    return m


def history(run: Path) -> pd.DataFrame:
    """Per-epoch metrics, one row per epoch (the CSV logger writes one row per stage).

    Raises Unreadable when metrics.csv is there but is not the logger's numeric table.
    """
    f = run / "metrics.csv"
    if not f.is_file():
        return pd.DataFrame()
    try:
        df = pd.read_csv(f)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise Unreadable(f"metrics.csv is not a valid CSV ({str(e).strip().splitlines()[-1]})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise _cannot_read("metrics.csv", e) from None
    if "step" not in df:
        raise Unreadable("metrics.csv has no step column")
    try:
        df = df.apply(pd.to_numeric)
    except (ValueError, TypeError):
        raise Unreadable("metrics.csv holds values that are not numbers") from None
    df = df.drop(columns=[c for c in df.columns if c.startswith("test/")])
    df = df.dropna(how="all", subset=[c for c in df.columns if c != "step"])
    return df.groupby("step").first().rename_axis("epoch")


def read_job(run: Path) -> Job:
    """Read and check a run directory's files; raises Unreadable naming the first file that is not right."""
    cfg = _load_yaml(run, ".hydra/config.yaml")
    if not isinstance(cfg, DictConfig) or "model" not in cfg:
        raise Unreadable(".hydra/config.yaml is not a run's config (it has no model section)")
    overrides: Any = []
    if (run / ".hydra" / "overrides.yaml").is_file():
        # an empty file loads as an empty mapping: no overrides
        overrides = OmegaConf.to_container(_load_yaml(run, ".hydra/overrides.yaml")) or []
    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
        raise Unreadable(".hydra/overrides.yaml is not a list of key=value overrides")
    metrics, error = read_metrics(run), None
    if metrics is None and (run / "error.txt").is_file():
        try:
            error = (run / "error.txt").read_text(errors="replace").strip()
        except OSError as e:
            raise _cannot_read("error.txt", e) from None
    try:
        return Job(run, cfg, overrides, metrics, error, history(run))
    except Unreadable as e:
        return Job(run, cfg, overrides, metrics, error, pd.DataFrame(), hist_problem=str(e))


def swept_keys(overrides: list[list[str]]) -> list[str]:
    """The named settings, then any other key set on a job's command line (Hydra's own left out)."""
    keys: set[str] = set()
    for typed in overrides:
        for o in typed:
            key = o.split("=", 1)[0].lstrip("+~")
            if not key.startswith(("hydra", "sweep.")) and key != "run_dir":  # how it ran, not what
                keys.add(key)
    return list(KNOWN) + sorted(keys - set(KNOWN))


def label(value: Any) -> str:
    """A setting as one readable string: lists and mappings as [a, b] and {k: v}, anything else as str()."""
    if OmegaConf.is_config(value):
        value = OmegaConf.to_container(value, resolve=True)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(label(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {label(v)}" for k, v in value.items()) + "}"
    # pandas holds a null setting (class_weights: null) as NaN in a column of strings
    return "None" if value is None or (isinstance(value, float) and value != value) else str(value)


def job_row(job: Job, keys: list[str]) -> dict:
    """A job's row: its settings, then what metrics.json and metrics.csv say."""
    # "~key" (a deletion) has no value
    typed = dict(o.lstrip("+~").partition("=")[::2] for o in job.overrides)
    row: dict = {"job": job.run.name}
    for k in keys:
        try:
            value = OmegaConf.select(job.cfg, k)
            # a config group choice (data=weather_aus) selects a whole node: show what was typed.
            # Lists (and untyped nodes) become one string, so that jobs can be grouped and plotted by them
            if isinstance(value, DictConfig) and k in typed:
                value = typed[k]
            row[KNOWN.get(k, k)] = label(value) if OmegaConf.is_config(value) else value
        except OmegaConfBaseException as e:
            raise Unreadable(f".hydra/config.yaml: {k}: {str(e).splitlines()[0]}") from None
    # on when the composed config has the callback, however it got there (a callbacks list, an experiment)
    stopper = OmegaConf.select(job.cfg, "callbacks.early_stopping", throw_on_resolution_failure=False)
    row["early_stopping"] = "on" if isinstance(stopper, DictConfig) else "off"
    hist, m = job.hist, job.metrics
    if m is not None:
        row["status"] = m.get("status", "completed")
        row.update({k: m.get(k) for k in AT_END})
        row.update({k: m[k] for k in OPTIONAL if k in m})
        if m.get("derived_from") is not None:  # nested epochs: read off a longer job's training
            row["derived_from"] = label(m["derived_from"])
        row["best_epoch"] = m.get("best_epoch")
        row["epochs"] = m.get("epochs")
        if m.get("best_epoch") in hist.index:
            best = hist.loc[m["best_epoch"]]
            row.update({f"best/{k}": best.get(k) for k in ("train/loss", "train/acc", "val/loss", "val/acc")})
        if len(hist):
            row["gap/acc"], row["gap/loss"] = (
                hist[c].iloc[-1] if c in hist else None for c in ("gap/acc", "gap/loss")
            )
        row["fit_seconds"] = m.get("fit_seconds")
    elif job.error is not None:
        row["status"] = "failed"
        row["error"] = job.error
    else:
        row["status"] = "running"
        row["epochs"] = len(hist)
    return row


def _fmt(mean: float, std: float) -> str:
    # std is NaN for a single seed: no spread to show (a zero would claim runs that agree)
    return f"{mean:.3f}" if pd.isna(std) else f"{mean:.3f} ± {std:.3f}"


def varies(values: pd.Series) -> bool:
    """Whether jobs differ in a setting (null counts as a value)."""
    return values.map(label).nunique() > 1


def is_numeric(values: pd.Series) -> bool:
    """Whether a setting's values are numbers (plotted on a number line) rather than categories."""
    return pd.api.types.infer_dtype(values, skipna=True) in ("integer", "floating", "mixed-integer-float")


def _markdown(df: pd.DataFrame, params: list[str], **kwargs: Any) -> str:
    """df as a markdown table; settings that are not numbers as str(), kept from tabulate's number parsing
    (which would reformat a typed choice such as 1e-3 or 32 as a float)."""
    text = [c for c in params if c in df and not is_numeric(df[c])]
    df = df.assign(**{c: df[c].map(label) for c in text})
    return df.to_markdown(index=False, disable_numparse=[list(df.columns).index(c) for c in text], **kwargs)


def _same_partition(a: pd.Series, b: pd.Series) -> bool:
    """Whether two settings split the jobs into the same groups."""
    a, b = a.map(label), b.map(label)
    return bool(a.groupby(b).nunique().max() == 1 and b.groupby(a).nunique().max() == 1)


def read_sweep(root: Path, runs: list[Path]) -> tuple[pd.DataFrame, tuple, list[str], list[tuple[Path, str]]]:
    """The per-job table and histories of every readable job, its settings, and the jobs skipped and why."""
    read, skipped = [], []
    for run in runs:
        try:
            read.append(read_job(run))
        except Unreadable as e:
            skipped.append((run, str(e)))
    keys = swept_keys([j.overrides for j in read])
    rows, hists, problems = [], [], []
    for job in read:
        try:
            rows.append(job_row(job, keys))
        except Unreadable as e:
            skipped.append((job.run, str(e)))
            continue
        hists.append(job.hist)
        if job.hist_problem:
            problems.append((job.run, job.hist_problem))
    skipped.sort(key=lambda s: runs.index(s[0]))
    if not rows:
        run, why = skipped[0]
        more = f" (and {len(skipped) - 1} more unreadable)" if len(skipped) > 1 else ""
        raise UserError(f"{root}: no readable run; skipped {run}: {why}{more}")
    # after the check above, so that a sweep with nothing readable says so in its one error line
    for run, why in skipped:
        print(f"skipped {run}: {why}", file=sys.stderr)
    for run, why in problems:
        print(f"no learning curve for {run}: {why}", file=sys.stderr)
    jobs = pd.DataFrame(rows)
    # the named settings always; any other key only where it differs between jobs (null counts as a value)
    params = [KNOWN.get(k, k) for k in keys if k in KNOWN or varies(jobs[k])]
    if varies(jobs["early_stopping"]):
        params.append("early_stopping")
        # callbacks=[default],[default,early_stopping] only turns it on and off: one column says it
        if "callbacks" in params and _same_partition(jobs["callbacks"], jobs["early_stopping"]):
            params.remove("callbacks")
    jobs = jobs.drop(columns=[k for k in [*keys, "early_stopping"] if k not in KNOWN and k not in params])
    unreadable = [(run, f"skipped: {why}") for run, why in skipped]
    unreadable += [(run, f"no learning curve: {why}") for run, why in problems]
    return jobs, tuple(hists), params, unreadable


@dataclass
class Timing:
    """How long the sweep took and how well it kept its parallel slots busy."""

    wall_s: float | None  # None: no job has finished, and no sweep.json says when it started
    train_s: float  # fit_seconds summed over the jobs that trained themselves
    trained: int  # how many jobs that sum covers
    derived: int  # jobs derived from a longer one's training: no training time of their own
    at_once: int
    estimated: bool  # from file times and multirun.yaml, not sweep.json
    running: bool = False  # sweep.json has no finish time yet: wall time so far
    earlier: int = 0  # jobs a resumed sweep left as an earlier run of it completed them: not counted

    @property
    def efficiency(self) -> float | None:
        """Training time / (wall time × jobs at once): 1 when every slot trained all the time."""
        return self.train_s / (self.wall_s * self.at_once) if self.wall_s and self.wall_s > 0 else None


def duration(seconds: float) -> str:
    """Seconds as people read them: 12.3 s, 5 min 0 s, 2 h 3 min."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, s = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {s} s"
    return "{} h {} min".format(*divmod(minutes, 60))


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _check_sweep_json(f: Path) -> tuple[dict | None, str | None]:
    """sweep.json's content, or why it cannot be used."""
    try:
        s = json.loads(f.read_text())
    except json.JSONDecodeError as e:
        return None, f"sweep.json is not valid JSON (line {e.lineno} column {e.colno})"
    except (OSError, UnicodeDecodeError) as e:
        return None, str(_cannot_read("sweep.json", e))
    if not isinstance(s, dict):
        return None, "sweep.json is not a JSON object"
    if not _is_number(s.get("started")):
        return None, f"sweep.json: started is {s.get('started')!r}, not a time"
    if s.get("finished") is not None and not _is_number(s["finished"]):
        return None, f"sweep.json: finished is {s['finished']!r}, not a time"
    if not _positive_int(s.get("jobs_at_once")):
        return None, f"sweep.json: jobs_at_once is {s.get('jobs_at_once')!r}, not a positive whole number"
    return s, None


def read_sweep_json(root: Path) -> dict | None:
    """SWEEP_DIR/sweep.json as the launcher writes it, checked; None when the timing must be estimated
    instead (with one line on stderr if the file is there but cannot be used)."""
    f = root / "sweep.json"
    if not f.is_file():
        return None
    s, problem = _check_sweep_json(f)
    if problem:
        print(f"{problem}: timing estimated from file times", file=sys.stderr)
    return s


def _mtimes(paths: list[Path]) -> list[float]:
    """The modification times of those of paths that are there."""
    out = []
    for p in paths:
        try:
            out.append(p.stat().st_mtime)
        except OSError:  # not there (a job still running), gone or unreadable: one time less
            pass
    return out


def jobs_at_once(root: Path, n_jobs: int) -> int:
    """How many jobs the launcher ran side by side, from SWEEP_DIR/multirun.yaml (`sweeps.jobs_at_once`),
    never more than the sweep has jobs."""
    launcher: Any = {}
    f = root / "multirun.yaml"
    if f.is_file():
        problem = None
        try:
            # plain YAML: Hydra's interpolations (${now:...}) need not resolve here
            content = yaml.safe_load(f.read_text()) or {}
        except (yaml.YAMLError, OSError, UnicodeDecodeError):
            content, problem = {}, "multirun.yaml cannot be read"
        # checked by shape: each level a mapping, as Hydra writes it
        hydra = content.get("hydra") or {} if isinstance(content, dict) else None
        launcher = hydra.get("launcher") or {} if isinstance(hydra, dict) else None
        if problem is None and not isinstance(launcher, dict):
            field = (
                "the whole file"
                if hydra is None and not isinstance(content, dict)
                else ("hydra" if hydra is None else "hydra.launcher")
            )
            problem = f"multirun.yaml: {field} is not a mapping"
        if problem:
            print(f"{problem}: counting one job at once", file=sys.stderr)
            launcher = {}
    if not isinstance(launcher, dict):
        launcher = {}
    at_once = sweeps.jobs_at_once(launcher)
    # 16 cores running 4 jobs keep only 4 busy: counting 16 would understate the efficiency
    return max(1, min(at_once, n_jobs))


def sweep_timing(root: Path, runs: list[Path], jobs: pd.DataFrame) -> Timing:
    """Wall time, training time and parallelism: from sweep.json, else estimated from file times."""
    s = read_sweep_json(root)
    # a resumed sweep's wall time starts with its last run: jobs completed before then trained outside it
    earlier = {r.name for r in runs if s and any(t < s["started"] for t in _mtimes([r / "metrics.json"]))}
    derived = jobs["derived_from"].notna() if "derived_from" in jobs else pd.Series(False, index=jobs.index)
    before = jobs["job"].astype(str).isin(earlier)
    own = _numbers(jobs, "fit_seconds")[~derived & ~before].dropna()
    counts = {"train_s": float(own.sum()), "trained": len(own), "derived": int(derived.sum())}
    if s is not None:
        finished = s.get("finished")
        return Timing(
            wall_s=(finished if finished is not None else time.time()) - s["started"],
            at_once=s["jobs_at_once"],
            estimated=False,
            running=finished is None,
            earlier=int((before & ~derived).sum()),
            **counts,
        )
    # a job writes .hydra/ as it starts and metrics.json as it ends
    starts, ends = _mtimes([r / ".hydra" for r in runs]), _mtimes([r / "metrics.json" for r in runs])
    wall = max(ends) - min(starts) if starts and ends else None
    return Timing(wall_s=wall, at_once=jobs_at_once(root, len(runs)), estimated=True, **counts)


def header(jobs: pd.DataFrame, timing: Timing, n_skipped: int) -> list[str]:
    """The report's opening sentences: how many jobs, how long they took, the majority-class floor."""
    lines = [
        f"{sum(jobs.status == 'completed')} completed, {sum(jobs.status == 'failed')} failed, "
        f"{sum(jobs.status == 'running')} running, of {len(jobs)} jobs."
        + (f" {n_skipped} more skipped as unreadable." if n_skipped else "")
    ]
    t = timing
    if t.wall_s is None:
        wall = "Wall time unknown (no job has finished yet)"
    else:
        wall = f"Wall time {duration(t.wall_s)}" + (
            " so far (the sweep is still running)" if t.running else ""
        )
    parts = [
        wall,
        f"training time {duration(t.train_s)} (fit_seconds summed over {_plural(t.trained, 'job')})",
        f"{_plural(t.at_once, 'job')} at once",
    ]
    if t.efficiency is not None:
        parts.append(f"efficiency {t.efficiency:.2f} (training time / (wall time × jobs at once))")
    lines.append("; ".join(parts) + (" (estimated from file times)" if t.estimated else "") + ".")
    if t.derived:
        lines.append(
            f"{_plural(t.derived, 'job')} derived from a longer job's training (nested epochs): "
            "their fit_seconds are not counted."
        )
    if t.earlier:
        lines.append(
            f"{_plural(t.earlier, 'job')} completed by an earlier run of this sweep (resumed): "
            "their fit_seconds are not counted."
        )
    floor = majority(jobs)
    if floor:
        lines.append(
            f"Majority baseline (always predicting the training majority class): test acc {floor[1]}."
        )
    return lines


def majority(jobs: pd.DataFrame) -> tuple[float, str] | None:
    """The jobs' majority-class test accuracy: its mean, and as words (one value, or the range it spans)."""
    floor = _numbers(jobs, "test/majority_acc").dropna()
    if floor.empty:
        return None
    lo, hi = f"{floor.min():.3f}", f"{floor.max():.3f}"
    return floor.mean(), lo if lo == hi else f"{lo} to {hi}"


def per_config(done: pd.DataFrame, group: list[str], metrics: list[str]) -> pd.DataFrame:
    """Per combination of `group` (every setting but the seed): how many runs, and each metric's mean ± std
    over them, i.e. over seeds."""
    num = done.assign(**{c: pd.to_numeric(done[c], errors="coerce") for c in metrics if c in done})
    agg = num.groupby(group, dropna=False)
    return pd.DataFrame(
        {
            "runs": agg.size(),
            **{
                c: [_fmt(m, s) for m, s in zip(agg[c].mean(), agg[c].std(), strict=True)]
                for c in metrics
                if c in done
            },
        }
    ).reset_index()


RECORD = ".report.json"  # what report wrote into a folder: {name: {"file": its file, "sha256": its checksum}}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Outputs:
    """The files report writes into a folder, never over one it did not write: a file it wrote before
    (recorded in `.report.json` with its checksum, unchanged since) is rewritten; any other file of that
    name (your own `summary.md`, one you edited) is left as it is, and report writes beside it under a
    free name (`summary-2.md`), as predict does."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.record = self._read()

    def _read(self) -> dict[str, dict[str, str]]:
        f = self.root / RECORD
        try:
            data = json.loads(f.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            raise UserError(f"{f} cannot be read ({e}); move it away") from None
        if not isinstance(data, dict):
            raise UserError(
                f"{f}: the whole file is {sweeps.json_kind(data)}, not a JSON object; move it away"
            )
        for name, entry in data.items():
            file = entry.get("file") if isinstance(entry, dict) else None
            if not (
                isinstance(file, str)
                and file not in ("", ".", "..")
                and "/" not in file
                and "\\" not in file
                and isinstance(entry.get("sha256"), str)
            ):
                raise UserError(f"{f}: {name} is not a file report wrote ({{file, sha256}}); move it away")
        return data

    def ours(self, name: str) -> Path | None:
        """The file an earlier report wrote for `name`, if it still holds what report wrote there."""
        entry = self.record.get(name)
        if entry is None:
            return None
        p = self.root / entry["file"]
        try:
            return p if p.is_file() and not p.is_symlink() and _sha256(p) == entry["sha256"] else None
        except OSError:
            return None

    def path(self, name: str) -> Path:
        """Where to write `name`: report's earlier file, else the name itself if free, else a free name."""
        mine = self.ours(name)
        if mine is not None:
            return mine
        target = self.root / name
        if not target.exists() and not target.is_symlink():
            return target
        return cli.free_path(self.root, Path(name).stem, Path(name).suffix)

    def wrote(self, name: str, path: Path) -> None:
        """Record `path` as report's file for `name` (at once: an interrupted report leaves no stranger)."""
        self.record[name] = {"file": path.name, "sha256": _sha256(path)}
        write_json_atomic(self.root / RECORD, self.record)

    def remove(self, name: str) -> None:
        """Remove report's earlier file for `name` (a figure that no longer applies); never any other."""
        mine = self.ours(name)
        if mine is not None:
            mine.unlink()
        if name in self.record:
            del self.record[name]
            write_json_atomic(self.root / RECORD, self.record)


@dataclass
class Summary:
    """What `summarise` wrote: the per-job table, the header sentences, the figures' file names and the
    summary files (`summary.md` and `summary.csv`, or free names beside a file of yours)."""

    jobs: pd.DataFrame
    header: list[str]
    figures: list[str]
    md: Path | None = None
    csv: Path | None = None


def summarise(root: Path) -> Summary:
    """Write the summary tables and figures into `root`."""
    if not root.is_dir():
        raise UserError(f"{root}: no such directory")
    out = Outputs(root)
    runs = find_runs(root)
    if not runs:
        raise UserError(f"{root}: no runs here (a run directory holds .hydra/config.yaml)")
    for run in not_jobs(root, runs):
        print(f"not counted: {run} is not a job of this sweep (sweep.json)", file=sys.stderr)
    jobs, hists, params, unreadable = read_sweep(root, runs)
    csv_path = out.path("summary.csv")
    jobs.to_csv(csv_path, index=False)
    out.wrote("summary.csv", csv_path)

    done = jobs[jobs.status == "completed"]
    settings = [p for p in params if p != "seed"]  # a configuration: its seeds are its replicates
    config_cols = [p for p in settings if p != "max_epochs"]
    n_skipped = sum(why.startswith("skipped") for _, why in unreadable)
    lines = header(jobs, sweep_timing(root, runs, jobs), n_skipped)
    written = figures(root, jobs, hists, params, out)
    md = [f"# Sweep report: {root}", ""]
    for line in lines:
        md += [line, ""]
    if written:
        md += ["## Figures", ""]
        md += [f"![{Path(name).stem}]({name})\n" for name in written]
    # the training set's size, where the sweep varies it
    windows = ["windows/train"] if TRAIN_FRACTION in params and "windows/train" in jobs else []
    show = [
        c
        for c in [
            "job",
            *params,
            *windows,
            "best_epoch",
            "epochs",
            "train/acc",
            "val/acc",
            "test/acc",
            "test/f1",
            "val/loss",
            "best/val/loss",
            "best/val/acc",
            "gap/acc",
            "gap/loss",
            "fit_seconds",
            "derived_from",
        ]
        if c in jobs
    ]
    table = jobs[jobs.status != "failed"][show]
    if "derived_from" in table:  # a job's name, not a number; blank where the job trained itself
        table = table.assign(derived_from=table["derived_from"].fillna(""))
    md += ["## Jobs", "", _markdown(table, [*params, "derived_from"], floatfmt=".3f"), ""]
    if len(done) and config_cols:
        metrics = ["best_epoch", "test/acc", "test/f1", "best/val/loss", "gap/acc", "gap/loss"]
        table = per_config(done, [*config_cols, "max_epochs"], metrics)
        md += ["## Per configuration (mean ± std over seeds)", "", _markdown(table, params), ""]
        remedies = [c for c in REMEDIES if c in params]
        if remedies:
            group = remedies + [p for p in settings if p not in remedies]
            table = per_config(done, group, ["gap/acc", "test/acc", "test/f1"])
            md += ["## Remedies (mean ± std over seeds)", "", _markdown(table, params), ""]
        md += stopping_table(done, hists, jobs, config_cols)
    failed = jobs[jobs.status == "failed"]
    if len(failed):
        md += ["## Failed jobs", "", _markdown(failed[["job", *params, "error"]], params), ""]
    if unreadable:
        table = pd.DataFrame([{"job": run.name, "problem": why} for run, why in unreadable])
        md += ["## Unreadable files", "", _markdown(table, ["job", "problem"]), ""]
    md_path = out.path("summary.md")
    md_path.write_text("\n".join(md) + "\n")
    out.wrote("summary.md", md_path)
    return Summary(jobs, lines, written, md_path, csv_path)


def report(root: Path) -> pd.DataFrame:
    """Write the summary tables and figures into `root`; return the per-job table."""
    return summarise(root).jobs


def stopping_table(done: pd.DataFrame, hists: tuple, jobs: pd.DataFrame, config_cols: list[str]) -> list[str]:
    """From the longest run of each configuration: val loss and accuracy gap had it stopped earlier."""
    if "max_epochs" not in done or done["max_epochs"].nunique() < 2:
        return []
    stops = sorted(done["max_epochs"].unique())
    out = []
    for key, grp in _groups(done, config_cols, sort=True):
        longest = grp[grp.max_epochs == grp.max_epochs.max()]
        curves = [hists[i] for i in longest.index]
        row = dict(key)
        for n in stops:
            at = [h.loc[n] for h in curves if n in h.index]
            if at:
                vl = pd.Series([a.get("val/loss") for a in at], dtype=float)
                ga = pd.Series([a.get("gap/acc") for a in at], dtype=float)
                row[f"val/loss @{n}"] = _fmt(vl.mean(), vl.std())
                row[f"gap/acc @{n}"] = _fmt(ga.mean(), ga.std())
        out.append(row)
    return [
        "## Stopping earlier (read off the longest run of each configuration)",
        "",
        _markdown(pd.DataFrame(out), config_cols),
        "",
    ]


def positions(values: pd.Series) -> tuple[pd.Series, list[str] | None]:
    """Where each job goes on a setting's axis: numbers as they are; anything else (a string, a boolean, a
    list) as categories at 0, 1, 2, ... in the order the jobs first show them, with their labels."""
    if is_numeric(values):
        return pd.to_numeric(values), None
    labels = values.map(label)
    order = list(dict.fromkeys(labels))
    return labels.map(order.index), order


def _groups(df: pd.DataFrame, cols: list[str], sort: bool = False) -> list[tuple[dict, pd.DataFrame]]:
    """df split by the values of cols ({setting: value}, rows), in the order the jobs first show them
    unless sorted; without cols, df whole."""
    if not cols:
        return [({}, df)]
    return [
        (dict(zip(cols, key if isinstance(key, tuple) else (key,), strict=True)), grp)
        for key, grp in df.groupby(cols, dropna=False, sort=sort)
    ]


def _key_label(key: dict) -> str:
    return ", ".join(f"{c}={label(v)}" for c, v in key.items())


def _draw(
    ax: Axes, x: Any, mean: Any, std: Any, label: str | None = None, band: bool = False, **style: Any
) -> None:
    """A mean line, and its spread over seeds as error bars or a band where there is one: std is NaN for a
    single seed, and then nothing is drawn (not a zero-width bar)."""
    x, mean, std = (np.asarray(v, dtype=float) for v in (x, mean, std))
    style = {"marker": None if band else "o", "ms": 4, **style}
    (line,) = ax.plot(x, mean, label=label, gid=MEAN, **style)
    ok = ~np.isnan(std)
    if not ok.any():
        return
    if band:
        spread = ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2, lw=0)
    else:
        bars = ax.errorbar(x[ok], mean[ok], yerr=std[ok], fmt="none", ecolor=line.get_color(), capsize=3)
        spread = bars.lines[2][0]
    spread.set_gid(SPREAD)


def _majority(ax: Axes, done: pd.DataFrame) -> None:
    """The accuracy of always predicting the training majority class, as a labelled horizontal line (at
    the mean where jobs differ in it)."""
    floor = majority(done)
    if floor:
        ax.axhline(
            floor[0], color="black", ls="--", lw=1, label=f"majority baseline ({floor[1]})", gid="majority"
        )


def _finish(fig: Figure, title: str, legends: list[Axes] | None = None) -> Figure:
    """Title the figure and give each of `legends` (every panel by default) its legend: inside where it is
    short, beside the panel where it would hide the lines (the figure widens to make room)."""
    beside = 0
    for ax in fig.axes if legends is None else legends:
        n = len(ax.get_legend_handles_labels()[1])
        if 0 < n <= 4:
            ax.legend(fontsize=7)
        elif n > 4:
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1, 1), frameon=False)
            beside += 1
    if beside:
        width, height = fig.get_size_inches()
        fig.set_size_inches(width + 2.6 * beside, height)
    fig.suptitle(title)
    return fig


def _categories(ax: Axes, categories: list[str], rotate: bool = True) -> None:
    """A tick and a label at each category (slanted where they would run into each other)."""
    ax.set_xticks(range(len(categories)), categories)
    ax.set_xlim(-0.5, len(categories) - 0.5)
    if rotate and sum(map(len, categories)) > 24:
        ax.tick_params(axis="x", labelrotation=30)


def _numeric_axis(ax: Axes, x: pd.Series, log: bool) -> None:
    """Log scale where asked and the values span 8× or more; ticks at the swept values only, if few."""
    if log and x.min() > 0 and x.max() / x.min() >= 8:
        ax.set_xscale("log")
    values = sorted(x.dropna().unique())
    if len(values) <= 8:
        ax.minorticks_off()
        ax.set_xticks(values, [f"{v:g}" for v in values])


def _panels(n: int, width: float = 4.0, height: float = 3.2, **kwargs: Any) -> tuple[Figure, np.ndarray]:
    """A figure of n panels side by side (drawn without pyplot: nothing global to close); its layout makes
    room for legends beside a panel."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * n, height), layout="constrained")
    return fig, fig.subplots(1, n, squeeze=False, **kwargs)


def learning_curves_figure(jobs: pd.DataFrame, hists: tuple, config_cols: list[str]) -> Figure | None:
    """Train and val loss per epoch: one panel per configuration, its longest run(s), every seed drawn."""
    from matplotlib.figure import Figure

    have = [i for i, h in enumerate(hists) if len(h) and "train/loss" in h and "val/loss" in h]
    if not have:
        return None
    groups = _groups(jobs.loc[have], config_cols, sort=True)
    n = len(groups)
    cols = min(n, 3)
    rows = (n + cols - 1) // cols
    fig = Figure(figsize=(4.5 * cols, 3.2 * rows))
    axes = fig.subplots(rows, cols, squeeze=False, sharey=True)
    for ax, (key, grp) in zip(axes.flat, groups, strict=False):
        longest = grp[grp.epochs == grp.epochs.max()]
        for j, i in enumerate(longest.index):
            h = hists[i]
            ax.plot(h.index, h["train/loss"], color="tab:blue", alpha=0.7, label="train" if j == 0 else None)
            ax.plot(h.index, h["val/loss"], color="tab:orange", alpha=0.7, label="val" if j == 0 else None)
            if h["val/loss"].notna().any():
                ax.axvline(h["val/loss"].idxmin(), color="tab:orange", ls=":", lw=1)
        ax.set_title(_key_label(key) or "run", fontsize=9)
        ax.set_xlabel("epoch")
    for ax in axes.flat[n:]:
        ax.axis("off")
    axes[0, 0].set_ylabel("loss")
    axes[0, 0].legend()
    fig.suptitle("Learning curves (dotted: epoch of lowest val loss)")
    fig.tight_layout()
    return fig


def setting_figure(done: pd.DataFrame, params: list[str], metric: str, title: str) -> Figure | None:
    """`metric` against each swept setting, a panel each: a line per combination of the other settings,
    with error bars over its seeds; dots: the jobs."""
    settings = [p for p in params if p in done and p != "seed"]
    varied = [p for p in settings if varies(done[p])]
    panels = varied or settings  # a single configuration still gets its panels
    if not len(done) or metric not in done or not panels:
        return None
    y = _numbers(done, metric)
    fig, axes = _panels(len(panels), sharey=True)
    for ax, p in zip(axes.flat, panels, strict=True):
        x, categories = positions(done[p])
        ax.scatter(x, y, s=12, alpha=0.3, color="gray")
        # every other swept setting fixed along a line: what is left to average over is the seed
        for key, grp in _groups(done, [c for c in varied if c != p]):
            agg = y[grp.index].groupby(x[grp.index]).agg(["mean", "std"])
            _draw(ax, agg.index, agg["mean"], agg["std"], _key_label(key) or None)
        if categories is not None:
            _categories(ax, categories)
        else:
            _numeric_axis(ax, x, log=p in ("hidden", "batch_size", "lr"))
        ax.set_xlabel(p)
        if metric == "test/acc":
            _majority(ax, done)
    axes[0, 0].set_ylabel(title)
    return _finish(fig, f"{title} against each swept setting (mean ± std over seeds; dots: jobs)")


ACCURACIES = [("gap/acc", "train acc - val acc (end)"), ("test/acc", "test acc (best checkpoint)")]


def remedies_figure(done: pd.DataFrame, params: list[str]) -> Figure | None:
    """Gap and test accuracy per combination of the remedies swept (dropout, weight decay, early stopping):
    a series per combination of the other settings, error bars over seeds."""
    remedies = [c for c in REMEDIES if c in params]
    if not remedies or not len(done):
        return None
    # a remedy a line, short names: the labels stay narrow enough to stand upright
    combo = done[remedies].apply(
        lambda r: "\n".join(f"{c.split('.')[-1]}={label(r[c])}" for c in remedies), axis=1
    )
    order = list(dict.fromkeys(combo))
    at = combo.map(order.index)
    series = _groups(done, [c for c in params if c not in remedies and c != "seed" and varies(done[c])])
    widest = max(len(line) for text in order for line in text.splitlines())
    fig, axes = _panels(2, width=max(4.5, 0.09 * widest * len(order)), height=3.6)
    for ax, (metric, title) in zip(axes.flat, ACCURACIES, strict=True):
        y = _numbers(done, metric)
        for i, (key, grp) in enumerate(series):
            agg = y[grp.index].groupby(at[grp.index]).agg(["mean", "std"])
            # side by side within a category, so that one configuration's bars do not hide another's
            shift = (i - (len(series) - 1) / 2) * 0.5 / len(series)
            _draw(ax, agg.index + shift, agg["mean"], agg["std"], _key_label(key) or None, lw=1)
        _categories(ax, order, rotate=False)
        ax.set_ylabel(title)
        if metric == "test/acc":
            _majority(ax, done)
    # the same series in both panels: one legend, with the baseline, beside the test accuracy
    return _finish(fig, "Remedies: accuracy gap and test accuracy (mean ± std over seeds)", [axes[0, 1]])


def learning_curve_figure(done: pd.DataFrame, params: list[str]) -> Figure | None:
    """Gap and test accuracy against the number of training windows (data.train_fraction swept): a line per
    combination of the other settings, a band over seeds."""
    windows = _numbers(done, "windows/train")
    if TRAIN_FRACTION not in params or windows.isna().all():
        return None
    have = done[windows.notna()]
    others = [c for c in params if c not in ("seed", TRAIN_FRACTION) and varies(have[c])]
    fig, axes = _panels(2, width=4.5, height=3.4)
    for ax, (metric, title) in zip(axes.flat, ACCURACIES, strict=True):
        for key, grp in _groups(have, others):
            num = pd.DataFrame({"x": windows[grp.index], "y": _numbers(grp, metric)})
            agg = num.groupby(grp[TRAIN_FRACTION], dropna=False).agg(["mean", "std"])
            agg = agg.sort_values(("x", "mean"))
            name = _key_label(key) or None
            _draw(ax, agg["x"]["mean"], agg["y"]["mean"], agg["y"]["std"], name, band=True, marker="o")
        _numeric_axis(ax, windows[have.index], log=True)
        ax.set_xlabel("training windows (windows/train)")
        ax.set_ylabel(title)
        if metric == "test/acc":
            _majority(ax, have)
    title = "Learning curve: accuracy against training set size (mean ± std over seeds)"
    return _finish(fig, title, [axes[0, 1]])


def weight_norms_figure(jobs: pd.DataFrame, hists: tuple, params: list[str]) -> Figure | None:
    """Each layer's weight norm per epoch, a panel per layer: a line per configuration (coloured by hidden
    size), mean over seeds with a band. None for runs that did not log norms."""
    from matplotlib import colormaps
    from matplotlib.ticker import MaxNLocator

    norms = [c for c in NORMS if any(c in h for h in hists)]
    if not norms:
        return None
    have = jobs.loc[[i for i, h in enumerate(hists) if any(c in h for c in norms)]]
    config = [p for p in params if p not in ("seed", "max_epochs")]
    shown = [c for c in config if c != "hidden" and varies(have[c])]
    sizes = list(dict.fromkeys(sorted(have["hidden"].dropna()))) if "hidden" in have else []
    fig, axes = _panels(len(norms), width=4.5, height=3.4)
    styles = ["-", "--", ":", "-."]
    used: dict[Any, int] = {}  # per hidden size, how many lines it has: the next one's style
    for key, grp in _groups(have, config, sort=True):
        # runs differing only in max_epochs share their first epochs: the longest shows them all
        longest = grp[grp.max_epochs == grp.max_epochs.max()] if grp.max_epochs.notna().any() else grp
        hidden = key.get("hidden")
        colour = colormaps["viridis"](
            0.85 * sizes.index(hidden) / max(len(sizes) - 1, 1) if hidden in sizes else 0
        )
        style = styles[used.get(hidden, 0) % len(styles)]
        used[hidden] = used.get(hidden, 0) + 1
        name = _key_label({"hidden": hidden, **{c: key[c] for c in shown}})
        for ax, col in zip(axes.flat, norms, strict=True):
            curves = [hists[i][col] for i in longest.index if col in hists[i]]
            if curves:
                curves = pd.concat(curves, axis=1)
                mean, std = curves.mean(axis=1), curves.std(axis=1)
                _draw(ax, curves.index, mean, std, name, band=True, color=colour, ls=style)
    for ax, col in zip(axes.flat, norms, strict=True):
        ax.set_title(f"{col} (L2 norm of the weights)", fontsize=9)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0, 0].set_ylabel("weight norm")
    return _finish(fig, "Weight norms by hidden size (mean over seeds, band: ± std)", [axes[0, -1]])


def figures(
    root: Path, jobs: pd.DataFrame, hists: tuple, params: list[str], out: Outputs | None = None
) -> list[str]:
    """Draw every figure the sweep has the data for into root; return their file names (in FIGURES order:
    the names themselves, or free names beside files of yours).

    A figure of an earlier report that no longer applies is removed: the files and summary.md agree.
    """
    out = out or Outputs(root)
    done = jobs[jobs.status == "completed"]
    config_cols = [p for p in params if p not in ("seed", "max_epochs")]
    makers = {
        "learning_curves.png": lambda: learning_curves_figure(jobs, hists, config_cols),
        "gap.png": lambda: setting_figure(done, params, *ACCURACIES[0]),
        "test_acc.png": lambda: setting_figure(done, params, *ACCURACIES[1]),
        "remedies.png": lambda: remedies_figure(done, params),
        "learning_curve.png": lambda: learning_curve_figure(done, params),
        "weight_norms.png": lambda: weight_norms_figure(jobs, hists, params),
    }
    written = []
    for name in FIGURES:
        fig = makers[name]()
        if fig is None:
            out.remove(name)
            continue
        path = out.path(name)
        fig.savefig(path, dpi=110)
        out.wrote(name, path)
        written.append(path.name)
    return written


def main(argv: list[str] | None = None) -> None:
    class Parser(argparse.ArgumentParser):
        def error(self, message: str) -> NoReturn:
            # one `error:` line and exit code 2 (via cli.run), as every tool: not argparse's usage + error
            raise UserError(f"{message} (python -m lstm_cls.report --help)")

    parser = Parser(
        prog="python -m lstm_cls.report",
        # what it reads and writes: the docstring less its first line, the usage argparse prints itself
        description=__doc__.partition("\n\n")[2] or __doc__,
        epilog="examples:\n"
        "  python -m lstm_cls.report outputs/multirun/2026-11-23_10-00-00.000000   # a sweep\n"
        "  python -m lstm_cls.report outputs/runs/2026-11-23_10-00-00.000000       # a single run\n"
        "The last line printed is the path of SWEEP_DIR/summary.md.",
        formatter_class=argparse.RawDescriptionHelpFormatter,  # the paragraphs and examples as written
    )
    parser.add_argument(
        "sweep_dir",
        type=Path,
        metavar="SWEEP_DIR",
        help="a sweep (outputs/multirun/<date_time>) or a run directory (outputs/runs/<date_time>); "
        "the report is written into it",
    )
    args = parser.parse_args(argv)
    summary = summarise(args.sweep_dir)
    for line in summary.header:
        print(line)
    print(f"{len(summary.jobs)} jobs: {summary.jobs.status.value_counts().to_dict()}")
    assert summary.md is not None and summary.csv is not None
    print(f"wrote {args.sweep_dir}/{summary.csv.name}, {summary.md.name}, {', '.join(summary.figures)}")
    print(f"summary: {args.sweep_dir / summary.md.name}")  # last: the one file to open


if __name__ == "__main__":
    cli.run(main)  # UserError: one `error:` line, exit 2; Ctrl-C: exit 130
