"""The default sweeper of `python -m lstm_cls.train -m`: the grid of Hydra's basic sweeper (the same jobs in
the same folders, any launcher; built by lstm_cls.precheck.grid, which checks the command), made resumable,
longest jobs first, and with nested epochs (lstm_cls/sweeps.py). On Hydra's public Sweeper API."""

# no `from __future__ import annotations`: Hydra loads plugin modules outside sys.modules, where
# dataclasses cannot resolve string annotations
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


@dataclass
class LstmClsSweeperConf:
    _target_: str = "hydra_plugins.lstm_cls_sweeper.sweeper.LstmClsSweeper"
    max_batch_size: int | None = None  # taken as the basic sweeper's, unused: every job goes in one batch
    params: Any | None = None  # swept as the command line's overrides are, before them
    nested: bool = True  # false: every job trains on its own, as with Hydra's basic sweeper


ConfigStore.instance().store(
    group="hydra/sweeper", name="lstm_cls", node=LstmClsSweeperConf, provider="lstm_cls"
)


class LaunchingSweeper(Sweeper):
    """What both of lstm_cls's sweepers (this grid one, optuna_sweeper's) keep from Hydra's setup: the
    context, the config and the launcher that runs their jobs."""

    hydra_context: HydraContext | None = None
    config: DictConfig | None = None
    launcher: Any = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.hydra_context, self.config = hydra_context, config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )


class LstmClsSweeper(LaunchingSweeper):
    def __init__(self, max_batch_size: int | None = None, params: dict | None = None, nested: bool = True):
        self.params = params or {}
        self.nested = nested

    def sweep(self, arguments: "list[str]") -> Any:
        """Launch the grid of `params` and `arguments`. A UserError (a resume refused, a range to sweep)
        stops the sweep before any job starts; it leaves Hydra as `Refused`, for the command's `error:`."""
        from lstm_cls import UserError, rundir, sweeps
        from lstm_cls.entry import Refused
        from lstm_cls.precheck import grid

        assert self.config is not None and self.launcher is not None and self.hydra_context is not None
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        overrides = parser.parse_overrides([*(f"{k}={v}" for k, v in self.params.items()), *arguments])
        sweep_dir = Path(self.config.hydra.sweep.dir)
        try:
            jobs = [[typed for _, typed in job] for job in grid(overrides)]  # Hydra's order: job i, folder i
            force = sweeps.resume_setting(self.config) == "force"
            recorded = sweeps.check_resume(sweep_dir, jobs)  # each job's folder, for a resumed sweep
            rundir.acquire(sweep_dir)  # a second copy of this sweep into the same folder is refused
            try:  # a resume's checks (its jobs' earlier files) raise here too, before any job starts
                return self._run(jobs, sweep_dir, recorded, force)
            finally:
                rundir.release(sweep_dir)
        except UserError as e:
            raise Refused(e) from None

    @staticmethod
    def _check_drift(sweep_dir: Path, dirs: "list[str]", done: "set[int]", config: Any, force: bool) -> None:
        """A resume keeps the jobs completed earlier: refuse it where one of them ran with settings other
        than those its overrides compose to now (an edited group file, other defaults), since the report
        would then average two configurations as one. `sweep.resume=force` keeps them, saying so."""
        from lstm_cls import UserError, sweeps

        for i in sorted(done, key=lambda i: (len(dirs[i]), dirs[i])):  # folder 2 before folder 10
            recorded = sweep_dir / dirs[i] / ".hydra" / "config.yaml"
            try:
                drift = sweeps.config_drift(recorded, config(i))
            except UserError:
                if force:
                    continue
                raise
            if not drift:
                continue
            key, then, now = drift[0]
            more = f" (and {len(drift) - 1} more settings)" if len(drift) > 1 else ""
            what = f"{key} was {then!r} there, is {now!r} now{more}"
            if not force:
                raise UserError(
                    f"hydra.sweep.dir={sweep_dir}: job {dirs[i]} completed with other settings than this "
                    f"command composes: {what}; rerun with sweep.resume=force to keep its results anyway, "
                    "or choose another hydra.sweep.dir"
                )
            log.warning("sweep.resume=force: job %s kept though %s", dirs[i], what)

    def _run(self, jobs: list[list[str]], sweep_dir: Path, recorded: "list[str] | None", force: bool) -> Any:
        from hydra.core.hydra_config import HydraConfig

        from lstm_cls import sweeps

        composed: dict[int, DictConfig] = {}

        def config(i: int) -> DictConfig:  # a job's, as the launcher composes it; ~0.13 s, only if needed
            if i not in composed:
                loaded = self.hydra_context.config_loader.load_sweep_config(self.config, list(jobs[i]))
                composed[i] = sweeps.numbered(loaded, i)
            return composed[i]

        subdir = OmegaConf.to_container(self.config.hydra.sweep, resolve=False).get("subdir")
        if recorded is not None:  # resumed: each job in the folder sweep.json gives it, whatever its order
            dirs = recorded
        elif subdir == "${hydra.job.num}":  # Hydra's default: the job's number
            dirs = [str(i) for i in range(len(jobs))]
        else:  # your own hydra.sweep.subdir: as each job's config resolves it
            dirs = []
            for i in range(len(jobs)):
                HydraConfig.instance().set_config(config(i))
                dirs.append(str(config(i).hydra.sweep.subdir))
            HydraConfig.instance().set_config(self.config)
        done: set[int] = set()
        if recorded is not None:
            done = {i for i, d in enumerate(dirs) if sweeps.completed(sweep_dir / d, strict=True)}
        self._check_drift(sweep_dir, dirs, done, config, force)
        plan = sweeps.plan(jobs, config, done, self.config, nested=self.nested)
        if done:
            log.info(
                "resuming %s: %d of %d jobs completed earlier are left as they are",
                sweep_dir,
                len(done),
                len(jobs),
            )
        for i in [*plan.launch, *(j for d in plan.derived.values() for _, j in d)]:
            moved = sweeps.set_aside(sweep_dir, sweep_dir / dirs[i])
            if moved:
                log.info("job %s: its unfinished earlier attempt was moved to %s", dirs[i], moved)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        nested = {}
        for long, shorter in plan.derived.items():
            nested[dirs[long]] = [{"epochs": e, "dir": dirs[j]} for e, j in shorter]
            for e, j in shorter:  # the shorter jobs' .hydra/ now: the report reads them, whatever happens
                cfg = sweeps.shorter_config(config(long), jobs[j], e, j, sweep_dir / dirs[j])
                sweeps.write_hydra_files(cfg, sweep_dir / dirs[j])
        (sweep_dir / sweeps.NESTED).write_text(json.dumps(nested, indent=1))
        derived = sum(len(d) for d in plan.derived.values())
        if derived:
            log.info(
                "nested epochs: %d jobs train, and write %d shorter jobs from their first epochs",
                len(plan.derived),
                derived,
            )
        started = time.time()
        sweeps.write_state(
            sweep_dir,
            overrides=jobs,
            dirs=dirs,
            started=started,
            finished=None,
            jobs_at_once=sweeps.jobs_at_once(self.config.hydra.launcher),
            jobs=len(jobs),
            skipped=len(plan.skipped),
            derived=derived,
            launched=len(plan.launch),
        )
        # each job keeps its own folder whatever its place in the dispatch order
        batch = [[*jobs[i], f"hydra.sweep.subdir={dirs[i]}"] for i in plan.launch]
        try:
            results = self.launcher.launch(batch, initial_job_idx=0) if batch else None
            for r in results or []:  # a failed job raises here, after every job ran: the sweep exits non-zero
                _ = r.return_value
        finally:
            sweeps.write_state(sweep_dir, finished=time.time())
        return [results] if batch else []
