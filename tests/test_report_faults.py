"""The sweep report reads what is there: unreadable jobs are skipped one line each, and settings that are
not numbers (strings, booleans, lists) are tabled and plotted as categories.

The sweeps here are written by hand (tests/helpers.py), in the layout a real job leaves, so no model is
trained.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from lstm_cls.report import main

from .conftest import run_cli
from .helpers import fake_sweep, grid

FIGURES = ("learning_curves.png", "gap.png", "test_acc.png")


@pytest.fixture
def axes(monkeypatch) -> dict[str, dict[str, list[str]]]:
    """Every figure the report saves (by file name): each panel's x label (or title) -> its x tick labels."""
    from matplotlib.figure import Figure

    seen: dict[str, dict[str, list[str]]] = {}
    save = Figure.savefig

    def record(self, fname, *args, **kwargs):
        save(self, fname, *args, **kwargs)  # drawn: the tick labels hold their text
        seen[Path(fname).name] = {
            ax.get_xlabel() if ax.get_xlabel() != "epoch" else ax.get_title(): [
                t.get_text() for t in ax.get_xticklabels()
            ]
            for ax in self.axes
            if ax.axison
        }

    monkeypatch.setattr(Figure, "savefig", record)
    return seen


def report(sweep: Path, capsys) -> tuple[list[str], str]:
    """Run the report in-process; its stderr lines and stdout."""
    main([str(sweep)])
    out = capsys.readouterr()
    return out.err.splitlines(), out.out


def test_a_corrupt_metrics_json_is_one_line_and_the_rest_is_reported(tmp_path):
    sweep = tmp_path / "s"
    fake_sweep(sweep, *grid("model.hidden=4,8", "data.batch_size=16,64"))
    (sweep / "2" / "metrics.json").write_text('{"status": ')
    r = run_cli(str(sweep), module="lstm_cls.report")
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines() == [
        f"skipped {sweep / '2'}: metrics.json is not valid JSON (line 1 column 12)"
    ]
    table = pd.read_csv(sweep / "summary.csv")
    assert table.job.tolist() == [0, 1, 3]
    assert sorted(zip(table.hidden, table.batch_size, strict=True)) == [(4, 16), (4, 64), (8, 64)]
    md = (sweep / "summary.md").read_text()
    assert "3 completed, 0 failed, 0 running, of 3 jobs. 1 more skipped as unreadable." in md
    assert "## Unreadable files" in md and "metrics.json is not valid JSON" in md
    for png in FIGURES:
        assert (sweep / png).stat().st_size > 10_000, png


@pytest.mark.parametrize(
    ("file", "content", "why"),
    [
        ("metrics.json", "[1, 2]", "metrics.json is not a JSON object (it holds a list)"),
        ("metrics.json", '{"status": "completed", "epochs": 3}', "metrics.json lacks best_epoch, train/loss"),
        ("metrics.json", None, "metrics.json: test/acc is 'high', not a number"),
        (
            ".hydra/config.yaml",
            "model: {hidden: [4\n",
            ".hydra/config.yaml is not valid YAML (line 2 column 1)",
        ),
        (
            ".hydra/config.yaml",
            "just words",
            ".hydra/config.yaml is not a run's config (it has no model section)",
        ),
        (".hydra/config.yaml", b"\xff\xfe model: 1", ".hydra/config.yaml cannot be read (not UTF-8 text)"),
        (".hydra/overrides.yaml", "- model.hidden=8\n- [", ".hydra/overrides.yaml is not valid YAML"),
        (".hydra/overrides.yaml", "model: 8", ".hydra/overrides.yaml is not a list of key=value overrides"),
    ],
)
def test_each_kind_of_unreadable_job_is_skipped_with_one_line_naming_it(tmp_path, capsys, file, content, why):
    sweep = tmp_path / "s"
    runs = fake_sweep(sweep, ["model.hidden=4"], ["model.hidden=8"], ["model.hidden=16"])
    f = runs[1] / file
    if content is None:  # a number that is not one
        m = json.loads(f.read_text())
        f.write_text(json.dumps({**m, "test/acc": "high"}))
    elif isinstance(content, bytes):
        f.write_bytes(content)
    else:
        f.write_text(content)
    err, out = report(sweep, capsys)
    assert len(err) == 1 and err[0].startswith(f"skipped {runs[1]}: {why}"), err
    assert "2 jobs: {'completed': 2}" in out
    assert pd.read_csv(sweep / "summary.csv").hidden.tolist() == [4, 16]
    for png in FIGURES:
        assert (sweep / png).is_file(), png


def test_a_corrupt_metrics_csv_keeps_the_row_without_its_learning_curve(tmp_path, capsys, axes):
    sweep = tmp_path / "s"
    runs = fake_sweep(sweep, ["model.hidden=4"], ["model.hidden=8"])
    (runs[0] / "metrics.csv").write_text("step,val/loss\n1,0.5\n2,0.4,9,9\n")
    err, _ = report(sweep, capsys)
    assert len(err) == 1 and err[0].startswith(
        f"no learning curve for {runs[0]}: metrics.csv is not a valid CSV"
    )
    table = pd.read_csv(sweep / "summary.csv")
    assert table.status.tolist() == ["completed", "completed"]
    assert table["test/acc"].tolist() == pytest.approx([0.6, 0.61])
    # the per-epoch figures of job 0 are missing, job 1's are there
    assert table["best/val/loss"].isna().tolist() == [True, False]
    assert table["gap/acc"].isna().tolist() == [True, False]
    # one panel per configuration: only hidden=8 has a curve
    assert [t for t in axes["learning_curves.png"] if "hidden" in t] == ["hidden=8, batch_size=32, lr=0.001"]
    assert "no learning curve: metrics.csv" in (sweep / "summary.md").read_text()


def test_a_sweep_over_a_string_setting_is_tabled_and_plotted_by_category(tmp_path, axes):
    sweep = tmp_path / "s"
    fake_sweep(sweep, *grid("model.optimizer=sgd,adam", "model.hidden=4,8"))
    r = run_cli(str(sweep), module="lstm_cls.report")
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stderr == ""
    table = pd.read_csv(sweep / "summary.csv")
    assert table["model.optimizer"].tolist() == ["sgd", "sgd", "adam", "adam"]
    assert table.hidden.tolist() == [4, 8, 4, 8]
    md = (sweep / "summary.md").read_text()
    assert "## Per configuration" in md and "| sgd " in md and "| adam " in md
    for png in FIGURES:
        assert (sweep / png).stat().st_size > 10_000, png
    # in-process as well, to see the axes: the categories in the order the jobs first show them
    main([str(sweep)])
    for png in ("gap.png", "test_acc.png"):
        assert axes[png]["model.optimizer"] == ["sgd", "adam"]
        assert axes[png]["hidden"] == ["4", "8"]  # numbers stay numbers
    assert "hidden=4, batch_size=32, lr=0.001, model.optimizer=adam" in axes["learning_curves.png"]


def test_a_sweep_over_a_boolean_setting_is_tabled_and_plotted_by_category(tmp_path, capsys, axes):
    sweep = tmp_path / "s"
    fake_sweep(sweep, *grid("model.bidirectional=true,false", "seed=1,2"))
    err, out = report(sweep, capsys)
    assert err == [] and "4 jobs: {'completed': 4}" in out
    table = pd.read_csv(sweep / "summary.csv")
    assert table["model.bidirectional"].tolist() == [True, True, False, False]
    assert "| True " in (sweep / "summary.md").read_text()
    assert axes["gap.png"]["model.bidirectional"] == ["True", "False"]
    assert axes["test_acc.png"]["model.bidirectional"] == ["True", "False"]


def test_list_and_mixed_settings_become_readable_keys(tmp_path, capsys, axes):
    sweep = tmp_path / "s"
    fake_sweep(sweep, *grid("data.features=[a,b],[a]", "model.class_weights=none,[1.0,2.5]"))
    err, _ = report(sweep, capsys)
    assert err == []
    table = pd.read_csv(sweep / "summary.csv")
    assert table["data.features"].tolist() == ["[a, b]", "[a, b]", "[a]", "[a]"]
    assert table["model.class_weights"].tolist() == ["none", "[1.0, 2.5]"] * 2
    assert axes["gap.png"]["data.features"] == ["[a, b]", "[a]"]
    assert axes["gap.png"]["model.class_weights"] == ["none", "[1.0, 2.5]"]
    md = (sweep / "summary.md").read_text()
    assert "| [a, b] " in md and "| [1.0, 2.5] " in md


def test_a_sweep_with_no_readable_job_is_one_error_line(tmp_path):
    sweep = tmp_path / "s"
    runs = fake_sweep(sweep, ["model.hidden=4"], ["model.hidden=8"])
    (runs[0] / "metrics.json").write_text("not json")
    (runs[1] / ".hydra" / "config.yaml").write_text("model: [")
    r = run_cli(str(sweep), module="lstm_cls.report")
    assert r.returncode == 2
    assert r.stderr.strip() == (
        f"error: {sweep}: no readable run; skipped {runs[0]}: metrics.json is not valid JSON "
        "(line 1 column 1) (and 1 more unreadable)"
    )
    assert not (sweep / "summary.csv").exists()


def test_a_null_setting_beside_strings_shows_as_none_and_mixed_types_as_categories(tmp_path, capsys, axes):
    sweep = tmp_path / "s"
    fake_sweep(sweep, *grid("model.class_weights=null,balanced", "trainer.precision=32,bf16-mixed"))
    err, _ = report(sweep, capsys)
    assert err == []
    md = (sweep / "summary.md").read_text()
    assert md.count("| None ") == 2 + 2  # two jobs, two configurations
    assert axes["gap.png"]["model.class_weights"] == ["None", "balanced"]
    assert axes["gap.png"]["trainer.precision"] == ["32", "bf16-mixed"]
