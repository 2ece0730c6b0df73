"""A sweep's jobs read and checked: which run directories are its jobs, each one's config, overrides,
metrics.json and metrics.csv, and the per-job table made of them. A job whose files cannot be read is
skipped (Unreadable, one line on stderr); the rest of the sweep is still read."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from lstm_cls import UserError, metrics, sweeps
from lstm_cls.cli import SHORT_NAMES, override_key, parse_override
from lstm_cls.metrics import AT_END, OPTIONAL
from lstm_cls.report.values import label, varies

# the overfitting remedies a sweep may vary; early_stopping is read off the composed config (on/off)
REMEDIES = ["model.dropout", "model.weight_decay", "early_stopping"]
TRAIN_FRACTION = "data.train_fraction"


class Unreadable(Exception):
    """A job's file that cannot be read or is not what training writes: that job is skipped, not the sweep."""


@dataclass
class RunFiles:
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
    found = sorted(_run_dirs(root))
    dirs = sweep_dirs(root)
    if dirs is not None:
        listed = {(root / d).resolve() for d in dirs}
        found = [r for r in found if r.resolve() in listed]
    elif (root / "multirun.yaml").is_file() and any(r != root for r in found):
        found = [r for r in found if r != root]
    return sorted(found, key=lambda p: (len(p.parts), int(p.name) if p.name.isdigit() else p.name))


def not_jobs(root: Path, runs: list[Path]) -> list[Path]:
    """Run directories under root that are not jobs of the sweep there (`find_runs` leaves them out)."""
    return sorted(_run_dirs(root) - set(runs))


def _run_dirs(root: Path) -> set[Path]:
    """The directories under root holding .hydra/config.yaml, less those in `.incomplete/`."""
    return {
        p.parent.parent
        for p in root.glob("**/.hydra/config.yaml")
        if ".incomplete" not in p.parent.parent.relative_to(root).parts
    }


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


def cannot_read(name: str, e: Exception) -> Unreadable:
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
        raise cannot_read(name, e) from None


def read_metrics(run: Path) -> dict | None:
    """metrics.json, checked: a JSON object with the keys its status implies, numbers where numbers go."""
    if not (run / metrics.FILE).is_file():
        return None
    try:
        m = metrics.read(run)
    except metrics.Unfit as e:
        if isinstance(e.cause, json.JSONDecodeError):
            where = f"line {e.cause.lineno} column {e.cause.colno}"
            raise Unreadable(f"{metrics.FILE} is not valid JSON ({where})") from None
        if e.cause:
            raise cannot_read(metrics.FILE, e.cause) from None
        if not isinstance(e.content, dict):
            raise Unreadable(
                f"{metrics.FILE} is not a JSON object (it holds a {type(e.content).__name__})"
            ) from None
        raise Unreadable(f"{metrics.FILE}: status is {e.content['status']!r}, not a word") from None
    problem = metrics.problem(m)
    if problem:
        raise Unreadable(problem)
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
        raise cannot_read("metrics.csv", e) from None
    if "step" not in df:
        raise Unreadable("metrics.csv has no step column")
    try:
        df = df.apply(pd.to_numeric)
    except (ValueError, TypeError):
        raise Unreadable("metrics.csv holds values that are not numbers") from None
    df = df.drop(columns=[c for c in df.columns if c.startswith("test/")])
    df = df.dropna(how="all", subset=[c for c in df.columns if c != "step"])
    return df.groupby("step").first().rename_axis("epoch")


def read_job(run: Path) -> RunFiles:
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
    scores, error = read_metrics(run), None
    if scores is None and (run / "error.txt").is_file():
        try:
            error = (run / "error.txt").read_text(errors="replace").strip()
        except OSError as e:
            raise cannot_read("error.txt", e) from None
    try:
        return RunFiles(run, cfg, overrides, scores, error, history(run))
    except Unreadable as e:
        return RunFiles(run, cfg, overrides, scores, error, pd.DataFrame(), hist_problem=str(e))


def setting_keys(overrides: list[list[str]]) -> list[str]:
    """SHORT_NAMES' settings, then any other key set on a job's command line (Hydra's own left out)."""
    keys: set[str] = set()
    for typed in overrides:
        for o in typed:
            key = override_key(o)
            if not key.startswith(("hydra", "sweep.")) and key != "run_dir":  # how it ran, not what
                keys.add(key)
    return list(SHORT_NAMES) + sorted(keys - set(SHORT_NAMES))


def job_row(job: RunFiles, keys: list[str]) -> dict:
    """A job's row: its settings, then what metrics.json and metrics.csv say."""
    # "~key" (a deletion) has no value
    typed = dict(map(parse_override, job.overrides))
    row: dict = {"job": job.run.name}
    for k in keys:
        try:
            value = OmegaConf.select(job.cfg, k)
            # a config group choice (data=weather_aus) selects a whole node: show what was typed.
            # Lists (and untyped nodes) become one string, so that jobs can be grouped and plotted by them
            if isinstance(value, DictConfig) and k in typed:
                value = typed[k]
            row[SHORT_NAMES.get(k, k)] = label(value) if OmegaConf.is_config(value) else value
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
    keys = setting_keys([j.overrides for j in read])
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
    params = [SHORT_NAMES.get(k, k) for k in keys if k in SHORT_NAMES or varies(jobs[k])]
    if varies(jobs["early_stopping"]):
        params.append("early_stopping")
        # callbacks=[default],[default,early_stopping] only turns it on and off: one column says it
        if "callbacks" in params and _same_partition(jobs["callbacks"], jobs["early_stopping"]):
            params.remove("callbacks")
    jobs = jobs.drop(
        columns=[k for k in [*keys, "early_stopping"] if k not in SHORT_NAMES and k not in params]
    )
    unreadable = [(run, f"skipped: {why}") for run, why in skipped]
    unreadable += [(run, f"no learning curve: {why}") for run, why in problems]
    return jobs, tuple(hists), params, unreadable
