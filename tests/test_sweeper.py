"""The sweeper: nested epochs (a derived job equals a separate run), resumable sweeps, dispatch order."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from lstm_cls import sweeps

from .conftest import TINY, compose_cfg, run_cli
from .helpers import metrics

# figures that measure time, or name the job they came from: everything else must be equal
NOT_COMPARED = {"fit_seconds", "train_seconds", "test_seconds", "startup_seconds", "derived_from"}


@pytest.fixture(scope="module")
def nested_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sweep = tmp_path_factory.mktemp("nested") / "sweep"
    args = [a for a in TINY if not a.startswith("trainer.max_epochs")]
    r = run_cli("-m", *args, "trainer.max_epochs=2,4", "seed=7", f"hydra.sweep.dir={sweep}", warnings=True)
    assert r.returncode == 0, r.stderr[-3000:]
    (sweep.parent / "stdout.txt").write_text(r.stdout)
    (sweep.parent / "stderr.txt").write_text(r.stderr)
    return sweep


def test_a_sweep_prints_one_line_per_job_and_no_warning(nested_sweep: Path) -> None:
    out = (nested_sweep.parent / "stdout.txt").read_text().splitlines()
    jobs = [line for line in out if line.startswith("job ")]
    assert len(jobs) == 2, out
    assert (
        jobs[0].startswith("job 1 (")
        and "trainer.max_epochs=4" in jobs[0]
        and ": completed, val/best_loss" in jobs[0]
    )
    assert jobs[1].startswith("job 0 (") and jobs[1].endswith("derived from job 1")
    # the rest is Hydra's own launch lines; no progress bar, model summary or Lightning line
    assert all(line.startswith(("job ", "[")) for line in out if line.strip()), out
    err = (nested_sweep.parent / "stderr.txt").read_text()
    assert "Warning" not in err and "INFO" not in err and "Tip" not in err, err[-2000:]


def test_a_derived_job_equals_a_separate_run_key_by_key(nested_sweep: Path, tmp_path: Path) -> None:
    derived, longest = nested_sweep / "0", nested_sweep / "1"
    assert metrics(derived)["derived_from"] == "1" and "derived_from" not in metrics(longest)
    assert json.loads((nested_sweep / "sweep.json").read_text())["derived"] == 1
    args = [a for a in TINY if not a.startswith("trainer.max_epochs")]
    alone = tmp_path / "alone"
    r = run_cli(*args, "trainer.max_epochs=2", "seed=7", f"hydra.run.dir={alone}")
    assert r.returncode == 0, r.stderr[-3000:]
    ours, theirs = metrics(derived), metrics(alone)
    assert set(ours) - NOT_COMPARED == set(theirs) - NOT_COMPARED
    for key in set(theirs) - NOT_COMPARED:
        if isinstance(theirs[key], float):
            assert ours[key] == pytest.approx(theirs[key], rel=1e-6, abs=1e-7), key
        else:
            assert ours[key] == theirs[key], key
    assert ours["epochs"] == 2 and metrics(longest)["epochs"] == 4
    # the per-epoch history: the same epochs and values, and its own test row
    a, b = pd.read_csv(derived / "metrics.csv"), pd.read_csv(alone / "metrics.csv")
    assert list(a.columns) == list(b.columns) and len(a) == len(b)
    pd.testing.assert_frame_equal(a, b, rtol=1e-6, check_dtype=False)
    # its checkpoints are its own: the best within 2 epochs, and the newest pointing into its folder
    import torch

    last = torch.load(derived / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] == 1 and all(
        str(derived) in s["dirpath"] for s in last["callbacks"].values() if "dirpath" in s
    )
    assert (derived / ".hydra" / "config.yaml").read_text().count("max_epochs: 2") == 1
    # TensorBoard: its own run, named by its swept value, holding its 2 epochs
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    def scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
        ea = EventAccumulator(str(folder), size_guidance={"scalars": 0})
        ea.Reload()
        return {t: [(e.step, e.value) for e in ea.Scalars(t)] for t in ea.Tags()["scalars"]}

    ours_tb, alone_tb = scalars(derived / "tb" / "max_epochs=2"), scalars(alone)
    assert set(ours_tb) == set(alone_tb) and len(ours_tb["val/loss"]) == 2
    # and its weight histograms stop at its own last epoch, as a separate run's do
    ea = EventAccumulator(str(derived / "tb" / "max_epochs=2"), size_guidance={"histograms": 0})
    ea.Reload()
    steps = {e.step for tag in ea.Tags()["histograms"] for e in ea.Histograms(tag)}
    assert steps == {1, 2}
    for tag in ("val/loss", "train/acc", "norm/lstm", "test/acc"):
        assert [s for s, _ in ours_tb[tag]] == [s for s, _ in alone_tb[tag]], tag
        assert [v for _, v in ours_tb[tag]] == pytest.approx([v for _, v in alone_tb[tag]], rel=1e-6), tag


def test_a_rerun_completes_only_the_missing_jobs(nested_sweep: Path, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    args = [a for a in TINY if not a.startswith(("trainer.max_epochs", "model.hidden"))]
    command = ["-m", *args, "model.hidden=4,8", "trainer.max_epochs=1", f"hydra.sweep.dir={sweep}"]
    assert run_cli(*command).returncode == 0
    kept = (sweep / "0" / "metrics.json").stat().st_mtime_ns
    # job 1 was killed: its folder holds a checkpoint but no completed metrics.json
    (sweep / "1" / "metrics.json").unlink()
    r = run_cli(*command)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "1 of 2 jobs completed earlier" in r.stdout + r.stderr
    assert (sweep / "0" / "metrics.json").stat().st_mtime_ns == kept  # left untouched
    assert metrics(sweep / "1")["status"] == "completed"
    (aside,) = (sweep / sweeps.ASIDE).iterdir()  # the killed attempt, kept
    assert aside.name.startswith("1_") and (aside / "checkpoints" / "last.ckpt").exists()
    from lstm_cls.report.read import find_runs

    assert [p.name for p in find_runs(sweep)] == ["0", "1"]  # the attempt set aside is not a job
    # the same folder with other settings: refused, nothing run
    r = run_cli("-m", *args, "model.hidden=4,16", "trainer.max_epochs=1", f"hydra.sweep.dir={sweep}")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("error: hydra.sweep.dir=") and "other settings" in line
    assert not (sweep / "2").exists()


def test_plan_nests_shorter_jobs_and_starts_the_longest_first() -> None:
    jobs = [
        [f"model.hidden={h}", f"data.batch_size={b}", f"trainer.max_epochs={e}"]
        for h in (8, 32)
        for b in (16, 128)
        for e in (10, 30)
    ]
    configs = [compose_cfg(*j) for j in jobs]
    asked = []

    def config(i: int):
        asked.append(i)
        return configs[i]

    p = sweeps.plan(jobs, config, done=set(), base=compose_cfg())
    assert sorted(asked) == [1, 3, 5, 7]  # only the longest of each group is composed (to check nesting)
    assert sorted(p.launch) == [1, 3, 5, 7]  # the 30-epoch job of each configuration trains
    assert p.derived == {1: [(10, 0)], 3: [(10, 2)], 5: [(10, 4)], 7: [(10, 6)]}
    assert p.launch[:2] == [5, 1]  # batch 16 before batch 128, hidden 32 before hidden 8
    # a job completed earlier is neither launched nor derived; its partner trains alone
    p = sweeps.plan(jobs, configs.__getitem__, done={1}, base=compose_cfg())
    assert 0 in p.launch and 1 not in p.launch and p.skipped == [1]
    p = sweeps.plan(jobs, configs.__getitem__, done=set(), base=compose_cfg(), nested=False)
    assert sorted(p.launch) == list(range(8)) and not p.derived


def test_nothing_nests_where_the_epoch_count_is_read_while_training() -> None:
    jobs = [[f"trainer.max_epochs={e}", "model.scheduler=cosine"] for e in (5, 10)]
    configs = [compose_cfg(*j) for j in jobs]
    p = sweeps.plan(jobs, configs.__getitem__, done=set(), base=compose_cfg())
    assert sorted(p.launch) == [0, 1] and not p.derived and "cosine" in p.not_nested[0]
    jobs = [[f"trainer.max_epochs={e}", "callbacks=[default,swa]"] for e in (5, 10)]
    configs = [compose_cfg(*j) for j in jobs]
    assert not sweeps.plan(jobs, configs.__getitem__, done=set(), base=compose_cfg()).derived


def test_a_shorter_jobs_config_is_what_hydra_composes_for_it(tmp_path: Path) -> None:
    from omegaconf import OmegaConf

    long_job = ["model.hidden=8", "trainer.max_epochs=30", "seed=2"]
    short_job = ["model.hidden=8", "trainer.max_epochs=10", "seed=2"]
    derived = sweeps.shorter_config(compose_cfg(*long_job, hydra_config=True), short_job, 10, 4, tmp_path)
    composed = compose_cfg(*short_job, hydra_config=True)

    def task(cfg):  # the job's own config, as Hydra saves it in .hydra/config.yaml (unresolved)
        return OmegaConf.to_container(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]))

    assert task(derived) == task(composed)
    assert list(derived.hydra.overrides.task) == short_job and derived.hydra.job.num == 4
    assert derived.hydra.job.override_dirname == composed.hydra.job.override_dirname
    assert derived.hydra.runtime.output_dir == str(tmp_path.resolve())
