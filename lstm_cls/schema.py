"""Every setting's type and range, declared once: one dataclass per config group (Hydra's structured configs).

A field's annotation is its type (a `Literal` for a closed set of words) and its metadata its range (`rule`).
The values stay in conf/'s yaml files, which extend these schemas through their defaults lists. `register()`
(called by each command as it starts) stores them in Hydra's ConfigStore, so that Hydra types every override
as it composes (`model.hidden=abc` is refused there); `lstm_cls.config.check` checks every choice and range
from these same fields. OmegaConf 2.3 takes no `Literal`, `Union` or strict bool, so Hydra is handed copies
(`NODES`) whose `Literal`s of words are `str` and whose other such fields are `Any`: a bool stays `Any`
because OmegaConf would read `1` or `yes` as true, where the check refuses them. No torch here.
"""

import types
import typing
from dataclasses import dataclass, field, make_dataclass
from typing import Any, Literal, Optional, Union

from omegaconf import MISSING

from lstm_cls.data.header import time_setting

Scale = Literal["standard", "robust", "none"]  # data.scale (lstm_cls.data.scaling applies them)
NanRule = Literal["ffill", "drop", "error"]
Resume = Literal["auto", "force"]  # sweep.resume (lstm_cls.sweeps reads it)
# Lightning's precision names, copied from lightning.fabric.connector._PRECISION_INPUT (whose module imports
# torch): tests/test_copied_names.py fails the day Lightning's list moves
Precision = (
    Literal[16, 32, 64, "16", "32", "64", "bf16", "16-mixed", "bf16-mixed", "32-true", "64-true", "16-true"]
    | Literal["bf16-true", "transformer-engine", "transformer-engine-float16"]
    | None
)


def rule(**limits: Any) -> Any:
    """A field's range: min/max (inclusive), above/below (exclusive), ok (a test) with allowed (its words)."""
    return field(default=MISSING, metadata=limits)


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _batches(v: Any) -> bool:
    """Lightning's limit_*_batches / overfit_batches: an int counts batches, a float is a fraction."""
    return v is None or (_int(v) and v >= 0) or (isinstance(v, float) and 0.0 <= v <= 1.0)


def _class_weights(w: Any) -> bool:
    numbers = all(isinstance(x, (int, float)) and not isinstance(x, bool) and x > 0 for x in w or [0])
    return w in (None, "none", "balanced") or (
        isinstance(w, typing.Sequence) and not isinstance(w, str) and numbers
    )


def batches() -> Any:
    return rule(ok=_batches, allowed="an integer >= 0 (batches) or a float in [0, 1] (a fraction)")


@dataclass
class Model:  # conf/model/lstm.yaml: lstm_cls.model.LSTMClassifier and its network
    _target_: str = rule()
    hidden: int = rule(above=0)
    head: int = rule(above=0)
    num_layers: int = rule(above=0)
    dropout: float = rule(min=0, below=1)
    bidirectional: bool = rule()
    loss: Literal["ce", "bce", "mse"] = rule()
    output: Literal["softmax", "tanh"] = rule()
    keras_parity: bool = rule()
    optimizer: Literal["adam", "adamw", "sgd"] = rule()
    lr: float = rule(above=0)
    momentum: float = rule(min=0)
    weight_decay: float = rule(min=0)
    scheduler: Literal["none", "cosine", "step", "plateau"] = rule()
    step_size: int = rule(above=0)
    gamma: float = rule(above=0, below=1)
    patience: int = rule(min=0)
    class_weights: Any = rule(ok=_class_weights, allowed="none, balanced or a list of numbers > 0")


@dataclass
class Trainer:  # conf/trainer/default.yaml: the Trainer arguments it lists (+trainer.x: any other)
    _target_: str = rule()
    default_root_dir: str | None = rule()
    accelerator: Any = rule()  # a name or an Accelerator
    devices: Any = rule(
        ok=lambda v: v == "auto" or (_int(v) and (v >= 1 or v == -1)) or isinstance(v, typing.Sequence),
        allowed="a positive integer, -1, auto or a list",
    )
    max_epochs: int | None = rule()  # with max_steps: lstm_cls.config
    num_sanity_val_steps: int = rule()
    enable_model_summary: bool = rule()
    log_every_n_steps: int = rule()
    deterministic: Any = rule()  # true, false or "warn"
    strategy: Any = rule()  # a name or a Strategy
    num_nodes: int = rule(above=0)
    precision: Precision = rule()
    min_epochs: int | None = rule(min=0)
    max_steps: int = rule(ok=lambda v: v == -1 or v > 0, allowed="-1 (no limit) or a positive integer")
    min_steps: int | None = rule()
    max_time: Any = rule()
    limit_train_batches: Any = batches()
    limit_val_batches: Any = batches()
    limit_test_batches: Any = batches()
    overfit_batches: Any = batches()
    val_check_interval: Any = rule(
        ok=lambda v: v is None or (_int(v) and v > 0) or (isinstance(v, float) and 0 < v <= 1),
        allowed="an integer > 0 (batches) or a float in (0, 1]",
    )
    check_val_every_n_epoch: int | None = rule(above=0)
    accumulate_grad_batches: int = rule(min=1)
    gradient_clip_val: float | None = rule(min=0)
    gradient_clip_algorithm: Literal["norm", "value"] | None = rule()
    fast_dev_run: Any = rule(
        ok=lambda v: isinstance(v, bool) or (_int(v) and v >= 0), allowed="true, false or a number of batches"
    )
    benchmark: bool | None = rule()
    detect_anomaly: bool = rule()
    use_distributed_sampler: bool = rule()
    reload_dataloaders_every_n_epochs: int = rule()


@dataclass
class Loader:  # conf/data/_loader.yaml: how every source is batched
    val_fraction: float = rule(above=0, below=1)
    batch_size: int = rule(above=0)
    num_workers: int = rule(min=0)
    block: int = rule(above=0)
    eval_batch_size: int = rule(above=0)


@dataclass
class Scaled(Loader):  # the scaling of every source's features
    scale: Scale = rule()
    clip: float | None = rule(above=0, allowed="a number > 0, or null for no clipping")


@dataclass
class Windows(Scaled):  # conf/data/_windows.yaml: how a long series is windowed
    window: int = rule(above=0)
    stride: int = rule(above=0)
    horizon: int = rule(min=0)
    test_fraction: float = rule(above=0, below=1)
    train_fraction: float = rule(above=0, max=1)  # and a window left: lstm_cls.config


@dataclass
class Synthetic(Windows):  # conf/data/synthetic.yaml: the generator's settings
    _target_: str = rule()
    length: int = rule(min=1)
    n_features: int = rule(min=1)
    n_classes: int = rule(min=2)
    noise: float = rule(min=0, below=1)
    signal: float = rule()
    regime: float = rule(min=1)
    seed: int = rule()


@dataclass
class Table(Windows):  # conf/data/csv.yaml (and its presets): a table's file and columns
    _target_: str = rule()
    path: str | None = rule()
    target: Any = rule()  # column names: whatever the table's header holds
    features: Any = rule()
    time: Any = rule(
        ok=time_setting,
        allowed="a column name or a non-empty list of distinct column names, e.g. data.time=[Date,Time]",
    )
    dayfirst: bool | None = rule()
    case: Any = rule()
    group: Any = rule()
    groups: Any = rule()
    nan: NanRule = rule()
    val_path: str | None = rule()
    test_path: str | None = rule()
    hint: str = rule()


@dataclass
class Uea(Scaled):  # conf/data/uea.yaml: labelled sequences of the UEA/UCR archive
    _target_: str = rule()
    name: str | None = rule()
    path: str | None = rule()
    test_path: str | None = rule()
    seed: int = rule()


@dataclass
class Sweep:
    resume: Resume = rule()


@dataclass
class Train:  # conf/train.yaml's own settings (the groups: their own schemas)
    seed: int = rule(min=0, below=2**32, allowed="an integer in [0, 2**32)")
    threads: int = rule(above=0)
    fast: bool = rule()
    ckpt_path: str | None = rule()
    optimized_metric: str = rule()
    run_dir: str = rule()
    sweep: Sweep = field(default_factory=Sweep)
    data: Any = MISSING
    model: Any = MISSING
    trainer: Any = MISSING
    logger: Any = MISSING
    callbacks: Any = MISSING


@dataclass
class Numbers:  # the numeric settings of the callbacks and loggers conf/ ships, in whichever entry has them
    refresh_rate: int | None = rule(min=0)
    patience: int | None = rule(min=0)
    min_delta: float | None = rule(min=0)
    save_top_k: int | None = rule(min=-1)
    every_n_epochs: int | None = rule(min=0)
    flush_logs_every_n_steps: int | None = rule(min=1)
    swa_lrs: float | None = rule(min=0)
    swa_epoch_start: float | None = rule(min=0)


def hydra_type(t: Any) -> Any:
    """What OmegaConf 2.3 takes for a field's type: a `Literal` of words is `str`; a bool, a union or a
    `Literal` of other values is `Any`."""
    args = [a for a in typing.get_args(t) if a is not type(None)]
    if typing.get_origin(t) is Literal:
        return str if all(isinstance(a, str) for a in args) else Any
    union = typing.get_origin(t) in (Union, types.UnionType)
    if union and len(args) == 1:
        inner = hydra_type(args[0])
        return inner if inner is Any else Optional[inner]  # noqa: UP045 - what OmegaConf 2.3 reads
    return Any if t is bool or union else t


def node(cls: type) -> type:
    """`cls` as Hydra is handed it (`hydra_type`): a class of this module, where a pickled config finds it."""
    hints = typing.get_type_hints(cls)  # (in the order of the fields)
    made = make_dataclass(
        f"{cls.__name__}Node",
        [(name, NODES.get(t) or hydra_type(t), field(default=MISSING)) for name, t in hints.items()],
    )
    made.__module__ = __name__
    return made


NODES: dict[type, type] = {}
SweepNode = NODES[Sweep] = node(Sweep)
TrainNode = NODES[Train] = node(Train)
ModelNode = NODES[Model] = node(Model)
TrainerNode = NODES[Trainer] = node(Trainer)
SyntheticNode = NODES[Synthetic] = node(Synthetic)
TableNode = NODES[Table] = node(Table)
UeaNode = NODES[Uea] = node(Uea)
# conf/'s yaml name their schema in their defaults list (`- optional /schema@_here_: model`)
STORED = {"train": Train, "model": Model, "trainer": Trainer}
STORED |= {"synthetic": Synthetic, "table": Table, "uea": Uea}


def register() -> None:
    """Store the schemas in Hydra's ConfigStore, where conf/'s defaults lists find them: before anything
    composes a config (each command's start, lstm_cls.entry.start; tests' compose_cfg)."""
    from hydra.core.config_store import ConfigStore

    for name, cls in STORED.items():
        ConfigStore.instance().store(group="schema", name=name, node=NODES[cls])
