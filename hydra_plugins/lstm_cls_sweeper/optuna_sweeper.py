"""`hparams_search=optuna`: an Optuna search driven by lstm_cls itself, on Hydra's public Sweeper API and any
launcher, on current Optuna (hydra-optuna-sweeper pins Optuna < 3 and has no channel to prune a trial).

Each trial is one job of the sweep, trained by the same train function into an ordinary run folder named by
the trial's number. The study lives in `<sweep dir>/optuna.db` (SQLite; `hydra.sweeper.storage`: any Optuna
storage URL), created here before any job starts; the same command again adds `n_trials` more trials to the
same study. A job reports `val/loss` per epoch to its trial through that storage (`lstm_cls.pruning`, which
it finds by `hydra.sweeper.trial`); a pruned job stops, and its trial is told PRUNED."""

# no `from __future__ import annotations`: Hydra loads plugin modules outside sys.modules, where
# dataclasses cannot resolve string annotations
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep
from hydra.core.utils import JobStatus
from omegaconf import OmegaConf

from hydra_plugins.lstm_cls_sweeper.sweeper import LaunchingSweeper

log = logging.getLogger(__name__)
SEARCH = "optuna"  # sweep.json's `search`: a folder of this sweeper's (a grid sweep's has none)


@dataclass
class OptunaSweeperConf:
    _target_: str = "hydra_plugins.lstm_cls_sweeper.optuna_sweeper.OptunaSweeper"
    _recursive_: bool = False  # the sampler and pruner are built by the sweeper (one `error:` line each)
    direction: str = "minimize"  # or maximize: what the job returns (optimized_metric)
    study_name: str = "lstm_cls"
    storage: str | None = None  # an Optuna storage URL; null: sqlite:///<sweep dir>/optuna.db
    n_trials: int = 20  # trials this command adds to the study
    n_jobs: int = 1  # trials launched together (the launcher runs them side by side, or not)
    sampler: Any = None  # a `_target_` node (optuna.samplers.TPESampler...); null: Optuna's default
    pruner: Any = None  # a `_target_` node (optuna.pruners.MedianPruner...); null: no pruning
    params: Any = None  # the space: choice(...), range(...), interval(...), tag(log, ...), tag(int, ...)
    trial: int | None = None  # set by the sweeper for each job: the trial it reports to


ConfigStore.instance().store(
    group="hydra/sweeper", name="optuna", node=OptunaSweeperConf, provider="lstm_cls"
)


def distribution(o: Override) -> "tuple[Any, dict[Any, str]]":
    """A swept override as Optuna's distribution, with each categorical value's text as typed."""
    import optuna.distributions as d

    value = o.value()
    if isinstance(value, IntervalSweep):
        log_scale, start, end = "log" in value.tags, value.start, value.end
        if "int" in value.tags:
            return d.IntDistribution(int(start), int(end), log=log_scale), {}
        return d.FloatDistribution(start, end, log=log_scale), {}
    assert isinstance(value, (ChoiceSweep, RangeSweep))
    texts = list(o.sweep_string_iterator())
    raw = list(o.sweep_iterator()) if isinstance(value, RangeSweep) else list(value.list)
    scalar = all(v is None or isinstance(v, (bool, int, float, str)) for v in raw)
    choices = raw if scalar and len(set(map(repr, raw))) == len(raw) else texts
    return d.CategoricalDistribution(choices), dict(zip(map(repr, choices), texts, strict=True))


class OptunaSweeper(LaunchingSweeper):
    def __init__(
        self,
        direction: str = "minimize",
        study_name: str = "lstm_cls",
        storage: str | None = None,
        n_trials: int = 20,
        n_jobs: int = 1,
        sampler: Any = None,
        pruner: Any = None,
        params: dict | None = None,
        trial: int | None = None,
    ):
        self.direction, self.study_name, self.storage = direction, study_name, storage
        self.n_trials, self.n_jobs = n_trials, n_jobs
        self.sampler, self.pruner, self.params = sampler, pruner, params or {}

    def sweep(self, arguments: "list[str]") -> Any:
        """Add `n_trials` trials to the study, `n_jobs` at a time. A UserError (a folder of another sweep, a
        bad setting of the search) stops it before any job starts, as `Refused` (the command's `error:`)."""
        from lstm_cls import UserError, rundir
        from lstm_cls.entry import Refused

        assert self.config is not None and self.hydra_context is not None
        sweep_dir = Path(self.config.hydra.sweep.dir)
        try:
            space, fixed = self._space(arguments)
            for key, value in (("n_trials", self.n_trials), ("n_jobs", self.n_jobs)):
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise UserError(f"hydra.sweeper.{key} must be a positive integer (got {value!r})")
            if self.direction not in ("minimize", "maximize"):
                raise UserError(
                    f"hydra.sweeper.direction must be minimize or maximize (got {self.direction!r})"
                )
            rundir.acquire(sweep_dir)  # a second copy of this command into the same folder is refused
            try:
                return self._run(sweep_dir, space, fixed)
            finally:
                rundir.release(sweep_dir)
        except UserError as e:
            raise Refused(e) from None

    def _space(self, arguments: "list[str]") -> "tuple[dict[str, Any], list[str]]":
        """The search space ({key: (distribution, texts)}) and the fixed overrides of every trial: the
        config's `params`, then the command's (a later key wins; `a,b,c` on the command line is a choice)."""
        from lstm_cls import UserError

        assert self.hydra_context is not None
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        typed = [*(f"{k}={v}" for k, v in self.params.items()), *arguments]
        space: dict[str, Any] = {}
        fixed: dict[str, str] = {}
        for o in parser.parse_overrides(typed):
            key = o.key_or_group
            space.pop(key, None)  # a key given again: the later one, searched or fixed
            fixed.pop(key, None)
            if not o.is_sweep_override():
                fixed[key] = o.input_line or f"{o.get_key_element()}={o.get_value_element_as_str()}"
                continue
            try:
                space[key] = distribution(o)
            except (AssertionError, ValueError) as e:
                raise UserError(
                    f"{o.input_line}: cannot be searched by Optuna ({e or 'not a range'})"
                ) from None
        if not space:
            raise UserError(
                "hparams_search=optuna: nothing to search; give hydra.sweeper.params a range or a choice"
            )
        return space, list(fixed.values())

    def _run(self, sweep_dir: Path, space: "dict[str, Any]", fixed: "list[str]") -> Any:
        import optuna

        from lstm_cls import UserError, pruning, sweeps

        assert self.config is not None
        state = sweeps.read_state(sweep_dir) or {"overrides": [], "dirs": [], "search": SEARCH}
        if state.get("search") != SEARCH:
            raise UserError(
                f"hydra.sweep.dir={sweep_dir} holds a grid sweep, not an Optuna search; "
                "choose another hydra.sweep.dir"
            )
        url = pruning.storage_url(self.storage, sweep_dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # the sweep's own lines say what happens
        prune = _instantiate(self.pruner, "pruner") or optuna.pruners.NopPruner()  # as pruning.pruner does
        try:  # before any job starts: two jobs creating SQLite's tables at once would crash
            store = pruning.storage(url)
            study = optuna.create_study(
                study_name=self.study_name,
                storage=store,
                pruner=prune,
                direction=self.direction,
                load_if_exists=True,
            )
        except (ValueError, ImportError, optuna.exceptions.OptunaError) as e:
            raise UserError(f"hydra.sweeper.storage={url}: {str(e).splitlines()[0]}") from None
        if study.direction.name.lower() != self.direction:
            raise UserError(
                f"hydra.sweeper.direction={self.direction}: study {self.study_name} in {url} was made to "
                f"{study.direction.name.lower()}; choose another hydra.sweeper.study_name"
            )
        earlier = len(study.trials)
        # a continued study's sampler is seeded seed + its trials: it proposes new values, not the same again
        seed = self.sampler.get("seed") if self.sampler else None
        more = {"seed": seed + earlier} if earlier and isinstance(seed, int) else {}
        sampler = _instantiate(self.sampler, "sampler", **more)
        study = optuna.load_study(study_name=self.study_name, storage=store, sampler=sampler, pruner=prune)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        if earlier:
            log.info("study %s in %s: continuing after its %d trials", self.study_name, url, earlier)
        started, at_once = time.time(), sweeps.jobs_at_once(self.config.hydra.launcher)
        results, failed, left = [], [], self.n_trials
        while left > 0:
            trials = [
                study.ask({k: dist for k, (dist, _) in space.items()}) for _ in range(min(self.n_jobs, left))
            ]
            told: set = set()
            try:
                for t in trials:
                    if (sweep_dir / str(t.number)).exists():
                        raise UserError(
                            f"{sweep_dir / str(t.number)} exists, but the study in {url} has no trial "
                            f"{t.number} yet (another study's folder?); choose another hydra.sweep.dir"
                        )
                jobs = [[*fixed, *(_typed(k, space[k][1], v) for k, v in t.params.items())] for t in trials]
                state["overrides"] += jobs
                state["dirs"] += [str(t.number) for t in trials]
                sweeps.write_state(
                    sweep_dir,
                    overrides=state["overrides"],
                    dirs=state["dirs"],
                    search=SEARCH,
                    started=started,
                    finished=None,
                    jobs_at_once=at_once,
                    jobs=len(state["dirs"]),
                )
                batch = [
                    [*job, f"hydra.sweep.subdir={t.number}", f"hydra.sweeper.trial={t.number}"]
                    for job, t in zip(jobs, trials, strict=True)
                ]
                returns = self.launcher.launch(batch, initial_job_idx=trials[0].number)
                for t, r in zip(trials, returns, strict=True):
                    if not _tell(study, t, r, sweep_dir / str(t.number)):
                        failed.append(r)
                    told.add(t.number)
                results.append(returns)
            finally:  # stopped (Ctrl-C, a refusal): trials never told are failed, not left running
                for t in trials:
                    if t.number not in told:
                        study.tell(t, state=optuna.trial.TrialState.FAIL)
                sweeps.write_state(sweep_dir, finished=time.time())
            left -= len(trials)
        self.write_results(study, sweep_dir)
        for r in failed:  # a failed job raises here, after every trial ran: the sweep exits non-zero
            _ = r.return_value
        return results

    def write_results(self, study: Any, sweep_dir: Path) -> None:
        """optimization_results.yaml (as hydra-optuna-sweeper wrote it): the best trial so far."""
        import optuna

        done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        states = [t.state.name.lower() for t in study.trials]
        counts = ", ".join(f"{states.count(s)} {s}" for s in sorted(set(states)))
        log.info("study %s: %d trials (%s)", self.study_name, len(states), counts)
        if not done:
            return
        best = study.best_trial
        log.info("best trial %d: %s = %s, %s", best.number, "value", best.value, best.params)
        results = {
            "name": "optuna",
            "best_trial": best.number,
            "best_params": best.params,
            "best_value": best.value,
        }
        OmegaConf.save(OmegaConf.create(results), sweep_dir / "optimization_results.yaml")


def _instantiate(node: Any, key: str, **kwargs: Any) -> Any:
    """hydra.sweeper.sampler / .pruner built from its `_target_` node; None where it is null."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    from lstm_cls import UserError

    if not node:
        return None
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as e:
        cause = e.__cause__ or e
        raise UserError(f"hydra.sweeper.{key}: {str(cause).splitlines()[0]}") from None


def _typed(key: str, texts: "dict[str, str]", value: Any) -> str:
    """A trial's value as an override: a categorical one as it was typed, a number as Hydra reads it."""
    return f"{key}={texts[repr(value)]}" if texts else f"{key}={value!r}"


def _tell(study: Any, trial: Any, ret: Any, run: Path) -> bool:
    """Tell Optuna how the trial's job ended: its returned value, pruned (its metrics.json says so), or
    failed (an error, or no value to optimise). False where the job itself failed."""
    import optuna

    from lstm_cls import metrics

    state = optuna.trial.TrialState
    if ret.status == JobStatus.FAILED:
        study.tell(trial, state=state.FAIL)
        return False
    try:
        status = (metrics.read(run) or {}).get("status")
    except metrics.Unfit:
        status = None
    value = ret.return_value
    if status == "pruned":
        study.tell(trial, state=state.PRUNED)
    elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        study.tell(trial, float(value))
    else:
        log.warning("trial %d returned %r, not a number: told Optuna it failed", trial.number, value)
        study.tell(trial, state=state.FAIL)
    return True
