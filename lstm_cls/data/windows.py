"""Windowing: one stored series -> chronological splits -> (rows, timesteps, features) windows.

The series is stored once as a [steps, features] float32 tensor. A window is just its start index;
batches are gathered from the series on demand, so memory stays O(steps), never O(windows * window).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils.data import Dataset

from lstm_cls.data.series import Series
from lstm_cls.data.splits import kept_steps, split_bounds

SPLITS = ("train", "val", "test")


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
    """Windows of a series, addressed by a whole batch of indices at once (see `batches.loader`)."""

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
