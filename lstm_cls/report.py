"""Summarise a sweep: `python -m lstm_cls.report SWEEP_DIR`.

Reads every job's config (.hydra/), metrics.json and per-epoch metrics.csv, and writes into SWEEP_DIR:
summary.csv and summary.md (a row per job, means and spreads per configuration, and what stopping
earlier would have given), learning_curves.png, gap.png and test_acc.png.
Works on a sweep still running, and on a single run directory. A job whose files cannot be read is
skipped with one line on stderr; the rest of the sweep is still reported.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from lstm_cls import UserError, cli

# always shown, under short names; other swept keys are added under their full name
KNOWN = {
    "model.hidden": "hidden",
    "data.batch_size": "batch_size",
    "trainer.max_epochs": "max_epochs",
    "seed": "seed",
    "model.lr": "lr",
}
AT_END = ["train/loss", "train/acc", "val/loss", "val/acc", "test/loss", "test/acc", "test/f1"]


class Unreadable(Exception):
    """A job's file that cannot be read or is not what training writes: that job is skipped, not the sweep."""


@dataclass
class Job:
    """One run directory's files, read and checked before any table is made."""

    run: Path
    cfg: DictConfig
    overrides: list[str]
    metrics: dict | None  # None: no metrics.json yet (failed, or still running)
    error: str | None  # error.txt of a failed job
    hist: pd.DataFrame
    hist_problem: str | None = None  # why metrics.csv could not be used (the job is reported without it)


def find_runs(root: Path) -> list[Path]:
    """Run directories under root (root itself for a single run): those holding .hydra/config.yaml."""
    runs = sorted(p.parent.parent for p in root.glob("**/.hydra/config.yaml"))
    return sorted(runs, key=lambda p: (len(p.parts), int(p.name) if p.name.isdigit() else p.name))


def _cannot_read(name: str, e: Exception) -> Unreadable:
    why = "not UTF-8 text" if isinstance(e, UnicodeDecodeError) else getattr(e, "strerror", None) or str(e)
    return Unreadable(f"{name} cannot be read ({why})")


def _load_yaml(run: Path, name: str) -> DictConfig | ListConfig:
    try:
        return OmegaConf.load(run / name)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1} column {mark.column + 1})" if mark else ""
        raise Unreadable(f"{name} is not valid YAML{where}") from None
    except OmegaConfBaseException as e:
        raise Unreadable(f"{name} is not a valid config ({str(e).splitlines()[0]})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise _cannot_read(name, e) from None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def read_metrics(run: Path) -> dict | None:
    """metrics.json, checked: a JSON object with the keys its status implies, numbers where numbers go."""
    f = run / "metrics.json"
    if not f.is_file():
        return None
    try:
        m = json.loads(f.read_text())
    except json.JSONDecodeError as e:
        raise Unreadable(f"metrics.json is not valid JSON (line {e.lineno} column {e.colno})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise _cannot_read("metrics.json", e) from None
    if not isinstance(m, dict):
        raise Unreadable(f"metrics.json is not a JSON object (it holds a {type(m).__name__})")
    status = m.get("status", "completed")
    if not isinstance(status, str):
        raise Unreadable(f"metrics.json: status is {status!r}, not a word")
    # an interrupted run writes only how far it got; a completed one writes every figure (some may be null)
    need = ["epochs", *(["best_epoch", *AT_END] if status == "completed" else [])]
    missing = [k for k in need if k not in m]
    if missing:
        raise Unreadable(f"metrics.json lacks {', '.join(missing)}")
    bad = next((k for k in [*need, "fit_seconds"] if m.get(k) is not None and not _is_number(m[k])), None)
    if bad:
        raise Unreadable(f"metrics.json: {bad} is {m[bad]!r}, not a number")
    return m


def history(run: Path) -> pd.DataFrame:
    """Per-epoch metrics, one row per epoch (the CSV logger writes one row per stage).

    Raises Unreadable when metrics.csv is there but is not the logger's numeric table.
    """
    f = run / "metrics.csv"
    if not f.is_file():
        return pd.DataFrame()
    try:
        df = pd.read_csv(f)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise Unreadable(f"metrics.csv is not a valid CSV ({str(e).strip().splitlines()[-1]})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise _cannot_read("metrics.csv", e) from None
    if "step" not in df:
        raise Unreadable("metrics.csv has no step column")
    try:
        df = df.apply(pd.to_numeric)
    except (ValueError, TypeError):
        raise Unreadable("metrics.csv holds values that are not numbers") from None
    df = df.drop(columns=[c for c in df.columns if c.startswith("test/")])
    df = df.dropna(how="all", subset=[c for c in df.columns if c != "step"])
    return df.groupby("step").first().rename_axis("epoch")


def read_job(run: Path) -> Job:
    """Read and check a run directory's files; raises Unreadable naming the first file that is not right."""
    cfg = _load_yaml(run, ".hydra/config.yaml")
    if not isinstance(cfg, DictConfig) or "model" not in cfg:
        raise Unreadable(".hydra/config.yaml is not a run's config (it has no model section)")
    overrides: Any = []
    if (run / ".hydra" / "overrides.yaml").is_file():
        # an empty file loads as an empty mapping: no overrides
        overrides = OmegaConf.to_container(_load_yaml(run, ".hydra/overrides.yaml")) or []
    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
        raise Unreadable(".hydra/overrides.yaml is not a list of key=value overrides")
    metrics, error = read_metrics(run), None
    if metrics is None and (run / "error.txt").is_file():
        try:
            error = (run / "error.txt").read_text(errors="replace").strip()
        except OSError as e:
            raise _cannot_read("error.txt", e) from None
    try:
        return Job(run, cfg, overrides, metrics, error, history(run))
    except Unreadable as e:
        return Job(run, cfg, overrides, metrics, error, pd.DataFrame(), hist_problem=str(e))


def swept_keys(overrides: list[list[str]]) -> list[str]:
    """The named settings, then any other key set on a job's command line (Hydra's own left out)."""
    keys: set[str] = set()
    for typed in overrides:
        for o in typed:
            key = o.split("=", 1)[0].lstrip("+~")
            if not key.startswith("hydra") and key != "run_dir":
                keys.add(key)
    return list(KNOWN) + sorted(keys - set(KNOWN))


def label(value: Any) -> str:
    """A setting as one readable string: lists and mappings as [a, b] and {k: v}, anything else as str()."""
    if OmegaConf.is_config(value):
        value = OmegaConf.to_container(value, resolve=True)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(label(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {label(v)}" for k, v in value.items()) + "}"
    # pandas holds a null setting (class_weights: null) as NaN in a column of strings
    return "None" if value is None or (isinstance(value, float) and value != value) else str(value)


def job_row(job: Job, keys: list[str]) -> dict:
    """A job's row: its settings, then what metrics.json and metrics.csv say."""
    # "~key" (a deletion) has no value
    typed = dict(o.lstrip("+~").partition("=")[::2] for o in job.overrides)
    row: dict = {"job": job.run.name}
    for k in keys:
        try:
            value = OmegaConf.select(job.cfg, k)
            # a config group choice (data=weather_aus) selects a whole node: show what was typed.
            # Lists (and untyped nodes) become one string, so that jobs can be grouped and plotted by them
            if isinstance(value, DictConfig) and k in typed:
                value = typed[k]
            row[KNOWN.get(k, k)] = label(value) if OmegaConf.is_config(value) else value
        except OmegaConfBaseException as e:
            raise Unreadable(f".hydra/config.yaml: {k}: {str(e).splitlines()[0]}") from None
    hist, m = job.hist, job.metrics
    if m is not None:
        row["status"] = m.get("status", "completed")
        row.update({k: m.get(k) for k in AT_END})
        row["best_epoch"] = m.get("best_epoch")
        row["epochs"] = m.get("epochs")
        if m.get("best_epoch") in hist.index:
            best = hist.loc[m["best_epoch"]]
            row.update({f"best/{k}": best.get(k) for k in ("train/loss", "train/acc", "val/loss", "val/acc")})
        if len(hist):
            row["gap/acc"], row["gap/loss"] = (
                hist[c].iloc[-1] if c in hist else None for c in ("gap/acc", "gap/loss")
            )
        row["fit_seconds"] = m.get("fit_seconds")
    elif job.error is not None:
        row["status"] = "failed"
        row["error"] = job.error
    else:
        row["status"] = "running"
        row["epochs"] = len(hist)
    return row


def _fmt(mean: float, std: float) -> str:
    return f"{mean:.3f}" if pd.isna(std) or std == 0 else f"{mean:.3f} ± {std:.3f}"


def is_numeric(values: pd.Series) -> bool:
    """Whether a setting's values are numbers (plotted on a number line) rather than categories."""
    return pd.api.types.infer_dtype(values, skipna=True) in ("integer", "floating", "mixed-integer-float")


def _markdown(df: pd.DataFrame, params: list[str], **kwargs: Any) -> str:
    """df as a markdown table; settings that are not numbers as str(), kept from tabulate's number parsing
    (which would reformat a typed choice such as 1e-3 or 32 as a float)."""
    text = [c for c in params if c in df and not is_numeric(df[c])]
    df = df.assign(**{c: df[c].map(label) for c in text})
    return df.to_markdown(index=False, disable_numparse=[list(df.columns).index(c) for c in text], **kwargs)


def read_sweep(root: Path, runs: list[Path]) -> tuple[pd.DataFrame, tuple, list[str], list[tuple[Path, str]]]:
    """The per-job table and histories of every readable job, its settings, and the jobs skipped and why."""
    read, skipped = [], []
    for run in runs:
        try:
            read.append(read_job(run))
        except Unreadable as e:
            skipped.append((run, str(e)))
    keys = swept_keys([j.overrides for j in read])
    rows, hists, problems = [], [], []
    for job in read:
        try:
            rows.append(job_row(job, keys))
        except Unreadable as e:
            skipped.append((job.run, str(e)))
            continue
        hists.append(job.hist)
        if job.hist_problem:
            problems.append((job.run, job.hist_problem))
    skipped.sort(key=lambda s: runs.index(s[0]))
    if not rows:
        run, why = skipped[0]
        more = f" (and {len(skipped) - 1} more unreadable)" if len(skipped) > 1 else ""
        raise UserError(f"{root}: no readable run; skipped {run}: {why}{more}")
    # after the check above, so that a sweep with nothing readable says so in its one error line
    for run, why in skipped:
        print(f"skipped {run}: {why}", file=sys.stderr)
    for run, why in problems:
        print(f"no learning curve for {run}: {why}", file=sys.stderr)
    jobs = pd.DataFrame(rows)
    # the named settings always; any other key only where it differs between jobs (null counts as a value)
    params = [KNOWN.get(k, k) for k in keys if k in KNOWN or jobs[k].map(label).nunique() > 1]
    jobs = jobs.drop(columns=[k for k in keys if k not in KNOWN and k not in params])
    unreadable = [(run, f"skipped: {why}") for run, why in skipped]
    unreadable += [(run, f"no learning curve: {why}") for run, why in problems]
    return jobs, tuple(hists), params, unreadable


def report(root: Path) -> pd.DataFrame:
    """Write the summary tables and figures into `root`; return the per-job table."""
    if not root.is_dir():
        raise UserError(f"{root}: no such directory")
    runs = find_runs(root)
    if not runs:
        raise UserError(f"{root}: no runs here (a run directory holds .hydra/config.yaml)")
    jobs, hists, params, unreadable = read_sweep(root, runs)
    jobs.to_csv(root / "summary.csv", index=False)

    done = jobs[jobs.status == "completed"]
    config_cols = [p for p in params if p not in ("seed", "max_epochs")]
    n_skipped = sum(why.startswith("skipped") for _, why in unreadable)
    md = [
        f"# Sweep report: {root}",
        "",
        f"{len(done)} completed, {sum(jobs.status == 'failed')} failed, "
        f"{sum(jobs.status == 'running')} running, of {len(jobs)} jobs."
        + (f" {n_skipped} more skipped as unreadable." if n_skipped else ""),
        "",
    ]
    show = [
        c
        for c in [
            "job",
            *params,
            "best_epoch",
            "epochs",
            "train/acc",
            "val/acc",
            "test/acc",
            "val/loss",
            "best/val/loss",
            "best/val/acc",
            "gap/acc",
            "gap/loss",
            "fit_seconds",
        ]
        if c in jobs
    ]
    md += ["## Jobs", "", _markdown(jobs[jobs.status != "failed"][show], params, floatfmt=".3f"), ""]
    if len(done) and config_cols:
        group = [c for c in config_cols + ["max_epochs"] if c in done]
        agg = done.groupby(group, dropna=False)
        table = pd.DataFrame(
            {
                "runs": agg.size(),
                **{
                    c: [_fmt(m, s) for m, s in zip(agg[c].mean(), agg[c].std(), strict=True)]
                    for c in ("best_epoch", "test/acc", "best/val/loss", "gap/acc", "gap/loss")
                    if c in done
                },
            }
        ).reset_index()
        md += ["## Per configuration (mean ± std over seeds)", "", _markdown(table, params), ""]
        md += stopping_table(done, hists, jobs, config_cols)
    failed = jobs[jobs.status == "failed"]
    if len(failed):
        md += ["## Failed jobs", "", _markdown(failed[["job", *params, "error"]], params), ""]
    if unreadable:
        table = pd.DataFrame([{"job": run.name, "problem": why} for run, why in unreadable])
        md += ["## Unreadable files", "", _markdown(table, ["job", "problem"]), ""]
    (root / "summary.md").write_text("\n".join(md) + "\n")
    figures(root, jobs, hists, params, config_cols)
    return jobs


def stopping_table(done: pd.DataFrame, hists: tuple, jobs: pd.DataFrame, config_cols: list[str]) -> list[str]:
    """From the longest run of each configuration: val loss and accuracy gap had it stopped earlier."""
    if "max_epochs" not in done or done["max_epochs"].nunique() < 2:
        return []
    stops = sorted(done["max_epochs"].unique())
    out = []
    for key, grp in done.groupby(config_cols, dropna=False):
        longest = grp[grp.max_epochs == grp.max_epochs.max()]
        curves = [hists[i] for i in longest.index]
        row = dict(zip(config_cols, key if isinstance(key, tuple) else (key,), strict=True))
        for n in stops:
            at = [h.loc[n] for h in curves if n in h.index]
            if at:
                vl = pd.Series([a.get("val/loss") for a in at], dtype=float)
                ga = pd.Series([a.get("gap/acc") for a in at], dtype=float)
                row[f"val/loss @{n}"] = _fmt(vl.mean(), vl.std())
                row[f"gap/acc @{n}"] = _fmt(ga.mean(), ga.std())
        out.append(row)
    return [
        "## Stopping earlier (read off the longest run of each configuration)",
        "",
        _markdown(pd.DataFrame(out), config_cols),
        "",
    ]


def positions(values: pd.Series) -> tuple[pd.Series, list[str] | None]:
    """Where each job goes on a setting's axis: numbers as they are; anything else (a string, a boolean, a
    list) as categories at 0, 1, 2, ... in the order the jobs first show them, with their labels."""
    if is_numeric(values):
        return pd.to_numeric(values), None
    labels = values.map(label)
    order = list(dict.fromkeys(labels))
    return labels.map(order.index), order


def figures(root: Path, jobs: pd.DataFrame, hists: tuple, params: list[str], config_cols: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # learning curves: one panel per configuration, its longest run(s), every seed drawn
    have = [i for i, h in enumerate(hists) if len(h) and "train/loss" in h and "val/loss" in h]
    if have:
        sub = jobs.loc[have]
        groups = list(sub.groupby(config_cols, dropna=False)) if config_cols else [("all", sub)]
        n = len(groups)
        cols = min(n, 3)
        rows = (n + cols - 1) // cols
        fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.2 * rows), squeeze=False, sharey=True)
        for ax, (key, grp) in zip(axes.flat, groups, strict=False):
            longest = grp[grp.epochs == grp.epochs.max()]
            for j, i in enumerate(longest.index):
                h = hists[i]
                ax.plot(
                    h.index, h["train/loss"], color="tab:blue", alpha=0.7, label="train" if j == 0 else None
                )
                ax.plot(
                    h.index, h["val/loss"], color="tab:orange", alpha=0.7, label="val" if j == 0 else None
                )
                if h["val/loss"].notna().any():
                    ax.axvline(h["val/loss"].idxmin(), color="tab:orange", ls=":", lw=1)
            key = key if isinstance(key, tuple) else (key,)
            ax.set_title(
                ", ".join(f"{c}={label(v)}" for c, v in zip(config_cols, key, strict=True)) or "run",
                fontsize=9,
            )
            ax.set_xlabel("epoch")
        for ax in axes.flat[n:]:
            ax.axis("off")
        axes[0, 0].set_ylabel("loss")
        axes[0, 0].legend()
        fig.suptitle("Learning curves (dotted: epoch of lowest val loss)")
        fig.tight_layout()
        fig.savefig(root / "learning_curves.png", dpi=110)
        plt.close(fig)

    done = jobs[jobs.status == "completed"]
    for name, metric, title in (
        ("gap.png", "gap/acc", "train acc - val acc (end)"),
        ("test_acc.png", "test/acc", "test acc (best checkpoint)"),
    ):
        # seeds are replicates, not a setting: they make the error bars instead of a panel
        settings = [p for p in params if p in done and p != "seed"]
        varied = [p for p in settings if done[p].nunique(dropna=False) > 1] or settings
        if not len(done) or metric not in done or not varied:
            continue
        y = pd.to_numeric(done[metric])
        fig, axes = plt.subplots(1, len(varied), figsize=(4 * len(varied), 3.2), squeeze=False, sharey=True)
        for ax, p in zip(axes.flat, varied, strict=True):
            x, categories = positions(done[p])
            # one line per value of the other main driver: epochs, or hidden size on the epochs panel
            hue = next((h for h in ("max_epochs", "hidden") if h != p and h in varied), None)
            ax.scatter(x, y, s=12, alpha=0.3, color="gray")
            for value, grp in done.groupby(hue) if hue else [(None, done)]:
                agg = y[grp.index].groupby(x[grp.index]).agg(["mean", "std"])
                lbl = f"{hue}={value}" if hue else None
                ax.errorbar(
                    agg.index, agg["mean"], yerr=agg["std"].fillna(0), marker="o", capsize=3, label=lbl
                )
            if categories is not None:  # a tick and a label at each category
                ax.set_xticks(range(len(categories)), categories)
                ax.set_xlim(-0.5, len(categories) - 0.5)
                if sum(map(len, categories)) > 24:
                    ax.tick_params(axis="x", labelrotation=30)
            else:
                if p in ("hidden", "batch_size", "lr") and x.min() > 0 and x.max() / x.min() >= 8:
                    ax.set_xscale("log")
                values = sorted(x.dropna().unique())
                if len(values) <= 8:  # ticks at the swept values only
                    ax.minorticks_off()
                    ax.set_xticks(values, [f"{v:g}" for v in values])
            ax.set_xlabel(p)
            if hue:
                ax.legend(fontsize=8)
        axes[0, 0].set_ylabel(title)
        fig.suptitle(f"{title} against each swept setting (mean ± std; dots: jobs)")
        fig.tight_layout()
        fig.savefig(root / name, dpi=110)
        plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lstm_cls.report", description=__doc__.splitlines()[0])
    parser.add_argument(
        "sweep_dir", type=Path, help="a sweep (outputs/multirun/<date_time>) or a run directory"
    )
    args = parser.parse_args(argv)
    jobs = report(args.sweep_dir)
    print(f"{len(jobs)} jobs: {jobs.status.value_counts().to_dict()}")
    print(f"wrote {args.sweep_dir}/summary.csv, summary.md, learning_curves.png, gap.png, test_acc.png")


if __name__ == "__main__":
    cli.run(main)  # UserError: one `error:` line, exit 2; Ctrl-C: exit 130
