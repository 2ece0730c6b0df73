"""Summarise a sweep: `python -m lstm_cls.report SWEEP_DIR`.

Reads every job's config (.hydra/), metrics.json and per-epoch metrics.csv, and writes into SWEEP_DIR:
summary.csv and summary.md (a header with the sweep's wall time, training time and efficiency; a row per
job, means and spreads over seeds per configuration, what stopping earlier would have given, and every
figure it drew, linked), learning_curves.png, gap.png and test_acc.png, and where the sweep has them
remedies.png (dropout, weight decay, early stopping), learning_curve.png (data.train_fraction) and
weight_norms.png (norm/* columns of metrics.csv).
Works on a sweep still running, and on a single run directory. A job whose files cannot be read is
skipped with one line on stderr; the rest of the sweep is still reported.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pandas as pd

from lstm_cls import UserError
from lstm_cls.report.figures import figures
from lstm_cls.report.outputs import Outputs
from lstm_cls.report.read import find_runs, not_jobs, read_sweep
from lstm_cls.report.tables import header, summary_md
from lstm_cls.report.timing import sweep_timing


@dataclass
class Summary:
    """What `summarise` wrote: the per-job table, the header sentences, the figures' file names and the
    summary files (`summary.md` and `summary.csv`, or free names beside a file of yours)."""

    jobs: pd.DataFrame
    header: list[str]
    figures: list[str]
    md: Path
    csv: Path


def summarise(root: Path) -> Summary:
    """Write the summary tables and figures into `root`."""
    if not root.is_dir():
        raise UserError(f"{root}: no such directory")
    out = Outputs(root)
    runs = find_runs(root)
    if not runs:
        raise UserError(f"{root}: no runs here (a run directory holds .hydra/config.yaml)")
    for run in not_jobs(root, runs):
        print(f"not counted: {run} is not a job of this sweep (sweep.json)", file=sys.stderr)
    jobs, hists, params, unreadable = read_sweep(root, runs)
    csv_path = out.path("summary.csv")
    jobs.to_csv(csv_path, index=False)
    out.wrote("summary.csv", csv_path)

    n_skipped = sum(why.startswith("skipped") for _, why in unreadable)
    lines = header(jobs, sweep_timing(root, runs, jobs), n_skipped)
    written = figures(out, jobs, hists, params)
    md_path = out.path("summary.md")
    md_path.write_text(summary_md(root, jobs, hists, params, lines, written, unreadable))
    out.wrote("summary.md", md_path)
    return Summary(jobs, lines, written, md_path, csv_path)


def main(argv: list[str] | None = None) -> None:
    class Parser(argparse.ArgumentParser):
        def error(self, message: str) -> NoReturn:
            # one `error:` line and exit code 2 (via cli.run), as every tool: not argparse's usage + error
            raise UserError(f"{message} (python -m lstm_cls.report --help)")

    parser = Parser(
        prog="python -m lstm_cls.report",
        # what it reads and writes: the docstring less its first line, the usage argparse prints itself
        description=__doc__.partition("\n\n")[2] or __doc__,
        epilog="examples:\n"
        "  python -m lstm_cls.report outputs/multirun/2026-11-23_10-00-00.000000   # a sweep\n"
        "  python -m lstm_cls.report outputs/runs/2026-11-23_10-00-00.000000       # a single run\n"
        "The last line printed is the path of SWEEP_DIR/summary.md.",
        formatter_class=argparse.RawDescriptionHelpFormatter,  # the paragraphs and examples as written
    )
    parser.add_argument(
        "sweep_dir",
        type=Path,
        metavar="SWEEP_DIR",
        help="a sweep (outputs/multirun/<date_time>) or a run directory (outputs/runs/<date_time>); "
        "the report is written into it",
    )
    args = parser.parse_args(argv)
    summary = summarise(args.sweep_dir)
    for line in summary.header:
        print(line)
    print(f"{len(summary.jobs)} jobs: {summary.jobs.status.value_counts().to_dict()}")
    print(f"wrote {args.sweep_dir}/{summary.csv.name}, {summary.md.name}, {', '.join(summary.figures)}")
    print(f"summary: {args.sweep_dir / summary.md.name}")  # last: the one file to open
