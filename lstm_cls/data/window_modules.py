"""The LightningDataModules of long series (`data=synthetic`, `data=csv`): a source's `Series` -> scaled,
windowed train/val/test loaders; and `BatchedDataModule`, what every data module here shares."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from functools import partial
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader

from lstm_cls import UserError
from lstm_cls.data import tables
from lstm_cls.data.batches import loader
from lstm_cls.data.header import plain_time, time_columns
from lstm_cls.data.scaling import fit_scaler, scale_
from lstm_cls.data.series import Series, concat, synthetic
from lstm_cls.data.splits import fraction_keeping
from lstm_cls.data.windows import SPLITS, WindowSet, latest_part, make_splits, split_segments

log = logging.getLogger(__name__)


def settings_of(fn: Callable[..., Any], kwargs: dict[str, Any], skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """`fn`'s keyword settings, taken out of `kwargs`, each at `fn`'s own default where kwargs lacks it:
    the settings are declared once, in `fn`'s signature."""
    params = inspect.signature(fn).parameters.values()
    return {
        p.name: kwargs.pop(p.name, p.default)
        for p in params
        if p.default is not p.empty and p.name not in skip
    }


class BatchedDataModule(L.LightningDataModule):
    """What every data module here shares: `sets` (train, val, test) of rows gathered a batch at a time, their
    loaders, and their scaling (`scale`, `clip`), fitted on the training part unless `stats` gives it.
    Subclasses fill `sets`, `feature_names` and `class_names` in `setup`."""

    def __init__(
        self,
        batch_size: int = 32,
        num_workers: int = 0,
        block: int = 64,
        eval_batch_size: int = 1024,
        stats: dict[str, Any] | None = None,
        scale: str = "standard",
        clip: float | None = None,
    ):
        super().__init__()
        self.batch_size, self.num_workers = batch_size, num_workers
        self.block, self.eval_batch_size = block, eval_batch_size
        # stats: a checkpoint's data_info, to evaluate it: its "mean", "std", "scale" and, if it has one,
        # "clip" win over the settings, so that its rows are scaled as they were in training
        self.stats = stats
        stats = stats or {}
        self.scale, clip = stats.get("scale", scale), stats.get("clip", clip)
        self.clip = None if clip is None else float(clip)
        self.sets: dict[str, Any] = {}

    feature_names: list[str]  # after setup()
    class_names: list[str]

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def fit_scaling(self, fit: Callable[[], tuple[torch.Tensor, torch.Tensor]]) -> None:
        """`mean` and `std`: the checkpoint's (`stats`), or `fit()` over the training part."""
        if self.stats is not None:
            self.mean, self.std = torch.tensor(self.stats["mean"]), torch.tensor(self.stats["std"])
        else:
            self.mean, self.std = fit()

    def info(self) -> dict[str, Any]:
        """Plain data that using a trained model needs (goes into checkpoints)."""
        return {
            "feature_names": self.feature_names,
            "class_names": self.class_names,
            # the centre and scale applied, whatever data.scale: x -> (x - mean) / std, then clipped to +-clip
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
            "scale": self.scale,
            "clip": self.clip,
        }

    def _on_device(self) -> dict[str, Any]:
        """The sets, moved once to the trainer's device (a GPU) when there is one."""
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        if self.sets and self.sets["train"].y.device != device:
            self.sets = {s: w.to(device) for s, w in self.sets.items()}
        return self.sets

    def train_dataloader(self) -> DataLoader:
        # blocks of `block` batches when the model trains in blocks (manual optimization: it takes one
        # optimizer step per batch); one batch per Lightning call on Lightning's standard path
        model = self.trainer.lightning_module if self.trainer is not None else None
        block = self.block if model is not None and not model.automatic_optimization else None
        return loader(self._on_device()["train"], self.batch_size, True, self.num_workers, block=block)

    def val_dataloader(self) -> DataLoader:
        # no gradients: large batches
        return loader(self._on_device()["val"], self.eval_batch_size, False, self.num_workers)

    def test_dataloader(self) -> DataLoader:
        return loader(self._on_device()["test"], self.eval_batch_size, False, self.num_workers)


class WindowDataModule(BatchedDataModule):
    """Windows a `Series` from `load()` into (rows, timesteps, features) batches.

    Splits are chronological (train, val, test last; test a quarter of train by default), cut inside
    every group, and scaled with statistics of the training steps only (`scale`: standard, robust or none;
    then clipped to +-`clip` if set). `train_fraction` < 1 keeps only the latest part of each group's
    training steps (a learning curve); val and test do not change.
    """

    nan: str | None = None  # a table source's missing-value rule (data.nan), named in the log

    def __init__(
        self,
        load: Callable[[], Series],
        window: int = 16,
        stride: int = 1,
        horizon: int = 0,
        val_fraction: float = 0.125,
        test_fraction: float = 0.175,
        train_fraction: float = 1.0,
        **batched: Any,
    ) -> None:
        super().__init__(**batched)
        self.load = load
        self.window, self.stride, self.horizon = window, stride, horizon
        self.val_fraction, self.test_fraction, self.train_fraction = (
            val_fraction,
            test_fraction,
            train_fraction,
        )
        self.series: Series | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.series is not None:  # fit, then test: load and window once
            return
        series = self.load()
        segments = self.segments(series)
        full_train = segments["train"]
        # data.train_fraction: the oldest training steps go, the part nearest validation stays; val and test
        # were cut before this, so they stay exactly the same windows whatever the fraction
        segments["train"] = latest_part(full_train, self.train_fraction)
        if self.train_fraction < 1:
            kept, whole = (sum(b - a for a, b in segs) for segs in (segments["train"], full_train))
            log.info(
                "data.train_fraction=%s: training on the latest %d of %d training steps",
                self.train_fraction,
                kept,
                whole,
            )
        # from the kept training steps only: a point of the learning curve is then a run that was given only
        # that much data, its normaliser included; statistics of the steps left out would carry information
        # from data it was not given. The val/test windows are the same steps at every fraction; only the
        # normaliser that scales them is each run's own
        self.fit_scaling(lambda: fit_scaler(series.x, segments["train"], self.scale))
        scale_(series.x, {"mean": self.mean, "std": self.std}, self.clip)
        starts, dropped = make_splits(series, segments, self.window, self.stride, self.horizon)
        if any(dropped.values()):
            log.info(
                "dropped %d windows with a missing label, %d holding a missing feature value (data.nan=%s)",
                dropped["label"],
                dropped["nan"],
                self.nan,
            )
        if len(starts["train"]) == 0 and self.train_fraction < 1:
            self._no_train_window(segments["train"], full_train)
        for split in SPLITS:
            if len(starts[split]) == 0:
                lengths = sorted({b - a for a, b in segments[split]})
                raise UserError(
                    f"no {split} window: the {split} part of each series has {lengths} steps, "
                    f"fewer than data.window={self.window} + data.horizon={self.horizon}"
                )
        self.series, self.feature_names, self.class_names = series, series.feature_names, series.class_names
        self.sets = {s: WindowSet(series.x, series.y, starts[s], self.window, self.horizon) for s in SPLITS}
        log.info("windows: %s", {s: len(w) for s, w in self.sets.items()})

    def _no_train_window(self, kept: list[tuple[int, int]], full: list[tuple[int, int]]) -> None:
        """data.train_fraction left no training window: say how many steps it kept, and what would do."""
        need = self.window + self.horizon  # steps one window and its label take
        longest_kept, longest = max(b - a for a, b in kept), max(b - a for a, b in full)
        if longest_kept >= need:  # steps enough, but every window there lacks a label or holds a NaN
            raise UserError(
                f"data.train_fraction={self.train_fraction} leaves no training window: every window of the "
                f"kept training steps lacks its label or holds a missing value (data.nan={self.nan})"
            )
        hint = f"; use data.train_fraction >= {fraction_keeping(need, longest)}" if longest >= need else ""
        raise UserError(
            f"data.train_fraction={self.train_fraction} leaves no training window: the longest kept training "
            f"part has {longest_kept} of {longest} steps, fewer than data.window={self.window} + "
            f"data.horizon={self.horizon}{hint}"
        )

    def segments(self, series: Series) -> dict[str, list[tuple[int, int]]]:
        """Step ranges of train, val and test: each group cut chronologically by the fractions."""
        return split_segments(series, self.val_fraction, self.test_fraction)

    def info(self) -> dict[str, Any]:
        return {**super().info(), "window": self.window, "stride": self.stride, "horizon": self.horizon}

    def _on_device(self) -> dict[str, Any]:
        """The sets, moved once, series and all (shared by the splits, so moved once, not per split)."""
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        if self.series is not None and self.series.x.device != device:
            self.series.x, self.series.y = self.series.x.to(device), self.series.y.to(device)
            self.sets = {
                s: WindowSet(self.series.x, self.series.y, w.starts, self.window, self.horizon)
                for s, w in self.sets.items()
            }
        return self.sets


class SyntheticDataModule(WindowDataModule):
    """`data=synthetic`: the embedded generator. Its settings (length, n_features, n_classes, noise, signal,
    regime, seed) are `synthetic`'s, with its defaults; the rest go to the windowing."""

    def __init__(self, **kwargs: Any) -> None:
        generator = settings_of(synthetic, kwargs)
        super().__init__(partial(synthetic, **generator), **kwargs)


class CsvDataModule(WindowDataModule):
    """`data=csv` and its presets: a table file. How it is read (features, time, group, groups, nan,
    dayfirst) is `tables.table`'s settings, with its defaults; the rest go to the windowing.

    `val_path` / `test_path` give whole files for validation / test instead of carving them from
    `path`; they are windowed with the training file's normalisation and class names.
    """

    def __init__(
        self,
        path: str | None = None,
        target: str | None = None,
        val_path: str | None = None,
        test_path: str | None = None,
        hint: str = "",
        **kwargs: Any,
    ) -> None:
        self.columns = settings_of(tables.table, kwargs, skip=("classes", "where", "group_key"))
        self.columns["time"] = plain_time(self.columns["time"])  # a list: columns joined into one timestamp
        self.nan = self.columns["nan"]
        super().__init__(self._load, **kwargs)
        self.path, self.target, self.hint = path, target, hint
        self.extra = {"val": val_path, "test": test_path}

    def _load(self) -> Series:
        if not self.path:
            raise UserError(
                f"data.path is not set: {self.hint or 'pass data.path=FILE (.csv, .csv.gz, .parquet)'}"
            )
        if not self.target:
            raise UserError("data.target is not set: pass data.target=COLUMN, the label column")
        cols = self.columns
        main = tables.table(tables.read_table(self.path), self.target, where=self.path, **cols)
        self._check_lengths(main, self.path)
        parts, self.n_main = [main], len(main.bounds)
        self.extra_bounds: dict[str, list[tuple[int, int]]] = {}
        offset = len(main.x)
        for split, path in self.extra.items():
            if path:
                key = f"data.{split}_path"
                df = tables.read_table(path, key)
                # by name, in the training file's order: never the file's own choice of columns
                skip = (self.target, *time_columns(cols["time"]), cols["group"])
                tables.same_features(df, main.feature_names, skip, path, key, exact=cols["features"] is None)
                features = {**cols, "features": main.feature_names}
                part = tables.table(df, self.target, classes=main.class_names, where=path, **features)
                self._check_lengths(part, path)
                self.extra_bounds[split] = [(a + offset, b + offset) for a, b in part.bounds]
                parts.append(part)
                offset += len(part.x)
        return concat(parts)

    def info(self) -> dict[str, Any]:
        # and how the table was read, so that `predict` reads a new file the same way
        read = {k: self.columns[k] for k in ("time", "group", "dayfirst", "nan")}
        return {**super().info(), "target": self.target, **read}

    def _check_lengths(self, series: Series, path: str) -> None:
        short = [b - a for a, b in series.bounds if b - a < self.window + self.horizon]
        if short:
            what = "series" if len(series.bounds) == 1 else f"{len(short)} of {len(series.bounds)} groups"
            raise UserError(
                f"{path}: {what} shorter than one window: lengths {sorted(short)[:10]} < "
                f"data.window={self.window} + data.horizon={self.horizon}"
            )

    def segments(self, series: Series) -> dict[str, list[tuple[int, int]]]:
        # the training file is cut as usual, less the parts given as whole files
        val = 0.0 if "val" in self.extra_bounds else self.val_fraction
        test = 0.0 if "test" in self.extra_bounds else self.test_fraction
        segs = split_segments(series, val, test, n_bounds=self.n_main)
        for split, bounds in self.extra_bounds.items():
            segs[split] = [seg for seg in segs[split] if seg[1] > seg[0]] + bounds
        return segs
