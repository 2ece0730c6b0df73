"""The LightningDataModule: a source's series -> normalised, windowed train/val/test loaders."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import lightning as L
from torch.utils.data import DataLoader

from lstm_cls import sources
from lstm_cls.windows import (
    SPLITS,
    Series,
    UserError,
    WindowSet,
    fit_normaliser,
    loader,
    make_splits,
    normalise_,
    split_segments,
)

log = logging.getLogger(__name__)


class WindowDataModule(L.LightningDataModule):
    """Windows a `Series` from `load()` into (rows, timesteps, features) batches.

    Splits are chronological (train, val, test last; test a quarter of train by default), cut inside
    every group, and normalised with statistics of the training steps only.
    """

    def __init__(
        self,
        load: Callable[[], Series],
        window: int = 16,
        stride: int = 1,
        horizon: int = 0,
        val_fraction: float = 0.125,
        test_fraction: float = 0.175,
        batch_size: int = 32,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        self.load = load
        self.window, self.stride, self.horizon = window, stride, horizon
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.batch_size, self.num_workers = batch_size, num_workers
        self.series: Series | None = None
        self.sets: dict[str, WindowSet] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.series is not None:  # fit, then test: load and window once
            return
        series = self.load()
        segments = split_segments(series, self.val_fraction, self.test_fraction)
        self.mean, self.std = fit_normaliser(series.x, segments["train"])
        normalise_(series.x, self.mean, self.std)
        starts = make_splits(series, segments, self.window, self.stride, self.horizon)
        for split in SPLITS:
            if len(starts[split]) == 0:
                lengths = sorted({b - a for a, b in segments[split]})
                raise UserError(
                    f"no {split} window: the {split} part of each series has {lengths} steps, "
                    f"fewer than data.window={self.window} + data.horizon={self.horizon}"
                )
        self.series = series
        self.sets = {s: WindowSet(series.x, series.y, starts[s], self.window, self.horizon) for s in SPLITS}
        log.info("windows: %s", {s: len(w) for s, w in self.sets.items()})

    @property
    def n_features(self) -> int:
        assert self.series is not None, "call setup() first"
        return self.series.x.shape[1]

    @property
    def class_names(self) -> list[str]:
        assert self.series is not None, "call setup() first"
        return self.series.class_names

    def info(self) -> dict[str, Any]:
        """Plain data that using a trained model needs (goes into checkpoints)."""
        assert self.series is not None, "call setup() first"
        return {
            "feature_names": self.series.feature_names,
            "class_names": self.series.class_names,
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
            "window": self.window,
            "stride": self.stride,
            "horizon": self.horizon,
        }

    def train_dataloader(self) -> DataLoader:
        return loader(self.sets["train"], self.batch_size, True, self.num_workers)

    def val_dataloader(self) -> DataLoader:
        return loader(self.sets["val"], self.batch_size, False, self.num_workers)

    def test_dataloader(self) -> DataLoader:
        return loader(self.sets["test"], self.batch_size, False, self.num_workers)


class SyntheticDataModule(WindowDataModule):
    """`data=synthetic`: the embedded generator (see `sources.synthetic`)."""

    def __init__(
        self,
        length: int = 8000,
        n_features: int = 13,
        n_classes: int = 2,
        noise: float = 0.1,
        signal: float = 0.4,
        regime: float = 20.0,
        seed: int = 0,
        **window_kwargs: Any,
    ) -> None:
        super().__init__(
            lambda: sources.synthetic(length, n_features, n_classes, noise, signal, regime, seed),
            **window_kwargs,
        )
