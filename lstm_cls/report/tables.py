"""What summary.md says: its opening sentences (jobs, timing, the majority-class floor) and its tables
(every job; means and spreads over seeds per configuration and per remedy; stopping earlier), in markdown."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from lstm_cls.report.read import REMEDIES, TRAIN_FRACTION
from lstm_cls.report.timing import Timing, duration
from lstm_cls.report.values import groups, is_numeric, label, majority

# the per-job table's columns, where the sweep has them (after the job and its settings)
JOB_COLUMNS = [
    "best_epoch",
    "epochs",
    "train/acc",
    "val/acc",
    "test/acc",
    "test/f1",
    "val/loss",
    "best/val/loss",
    "best/val/acc",
    "gap/acc",
    "gap/loss",
    "fit_seconds",
    "derived_from",
]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def header(jobs: pd.DataFrame, timing: Timing, n_skipped: int) -> list[str]:
    """The report's opening sentences: how many jobs, how long they took, the majority-class floor."""
    pruned = sum(jobs.status == "pruned")  # an Optuna trial its pruner stopped (hparams_search=optuna)
    lines = [
        f"{sum(jobs.status == 'completed')} completed, "
        + (f"{pruned} pruned, " if pruned else "")
        + f"{sum(jobs.status == 'failed')} failed, "
        f"{sum(jobs.status == 'running')} running, of {len(jobs)} jobs."
        + (f" {n_skipped} more skipped as unreadable." if n_skipped else "")
    ]
    t = timing
    if t.wall_s is None:
        wall = "Wall time unknown (no job has finished yet)"
    else:
        wall = f"Wall time {duration(t.wall_s)}" + (
            " so far (the sweep is still running)" if t.running else ""
        )
    parts = [
        wall,
        f"training time {duration(t.train_s)} (fit_seconds summed over {_plural(t.trained, 'job')})",
        f"{_plural(t.at_once, 'job')} at once",
    ]
    if t.efficiency is not None:
        parts.append(f"efficiency {t.efficiency:.2f} (training time / (wall time × jobs at once))")
    lines.append("; ".join(parts) + (" (estimated from file times)" if t.estimated else "") + ".")
    if t.derived:
        lines.append(
            f"{_plural(t.derived, 'job')} derived from a longer job's training (nested epochs): "
            "their fit_seconds are not counted."
        )
    if t.earlier:
        lines.append(
            f"{_plural(t.earlier, 'job')} completed by an earlier run of this sweep (resumed): "
            "their fit_seconds are not counted."
        )
    floor = majority(jobs)
    if floor:
        lines.append(
            f"Majority baseline (always predicting the training majority class): test acc {floor[1]}."
        )
    return lines


def _mean_std(mean: float, std: float) -> str:
    # std is NaN for a single seed: no spread to show (a zero would claim runs that agree)
    return f"{mean:.3f}" if pd.isna(std) else f"{mean:.3f} ± {std:.3f}"


def _markdown(df: pd.DataFrame, params: list[str], **kwargs: Any) -> str:
    """df as a markdown table; settings that are not numbers as str(), kept from tabulate's number parsing
    (which would reformat a typed choice such as 1e-3 or 32 as a float)."""
    text = [c for c in params if c in df and not is_numeric(df[c])]
    df = df.assign(**{c: df[c].map(label) for c in text})
    return df.to_markdown(index=False, disable_numparse=[list(df.columns).index(c) for c in text], **kwargs)


def per_config(done: pd.DataFrame, group: list[str], metrics: list[str]) -> pd.DataFrame:
    """Per combination of `group` (every setting but the seed): how many runs, and each metric's mean ± std
    over them, i.e. over seeds."""
    num = done.assign(**{c: pd.to_numeric(done[c], errors="coerce") for c in metrics if c in done})
    agg = num.groupby(group, dropna=False)
    return pd.DataFrame(
        {
            "runs": agg.size(),
            **{
                c: [_mean_std(m, s) for m, s in zip(agg[c].mean(), agg[c].std(), strict=True)]
                for c in metrics
                if c in done
            },
        }
    ).reset_index()


def stopping_table(done: pd.DataFrame, hists: tuple, config_cols: list[str]) -> list[str]:
    """From the longest run of each configuration: val loss and accuracy gap had it stopped earlier."""
    if "max_epochs" not in done or done["max_epochs"].nunique() < 2:
        return []
    stops = sorted(done["max_epochs"].unique())
    out = []
    for key, grp in groups(done, config_cols, sort=True):
        longest = grp[grp.max_epochs == grp.max_epochs.max()]
        curves = [hists[i] for i in longest.index]
        row = dict(key)
        for n in stops:
            at = [h.loc[n] for h in curves if n in h.index]
            if at:
                vl = pd.Series([a.get("val/loss") for a in at], dtype=float)
                ga = pd.Series([a.get("gap/acc") for a in at], dtype=float)
                row[f"val/loss @{n}"] = _mean_std(vl.mean(), vl.std())
                row[f"gap/acc @{n}"] = _mean_std(ga.mean(), ga.std())
        out.append(row)
    return [
        "## Stopping earlier (read off the longest run of each configuration)",
        "",
        _markdown(pd.DataFrame(out), config_cols),
        "",
    ]


def summary_md(
    root: Path,
    jobs: pd.DataFrame,
    hists: tuple,
    params: list[str],
    header_lines: list[str],
    written: list[str],
    unreadable: list[tuple[Path, str]],
) -> str:
    """summary.md: the header, the figures `written` (linked), the tables, the failed and unreadable jobs."""
    done = jobs[jobs.status == "completed"]
    settings = [p for p in params if p != "seed"]  # a configuration: its seeds are its replicates
    config_cols = [p for p in settings if p != "max_epochs"]
    md = [f"# Sweep report: {root}", ""]
    for line in header_lines:
        md += [line, ""]
    if written:
        md += ["## Figures", ""]
        md += [f"![{Path(name).stem}]({name})\n" for name in written]
    # the training set's size, where the sweep varies it
    windows = ["windows/train"] if TRAIN_FRACTION in params and "windows/train" in jobs else []
    marked = ["status"] if (jobs.status == "pruned").any() else []  # which trials were pruned, and when
    show = [c for c in ["job", *params, *windows, *marked, *JOB_COLUMNS] if c in jobs]
    table = jobs[jobs.status != "failed"][show]
    if "derived_from" in table:  # a job's name, not a number; blank where the job trained itself
        table = table.assign(derived_from=table["derived_from"].fillna(""))
    md += ["## Jobs", "", _markdown(table, [*params, "derived_from"], floatfmt=".3f"), ""]
    if len(done) and config_cols:
        metrics = ["best_epoch", "test/acc", "test/f1", "best/val/loss", "gap/acc", "gap/loss"]
        table = per_config(done, [*config_cols, "max_epochs"], metrics)
        md += ["## Per configuration (mean ± std over seeds)", "", _markdown(table, params), ""]
        remedies = [c for c in REMEDIES if c in params]
        if remedies:
            group = remedies + [p for p in settings if p not in remedies]
            table = per_config(done, group, ["gap/acc", "test/acc", "test/f1"])
            md += ["## Remedies (mean ± std over seeds)", "", _markdown(table, params), ""]
        md += stopping_table(done, hists, config_cols)
    failed = jobs[jobs.status == "failed"]
    if len(failed):
        md += ["## Failed jobs", "", _markdown(failed[["job", *params, "error"]], params), ""]
    if unreadable:
        table = pd.DataFrame([{"job": run.name, "problem": why} for run, why in unreadable])
        md += ["## Unreadable files", "", _markdown(table, ["job", "problem"]), ""]
    return "\n".join(md) + "\n"
