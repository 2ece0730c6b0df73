"""Compose and check a command's config before Hydra writes anything (`train`, `baselines`).

Hydra writes `.hydra/` into the run directory before the app runs, and reports its own errors (an unknown
key, group or option, a malformed override) in several lines with exit code 1. So the command line is first
composed here with Hydra's compose API, exactly as Hydra will compose it, and checked: a Hydra error or a bad
setting becomes the project's one `error:` line (exit 2) while nothing has been written anywhere. The run
and sweep folders are taken from the composed config, so a quoted path, `${oc.env:...}`, `++hydra.run.dir`
and a symlink all name the one folder that is checked, held and (after an error) cleaned.

In a sweep, every job's settings are checked before the first one starts: each swept value is composed once
(a value Hydra cannot compose is named), and every job's config is then checked (`config.check`), built from
a composed one with the job's own values. No torch here.
"""

from __future__ import annotations

import copy
import difflib
import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from lstm_cls import UserError, config, rundir
from lstm_cls.cli import override_key

CONF = Path(__file__).resolve().parents[1] / "conf"
MULTIRUN_FLAGS = ("-m", "--multirun")
# flags after which Hydra prints something and runs nothing (help, the config, shell completion...)
NO_RUN_FLAGS = ("-h", "--help", "--hydra-help", "--version", "-c", "--cfg", "-i", "--info", "-sc")
NO_RUN_FLAGS += ("--shell-completion", "-p", "--package", "--resolve")
NAME_FLAGS = ("-cn", "--config-name")


def command(argv: Sequence[str], config_name: str) -> tuple[list[str], bool, str] | None:
    """argv as (overrides, multirun, config name); None where Hydra runs nothing or where a flag this check
    does not know (--config-dir, --experimental-rerun...) asks for Hydra's own handling."""
    overrides: list[str] = []
    multirun, args = False, list(argv)
    while args:
        a = args.pop(0)
        flag = a.split("=", 1)[0]
        if a.startswith("-") and overrides:  # Hydra's argparse reads flags before the overrides only
            raise UserError(
                f"{a} after the overrides: flags come first, e.g. python -m lstm_cls.{config_name} {a} "
                f"{' '.join(overrides[:2])} ..."
            )
        if a in MULTIRUN_FLAGS:
            multirun = True
        elif flag in NAME_FLAGS:
            config_name = a.split("=", 1)[1] if "=" in a else (args.pop(0) if args else config_name)
        elif a.startswith("-"):
            return None  # a help flag, or one Hydra handles alone
        else:
            overrides.append(a)
    if "hydra.mode=MULTIRUN" in overrides:
        multirun = True
    return overrides, multirun, config_name


def parse(overrides: list[str]) -> list[Any]:
    """Hydra's parse of each override, one at a time, so that a malformed one is named."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    parsed = []
    for o in overrides:
        try:
            parsed.append(parser.parse_override(o))
        except HydraException as e:  # the grammar's own errors are plain HydraExceptions
            why = str(e).splitlines()[0].removeprefix("HydraException while evaluating ")
            hint = ""
            if any(c in o.partition("=")[2] for c in "()[]{},'\" "):
                key = o.partition("=")[0]
                hint = (
                    f"; quote a value holding brackets, commas or spaces: \"{key}='{o.partition('=')[2]}'\""
                )
            raise UserError(f"cannot read the override {o!r}: {why}{hint}") from None
    return parsed


def is_group(key: str) -> bool:
    """Whether an override key chooses a config group's option (`data=uea`, `hydra/launcher=joblib`)."""
    return "/" in key or ("." not in key and (CONF / key).is_dir())


def hydra_error(e: Exception, overrides: list[str], config_name: str) -> UserError:
    """One line for an error of Hydra's composition, naming the override."""
    from hydra.errors import MissingConfigException

    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    cause = [ln.strip() for ln in str(e.__cause__ or "").splitlines() if ln.strip()]
    if isinstance(e, MissingConfigException) and e.options is not None:
        group = str(e.missing_cfg_file or "").rpartition("/")[0]
        typed = next((o for o in overrides if override_key(o) == group), group)
        options = [o for o in e.options if not o.startswith("_")]
        return UserError(f"{typed}: no such option; {group} has {', '.join(options)}")
    if lines and lines[0].startswith("Could not override"):  # a key that is not in the config
        key = lines[0].split("'")[1]
        typed = next((o for o in overrides if override_key(o) == key), key)
        near = near_keys(key, [o for o in overrides if o != typed], config_name)
        hint = f"did you mean {' or '.join(near)}? " if near else ""
        return UserError(f"{typed}: no setting {key} in this config; {hint}(to add a new key: +{typed})")
    if lines and lines[0].startswith("Ambiguous value"):
        typed = lines[0].split("'", 1)[1].rsplit("'", 1)[0]
        return UserError(
            f"{typed}: several values sweep only with -m (-m {typed}); a list is key=[a,b], a string "
            "key='a,b'"
        )
    if lines and lines[0].startswith("Error merging override"):
        typed = lines[0].removeprefix("Error merging override").strip()
        return UserError(config.wrong_type(typed) or f"{typed}: {cause[0] if cause else lines[0]}")
    text = lines[0] if lines else type(e).__name__
    return UserError(f"{text}{': ' + cause[0] if cause and cause[0] not in text else ''}")


def near_keys(key: str, others: list[str], config_name: str) -> list[str]:
    """Keys of the composed config close to a mistyped `key` (only when composing without it works)."""
    try:
        cfg = compose(config_name, others)
    except Exception:
        return []
    parent, _, leaf = key.rpartition(".")
    node = OmegaConf.select(cfg, parent) if parent else cfg
    if not isinstance(node, DictConfig):
        return []
    return [f"{parent + '.' if parent else ''}{k}" for k in difflib.get_close_matches(leaf, list(node), 2)]


def compose(config_name: str, overrides: list[str]) -> DictConfig:
    """The config Hydra would compose for one job, its `hydra` node included."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3", job_name=config_name):
        return hydra_compose(config_name, overrides=overrides, return_hydra_config=True)


def composed(config_name: str, overrides: list[str]) -> DictConfig:
    """`compose`, with Hydra's errors as one UserError naming the override."""
    from hydra.errors import HydraException

    try:
        return compose(config_name, overrides)
    except (HydraException, OmegaConfBaseException) as e:
        raise hydra_error(e, overrides, config_name) from None


def grid(parsed: list[Any], search: bool = False) -> list[list[Any]]:
    """The jobs of a sweep, in Hydra's order (its basic sweeper's grid): each a list of (override, typed),
    one per key; a key given twice keeps its first place and takes the later values, as in Hydra. The one
    grid of the project: this check and lstm_cls's sweeper both build theirs here.

    A range (`interval(...)`) is a search space, not a grid: a UserError, or left out with `search` (the
    command of a search sweeper, Optuna's, whose trials are checked as they start)."""
    lists: dict[str, list[tuple[Any, str]]] = {}
    for o in parsed:
        key = o.get_key_element()
        if not o.is_sweep_override():
            lists[key] = [(o, f"{key}={o.get_value_element_as_str()}")]
        elif o.is_discrete_sweep():
            lists[key] = [(o, f"{key}={v}") for v in o.sweep_string_iterator()]
        elif search:
            lists.pop(key, None)
        else:
            raise UserError(
                f"{o.input_line}: a range is a search space, not values to sweep; list them ({key}=a,b,c "
                f"or {key}=range(start,stop,step)), or search it with hparams_search=optuna"
            )
    return [list(job) for job in itertools.product(*lists.values())]


def with_values(cfg: DictConfig, job: list[Any]) -> DictConfig:
    """A composed config with a job's own values (not its group choices) set as Hydra sets them."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    out = copy.deepcopy(cfg)
    for o, typed in job:
        if is_group(o.key_or_group) or o.is_delete() or o.key_or_group.startswith("hydra."):
            continue  # (the sweep's own settings: checked on its composed config)
        try:  # +key / ++key may add a key; a plain key=value must exist (struct), as in Hydra
            add = o.is_add() or o.is_force_add()
            OmegaConf.update(
                out, o.key_or_group, parser.parse_override(typed).value(), merge=True, force_add=add
            )
        except OmegaConfBaseException as e:
            raise UserError(config.wrong_type(typed) or f"{typed}: {str(e).splitlines()[0]}") from None
    return out


def sweep_configs(config_name: str, jobs: list[list[Any]]) -> list[tuple[str, DictConfig]]:
    """Every job of a sweep as (its swept values, its config without `hydra`): each distinct choice of
    config groups composed once by Hydra (the first job's keys are all the sweep's keys: an unknown one is
    named there), every job then built from it with its own values, as Hydra sets them (~1 ms a job)."""
    by_groups: dict[tuple[str, ...], DictConfig] = {}
    out = []
    for job in jobs:
        groups = tuple(t for o, t in job if is_group(o.key_or_group))
        if groups not in by_groups:
            cfg = composed(config_name, [t for _, t in job])
            task = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
            OmegaConf.set_struct(task, True)  # a key the config lacks needs +, as in Hydra
            by_groups[groups] = task
        out.append(
            (" ".join(t for o, t in job if o.is_sweep_override()), with_values(by_groups[groups], job))
        )
    return out


def search_values(base: DictConfig, parsed: list[Any]) -> list[tuple[str, DictConfig]]:
    """A search space checked value by value (each choice, both ends of a range: Optuna may choose them),
    as (key=value, `base` with it): a bad bound refuses the search before its first trial. A key given
    twice keeps the later space, as the sweeper does; config groups and Hydra's own keys are left out."""
    from hydra.core.override_parser.types import IntervalSweep

    last = {o.key_or_group: o for o in parsed if o.is_sweep_override()}
    out = []
    for key, o in last.items():
        if is_group(key) or key.startswith("hydra."):
            continue
        v = o.value()
        ends = (
            [int(e) if "int" in v.tags else e for e in (v.start, v.end)]
            if isinstance(v, IntervalSweep)
            else []
        )
        for value in ends or list(o.sweep_string_iterator()):
            typed = f"{o.get_key_element()}={value}"
            out.append((typed, with_values(base, [(parse([typed])[0], typed)])))
    return out


def is_multirun(cfg: DictConfig) -> bool:
    from hydra.types import RunMode

    return cfg.hydra.mode == RunMode.MULTIRUN  # a preset may set it (hparams_search=optuna)


def grid_sweeper(cfg: DictConfig) -> bool:
    """Whether the sweeper runs the grid of `hydra.sweeper.params` and the command (lstm_cls's, Hydra's
    basic one), rather than searching a space of its own (Optuna)."""
    target = str(cfg.hydra.sweeper.get("_target_", ""))
    return target.endswith(("LstmClsSweeper", "BasicSweeper"))


def precheck(argv: Sequence[str], config_name: str, first: bool = True, processes: int = 1) -> Path | None:
    """Check the command `argv` of an app with config `config_name` before Hydra writes anything. Returns
    the run directory this process now holds (single runs), for the caller to release; None otherwise.
    Of `processes` started together (torchrun, srun: `entry.started_together`), each checks the settings
    and the `first` alone the folder, which they must all be given."""
    cmd = command(argv, config_name)
    if cmd is None:
        return None
    overrides, multirun, config_name = cmd
    parsed = parse(overrides)
    if not multirun:
        cfg = composed(config_name, overrides)
        if not is_multirun(cfg):
            config.check(cfg)
            path = folder(cfg, "run")
            if dated(cfg, "run"):  # a new folder each time it is resolved: Hydra's will not be this one
                if processes > 1:  # (nor the other processes' one)
                    raise UserError(
                        f"{processes} processes started together train one run: give them its folder, "
                        "e.g. hydra.run.dir=outputs/mine (on a disk every node sees)"
                    )
                rundir.check_writable(path, "hydra.run.dir")
                return None
            if first:
                return hold_run_dir(path)
            if (path / "metrics.json").exists():  # a finished run's (the first process writes this run's
                rundir.check_run_dir(path)  # once all train): refused here too, or this one would wait for it
            return None
    # each swept value's first: the sweep's own settings (sweeper, launcher, folder)
    base = composed(config_name, [typed for _, typed in grid(parsed, search=True)[0]])
    config.check_launcher(base.hydra.launcher)
    if grid_sweeper(base):  # the sweeper's grid: hydra.sweeper.params first, then the command, as Hydra
        params = [f"{k}={v}" for k, v in (base.hydra.sweeper.get("params") or {}).items()]
        jobs = sweep_configs(config_name, grid(parse([*params, *overrides])))
    else:  # a search (Optuna's): each value it may choose, set alone on the command's settings
        params = [f"{k}={v}" for k, v in (base.hydra.sweeper.get("params") or {}).items()]
        jobs = [(" ".join(overrides), base), *search_values(base, parse([*params, *overrides]))]
    for typed, cfg in jobs:  # a bad value of one job refuses the sweep before its first job starts
        try:
            config.check(cfg, multirun=True)
        except UserError as e:
            raise UserError(f"{e} (in the sweep's job {typed})" if len(jobs) > 1 else str(e)) from None
    if not first:
        return None
    sweep_dir = folder(base, "sweep")
    rundir.check_writable(sweep_dir, "hydra.sweep.dir")
    rundir.check_sweep_dir(sweep_dir)
    if not dated(base, "sweep"):  # (a dated folder: Hydra resolves its own, a moment later)
        rundir.make(sweep_dir, "hydra.sweep.dir")  # the last check: the sweep goes ahead from here
    return None


def folder(cfg: DictConfig, which: str) -> Path:
    """`hydra.<which>.dir` as Hydra will resolve it; an empty one (`hydra.run.dir=` with the value
    forgotten) would be the current folder: refused."""
    value = str(cfg.hydra[which].dir or "").strip()
    if not value:
        raise UserError(f"hydra.{which}.dir is empty: give a folder, e.g. hydra.{which}.dir=outputs/mine")
    return Path(value)


def dated(cfg: DictConfig, which: str) -> bool:
    """Whether `hydra.<which>.dir` holds `${now:...}` (the default folders, named to the microsecond): Hydra
    resolves it again when it runs, to another time, so this check must neither make nor hold it."""
    return "${now:" in str(OmegaConf.to_container(cfg.hydra[which], resolve=False).get("dir"))


def hold_run_dir(path: Path) -> Path:
    """Refuse a used, unwritable or busy run directory; note what it held; hold it for this process."""
    rundir.check_writable(path, "hydra.run.dir")
    rundir.check_run_dir(path)
    rundir.BEFORE[path.resolve()] = rundir.snapshot(path)
    rundir.acquire(path)
    return path
