"""Labelled sequences (one recording, one label): each case is one row of the (rows, timesteps, features)
tensor, right-padded to the longest case, with its own length kept beside it."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from lstm_cls.data.scaling import scale_


class CaseSet(Dataset):
    """Cases addressed by a whole batch of indices at once: (x, y, lengths), like `WindowSet` plus lengths.

    x: [cases, max_steps, features] (zero after each case's end), y: [cases], lengths: [cases].
    A batch is cut to its own longest case, so a batch of short cases costs no padding.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, lengths: torch.Tensor) -> None:
        self.x, self.y, self.lengths = x, y, lengths

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, idx: list[int] | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        i = torch.as_tensor(idx, device=self.y.device)
        lengths = self.lengths[i]
        # [batch, max_steps, features] -> [batch, the batch's longest case, features]
        return self.x[i, : int(lengths.max())], self.y[i], lengths

    def __getitems__(self, idx: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self[idx]  # a DataLoader's fetcher: one gather per batch

    def labels(self) -> torch.Tensor:
        return self.y

    def to(self, device: torch.device) -> CaseSet:
        return CaseSet(self.x.to(device), self.y.to(device), self.lengths.to(device))


def pad(
    cases: list[np.ndarray], mean: torch.Tensor, std: torch.Tensor, clip: float | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scaled cases (`scaling.scale_`: (x - mean) / std, clipped to +-clip if set), right-padded with zeros:
    x [cases, max_steps, channels], lengths [cases]. The padding itself is never scaled."""
    lengths = torch.tensor([len(c) for c in cases])
    x = torch.zeros(len(cases), int(lengths.max()), cases[0].shape[1])
    stats = {"mean": mean, "std": std}
    for i, c in enumerate(cases):
        real = x[i, : len(c)]
        real.copy_(torch.from_numpy(np.asarray(c, np.float32)))
        scale_(real, stats, clip)
    return x, lengths
