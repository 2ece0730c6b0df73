"""The sweep report as a study: remedies, learning curve over the training size, weight norms, figures linked
from summary.md, the majority baseline, spread over seeds only, and the sweep's timing in the header.

Like test_report_faults, the sweeps are written by hand (tests/helpers.write_job) in the layout a real job
leaves, so no model is trained; each job's numbers are chosen from its settings so that the tests can say what
must be drawn.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.figure import Figure
from omegaconf import OmegaConf

from lstm_cls.report import main
from lstm_cls.report.figures import MEAN, SPREAD
from lstm_cls.report.outputs import Outputs
from lstm_cls.report.timing import duration
from lstm_cls.report.timing import multirun_jobs_at_once as jobs_at_once

from .helpers import BASE, grid, write_job

EPOCHS = 3
NORM_SCALE = {"norm/lstm": 1.0, "norm/fc1": 0.5, "norm/fc2": 0.25}


def settings(overrides: list[str]) -> dict:
    return {k: v for k, _, v in (o.partition("=") for o in overrides)}


def job(sweep: Path, n: int, overrides: list[str], norms: bool = False, **metrics) -> Path:
    """A finished job: its composed config and typed overrides, metrics.json (defaults, then `metrics`;
    `gap` is the final train - val accuracy of metrics.csv) and metrics.csv, with norm/* columns if asked
    (growing with the epoch, scaled by the job's `norm` metric)."""
    typed = [f"trainer.max_epochs={EPOCHS}", *overrides]
    cfg = OmegaConf.merge(BASE, OmegaConf.from_dotlist([o for o in typed if not o.startswith("callbacks=")]))
    # a callbacks group choice composes to one node per callback
    cfg.callbacks = {"model_checkpoint": {"monitor": "val/loss"}}
    if any(o.startswith("callbacks=") and "early_stopping" in o for o in typed):
        cfg.callbacks.early_stopping = {"monitor": "val/loss", "patience": 2}
    m = {
        "status": "completed",
        **{"train/loss": 0.4, "train/acc": 0.7, "val/loss": 0.55, "val/acc": 0.6},
        **{"test/loss": 0.6, "test/acc": 0.6, "test/f1": 0.5, "test/majority_acc": 0.55},
        "best_epoch": EPOCHS,
        "epochs": EPOCHS,
        "fit_seconds": 1.5,
        "gap": 0.1,
        "norm": 1.0,
        **metrics,
    }
    gap, scale = m.pop("gap"), m.pop("norm")
    norm_cols = list(NORM_SCALE) if norms else []
    # per epoch the CSV logger writes a validation row, then a training row
    lines = [",".join(["gap/acc", "step", "train/acc", "train/loss", "val/acc", "val/loss", *norm_cols])]
    for e in range(1, EPOCHS + 1):
        lines.append(",".join(["", str(e), "", "", "0.6", f"{0.7 - 0.05 * e}", *[""] * len(norm_cols)]))
        norm_values = [f"{scale * k * e}" for k in NORM_SCALE.values()] if norms else []
        lines.append(
            ",".join([f"{gap * e / EPOCHS}", str(e), "0.7", f"{0.65 - 0.06 * e}", "", "", *norm_values])
        )
    return write_job(sweep / str(n), cfg, typed, lines, m)


def sweep_of(sweep: Path, overrides: list[list[str]], values: Callable[[dict], dict] | None = None, **kw):
    """A job per entry, numbered as Hydra numbers them; `values(settings)` gives each job's metrics."""
    return [
        job(sweep, n, o, **kw, **(values(settings(o)) if values else {})) for n, o in enumerate(overrides)
    ]


@pytest.fixture
def drawn(monkeypatch) -> dict[str, Figure]:
    """Every figure the report saves, by file name."""
    seen: dict[str, Figure] = {}
    save = Figure.savefig

    def record(self, fname, *args, **kwargs):
        save(self, fname, *args, **kwargs)
        seen[Path(fname).name] = self

    monkeypatch.setattr(Figure, "savefig", record)
    return seen


def run_report(sweep: Path, capsys) -> tuple[str, str, str]:
    """The report in-process: summary.md, stdout, stderr."""
    main([str(sweep)])
    out = capsys.readouterr()
    return (sweep / "summary.md").read_text(), out.out, out.err


def spreads(fig: Figure) -> list:
    """The error bars and bands of a figure: the spread over seeds."""
    return [c for ax in fig.axes for c in ax.collections if c.get_gid() == SPREAD]


def curves(ax) -> dict[str, tuple[list, list]]:
    """The lines of means of a panel: label (_childN where unlabelled) -> (x, y)."""
    return {
        line.get_label(): (list(line.get_xdata()), list(line.get_ydata()))
        for line in ax.lines
        if line.get_gid() == MEAN
    }


def majority_labels(ax) -> list[str]:
    return [line.get_label() for line in ax.lines if line.get_gid() == "majority"]


def panel(fig: Figure, xlabel: str):
    return next(ax for ax in fig.axes if ax.get_xlabel() == xlabel)


def links(md: str) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)


def test_a_plain_grid_draws_the_three_figures_and_summary_md_links_each(tmp_path, capsys, drawn):
    sweep = tmp_path / "s"
    sweep_of(sweep, grid("model.hidden=4,8", "data.batch_size=16,64", "seed=1,2"))
    md, out, err = run_report(sweep, capsys)
    assert err == ""
    written = ["learning_curves.png", "gap.png", "test_acc.png"]
    assert sorted(p.name for p in sweep.glob("*.png")) == sorted(written)
    assert set(drawn) == set(written)
    assert links(md) == written  # relative to the sweep dir: the viewer finds them beside summary.md
    assert "![gap](gap.png)" in md and "![test_acc](test_acc.png)" in md
    assert f"wrote {sweep}/summary.csv, summary.md, learning_curves.png, gap.png, test_acc.png" in out
    # F1 beside accuracy in the tables; early stopping is off everywhere, so no column for it
    assert "| test/acc | test/f1 |" in re.sub(r" +", " ", md)
    assert "early_stopping" not in md and "early_stopping" not in pd.read_csv(sweep / "summary.csv")
    # the majority baseline, labelled, on each test accuracy panel; none on the gap (not an accuracy)
    for ax in drawn["test_acc.png"].axes:
        assert majority_labels(ax) == ["majority baseline (0.550)"]
        assert "majority baseline (0.550)" in [t.get_text() for t in ax.get_legend().get_texts()]
    assert not any(majority_labels(ax) for ax in drawn["gap.png"].axes)
    assert "Majority baseline (always predicting the training majority class): test acc 0.550." in md


def test_a_figure_that_no_longer_applies_is_removed_and_not_linked(tmp_path, capsys):
    sweep = tmp_path / "s"
    sweep_of(sweep, grid("model.hidden=4,8"))
    (sweep / "weight_norms.png").write_bytes(b"from an earlier report")
    Outputs(sweep).wrote("weight_norms.png", sweep / "weight_norms.png")  # as that report recorded it
    md, _, _ = run_report(sweep, capsys)
    assert not (sweep / "weight_norms.png").exists() and "weight_norms" not in md


def test_one_seed_per_configuration_shows_no_spread_not_a_zero(tmp_path, capsys, drawn):
    sweep = tmp_path / "s"
    sweep_of(
        sweep,
        grid("model.hidden=4,8"),
        lambda s: {"test/acc": 0.6 + int(s["model.hidden"]) / 100},
        norms=True,
    )
    md, _, _ = run_report(sweep, capsys)
    assert re.search(r"± \d", md) is None  # "± std" in a heading, never a spread of one run
    assert set(drawn) == {"learning_curves.png", "gap.png", "test_acc.png", "weight_norms.png"}
    for name, fig in drawn.items():
        assert spreads(fig) == [], name
    # one configuration per hidden size: its own value, not pooled with the other
    ((x, y),) = curves(panel(drawn["test_acc.png"], "hidden")).values()
    assert x == [4, 8] and y == pytest.approx([0.64, 0.68])


def test_spread_is_over_the_seeds_of_one_configuration_never_pooled_over_other_settings(
    tmp_path, capsys, drawn
):
    sweep = tmp_path / "s"
    base = {("4", "16"): 0.60, ("4", "64"): 0.70, ("8", "16"): 0.65, ("8", "64"): 0.80}

    def values(s: dict) -> dict:  # seeds 1 and 2 differ by 0.02 around each configuration's own level
        return {"test/acc": base[s["model.hidden"], s["data.batch_size"]] + 0.02 * (int(s["seed"]) - 1.5)}

    sweep_of(sweep, grid("model.hidden=4,8", "data.batch_size=16,64", "seed=1,2"), values)
    md, _, _ = run_report(sweep, capsys)
    seed_std = float(np.std([-0.01, 0.01], ddof=1))
    ax = panel(drawn["test_acc.png"], "hidden")
    # a line per batch size, each point the mean of that configuration's two seeds
    lines = curves(ax)
    assert lines.keys() == {"batch_size=16", "batch_size=64"}
    assert lines["batch_size=16"] == ([4, 8], pytest.approx([0.60, 0.65]))
    assert lines["batch_size=64"] == ([4, 8], pytest.approx([0.70, 0.80]))
    bars = [c for c in ax.collections if isinstance(c, LineCollection) and c.get_gid() == SPREAD]
    half = [abs(seg[1][1] - seg[0][1]) / 2 for c in bars for seg in c.get_segments()]
    assert half == pytest.approx([seed_std] * 4)  # pooled over batch size it would be ~0.07
    assert md.count(f"± {seed_std:.3f}") >= 4 and "± 0.07" not in md
    table = re.sub(r" +", " ", md.split("## Per configuration")[1].split("\n## ")[0])
    rows = [r for r in table.splitlines() if r.startswith("| ") and "±" in r]
    assert len(rows) == 4 and all("| 3 | 2 |" in r for r in rows)  # max_epochs, then runs: the two seeds
    assert any("| 8 | 64 |" in r and "| 0.800 ± 0.014 |" in r for r in rows), rows


@pytest.mark.parametrize(
    ("axis", "ticks"),
    [
        ("model.dropout=0.0,0.3", ["dropout=0.0", "dropout=0.3"]),
        ("model.weight_decay=0.0,0.01", ["weight_decay=0.0", "weight_decay=0.01"]),
        ("callbacks=[default],[default,early_stopping]", ["early_stopping=off", "early_stopping=on"]),
    ],
)
def test_each_remedy_alone_gets_the_remedies_figure(tmp_path, capsys, drawn, axis, ticks):
    sweep = tmp_path / "s"
    sweep_of(sweep, grid(axis, "seed=1,2"))
    md, _, err = run_report(sweep, capsys)
    assert err == ""
    assert (sweep / "remedies.png").is_file() and "![remedies](remedies.png)" in md
    gap, test = drawn["remedies.png"].axes
    assert [t.get_text() for t in gap.get_xticklabels()] == ticks
    assert majority_labels(test) == ["majority baseline (0.550)"] and not majority_labels(gap)


def test_remedies_figure_and_table_with_early_stopping_as_an_on_off_column(tmp_path, capsys, drawn):
    sweep = tmp_path / "s"

    def values(s: dict) -> dict:  # dropout and early stopping each narrow the gap; seeds differ a little
        stop = "early_stopping" in s["callbacks"]
        gap = 0.2 - float(s["model.dropout"]) / 3 - 0.05 * stop + 0.01 * (int(s["seed"]) - 1.5)
        return {"gap": gap, "test/acc": 0.7 + 0.05 * stop, "test/f1": 0.6}

    overrides = grid("model.dropout=0.0,0.3", "callbacks=[default],[default,early_stopping]", "seed=1,2")
    sweep_of(sweep, overrides, values)
    md, _, err = run_report(sweep, capsys)
    assert err == ""
    table = pd.read_csv(sweep / "summary.csv")
    assert table.early_stopping.tolist() == ["off", "off", "on", "on"] * 2
    assert "callbacks" not in table  # the group choice says nothing early_stopping does not
    remedies = md.split("## Remedies (mean ± std over seeds)")[1].split("\n## ")[0]
    header = re.sub(r" +", " ", remedies.strip().splitlines()[0])
    assert header.startswith("| model.dropout | early_stopping |")
    assert "| gap/acc | test/acc | test/f1 |" in header
    rows = [re.sub(r" +", " ", r) for r in remedies.strip().splitlines()[2:]]
    assert len(rows) == 4 and all("| 2 |" in r for r in rows)
    assert any(r.startswith("| 0.3 | on |") and "| 0.050 ± 0.007 | 0.750 ± 0.000 |" in r for r in rows), rows
    for section in ("## Jobs", "## Per configuration"):
        part = md.split(section)[1].split("\n## ")[0]
        assert "early_stopping" in part and "| on " in part and "| off " in part, section

    gap, test = drawn["remedies.png"].axes
    ticks = [t.get_text() for t in gap.get_xticklabels()]
    assert ticks == [
        "dropout=0.0\nearly_stopping=off",
        "dropout=0.0\nearly_stopping=on",
        "dropout=0.3\nearly_stopping=off",
        "dropout=0.3\nearly_stopping=on",
    ]
    ((x, y),) = curves(gap).values()  # no other setting varies: one series
    assert x == [0, 1, 2, 3] and y == pytest.approx([0.2, 0.15, 0.1, 0.05])
    assert len(spreads(drawn["remedies.png"])) == 2  # error bars over the two seeds, in each panel
    assert majority_labels(test) == ["majority baseline (0.550)"]
    # the other figures show early stopping as a setting too
    assert [t.get_text() for t in panel(drawn["gap.png"], "early_stopping").get_xticklabels()] == [
        "off",
        "on",
    ]


def test_learning_curve_against_the_number_of_training_windows(tmp_path, capsys, drawn):
    sweep = tmp_path / "s"

    def values(s: dict) -> dict:
        f = float(s["data.train_fraction"])
        return {
            "windows/train": int(400 * f),
            "test/acc": 0.6 + 0.1 * f + 0.01 * (int(s["seed"]) - 1.5),
            "gap": 0.3 - 0.2 * f + 0.01 * int(s["model.hidden"]),
        }

    sweep_of(sweep, grid("data.train_fraction=0.25,0.5,1.0", "model.hidden=4,8", "seed=1,2"), values)
    md, _, err = run_report(sweep, capsys)
    assert err == ""
    assert "![learning_curve](learning_curve.png)" in md
    gap, test = drawn["learning_curve.png"].axes
    assert gap.get_xlabel() == "training windows (windows/train)"
    lines = curves(test)
    assert lines.keys() == {"hidden=4", "hidden=8"}  # one line per other configuration
    assert lines["hidden=4"] == ([100, 200, 400], pytest.approx([0.625, 0.65, 0.7]))
    assert curves(gap)["hidden=8"] == ([100, 200, 400], pytest.approx([0.33, 0.28, 0.18]))
    bands = [c for c in test.collections if isinstance(c, PolyCollection) and c.get_gid() == SPREAD]
    assert len(bands) == 2  # one per line: the two seeds
    assert majority_labels(test) == ["majority baseline (0.550)"] and not majority_labels(gap)
    jobs_table = md.split("## Jobs")[1].split("\n## ")[0]
    assert "windows/train" in jobs_table and "data.train_fraction" in jobs_table


def test_no_learning_curve_without_a_train_fraction_axis(tmp_path, capsys, drawn):
    sweep = tmp_path / "s"
    sweep_of(sweep, grid("model.hidden=4,8"), lambda s: {"windows/train": 400})
    md, _, _ = run_report(sweep, capsys)
    assert "learning_curve.png" not in drawn and not (sweep / "learning_curve.png").exists()
    assert "learning_curve.png" not in md


def test_weight_norms_per_epoch_by_hidden_size_mean_over_seeds(tmp_path, capsys, drawn):
    sweep = tmp_path / "s"

    def values(s: dict) -> dict:  # seed 2's weights 20% larger than seed 1's
        return {"norm": int(s["model.hidden"]) * (0.9 + 0.2 * (int(s["seed"]) - 1))}

    sweep_of(sweep, grid("model.hidden=4,8", "seed=1,2"), values, norms=True)
    md, _, err = run_report(sweep, capsys)
    assert err == "" and "![weight_norms](weight_norms.png)" in md
    fig = drawn["weight_norms.png"]
    assert [ax.get_title().split()[0] for ax in fig.axes] == list(NORM_SCALE)
    for ax, scale in zip(fig.axes, NORM_SCALE.values(), strict=True):
        lines = curves(ax)
        assert lines.keys() == {"hidden=4", "hidden=8"}
        for hidden in (4, 8):
            x, y = lines[f"hidden={hidden}"]
            assert x == [1, 2, 3] and y == pytest.approx([hidden * scale * e for e in (1, 2, 3)])
        assert len([c for c in ax.collections if c.get_gid() == SPREAD]) == 2  # a band per hidden size
    colours = {label: line.get_color() for line in fig.axes[0].lines for label in [line.get_label()]}
    assert colours["hidden=4"] != colours["hidden=8"]


def header_line(md: str, start: str) -> str:
    return next(line for line in md.splitlines() if line.startswith(start))


def test_header_takes_the_wall_time_from_sweep_json_and_counts_no_time_for_derived_jobs(tmp_path, capsys):
    sweep = tmp_path / "s"
    runs = sweep_of(sweep, grid("model.hidden=4,8", "seed=1,2"), fit_seconds=40.0)
    m = json.loads((runs[3] / "metrics.json").read_text())
    (runs[3] / "metrics.json").write_text(json.dumps({**m, "derived_from": "2"}))
    started = 1_700_000_000
    s = {
        "started": started,
        "finished": started + 100,
        "jobs_at_once": 2,
        "jobs": 4,
        "skipped": 0,
        "derived": 1,
    }
    (sweep / "sweep.json").write_text(json.dumps(s))
    md, out, err = run_report(sweep, capsys)
    assert err == ""
    timing = header_line(md, "Wall time")
    # 3 jobs trained 40 s each; 100 s of wall time with 2 slots: 120 / 200
    assert timing == (
        "Wall time 1 min 40 s; training time 2 min 0 s (fit_seconds summed over 3 jobs); 2 jobs at once; "
        "efficiency 0.60 (training time / (wall time × jobs at once))."
    )
    assert md.index(timing) < md.index("## Figures") < md.index("## Jobs")
    derived = "1 job derived from a longer job's training (nested epochs): their fit_seconds are not counted."
    assert derived in md
    assert timing in out and derived in out  # printed as well
    assert pd.read_csv(sweep / "summary.csv").derived_from.isna().tolist() == [True, True, True, False]
    jobs_table = md.split("## Jobs")[1].split("\n## ")[0]
    assert re.search(r"\| derived_from +\|", jobs_table) and re.search(r"\| 2 +\|\n", jobs_table)


def test_a_resumed_sweep_counts_only_the_jobs_its_last_run_trained(tmp_path, capsys):
    sweep = tmp_path / "s"
    runs = sweep_of(sweep, grid("model.hidden=4,8"), fit_seconds=40.0)
    started = 1_700_000_000
    os.utime(runs[0] / "metrics.json", (started - 500, started - 500))  # completed by the first attempt
    s = {
        "started": started,
        "finished": started + 50,
        "jobs_at_once": 1,
        "jobs": 2,
        "skipped": 1,
        "derived": 0,
    }
    (sweep / "sweep.json").write_text(json.dumps(s))
    md, _, _ = run_report(sweep, capsys)
    assert "training time 40.0 s (fit_seconds summed over 1 job)" in md and "efficiency 0.80 " in md
    assert (
        "1 job completed by an earlier run of this sweep (resumed): their fit_seconds are not counted." in md
    )


def test_header_of_a_sweep_still_running_says_so_far(tmp_path, capsys):
    sweep = tmp_path / "s"
    sweep_of(sweep, grid("model.hidden=4,8"))
    (sweep / "sweep.json").write_text(json.dumps({"started": 0, "finished": None, "jobs_at_once": 1}))
    md, _, _ = run_report(sweep, capsys)
    assert "so far (the sweep is still running)" in header_line(md, "Wall time")


def test_without_sweep_json_the_timing_is_estimated_from_file_times(tmp_path, capsys, monkeypatch):
    sweep = tmp_path / "s"
    runs = sweep_of(sweep, grid("model.hidden=4,8", "seed=1,2"), fit_seconds=10.0)
    t0 = 1_700_000_000
    for i, run in enumerate(
        runs
    ):  # started 5 s apart, each done 30 s later: 45 s from first start to last end
        os.utime(run / ".hydra", (t0 + 5 * i, t0 + 5 * i))
        os.utime(run / "metrics.json", (t0 + 5 * i + 30, t0 + 5 * i + 30))
    launcher = {
        "_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher",
        "n_jobs": -1,
    }
    OmegaConf.save(OmegaConf.create({"hydra": {"launcher": launcher}, "seed": 1}), sweep / "multirun.yaml")
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    md, out, _ = run_report(sweep, capsys)
    timing = header_line(md, "Wall time")
    assert timing.startswith(
        "Wall time 45.0 s; training time 40.0 s (fit_seconds summed over 4 jobs); 2 jobs"
    )
    assert "efficiency 0.44 " in timing and timing.endswith(" (estimated from file times).")  # 40 / (45 × 2)
    assert timing in out


def test_an_unusable_sweep_json_is_one_line_and_the_timing_is_estimated(tmp_path, capsys):
    sweep = tmp_path / "s"
    sweep_of(sweep, grid("model.hidden=4,8"))
    (sweep / "sweep.json").write_text(json.dumps({"started": "yesterday", "jobs_at_once": 2}))
    md, _, err = run_report(sweep, capsys)
    assert err.splitlines() == [
        "sweep.json: started is 'yesterday', not a time: timing estimated from file times"
    ]
    assert header_line(md, "Wall time").endswith("(estimated from file times).")


@pytest.mark.parametrize(
    ("launcher", "cpus", "expected"),
    [
        (
            {"_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher", "n_jobs": 3},
            8,
            3,
        ),
        (
            {"_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher", "n_jobs": -1},
            2,
            2,
        ),
        ({"_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"}, 3, 3),
        # more cores than jobs: only as many run at once as there are jobs
        (
            {"_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher", "n_jobs": -1},
            64,
            4,
        ),
        ({"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"}, 8, 1),
        (None, 8, 1),  # no multirun.yaml: a single run directory
    ],
)
def test_jobs_at_once_from_multirun_yaml(tmp_path, monkeypatch, launcher, cpus, expected):
    if launcher is not None:
        OmegaConf.save(OmegaConf.create({"hydra": {"launcher": launcher}}), tmp_path / "multirun.yaml")
    monkeypatch.setattr(os, "cpu_count", lambda: cpus)
    assert jobs_at_once(tmp_path, n_jobs=4) == expected


def test_a_single_run_directory_gets_the_header_and_its_figures(tmp_path, capsys):
    sweep = tmp_path / "s"
    (run,) = sweep_of(sweep, [["model.hidden=4"]], norms=True)
    md, out, _ = run_report(run, capsys)
    assert "1 completed, 0 failed, 0 running, of 1 jobs." in md
    assert "1 job at once" in header_line(md, "Wall time") and "1 jobs: {'completed': 1}" in out
    assert all((run / name).is_file() for name in links(md)) and "weight_norms.png" in links(md)


@pytest.mark.parametrize(
    ("seconds", "text"), [(12.34, "12.3 s"), (300, "5 min 0 s"), (599.6, "10 min 0 s"), (7380, "2 h 3 min")]
)
def test_duration(seconds, text):
    assert duration(seconds) == text
