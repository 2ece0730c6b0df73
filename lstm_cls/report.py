"""Summarise a sweep: `python -m lstm_cls.report SWEEP_DIR`.

Reads every job's config (.hydra/), metrics.json and per-epoch metrics.csv, and writes into SWEEP_DIR:
summary.csv and summary.md (a row per job, means and spreads per configuration, and what stopping
earlier would have given), learning_curves.png, gap.png and test_acc.png.
Works on a sweep still running, and on a single run directory.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from lstm_cls import UserError
from lstm_cls.cli import fail

# always shown, under short names; other swept keys are added under their full name
KNOWN = {
    "model.hidden": "hidden",
    "data.batch_size": "batch_size",
    "trainer.max_epochs": "max_epochs",
    "seed": "seed",
    "model.lr": "lr",
}
AT_END = ["train/loss", "train/acc", "val/loss", "val/acc", "test/loss", "test/acc", "test/f1"]


def find_runs(root: Path) -> list[Path]:
    """Run directories under root (root itself for a single run): those holding .hydra/config.yaml."""
    runs = sorted(p.parent.parent for p in root.glob("**/.hydra/config.yaml"))
    return sorted(runs, key=lambda p: (len(p.parts), int(p.name) if p.name.isdigit() else p.name))


def history(run: Path) -> pd.DataFrame:
    """Per-epoch metrics, one row per epoch (the CSV logger writes one row per stage)."""
    f = run / "metrics.csv"
    if not f.is_file():
        return pd.DataFrame()
    df = pd.read_csv(f)
    df = df.drop(columns=[c for c in df.columns if c.startswith("test/")])
    df = df.dropna(how="all", subset=[c for c in df.columns if c != "step"])
    return df.groupby("step").first().rename_axis("epoch")


def swept_keys(runs: list[Path]) -> list[str]:
    """The named settings, then any other key set on a job's command line (Hydra's own left out)."""
    keys: set[str] = set()
    for run in runs:
        f = run / ".hydra" / "overrides.yaml"
        for o in OmegaConf.load(f) if f.is_file() else []:
            key = str(o).split("=", 1)[0].lstrip("+~")
            if not key.startswith("hydra") and key != "run_dir":
                keys.add(key)
    return list(KNOWN) + sorted(keys - set(KNOWN))


def job_row(run: Path, keys: list[str]) -> tuple[dict, pd.DataFrame]:
    cfg = OmegaConf.load(run / ".hydra" / "config.yaml")
    f = run / ".hydra" / "overrides.yaml"
    typed = dict(str(o).lstrip("+~").split("=", 1) for o in (OmegaConf.load(f) if f.is_file() else []))
    row: dict = {"job": run.name}
    for k in keys:
        value = OmegaConf.select(cfg, k)
        # a config group choice (data=weather_aus) selects a whole node: show what was typed
        row[KNOWN.get(k, k)] = typed.get(k) if OmegaConf.is_config(value) else value
    hist = history(run)
    if (run / "metrics.json").is_file():
        m = json.loads((run / "metrics.json").read_text())
        row["status"] = m.get("status", "completed")
        row.update({k: m.get(k) for k in AT_END})
        row["best_epoch"] = m.get("best_epoch")
        row["epochs"] = m.get("epochs")
        if m.get("best_epoch") in hist.index:
            best = hist.loc[m["best_epoch"]]
            row.update({f"best/{k}": best.get(k) for k in ("train/loss", "train/acc", "val/loss", "val/acc")})
        if len(hist):
            row["gap/acc"], row["gap/loss"] = hist["gap/acc"].iloc[-1], hist["gap/loss"].iloc[-1]
        row["fit_seconds"] = m.get("fit_seconds")
    elif (run / "error.txt").is_file():
        row["status"] = "failed"
        row["error"] = (run / "error.txt").read_text().strip()
    else:
        row["status"] = "running"
        row["epochs"] = len(hist)
    return row, hist


def _fmt(mean: float, std: float) -> str:
    return f"{mean:.3f}" if pd.isna(std) or std == 0 else f"{mean:.3f} ± {std:.3f}"


def report(root: Path) -> pd.DataFrame:
    """Write the summary tables and figures into `root`; return the per-job table."""
    if not root.is_dir():
        raise UserError(f"{root}: no such directory")
    runs = find_runs(root)
    if not runs:
        raise UserError(f"{root}: no runs here (a run directory holds .hydra/config.yaml)")
    keys = swept_keys(runs)
    rows, hists = zip(*(job_row(r, keys) for r in runs), strict=True)
    jobs = pd.DataFrame(list(rows))
    # the named settings always; any other key only where it differs between jobs
    params = [KNOWN.get(k, k) for k in keys if k in KNOWN or jobs[k].astype(str).nunique() > 1]
    jobs = jobs.drop(columns=[k for k in keys if k not in KNOWN and k not in params])
    jobs.to_csv(root / "summary.csv", index=False)

    done = jobs[jobs.status == "completed"]
    config_cols = [p for p in params if p not in ("seed", "max_epochs")]
    md = [
        f"# Sweep report: {root}",
        "",
        f"{len(done)} completed, {sum(jobs.status == 'failed')} failed, "
        f"{sum(jobs.status == 'running')} running, of {len(jobs)} jobs.",
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
    md += ["## Jobs", "", jobs[jobs.status != "failed"][show].to_markdown(index=False, floatfmt=".3f"), ""]
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
        md += ["## Per configuration (mean ± std over seeds)", "", table.to_markdown(index=False), ""]
        md += stopping_table(done, hists, jobs, config_cols)
    failed = jobs[jobs.status == "failed"]
    if len(failed):
        md += ["## Failed jobs", "", failed[["job", *params, "error"]].to_markdown(index=False), ""]
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
                vl = pd.Series([a["val/loss"] for a in at])
                ga = pd.Series([a["gap/acc"] for a in at])
                row[f"val/loss @{n}"] = _fmt(vl.mean(), vl.std())
                row[f"gap/acc @{n}"] = _fmt(ga.mean(), ga.std())
        out.append(row)
    return [
        "## Stopping earlier (read off the longest run of each configuration)",
        "",
        pd.DataFrame(out).to_markdown(index=False),
        "",
    ]


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
                ax.axvline(h["val/loss"].idxmin(), color="tab:orange", ls=":", lw=1)
            key = key if isinstance(key, tuple) else (key,)
            ax.set_title(
                ", ".join(f"{c}={v}" for c, v in zip(config_cols, key, strict=True)) or "run", fontsize=9
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
    for name, metric, label in (
        ("gap.png", "gap/acc", "train acc - val acc (end)"),
        ("test_acc.png", "test/acc", "test acc (best checkpoint)"),
    ):
        # seeds are replicates, not a setting: they make the error bars instead of a panel
        settings = [p for p in params if p in done and p != "seed"]
        varied = [p for p in settings if done[p].nunique() > 1] or settings
        if not len(done) or metric not in done or not varied:
            continue
        fig, axes = plt.subplots(1, len(varied), figsize=(4 * len(varied), 3.2), squeeze=False, sharey=True)
        for ax, p in zip(axes.flat, varied, strict=True):
            # one line per value of the other main driver: epochs, or hidden size on the epochs panel
            hue = next((h for h in ("max_epochs", "hidden") if h != p and h in varied), None)
            ax.scatter(done[p], done[metric], s=12, alpha=0.3, color="gray")
            for value, grp in done.groupby(hue) if hue else [(None, done)]:
                agg = grp.groupby(p)[metric].agg(["mean", "std"])
                lbl = f"{hue}={value}" if hue else None
                ax.errorbar(
                    agg.index, agg["mean"], yerr=agg["std"].fillna(0), marker="o", capsize=3, label=lbl
                )
            if (
                p in ("hidden", "batch_size", "lr")
                and done[p].min() > 0
                and done[p].max() / done[p].min() >= 8
            ):
                ax.set_xscale("log")
            values = sorted(done[p].unique())
            if len(values) <= 8:  # ticks at the swept values only
                ax.minorticks_off()
                ax.set_xticks(values, [f"{v:g}" for v in values])
            ax.set_xlabel(p)
            if hue:
                ax.legend(fontsize=8)
        axes[0, 0].set_ylabel(label)
        fig.suptitle(f"{label} against each swept setting (mean ± std; dots: jobs)")
        fig.tight_layout()
        fig.savefig(root / name, dpi=110)
        plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lstm_cls.report", description=__doc__.splitlines()[0])
    parser.add_argument(
        "sweep_dir", type=Path, help="a sweep (outputs/multirun/<date_time>) or a run directory"
    )
    args = parser.parse_args(argv)
    try:
        jobs = report(args.sweep_dir)
    except UserError as e:
        fail(e)
    print(f"{len(jobs)} jobs: {jobs.status.value_counts().to_dict()}")
    print(f"wrote {args.sweep_dir}/summary.csv, summary.md, learning_curves.png, gap.png, test_acc.png")


if __name__ == "__main__":
    main()
