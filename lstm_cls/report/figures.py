"""The report's figures: learning curves, gap and test accuracy against each swept setting, and where
the sweep has them the remedies, the learning curve over training set sizes and the weight norms. Drawn
without pyplot (nothing global to close), as a mean over seeds with its spread."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from lstm_cls.report.outputs import Outputs
from lstm_cls.report.read import REMEDIES, TRAIN_FRACTION
from lstm_cls.report.values import groups, is_numeric, label, majority, numbers, varies

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

NORMS = ["norm/lstm", "norm/fc1", "norm/fc2"]  # per-epoch L2 norm of each layer's weights (metrics.csv)
# every figure the report may write, in the order summary.md shows them
FIGURES = [
    "learning_curves.png",
    "gap.png",
    "test_acc.png",
    "remedies.png",
    "learning_curve.png",
    "weight_norms.png",
]
# gids: the line of means, and its error bars or band (the spread over seeds, drawn only where there are two)
MEAN, SPREAD = "mean", "spread"


def positions(values: pd.Series) -> tuple[pd.Series, list[str] | None]:
    """Where each job goes on a setting's axis: numbers as they are; anything else (a string, a boolean, a
    list) as categories at 0, 1, 2, ... in the order the jobs first show them, with their labels."""
    if is_numeric(values):
        return pd.to_numeric(values), None
    labels = values.map(label)
    order = list(dict.fromkeys(labels))
    return labels.map(order.index), order


def _key_label(key: dict) -> str:
    return ", ".join(f"{c}={label(v)}" for c, v in key.items())


def _draw(
    ax: Axes, x: Any, mean: Any, std: Any, label: str | None = None, band: bool = False, **style: Any
) -> None:
    """A mean line, and its spread over seeds as error bars or a band where there is one: std is NaN for a
    single seed, and then nothing is drawn (not a zero-width bar)."""
    x, mean, std = (np.asarray(v, dtype=float) for v in (x, mean, std))
    style = {"marker": None if band else "o", "ms": 4, **style}
    (line,) = ax.plot(x, mean, label=label, gid=MEAN, **style)
    ok = ~np.isnan(std)
    if not ok.any():
        return
    if band:
        spread = ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2, lw=0)
    else:
        bars = ax.errorbar(x[ok], mean[ok], yerr=std[ok], fmt="none", ecolor=line.get_color(), capsize=3)
        spread = bars.lines[2][0]
    spread.set_gid(SPREAD)


def _majority(ax: Axes, done: pd.DataFrame) -> None:
    """The accuracy of always predicting the training majority class, as a labelled horizontal line (at
    the mean where jobs differ in it)."""
    floor = majority(done)
    if floor:
        ax.axhline(
            floor[0], color="black", ls="--", lw=1, label=f"majority baseline ({floor[1]})", gid="majority"
        )


def _finish(fig: Figure, title: str, legends: list[Axes] | None = None) -> Figure:
    """Title the figure and give each of `legends` (every panel by default) its legend: inside where it is
    short, beside the panel where it would hide the lines (the figure widens to make room)."""
    beside = 0
    for ax in fig.axes if legends is None else legends:
        n = len(ax.get_legend_handles_labels()[1])
        if 0 < n <= 4:
            ax.legend(fontsize=7)
        elif n > 4:
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1, 1), frameon=False)
            beside += 1
    if beside:
        width, height = fig.get_size_inches()
        fig.set_size_inches(width + 2.6 * beside, height)
    fig.suptitle(title)
    return fig


def _categories(ax: Axes, categories: list[str], rotate: bool = True) -> None:
    """A tick and a label at each category (slanted where they would run into each other)."""
    ax.set_xticks(range(len(categories)), categories)
    ax.set_xlim(-0.5, len(categories) - 0.5)
    if rotate and sum(map(len, categories)) > 24:
        ax.tick_params(axis="x", labelrotation=30)


def _numeric_axis(ax: Axes, x: pd.Series, log: bool) -> None:
    """Log scale where asked and the values span 8× or more; ticks at the swept values only, if few."""
    if log and x.min() > 0 and x.max() / x.min() >= 8:
        ax.set_xscale("log")
    values = sorted(x.dropna().unique())
    if len(values) <= 8:
        ax.minorticks_off()
        ax.set_xticks(values, [f"{v:g}" for v in values])


def _panels(n: int, width: float = 4.0, height: float = 3.2, **kwargs: Any) -> tuple[Figure, np.ndarray]:
    """A figure of n panels side by side (drawn without pyplot: nothing global to close); its layout makes
    room for legends beside a panel."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * n, height), layout="constrained")
    return fig, fig.subplots(1, n, squeeze=False, **kwargs)


def learning_curves_figure(jobs: pd.DataFrame, hists: tuple, config_cols: list[str]) -> Figure | None:
    """Train and val loss per epoch: one panel per configuration, its longest run(s), every seed drawn."""
    from matplotlib.figure import Figure

    have = [i for i, h in enumerate(hists) if len(h) and "train/loss" in h and "val/loss" in h]
    if not have:
        return None
    configs = groups(jobs.loc[have], config_cols, sort=True)
    n = len(configs)
    cols = min(n, 3)
    rows = (n + cols - 1) // cols
    fig = Figure(figsize=(4.5 * cols, 3.2 * rows))
    axes = fig.subplots(rows, cols, squeeze=False, sharey=True)
    for ax, (key, grp) in zip(axes.flat, configs, strict=False):
        longest = grp[grp.epochs == grp.epochs.max()]
        for j, i in enumerate(longest.index):
            h = hists[i]
            ax.plot(h.index, h["train/loss"], color="tab:blue", alpha=0.7, label="train" if j == 0 else None)
            ax.plot(h.index, h["val/loss"], color="tab:orange", alpha=0.7, label="val" if j == 0 else None)
            if h["val/loss"].notna().any():
                ax.axvline(h["val/loss"].idxmin(), color="tab:orange", ls=":", lw=1)
        ax.set_title(_key_label(key) or "run", fontsize=9)
        ax.set_xlabel("epoch")
    for ax in axes.flat[n:]:
        ax.axis("off")
    axes[0, 0].set_ylabel("loss")
    axes[0, 0].legend()
    fig.suptitle("Learning curves (dotted: epoch of lowest val loss)")
    fig.tight_layout()
    return fig


def setting_figure(done: pd.DataFrame, params: list[str], metric: str, title: str) -> Figure | None:
    """`metric` against each swept setting, a panel each: a line per combination of the other settings,
    with error bars over its seeds; dots: the jobs."""
    settings = [p for p in params if p in done and p != "seed"]
    varied = [p for p in settings if varies(done[p])]
    panels = varied or settings  # a single configuration still gets its panels
    if not len(done) or metric not in done or not panels:
        return None
    y = numbers(done, metric)
    fig, axes = _panels(len(panels), sharey=True)
    for ax, p in zip(axes.flat, panels, strict=True):
        x, categories = positions(done[p])
        ax.scatter(x, y, s=12, alpha=0.3, color="gray")
        # every other swept setting fixed along a line: what is left to average over is the seed
        for key, grp in groups(done, [c for c in varied if c != p]):
            agg = y[grp.index].groupby(x[grp.index]).agg(["mean", "std"])
            _draw(ax, agg.index, agg["mean"], agg["std"], _key_label(key) or None)
        if categories is not None:
            _categories(ax, categories)
        else:
            _numeric_axis(ax, x, log=p in ("hidden", "batch_size", "lr"))
        ax.set_xlabel(p)
        if metric == "test/acc":
            _majority(ax, done)
    axes[0, 0].set_ylabel(title)
    return _finish(fig, f"{title} against each swept setting (mean ± std over seeds; dots: jobs)")


ACCURACIES = [("gap/acc", "train acc - val acc (end)"), ("test/acc", "test acc (best checkpoint)")]


def remedies_figure(done: pd.DataFrame, params: list[str]) -> Figure | None:
    """Gap and test accuracy per combination of the remedies swept (dropout, weight decay, early stopping):
    a series per combination of the other settings, error bars over seeds."""
    remedies = [c for c in REMEDIES if c in params]
    if not remedies or not len(done):
        return None
    # a remedy a line, short names: the labels stay narrow enough to stand upright
    combo = done[remedies].apply(
        lambda r: "\n".join(f"{c.split('.')[-1]}={label(r[c])}" for c in remedies), axis=1
    )
    order = list(dict.fromkeys(combo))
    at = combo.map(order.index)
    series = groups(done, [c for c in params if c not in remedies and c != "seed" and varies(done[c])])
    widest = max(len(line) for text in order for line in text.splitlines())
    fig, axes = _panels(2, width=max(4.5, 0.09 * widest * len(order)), height=3.6)
    for ax, (metric, title) in zip(axes.flat, ACCURACIES, strict=True):
        y = numbers(done, metric)
        for i, (key, grp) in enumerate(series):
            agg = y[grp.index].groupby(at[grp.index]).agg(["mean", "std"])
            # side by side within a category, so that one configuration's bars do not hide another's
            shift = (i - (len(series) - 1) / 2) * 0.5 / len(series)
            _draw(ax, agg.index + shift, agg["mean"], agg["std"], _key_label(key) or None, lw=1)
        _categories(ax, order, rotate=False)
        ax.set_ylabel(title)
        if metric == "test/acc":
            _majority(ax, done)
    # the same series in both panels: one legend, with the baseline, beside the test accuracy
    return _finish(fig, "Remedies: accuracy gap and test accuracy (mean ± std over seeds)", [axes[0, 1]])


def learning_curve_figure(done: pd.DataFrame, params: list[str]) -> Figure | None:
    """Gap and test accuracy against the number of training windows (data.train_fraction swept): a line per
    combination of the other settings, a band over seeds."""
    windows = numbers(done, "windows/train")
    if TRAIN_FRACTION not in params or windows.isna().all():
        return None
    have = done[windows.notna()]
    others = [c for c in params if c not in ("seed", TRAIN_FRACTION) and varies(have[c])]
    fig, axes = _panels(2, width=4.5, height=3.4)
    for ax, (metric, title) in zip(axes.flat, ACCURACIES, strict=True):
        for key, grp in groups(have, others):
            num = pd.DataFrame({"x": windows[grp.index], "y": numbers(grp, metric)})
            agg = num.groupby(grp[TRAIN_FRACTION], dropna=False).agg(["mean", "std"])
            agg = agg.sort_values(("x", "mean"))
            name = _key_label(key) or None
            _draw(ax, agg["x"]["mean"], agg["y"]["mean"], agg["y"]["std"], name, band=True, marker="o")
        _numeric_axis(ax, windows[have.index], log=True)
        ax.set_xlabel("training windows (windows/train)")
        ax.set_ylabel(title)
        if metric == "test/acc":
            _majority(ax, have)
    title = "Learning curve: accuracy against training set size (mean ± std over seeds)"
    return _finish(fig, title, [axes[0, 1]])


def weight_norms_figure(jobs: pd.DataFrame, hists: tuple, params: list[str]) -> Figure | None:
    """Each layer's weight norm per epoch, a panel per layer: a line per configuration (coloured by hidden
    size), mean over seeds with a band. None for runs that did not log norms."""
    from matplotlib import colormaps
    from matplotlib.ticker import MaxNLocator

    norms = [c for c in NORMS if any(c in h for h in hists)]
    if not norms:
        return None
    have = jobs.loc[[i for i, h in enumerate(hists) if any(c in h for c in norms)]]
    config = [p for p in params if p not in ("seed", "max_epochs")]
    shown = [c for c in config if c != "hidden" and varies(have[c])]
    sizes = list(dict.fromkeys(sorted(have["hidden"].dropna()))) if "hidden" in have else []
    fig, axes = _panels(len(norms), width=4.5, height=3.4)
    styles = ["-", "--", ":", "-."]
    used: dict[Any, int] = {}  # per hidden size, how many lines it has: the next one's style
    for key, grp in groups(have, config, sort=True):
        # runs differing only in max_epochs share their first epochs: the longest shows them all
        longest = grp[grp.max_epochs == grp.max_epochs.max()] if grp.max_epochs.notna().any() else grp
        hidden = key.get("hidden")
        colour = colormaps["viridis"](
            0.85 * sizes.index(hidden) / max(len(sizes) - 1, 1) if hidden in sizes else 0
        )
        style = styles[used.get(hidden, 0) % len(styles)]
        used[hidden] = used.get(hidden, 0) + 1
        name = _key_label({"hidden": hidden, **{c: key[c] for c in shown}})
        for ax, col in zip(axes.flat, norms, strict=True):
            curves = [hists[i][col] for i in longest.index if col in hists[i]]
            if curves:
                curves = pd.concat(curves, axis=1)
                mean, std = curves.mean(axis=1), curves.std(axis=1)
                _draw(ax, curves.index, mean, std, name, band=True, color=colour, ls=style)
    for ax, col in zip(axes.flat, norms, strict=True):
        ax.set_title(f"{col} (L2 norm of the weights)", fontsize=9)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0, 0].set_ylabel("weight norm")
    return _finish(fig, "Weight norms by hidden size (mean over seeds, band: ± std)", [axes[0, -1]])


def figures(out: Outputs, jobs: pd.DataFrame, hists: tuple, params: list[str]) -> list[str]:
    """Draw every figure the sweep has the data for into out's folder; return their file names (in FIGURES
    order: the names themselves, or free names beside files of yours).

    A figure of an earlier report that no longer applies is removed: the files and summary.md agree.
    """
    done = jobs[jobs.status == "completed"]
    config_cols = [p for p in params if p not in ("seed", "max_epochs")]
    makers = {
        "learning_curves.png": lambda: learning_curves_figure(jobs, hists, config_cols),
        "gap.png": lambda: setting_figure(done, params, *ACCURACIES[0]),
        "test_acc.png": lambda: setting_figure(done, params, *ACCURACIES[1]),
        "remedies.png": lambda: remedies_figure(done, params),
        "learning_curve.png": lambda: learning_curve_figure(done, params),
        "weight_norms.png": lambda: weight_norms_figure(jobs, hists, params),
    }
    written = []
    for name in FIGURES:
        fig = makers[name]()
        if fig is None:
            out.remove(name)
            continue
        path = out.path(name)
        fig.savefig(path, dpi=110)
        out.wrote(name, path)
        written.append(path.name)
    return written
