"""Windowing: one stored series -> chronological splits -> (rows, timesteps, features) batches.

The series is stored once as a [steps, features] float32 tensor. A window is just its start index;
batches are gathered from the series on demand, so memory stays O(steps), never O(windows * window).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler, Sampler

from lstm_cls.config import kept_steps

SPLITS = ("train", "val", "test")


@dataclass
class Series:
    """One or more time series laid end to end.

    x: [steps, features] float32; y: [steps] int64 class index, -1 where the label is missing;
    bounds: [(start, end)] of each separate series (group), in x's step index.
    steps: what names each step in the source (its time, or its row number in the file), if known;
    group_names: the name of each group in `bounds`, if the source has groups.
    """

    x: torch.Tensor
    y: torch.Tensor
    bounds: list[tuple[int, int]]
    feature_names: list[str]
    class_names: list[str]
    steps: np.ndarray | None = None
    group_names: list[str] | None = None


def split_bounds(
    start: int, end: int, val_fraction: float, test_fraction: float
) -> dict[str, tuple[int, int]]:
    """Cut the steps [start, end) of one series chronologically: train, then val, then test."""
    n = end - start
    n_test = int(round(n * test_fraction))
    n_val = int(round(n * val_fraction))
    a, b = start + n - n_val - n_test, start + n - n_test
    return {"train": (start, a), "val": (a, b), "test": (b, end)}


def window_starts(start: int, end: int, window: int, stride: int = 1, horizon: int = 0) -> torch.Tensor:
    """Starts of the windows lying wholly in [start, end), label step (last step + horizon) included.

    Windows are cut inside one segment only, which is the purge gap: no window, and no label,
    ever crosses a split or group boundary.
    """
    last = end - window - horizon  # the last start whose label step is still < end
    if last < start:
        return torch.empty(0, dtype=torch.long)
    return torch.arange(start, last + 1, stride, dtype=torch.long)


class WindowSet(Dataset):
    """Windows of a series, addressed by a whole batch of indices at once (see `loader`)."""

    def __init__(
        self, x: torch.Tensor, y: torch.Tensor, starts: torch.Tensor, window: int, horizon: int = 0
    ) -> None:
        # on x's device (a GPU too): batches are gathered where the series lives
        self.x, self.y, self.starts = x, y, starts.to(x.device)
        self.offsets = torch.arange(window, device=x.device)
        self.label_offset = window - 1 + horizon

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, idx: list[int] | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.starts[torch.as_tensor(idx, device=self.starts.device)]  # [batch]
        # [batch, 1] + [timesteps] -> [batch, timesteps] step indices -> [batch, timesteps, features]
        return self.x[s[:, None] + self.offsets], self.y[s + self.label_offset]

    def __getitems__(self, idx: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        # what a DataLoader's fetcher calls with a batch's indices: one gather instead of one per window
        return self[idx]

    def labels(self) -> torch.Tensor:
        """The label of every window, in order: [windows]."""
        return self.y[self.starts + self.label_offset]


class BatchIndices(Sampler[torch.Tensor]):
    """Batches of window indices as tensors, cut from one permutation per epoch.

    The permutation is drawn as RandomSampler draws it (a generator seeded from torch's global RNG),
    but never turned into a Python list: 7M windows would be ~250 MB of ints.
    """

    def __init__(self, n: int, size: int, shuffle: bool) -> None:
        self.n, self.size, self.shuffle = n, size, shuffle

    def __len__(self) -> int:
        return -(-self.n // self.size)

    def __iter__(self) -> Iterator[torch.Tensor]:
        if self.shuffle:
            g = torch.Generator()
            g.manual_seed(int(torch.empty((), dtype=torch.int64).random_().item()))
            yield from torch.randperm(self.n, generator=g).split(self.size)
        else:
            yield from torch.arange(self.n).split(self.size)


class LeanRandomSampler(RandomSampler):
    """RandomSampler's permutation, drawn exactly as RandomSampler draws it, handed out in chunks instead
    of as one Python list (7M windows would be ~250 MB of ints). Still a RandomSampler, so Lightning
    swaps in its DistributedSampler (DDP) or a SequentialSampler (overfit_batches) as it documents."""

    def __iter__(self) -> Iterator[int]:
        if self.replacement or self.num_samples != len(self.data_source) or self.generator is not None:
            yield from super().__iter__()
            return
        g = torch.Generator()
        g.manual_seed(int(torch.empty((), dtype=torch.int64).random_().item()))
        for chunk in torch.randperm(len(self.data_source), generator=g).split(1 << 16):
            yield from chunk.tolist()


def _split(block: tuple[torch.Tensor, ...], size: int) -> list[tuple[torch.Tensor, ...]]:
    """A gathered block -> its batches of `size` rows (views, no copy): (x, y) or (x, y, lengths)."""
    return list(zip(*(t.split(size) for t in block), strict=True))


def _as_is(batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    return batch  # gathered whole by WindowSet.__getitems__: nothing left to collate


def loader(
    ws: Dataset, batch_size: int, shuffle: bool, num_workers: int = 0, block: int | None = None
) -> DataLoader:
    """Batches gathered in one indexing op each, instead of `batch_size` __getitem__ + collate calls.

    Without `block`: the standard PyTorch form (a RandomSampler or SequentialSampler), so Lightning can
    put in its DistributedSampler, switch shuffling off (overfit_batches) and count batches as it documents.
    With `block`: each item is a list of up to `block` consecutive batches of `batch_size` windows,
    gathered at once. Both give the same batches in the same order: BatchIndices draws its permutation
    exactly as RandomSampler does.
    """
    if block is None:
        return DataLoader(
            ws,
            batch_size=batch_size,
            sampler=LeanRandomSampler(ws) if shuffle else None,  # None: a SequentialSampler
            collate_fn=_as_is,
            num_workers=num_workers,
            persistent_workers=num_workers > 0,
        )
    return DataLoader(
        ws,
        batch_size=None,  # the sampler already yields whole blocks of indices
        sampler=BatchIndices(len(ws), batch_size * block, shuffle),
        collate_fn=partial(_split, size=batch_size),
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
    )


def split_segments(
    series: Series, val_fraction: float, test_fraction: float, n_bounds: int | None = None
) -> dict[str, list[tuple[int, int]]]:
    """Step ranges of each split: every group is cut chronologically, so every split sees every group.

    Only the first `n_bounds` groups are cut (all by default): the rest are whole files given for
    validation or testing, which the caller places itself.
    """
    segments: dict[str, list[tuple[int, int]]] = {s: [] for s in SPLITS}
    for g_start, g_end in series.bounds[:n_bounds]:
        for split, seg in split_bounds(g_start, g_end, val_fraction, test_fraction).items():
            segments[split].append(seg)
    return segments


def latest_part(segments: list[tuple[int, int]], fraction: float) -> list[tuple[int, int]]:
    """The latest `fraction` of each (start, end) step range, nearest the next split (`data.train_fraction`).

    Each group's training part keeps its own latest steps, so every group still trains, and the steps
    dropped are the oldest ones: validation and test segments, cut beforehand, never move.
    """
    return [(end - kept_steps(end - start, fraction), end) for start, end in segments]


def nan_free(x: torch.Tensor, window: int, chunk: int = 1 << 20) -> Callable[[torch.Tensor], torch.Tensor]:
    """A test of window starts: True where no step of the window holds a NaN (one pass over x)."""
    # bad[t] = steps < t holding a NaN: window [s, s + window) is clean iff bad[s + window] == bad[s]
    has_nan = torch.cat([torch.isnan(x[i : i + chunk]).any(1) for i in range(0, len(x), chunk)])
    bad = torch.zeros(len(x) + 1, dtype=torch.int32 if len(x) < 2**31 else torch.int64)
    torch.cumsum(has_nan, 0, out=bad[1:])
    return lambda s: bad[s + window] == bad[s]


def make_splits(
    series: Series,
    segments: dict[str, list[tuple[int, int]]],
    window: int,
    stride: int = 1,
    horizon: int = 0,
) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
    """Window starts of each split, and how many windows were dropped for a missing label or a NaN.

    A window is dropped when its label is missing (-1) or any of its steps holds a NaN feature.
    """
    label_offset = window - 1 + horizon
    clean_window = nan_free(series.x, window)
    out, dropped = {}, {"label": 0, "nan": 0}
    for split, segs in segments.items():
        s = torch.cat([window_starts(a, b, window, stride, horizon) for a, b in segs])
        labelled = series.y[s + label_offset] >= 0
        clean = clean_window(s)
        dropped["label"] += int((~labelled).sum())
        dropped["nan"] += int((labelled & ~clean).sum())
        out[split] = s[labelled & clean]
    return out, dropped


def fit_normaliser(
    x: torch.Tensor, segments: list[tuple[int, int]], chunk: int = 1 << 20
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-feature mean and std over the given (training) steps only.

    Float64 sums over chunks, so a 10M-step series is never copied whole; NaNs are ignored.
    """
    n = torch.zeros(x.shape[1], dtype=torch.float64)
    s1, s2 = n.clone(), n.clone()
    for a, b in segments:
        for i in range(a, b, chunk):
            c = x[i : min(b, i + chunk)].double()
            ok = ~torch.isnan(c)
            c = torch.where(ok, c, 0.0)
            n += ok.sum(0)
            s1 += c.sum(0)
            s2 += (c * c).sum(0)
    mean = s1 / n.clamp(min=1)
    std = torch.sqrt((s2 / n.clamp(min=1) - mean**2).clamp(min=0))
    std = torch.where(std > 1e-12 * mean.abs().clamp(min=1), std, 1.0)  # a constant feature stays as is
    return mean.float(), std.float()


def normalise_(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, chunk: int = 1 << 20) -> torch.Tensor:
    """In place, in chunks: no second copy of a large series."""
    for i in range(0, len(x), chunk):
        x[i : i + chunk].sub_(mean).div_(std)
    return x


SCALES = ("standard", "robust", "none")  # data.scale; config.SCALES names them too, torch-free


def _kept_scale(scale: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
    # a constant feature (zero spread, up to rounding) is left as it is rather than divided by ~0
    return torch.where(scale > 1e-12 * centre.abs().clamp(min=1), scale, 1.0)


def fit_robust(x: torch.Tensor, segments: list[tuple[int, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-feature median and inter-quartile range over the given (training) steps only; NaNs are ignored.

    numpy's percentile, one feature at a time: torch.quantile refuses inputs over 16M elements (a
    10M-step series of 13 features is 130M), and one feature's training steps in float64 (80 MB for
    10M steps) is the most held beside the series, never a second copy of the whole series. The result
    is np.nanpercentile's (linear interpolation) over those steps.
    """
    n = sum(b - a for a, b in segments)
    centre = torch.zeros(x.shape[1], dtype=torch.float64)
    spread = torch.ones(x.shape[1], dtype=torch.float64)
    for j in range(x.shape[1]):
        col = np.empty(n, np.float64)
        at = 0
        for a, b in segments:
            col[at : at + b - a] = x[a:b, j].cpu().numpy()
            at += b - a
        missing = np.isnan(col)
        if missing.any():
            col = col[~missing]
        if len(col) == 0:  # no value at all to go by: leave the feature as it is
            continue
        # overwrite_input: the partial sort happens in col itself, not in yet another copy
        q1, q2, q3 = np.percentile(col, [25, 50, 75], overwrite_input=True)
        centre[j], spread[j] = q2, q3 - q1
    return centre.float(), _kept_scale(spread, centre).float()


def fit_scaler(
    x: torch.Tensor, segments: list[tuple[int, int]], scale: str = "standard"
) -> tuple[torch.Tensor, torch.Tensor]:
    """The centre and scale of `data.scale` over the given (training) steps: `standard` mean and std,
    `robust` median and inter-quartile range, `none` 0 and 1. What `scale_` applies, and what a
    checkpoint's data_info keeps as "mean" and "std"."""
    if scale == "standard":
        return fit_normaliser(x, segments)
    if scale == "robust":
        return fit_robust(x, segments)
    if scale == "none":
        return torch.zeros(x.shape[1]), torch.ones(x.shape[1])
    raise ValueError(f"data.scale must be one of {', '.join(SCALES)} (got {scale!r})")


def scale_(
    x: torch.Tensor, stats: Mapping[str, Any], clip: float | None = None, chunk: int = 1 << 20
) -> torch.Tensor:
    """`(x - stats["mean"]) / stats["std"]`, then clamped to [-clip, clip]: in place, in chunks (no second
    copy of a large series). The one definition of the scaling: data modules, predict and export agree on it.

    stats: "mean" and "std" per feature (lists or tensors), as a checkpoint's data_info holds them, and
    optionally "clip". clip: None takes stats.get("clip"); None there too (an older checkpoint) clips nothing.
    NaNs stay NaN. x's last dimension is the features: [steps, features] or a case's rows.
    """
    mean = torch.as_tensor(stats["mean"], dtype=x.dtype, device=x.device)
    std = torch.as_tensor(stats["std"], dtype=x.dtype, device=x.device)
    if clip is None:
        clip = stats.get("clip")
    for i in range(0, len(x), chunk):
        part = x[i : i + chunk].sub_(mean).div_(std)
        if clip is not None:
            part.clamp_(-float(clip), float(clip))
    return x
