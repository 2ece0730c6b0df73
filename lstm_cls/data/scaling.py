"""Scaling (`data.scale`, `data.clip`): the centre and scale of each feature, fitted on training steps only,
and the one function that applies them. `config.SCALES` lists the scalers; `kept_scale` is the one rule
for a constant feature."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from lstm_cls.config import SCALES


def kept_scale(scale: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
    """The scale to divide by: a constant feature (zero spread, up to rounding) is left as it is rather
    than divided by ~0."""
    return torch.where(scale > 1e-12 * centre.abs().clamp(min=1), scale, 1.0)


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
    return mean.float(), kept_scale(std, mean).float()


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
    return centre.float(), kept_scale(spread, centre).float()


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


def channel_stats(cases: list[np.ndarray], scale: str = "standard") -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel centre and scale over every real step of the given (training) cases, never padding:
    `fit_scaler` over the cases laid end to end, `standard` in one numpy pass (the cases are in memory)."""
    steps = np.concatenate(cases).astype(np.float64)  # [all steps, channels]: cases are small
    if scale != "standard":
        return fit_scaler(torch.from_numpy(steps), [(0, len(steps))], scale)
    mean, std = torch.from_numpy(steps.mean(0)), torch.from_numpy(steps.std(0))
    return mean.float(), kept_scale(std, mean).float()
