"""hparams_search=optuna: lstm_cls's own Optuna sweeper on Optuna >= 4 (hydra_plugins/lstm_cls_sweeper/
optuna_sweeper.py): the study in <sweep dir>/optuna.db, continued by the same command again, and trials
pruned through the study's storage (lstm_cls/pruning.py), marked so in metrics.json,
in Optuna and by `report`."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from omegaconf import OmegaConf
from optuna.trial import TrialState

from .conftest import TINY, run_cli
from .helpers import metrics

SEARCH = ["hparams_search=optuna", *(a for a in TINY if not a.startswith("trainer.max_epochs"))]


def study(sweep: Path) -> optuna.Study:
    return optuna.load_study(study_name="lstm_cls", storage=f"sqlite:///{sweep / 'optuna.db'}")


def test_optuna_is_current() -> None:
    assert int(optuna.__version__.split(".")[0]) >= 4


@pytest.mark.slow
def test_the_study_lives_beside_the_sweep_and_the_same_command_continues_it(tmp_path: Path) -> None:
    sweep = tmp_path / "search"
    command = [*SEARCH, "trainer.max_epochs=2", "hydra.sweeper.n_trials=3", f"hydra.sweep.dir={sweep}"]
    r = run_cli(*command)
    assert r.returncode == 0, r.stderr[-3000:]
    assert len(study(sweep).trials) == 3
    first = {job: (sweep / job / "metrics.json").read_text() for job in "012"}
    r = run_cli(*command)
    assert r.returncode == 0, r.stderr[-3000:]
    trials = study(sweep).trials
    assert [t.number for t in trials] == list(range(6))  # 3, then 3 more
    assert {job: (sweep / job / "metrics.json").read_text() for job in "012"} == first  # never trained again
    for t in trials:  # each trial is the run folder named by its number, with the values Optuna chose
        m, cfg = (
            metrics(sweep / str(t.number)),
            OmegaConf.load(sweep / str(t.number) / ".hydra" / "config.yaml"),
        )
        assert (cfg.model.lr, cfg.data.batch_size) == (t.params["model.lr"], t.params["data.batch_size"])
        assert t.state == (TrialState.PRUNED if m["status"] == "pruned" else TrialState.COMPLETE)
        if t.state == TrialState.COMPLETE:
            assert t.value == m["val/best_loss"]
    assert len({t.params["model.lr"] for t in trials}) == 6  # the continued search proposes new values
    best = min((t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: t.value)
    assert f"best_value: {best.value}" in (sweep / "optimization_results.yaml").read_text()
    assert json.loads((sweep / "sweep.json").read_text())["dirs"] == [str(n) for n in range(6)]


@pytest.mark.slow
def test_a_pruned_trial_stops_cleanly_and_is_marked_everywhere(tmp_path: Path) -> None:
    sweep = tmp_path / "pruned"
    r = run_cli(
        *SEARCH,
        "trainer.max_epochs=3",
        "hydra.sweeper.n_trials=1",
        "hydra/sweeper/pruner=threshold",  # any val/loss above 0: pruned at its first epoch
        "hydra.sweeper.pruner.upper=0.0",
        f"hydra.sweep.dir={sweep}",
    )
    assert r.returncode == 0, r.stderr[-3000:]
    m = metrics(sweep / "0")
    assert m["status"] == "pruned" and m["epochs"] == 1 and "test/acc" not in m, m
    assert not (sweep / "0" / ".lock").exists()
    (trial,) = study(sweep).trials
    assert trial.state == TrialState.PRUNED
    assert trial.intermediate_values == {1: pytest.approx(m["val/loss"])}  # reported by the job itself
    assert "pruned" in r.stdout.splitlines()[-1]  # the job's line
    r = run_cli(str(sweep), module="lstm_cls.report")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "0 completed, 1 pruned, 0 failed" in r.stdout
    jobs = (sweep / "summary.md").read_text().split("## Jobs")[1]
    assert "| status" in jobs and "| pruned" in jobs


def test_refusals_are_one_error_line(tmp_path: Path) -> None:
    r = run_cli(*SEARCH, "hydra.sweeper.n_trials=0", f"hydra.sweep.dir={tmp_path / 'a'}")
    assert r.returncode == 2 and r.stderr.splitlines()[-1] == (
        "error: hydra.sweeper.n_trials must be a positive integer (got 0)"
    ), r.stderr[-3000:]
    # every value a search may choose is checked before its first trial: a range's both ends, each choice
    r = run_cli("-m", *SEARCH, "model.dropout=interval(0.0, 1.0)", f"hydra.sweep.dir={tmp_path / 'b'}")
    assert r.returncode == 2 and r.stderr.splitlines()[-1] == (
        "error: model.dropout must be in [0, 1) (got 1.0) (in the sweep's job model.dropout=1.0)"
    ), r.stderr[-3000:]
    grid = tmp_path / "grid"  # a grid sweep's folder (lstm_cls's sweeper wrote its sweep.json)
    grid.mkdir()
    (grid / "sweep.json").write_text(json.dumps({"overrides": [], "dirs": []}))
    r = run_cli(*SEARCH, f"hydra.sweep.dir={grid}")
    assert r.returncode == 2 and "holds a grid sweep, not an Optuna search" in r.stderr.splitlines()[-1]
    assert not (grid / "optuna.db").exists()


def test_the_search_space_becomes_optunas_distributions() -> None:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from hydra_plugins.lstm_cls_sweeper.optuna_sweeper import distribution

    def space(typed: str) -> tuple:
        return distribution(OverridesParser.create().parse_override(typed))

    d, texts = space("model.lr=tag(log, interval(0.0001, 0.01))")
    assert d == optuna.distributions.FloatDistribution(0.0001, 0.01, log=True) and texts == {}
    assert space("model.hidden=tag(int, interval(8, 128))")[0] == optuna.distributions.IntDistribution(8, 128)
    d, texts = space("model.hidden=choice(8, 16)")
    assert d.choices == (8, 16) and texts == {"8": "8", "16": "16"}
    d, texts = space("model.optimizer=adam,sgd")  # the command line's comma list: a choice
    assert d.choices == ("adam", "sgd")
    assert space("model.num_layers=range(1, 4)")[0].choices == (1, 2, 3)
