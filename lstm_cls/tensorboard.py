"""TensorBoard: where a run writes its events, what its HParams tab lists, and its final scalars.

In a Hydra multirun each job's events go into `<run_dir>/tb/<label>`, the label being the job's swept values
in short form (`hidden=32,batch_size=128`, cli.SHORT_NAMES), so that `tensorboard --logdir <sweep>` names each
run by what it tried, not by its job number alone. A single run writes into its run directory, as it did.

No torch at import, and no resolver: `register_resolver` adds `lstm_cls.tb_version`
(conf/logger/tensorboard.yaml) and `lstm_cls.run_name` (conf/logger/mlflow.yaml, wandb.yaml), called where
a command starts (`lstm_cls.entry.start`) and by `train`.
"""

from __future__ import annotations

import functools
import hashlib
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from lstm_cls.cli import SHORT_NAMES

if TYPE_CHECKING:
    import lightning as L
    from hydra.core.override_parser.types import Override

    from lstm_cls.metrics import RunMetrics

TB_DIR = "tb"  # the sub-folder of a job's run directory that holds its TensorBoard run
# The tag prefix of the final values. TensorBoard's scalar dashboard groups tags by the part before the
# first "/" and orders the cards by character code (its compareTagNames; Python's sorted() agrees): as
# "final/" they came first of all, and their twenty cards pushed train/ and val/ off the first screen.
# "~" (126) sorts after every letter and digit, so they come last. TensorBoard and torch's add_scalar take
# the tag as it is, and the HParams table, which reads each metric tag's latest scalar, still shows them.
FINAL = "~final/"
RESOLVER = "lstm_cls.tb_version"
RUN_NAME = "lstm_cls.run_name"
MAX_LABEL = 200  # bytes: a folder name may hold 255 on common file systems


def flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"model": {"hidden": 32}} -> {"model.hidden": 32}, for TensorBoard's HParams tab."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if k == "_target_":
            continue
        if isinstance(v, dict):
            out.update(flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v if isinstance(v, (int, float, str, bool)) else str(v)
    return out


def _parse(overrides: list[str]) -> list[Override]:
    # Hydra's own grammar: "a,b", choice(), range(), glob(), quoted commas and lists are its to read
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create().parse_overrides(overrides)


def _key(o: Override) -> str:
    """The setting an override sets, without its +/++/~ prefix (`+x=1,2` sweeps `x`)."""
    return f"{o.key_or_group}@{o.package}" if o.package else o.key_or_group


def _strings(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=False) if OmegaConf.is_config(node) else node


def _swept(hydra: Any, command_line: bool = True) -> list[str]:
    """The swept settings of a Hydra config node (`hydra:` of multirun.yaml), as Hydra's BasicSweeper
    reads them: `sweeper.params` first, then the command line's `overrides.task`; where a key comes twice,
    the later override decides whether it is swept, the first keeps its place."""
    params = _strings(OmegaConf.select(hydra, "sweeper.params")) or {}
    task = (_strings(OmegaConf.select(hydra, "overrides.task")) or []) if command_line else []
    swept: dict[str, bool] = {}
    for o in _parse([*(f"{k}={v}" for k, v in params.items()), *task]):
        swept[_key(o)] = o.is_sweep_override()
    return [k for k, is_sweep in swept.items() if is_sweep]


def swept_keys(sweep_dir: Path) -> list[str]:
    """The settings a sweep varies, in the sweep's order (a preset's `hydra.sweeper.params` first, then
    the command line's), from the `multirun.yaml` Hydra writes into `hydra.sweep.dir` as the sweep starts.
    A key given a single value is not swept. [] when `sweep_dir` holds no multirun.yaml (Optuna's sweeper
    writes none)."""
    path = Path(sweep_dir) / "multirun.yaml"
    if not path.is_file():
        return []
    st = path.stat()
    # a job asks up to 6 times (its own and each shorter job's label and HParams): read the file once
    return list(_swept_in_file(str(path.resolve()), st.st_mtime_ns, st.st_size))


@functools.lru_cache(maxsize=8)
def _swept_in_file(path: str, mtime_ns: int, size: int) -> tuple[str, ...]:
    from lstm_cls import UserError

    try:
        cfg = OmegaConf.load(path)
    except Exception as e:  # YAML's or OmegaConf's many errors: one line naming the file
        raise UserError(f"{path} cannot be read ({str(e).splitlines()[0]})") from None
    # Hydra writes it as the sweep starts; one of another shape (edited since) is named, not a traceback
    hydra = cfg.get("hydra") if isinstance(cfg, DictConfig) else None
    if not isinstance(hydra, DictConfig):
        field = "hydra" if isinstance(cfg, DictConfig) else "the whole file"
        raise UserError(f"{path}: {field} is not a mapping, as Hydra writes it")
    params = OmegaConf.select(hydra, "sweeper.params")
    task = OmegaConf.select(hydra, "overrides.task")
    if params is not None and not isinstance(params, DictConfig):
        raise UserError(f"{path}: hydra.sweeper.params is not a mapping, as Hydra writes it")
    if task is not None and not (isinstance(task, ListConfig) and all(isinstance(o, str) for o in task)):
        raise UserError(f"{path}: hydra.overrides.task is not a list of overrides, as Hydra writes it")
    return tuple(_swept(hydra))


def _hydra(cfg: Any = None) -> Any:
    """Hydra's runtime config: `cfg` itself, the `hydra` node it holds, or the running job's."""
    if cfg is None:
        from hydra.core.hydra_config import HydraConfig

        return HydraConfig.get() if HydraConfig.initialized() else None
    return cfg.hydra if "hydra" in cfg else cfg


def _multirun(hydra: Any) -> bool:
    mode = OmegaConf.select(hydra, "mode")
    return getattr(mode, "name", mode) == "MULTIRUN"


def _job_swept(hydra: Any) -> list[str]:
    sweep_dir = OmegaConf.select(hydra, "sweep.dir")
    if sweep_dir is not None and (Path(sweep_dir) / "multirun.yaml").is_file():
        return swept_keys(Path(sweep_dir))
    # no multirun.yaml (Optuna's sweeper writes none): the search space in the job's own config. Its
    # command line holds this job's values, not the sweep's, so it cannot tell what was swept
    return _swept(hydra, command_line=False)


def _job_values(hydra: Any) -> dict[str, str]:
    """Each setting on the job's command line (a sweep's values for this job), as typed: `[a,b]`, `0.001`."""
    values = {}
    for o in _parse(_strings(OmegaConf.select(hydra, "overrides.task")) or []):
        if o.is_sweep_override() or o.is_delete():
            continue
        v = o.value()
        values[_key(o)] = v if isinstance(v, str) else o.get_value_element_as_str()
    return values


def _short_names(keys: list[str]) -> dict[str, str]:
    """SHORT_NAMES, any other key by its last component; keys whose short names clash keep their own."""
    short = {k: SHORT_NAMES.get(k) or re.split(r"[./]", k.split("@")[0])[-1] for k in keys}
    taken = list(short.values())
    return {k: s if taken.count(s) == 1 else k for k, s in short.items()}


def job_label(cfg: DictConfig | None = None) -> str | None:
    """The current multirun job's swept values in short form, `hidden=32,batch_size=128`; None outside
    a multirun or where nothing is swept. `cfg`: Hydra's runtime config (`HydraConfig.get()`) or a config
    holding it under `hydra`; by default the running job's."""
    hydra = _hydra(cfg)
    if hydra is None or not _multirun(hydra):
        return None
    keys = _job_swept(hydra)
    values = _job_values(hydra)
    short = _short_names(keys)
    label = ",".join(f"{short[k]}={values[k]}" for k in keys if k in values)
    if not label:
        return None
    label = label.replace("/", "_")  # a value like data.path=a/b.csv stays one folder
    if len(label.encode()) > MAX_LABEL:  # still one folder, still told apart from its siblings
        digest = hashlib.sha1(label.encode()).hexdigest()[:8]
        label = label.encode()[: MAX_LABEL - 9].decode(errors="ignore") + "~" + digest
    return label


def tb_version(cfg: DictConfig | None = None) -> str:
    """The TensorBoard logger's `version` (conf/logger/tensorboard.yaml): `tb/<job label>` in a multirun,
    "" (the run directory itself) otherwise, Hydra not initialised (compose API) included. `cfg` as for
    `job_label`."""
    label = job_label(cfg)
    return f"{TB_DIR}/{label}" if label else ""


def run_name(cfg: DictConfig | None = None) -> str | None:
    """A tracker's run name (MLflow, W&B): a multirun job's label, as TensorBoard names it; else the name
    of the run's folder (`2026-12-04_18-12-54.123456`, or a job's number where nothing is swept); None
    outside Hydra (the tracker names it). `cfg` as for `job_label`."""
    label = job_label(cfg)
    hydra = _hydra(cfg)
    folder = OmegaConf.select(hydra, "runtime.output_dir") if hydra is not None else None
    return label or (Path(folder).name if folder else None)


def register_resolver() -> None:
    """Add `lstm_cls.tb_version` and `lstm_cls.run_name` to OmegaConf (once), before a config naming them
    is resolved."""
    for name, resolver in ((RESOLVER, tb_version), (RUN_NAME, run_name)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver)


def run_hparams(
    cfg: DictConfig, hydra_cfg: DictConfig | None = None, constant: bool = False
) -> dict[str, Any]:
    """The settings for the HParams tab. In a multirun: the swept ones alone, in sweep order, under their
    full keys (`model.hidden`); the others are the same in every job and would only crowd the table. A
    single run: `model.*`, `data.*`, `seed` and `trainer.max_epochs`. `hydra_cfg` as for `job_label`.
    `constant`: a multirun job's swept settings, then a single run's (a tracker's table holds the runs of
    many sweeps: MLflow's, W&B's).

    TensorBoard (2.21) orders the table's columns by name whatever the order written here: leaving the
    constant settings out is what puts the swept ones first."""
    params = flat(OmegaConf.to_container(cfg, resolve=True), "")
    single = {
        k: v
        for k, v in params.items()
        if k.split(".")[0] in ("data", "model", "seed") or k in ("trainer.max_epochs",)
    }
    hydra = _hydra(hydra_cfg)
    if hydra is not None and _multirun(hydra):
        values = _job_values(hydra)
        # a config group (data=csv, callbacks=[default,swa]) is no single value of the config: as typed
        swept = {
            k: params[k] if k in params else values[k]
            for k in _job_swept(hydra)
            if k in params or k in values
        }
        if swept:
            return swept | single if constant else swept
    return single


def log_to_tensorboard(
    trainer: L.Trainer, cfg: DictConfig, model: L.LightningModule, metrics: RunMetrics
) -> None:
    """HParams tab (the run's settings and its final metrics) and the test confusion matrix."""
    import lightning as L

    tb = next((lg for lg in trainer.loggers if isinstance(lg, L.pytorch.loggers.TensorBoardLogger)), None)
    if tb is not None:
        write_final(tb.experiment, tb.log_dir, cfg, model, metrics)


def write_final(
    writer: Any,
    log_dir: str | Path,
    cfg: DictConfig,
    model: L.LightningModule,
    metrics: RunMetrics,
    hydra_cfg: DictConfig | None = None,
) -> None:
    """The end of a run in TensorBoard: final scalars, the confusion matrix, the HParams entry.
    `writer`: a SummaryWriter on `log_dir`; `hydra_cfg` as for `run_hparams`."""
    from torch.utils.tensorboard import FileWriter
    from torch.utils.tensorboard.summary import hparams

    extra = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
    # the HParams tab shows each metric tag's latest scalar: what the model logged every epoch is there
    # under its own tag; the rest (val/best_loss, test/majority_acc, epochs, seconds...) goes in under FINAL
    logged = {k for per_stage in model.epoch_metrics.values() for k in per_stage}
    final = {f"{FINAL}{k}": v for k, v in extra.items() if k not in logged}
    for tag, value in final.items():
        writer.add_scalar(tag, value, int(metrics["epochs"]))
    fig, _ = model.confusion.plot(val=model.confusion_matrix, labels=model.data_info["class_names"])
    writer.add_figure("test/confusion_matrix", fig, global_step=int(metrics["best_epoch"]))
    writer.flush()
    tags = {k: v for k, v in extra.items() if k in logged} | final
    # torch's public FileWriter: a new events file in the same folder is the same TensorBoard run. Written
    # last, so that no older file of this run is written after it
    hp = FileWriter(str(log_dir))
    for summary in hparams(run_hparams(cfg, hydra_cfg), tags):
        hp.add_summary(summary)
    hp.close()
