"""What a sweep runs: resumable sweeps, the longest jobs first, and nested epochs.

Hydra's sweeper (`hydra_plugins/lstm_cls_sweeper`) asks this module which jobs to launch:

- **Resumable.** A rerun into the same `hydra.sweep.dir` launches only the jobs without a completed
  `metrics.json`; `sweep.json` holds the sweep's job list, and a rerun with other settings is refused.
  A killed attempt's files are moved aside to `.incomplete/`, never deleted.
- **Longest first.** Jobs are dispatched by an estimate of their cost, so the long ones do not start last
  and run alone while the other cores idle.
- **Nested epochs.** Jobs that differ only in `trainer.max_epochs` share their first epochs exactly (same
  seed, same data order), so only the longest of them trains; it writes each shorter job's run directory
  as the shorter run would have (see `lstm_cls.nested`).

No torch here: the sweeper runs in Hydra's main process before any job.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from lstm_cls import UserError, metrics, rundir
from lstm_cls.checkpoints import write_json_atomic
from lstm_cls.cli import override_key, parse_override
from lstm_cls.config import PARALLEL_LAUNCHERS, SWEEP_RESUME

STATE = "sweep.json"  # the sweep's jobs, their folders, and its timing (the report reads it)
NESTED = "nested.json"  # which job writes which shorter jobs' folders
ASIDE = ".incomplete"  # killed or failed attempts, moved here when their job runs again
EPOCHS = "trainer.max_epochs"


def completed(run: Path, strict: bool = False) -> bool:
    """Whether a job's folder holds a finished run (a failed, killed or interrupted one does not).

    `strict`: a metrics.json that is not what training writes (not JSON, not an object, a status that is
    not a word) is a UserError naming the file and the field, not "unfinished" (the sweeper's reading)."""
    try:
        m = metrics.read(run)
    except metrics.Unfit as e:
        if not strict:
            return False
        f = run / metrics.FILE
        if e.cause:
            raise UserError(f"{f} cannot be read ({e.cause}); move it away to train this job again") from None
        m = e.content
        what = (
            f"status is {m['status']!r}, not a word"
            if isinstance(m, dict)
            else f"the whole file is {json_kind(m)}, not a JSON object"
        )
        raise UserError(
            f"{f}: {what} (training writes neither); move it away to train this job again"
        ) from None
    return m is not None and m.get("status") == "completed"


def json_kind(value: Any) -> str:
    """What a JSON value is, in JSON's words: an error says "the whole file is null", not "NoneType"."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true or false"
    kinds = {dict: "an object", list: "a list", str: "a string", int: "a number", float: "a number"}
    return kinds.get(type(value), type(value).__name__)


def state_problem(state: Any) -> str | None:
    """Why sweep.json's content is not what the sweeper writes (None: it is): the fields a resume reads."""
    if not isinstance(state, dict):
        return f"the whole file is {json_kind(state)}, not a JSON object"
    jobs = state.get("overrides")
    if not isinstance(jobs, list) or not all(
        isinstance(j, list) and all(isinstance(o, str) for o in j) for j in jobs
    ):
        return "overrides is not a list of jobs (each a list of key=value strings)"
    dirs = state.get("dirs")
    if not isinstance(dirs, list) or len(dirs) != len(jobs):
        return f"dirs is not a list of {len(jobs)} job folders, one per job of overrides"
    for d in dirs:
        if not job_folder(d):
            return f"dirs holds {d!r}, not a job folder inside the sweep folder"
    if len(set(dirs)) != len(dirs):
        return "dirs names one folder for two jobs"
    return None


def job_folder(d: Any) -> bool:
    """A job's folder as sweep.json and nested.json name it: inside the sweep's, never a path elsewhere."""
    return (
        isinstance(d, str) and d not in ("", ".") and not Path(d).is_absolute() and ".." not in Path(d).parts
    )


def read_state(sweep_dir: Path) -> dict[str, Any] | None:
    """sweep.json, checked by shape; None when there is none. A file that is not what the sweeper wrote
    is a UserError naming the file and the field."""
    f = sweep_dir / STATE
    try:
        state = json.loads(f.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise UserError(f"{f} cannot be read ({e}); choose another hydra.sweep.dir") from None
    problem = state_problem(state)
    if problem:
        raise UserError(f"{f}: {problem}; choose another hydra.sweep.dir")
    return state


def resume_setting(cfg: Any) -> str:
    """`sweep.resume` of a composed config (auto where the config has no `sweep` node), checked."""
    value = OmegaConf.select(cfg, "sweep.resume", default="auto")
    if value not in SWEEP_RESUME:
        raise UserError(f"sweep.resume must be one of {', '.join(SWEEP_RESUME)} (got {value!r})")
    return value


def job_key(job: list[str]) -> tuple[str, ...]:
    """A job's identity: the overrides that make its config, in no particular order. Hydra's own settings
    (launcher, folders) and `sweep.*` (how to resume) are left out: they do not change what it trains.
    A key given twice keeps its order (the later one wins)."""
    own = [o for o in job if not override_key(o).startswith(("hydra.", "hydra/", "sweep.")) and "=" in o]
    own += [o for o in job if "=" not in o]  # `~key`: a deletion
    return tuple(sorted(own, key=override_key))


def check_resume(sweep_dir: Path, jobs: list[list[str]]) -> list[str] | None:
    """The folders of `jobs` (Hydra's order) when `sweep_dir` holds an earlier attempt of this very sweep
    (then it resumes): each job keeps the folder sweep.json recorded for it, whatever the order its values
    or keys were typed in this time. None for a new sweep. Refuses a folder holding another sweep, or one
    made without `sweep.json` (its jobs' settings cannot be checked: `rundir.check_sweep_dir`)."""
    rundir.check_sweep_dir(sweep_dir)
    state = read_state(sweep_dir)
    if state is None:
        return None
    recorded: dict[tuple[str, ...], list[str]] = {}
    for job, folder in zip(state["overrides"], state["dirs"], strict=True):
        recorded.setdefault(job_key(job), []).append(folder)
    asked = Counter(job_key(j) for j in jobs)
    before, now = {" ".join(k) for k in recorded}, {" ".join(k) for k in asked}
    if asked != Counter({k: len(v) for k, v in recorded.items()}):
        extra, missing = sorted(now - before), sorted(before - now)
        example = (
            f"new job: {extra[0]}" if extra else f"job no longer asked for: {missing[0]}" if missing else ""
        )
        raise UserError(
            f"hydra.sweep.dir={sweep_dir} holds a sweep of other settings ({len(state['overrides'])} jobs "
            f"there, {len(jobs)} asked for; {example or 'a job repeated another number of times'}); rerun it "
            "with the same overrides to complete it, or choose another hydra.sweep.dir"
        )
    return [recorded[job_key(j)].pop(0) for j in jobs]


def config_drift(recorded: Path, composed: DictConfig) -> list[tuple[str, Any, Any]]:
    """Where a job's config as composed now differs from the one its earlier attempt ran with (its
    `.hydra/config.yaml`): [(key, then, now)], Hydra's own node and `sweep` (how to resume) left out.
    An edited group file or other code defaults show here, though the overrides are the same."""
    try:
        then = OmegaConf.load(recorded)
    except FileNotFoundError:
        raise UserError(
            f"{recorded} is missing: this job's earlier settings cannot be checked; "
            "rerun with sweep.resume=force to keep its results as they are"
        ) from None
    except Exception as e:  # YAML's or OmegaConf's many errors: one line naming the file
        raise UserError(f"{recorded} cannot be read ({str(e).splitlines()[0]})") from None
    if not isinstance(then, DictConfig):
        raise UserError(f"{recorded}: the whole file is a list, not a job's config (a mapping)")
    now = OmegaConf.masked_copy(composed, [k for k in composed if k not in ("hydra", "sweep")])
    a = _flat(OmegaConf.to_container(then, resolve=False))
    b = _flat(OmegaConf.to_container(now, resolve=False))
    a = {k: v for k, v in a.items() if k.split(".")[0] not in ("hydra", "sweep")}
    absent = "(absent)"
    keys = sorted(set(a) | set(b))
    return [(k, a.get(k, absent), b.get(k, absent)) for k in keys if a.get(k, absent) != b.get(k, absent)]


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    """{"model": {"hidden": 8}} -> {"model.hidden": 8}; lists stay values."""
    if not isinstance(d, dict) or (prefix and not d):
        return {prefix.rstrip("."): d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}."))
    return out


def nest_blocker(cfg: DictConfig) -> str | None:
    """Why the first epochs of this job's run could differ from a shorter run's (None: they cannot).

    Anything that reads the epoch count while training does: a cosine schedule over `max_epochs`,
    stochastic weight averaging from a fraction of it, a step or time limit, a minimum epoch count.
    """
    t = cfg.trainer
    if not isinstance(t.get("max_epochs"), int) or t.max_epochs <= 0:
        return "trainer.max_epochs is not a positive count"
    if t.get("max_steps") not in (None, -1) or t.get("max_time") is not None or t.get("min_epochs"):
        return "a step, time or minimum-epoch limit"
    if cfg.model.get("scheduler") == "cosine":
        return "model.scheduler=cosine runs over trainer.max_epochs"
    callbacks = cfg.get("callbacks") or {}
    if any("StochasticWeightAveraging" in str((c or {}).get("_target_", "")) for c in callbacks.values()):
        return "stochastic weight averaging starts at a fraction of trainer.max_epochs"
    if cfg.get("ckpt_path"):
        return "a resumed run"
    # a shorter job's weights are its epochs' checkpoints: one must be saved after every epoch
    newest = [
        c
        for c in callbacks.values()
        if str((c or {}).get("_target_", "")).endswith("ModelCheckpoint") and c.get("monitor") is None
    ]
    every = t.get("check_val_every_n_epoch") or 1
    if not any(c.get("save_on_train_epoch_end") or every == 1 for c in newest):
        return "no checkpoint callback saves the newest epoch after every epoch (callbacks.last_checkpoint)"
    return None


def setting(job: list[str], key: str, base: DictConfig) -> Any:
    """A setting's value for a job: from its overrides (the sweep's values), else the sweep's own config."""
    for o in reversed(job):
        k, v = parse_override(o)
        if k == key:
            try:
                return float(v)
            except ValueError:
                return v
    return OmegaConf.select(base, key, default=None)


def cost(job: list[str], base: DictConfig) -> float:
    """A job's relative cost, to start the longest first: epochs x training windows / batch size, with
    the hidden size breaking ties (a bigger LSTM takes longer per step). Read off the job's overrides,
    so that ordering composes no config."""

    def number(key: str, default: float) -> float:
        v = setting(job, key, base)
        return float(v) if isinstance(v, (int, float)) and v > 0 else default

    epochs, fraction = number(EPOCHS, 1), number("data.train_fraction", 1)
    return epochs * fraction / number("data.batch_size", 1) * (1 + number("model.hidden", 32) / 256)


@dataclass
class Plan:
    """`launch`: job indices to launch, in dispatch order; `derived`: long job -> [(epochs, shorter job)]."""

    launch: list[int] = field(default_factory=list)
    derived: dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    skipped: list[int] = field(default_factory=list)
    not_nested: dict[int, str] = field(default_factory=dict)  # job -> why it trains on its own


def plan(
    jobs: list[list[str]],
    config: Callable[[int], DictConfig],
    done: set[int],
    base: DictConfig,
    nested: bool = True,
) -> Plan:
    """Which of `jobs` (override lists, Hydra's order) to launch, and which a longer job derives.

    `config(i)`: job i's composed config, asked for only where nesting must be checked (the longest job of
    each group: composing takes ~0.13 s a job, 10 s for an 81-job study); `base`: the sweep's config."""
    out = Plan(skipped=sorted(done))
    todo = [i for i in range(len(jobs)) if i not in done]
    groups: dict[tuple[str, ...], list[int]] = {}
    for i in todo:  # jobs alike but for their epoch count (each job alone: nested=false)
        key = tuple(o for o in jobs[i] if override_key(o) != EPOCHS) if nested else (str(i),)
        groups.setdefault(key, []).append(i)
    for members in groups.values():
        epochs = {i: setting(jobs[i], EPOCHS, base) for i in members}
        if len(members) > 1 and all(isinstance(e, float) and e.is_integer() for e in epochs.values()):
            members.sort(key=lambda i: epochs[i])
            longest = members[-1]
            why = nest_blocker(config(longest))
        else:
            why = "alone" if len(members) == 1 else "trainer.max_epochs is not a count"
        if why is None:
            out.derived[longest] = [(int(epochs[i]), i) for i in members[:-1]]
            out.launch.append(longest)
        else:
            out.launch.extend(members)
            if len(members) > 1:
                out.not_nested.update({i: why for i in members})
    out.launch.sort(key=lambda i: -cost(jobs[i], base))
    return out


def shorter_config(long: DictConfig, overrides: list[str], epochs: int, num: int, run: Path) -> DictConfig:
    """A derived job's config, from its longer job's: Hydra would compose the same, but for the epoch
    count and the job's own number, overrides and folder (composing it again costs ~0.13 s)."""
    cfg = numbered(copy.deepcopy(long), num)
    h = cfg.hydra
    with read_write(cfg), open_dict(cfg):
        cfg.trainer.max_epochs = epochs
        h.overrides.task = list(overrides)
        h.runtime.output_dir = str(run.resolve())
        kv = OmegaConf.select(h, "job.config.override_dirname.kv_sep", default="=")
        old = next(o for o in long.hydra.overrides.task if override_key(o) == EPOCHS)
        new = next(o for o in overrides if override_key(o) == EPOCHS)
        h.job.override_dirname = str(h.job.override_dirname).replace(
            old.replace("=", kv, 1), new.replace("=", kv, 1)
        )
    return cfg


def numbered(cfg: DictConfig, num: int) -> DictConfig:
    """A job's composed config given its number in the sweep, as Hydra's launchers number it."""
    with read_write(cfg), open_dict(cfg):
        cfg.hydra.job.num, cfg.hydra.job.id = num, f"{cfg.hydra.job.name}_{num}"
    return cfg


def set_aside(sweep_dir: Path, run: Path) -> Path | None:
    """Move a job folder's earlier, unfinished attempt (checkpoints, logs) to `.incomplete/`, so the job
    can run again there; a `last.ckpt` in it can still be resumed by hand. Nothing is deleted.

    Never a folder a live process holds (its `.lock`): a job of an earlier attempt still saving where it got
    to (its command killed a moment ago), or of another copy of this sweep. Refused before anything moves:
    every job folder of the sweep is checked, not only this one."""
    held = [run, *(p.parent for p in sorted(sweep_dir.glob(f"*/{rundir.LOCK}")))]
    held += [p.parent for p in sorted(run.rglob(rundir.LOCK))] if run.is_dir() else []
    for folder in held:
        pid = rundir.lock_holder(folder)
        if pid is not None:
            raise UserError(
                f"{folder} is in use by a running job (pid {pid}), an earlier attempt of this sweep still "
                "stopping: nothing was moved; rerun when it has ended"
            )
    if not run.is_dir() or not any(p.name != ".hydra" for p in run.iterdir()):
        if run.is_dir():
            shutil.rmtree(run / ".hydra", ignore_errors=True)  # Hydra's own copy of the config: rewritten
        return None
    target = aside(sweep_dir, run.name)
    os.replace(run, target)
    return target


def aside(sweep_dir: Path, job: str) -> Path:
    """Where a job's earlier attempt goes: `.incomplete/<job>_<time>`, numbered where that is taken."""
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    target = sweep_dir / ASIDE / f"{job}_{stamp}"
    target.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    while target.exists():
        n += 1
        target = target.with_name(f"{job}_{stamp}_{n}")
    return target


def write_hydra_files(config: DictConfig, run: Path) -> None:
    """A derived job's `.hydra/` as Hydra's launcher writes it for a job it runs: the job's composed
    config, Hydra's config and the job's overrides (the report reads them)."""
    out = run / str(config.hydra.output_subdir or ".hydra")
    out.mkdir(parents=True, exist_ok=True)
    task = OmegaConf.masked_copy(config, [k for k in config if k != "hydra"])
    OmegaConf.save(task, out / "config.yaml")
    OmegaConf.save(OmegaConf.masked_copy(config, ["hydra"]), out / "hydra.yaml")
    OmegaConf.save(config.hydra.overrides.task, out / "overrides.yaml")


def write_state(sweep_dir: Path, **state: Any) -> None:
    old = read_state(sweep_dir) or {}
    write_json_atomic(sweep_dir / STATE, {**old, **state})


def forget_not_started(sweep_dir: Path) -> None:
    """A rerun starts the jobs an earlier attempt never did: its `not_started` list no longer holds."""
    try:
        state = read_state(sweep_dir)
    except ValueError:  # unreadable: the sweeper has reported it
        return
    if state is not None and state.get("not_started"):
        write_state(sweep_dir, not_started=[])


def jobs_at_once(launcher: Any) -> int:
    """How many jobs a launcher config (`hydra.launcher`, a mapping) runs side by side: joblib's or the
    forkserver launcher's n_jobs (`slots`), else one at a time."""
    target = str(launcher.get("_target_", "")).lower() if hasattr(launcher, "get") else ""
    if not any(name in target for name in PARALLEL_LAUNCHERS):
        return 1
    return slots(launcher.get("n_jobs", -1))


def slots(n_jobs: Any) -> int:
    """n_jobs as joblib reads it: a positive count; -1 (or none) every core, -2 all but one, ..."""
    if n_jobs is None:
        n_jobs = -1
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs == 0:
        return 1
    return n_jobs if n_jobs > 0 else max(1, (os.cpu_count() or 1) + 1 + n_jobs)


def derived_jobs(sweep_dir: Path, run_dir: Path) -> list[dict[str, Any]]:
    """For a job of a sweep: the shorter jobs it writes ([{"epochs": E, "dir": path}]), if any. nested.json
    is the sweeper's, written before any job starts; one of another shape is a UserError naming the field."""
    f = sweep_dir / NESTED
    try:
        table = json.loads(f.read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as e:
        raise UserError(f"{f} cannot be read ({e})") from None
    if not isinstance(table, dict):
        raise UserError(f"{f}: the whole file is {json_kind(table)}, not a JSON object")
    name = str(run_dir.resolve().relative_to(sweep_dir.resolve()))
    entries = table.get(name, [])
    ok = isinstance(entries, list) and all(
        isinstance(e, dict) and type(e.get("epochs")) is int and e["epochs"] > 0 and job_folder(e.get("dir"))
        for e in entries
    )
    if not ok:
        raise UserError(f"{f}: {name} is not a list of shorter jobs ({{epochs: a count, dir: a job folder}})")
    return [{"epochs": e["epochs"], "dir": sweep_dir / e["dir"]} for e in entries]
