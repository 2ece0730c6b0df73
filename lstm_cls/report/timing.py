"""How long a sweep took and how busy it kept its slots: wall time and jobs at once from sweep.json (the
launcher's), else estimated from file times and multirun.yaml; training time summed from the jobs'
fit_seconds. A launcher that declares no count of jobs at once (submitit's, Hydra's basic one) is counted
by the jobs themselves: the most that ran together, from each one's start and end."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from lstm_cls import sweeps
from lstm_cls.metrics import is_number
from lstm_cls.report.read import cannot_read
from lstm_cls.report.values import numbers


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


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _check_sweep_json(f: Path) -> tuple[dict | None, str | None]:
    """sweep.json's content, or why it cannot be used."""
    try:
        s = json.loads(f.read_text())
    except json.JSONDecodeError as e:
        return None, f"sweep.json is not valid JSON (line {e.lineno} column {e.colno})"
    except (OSError, UnicodeDecodeError) as e:
        return None, str(cannot_read("sweep.json", e))
    if not isinstance(s, dict):
        return None, "sweep.json is not a JSON object"
    if not is_number(s.get("started")):
        return None, f"sweep.json: started is {s.get('started')!r}, not a time"
    if s.get("finished") is not None and not is_number(s["finished"]):
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


def multirun_jobs_at_once(root: Path, n_jobs: int) -> int:
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


def most_at_once(runs: list[Path]) -> int:
    """The most of `runs` that ran together: each from its start (Hydra writes its .hydra/ as the job
    starts) to its end (its metrics.json); a job without both is not counted."""
    events = []
    for run in runs:
        times = _mtimes([run / ".hydra", run / "metrics.json"])
        if len(times) == 2 and times[0] <= times[1]:
            events += [(times[0], 1), (times[1], -1)]
    most = running = 0
    for _, step in sorted(events):  # at one instant, an end before a start
        running += step
        most = max(most, running)
    return max(1, most)


def sweep_timing(root: Path, runs: list[Path], jobs: pd.DataFrame) -> Timing:
    """Wall time, training time and parallelism: from sweep.json, else estimated from file times."""
    s = read_sweep_json(root)
    # a resumed sweep's wall time starts with its last run: jobs completed before then trained outside it
    earlier = {r.name for r in runs if s and any(t < s["started"] for t in _mtimes([r / "metrics.json"]))}
    derived = jobs["derived_from"].notna() if "derived_from" in jobs else pd.Series(False, index=jobs.index)
    before = jobs["job"].astype(str).isin(earlier)
    own = numbers(jobs, "fit_seconds")[~derived & ~before].dropna()
    counts = {"train_s": float(own.sum()), "trained": len(own), "derived": int(derived.sum())}
    # a launcher that declares no slots of its own counts 1: the jobs it trained say how many ran together
    trained = [r for r in runs if r.name in set(jobs["job"].astype(str)[~derived & ~before])]
    if s is not None:
        finished = s.get("finished")
        return Timing(
            wall_s=(finished if finished is not None else time.time()) - s["started"],
            at_once=s["jobs_at_once"] if s["jobs_at_once"] > 1 else most_at_once(trained),
            estimated=False,
            running=finished is None,
            earlier=int((before & ~derived).sum()),
            **counts,
        )
    # a job writes .hydra/ as it starts and metrics.json as it ends
    starts, ends = _mtimes([r / ".hydra" for r in runs]), _mtimes([r / "metrics.json" for r in runs])
    wall = max(ends) - min(starts) if starts and ends else None
    at_once = multirun_jobs_at_once(root, len(runs))
    at_once = at_once if at_once > 1 else most_at_once(trained)
    return Timing(wall_s=wall, at_once=at_once, estimated=True, **counts)
