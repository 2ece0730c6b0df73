"""Validation off, or every k epochs, is a first-class setting: last.ckpt after every epoch, a best checkpoint
chosen on what exists (the last epoch when nothing was validated, said in metrics.json), one-line job
summaries and nested epochs without val/best_loss, and derived files that keep every digit."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import TINY, run_cli
from .helpers import metrics

ARGS = [a for a in TINY if not a.startswith("trainer.max_epochs")]
EVERY_2 = "trainer.check_val_every_n_epoch=2"


def epoch_of(ckpt: Path) -> int:
    """The epochs a checkpoint holds, counted from 1."""
    import torch

    return torch.load(ckpt, weights_only=True)["epoch"] + 1


@pytest.fixture(scope="module")
def every_2(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Nested epochs 1,3 validating every 2 epochs (job 0 derived from job 1), and a separate 1-epoch run."""
    base = tmp_path_factory.mktemp("every2")
    sweep, alone = base / "sweep", base / "alone"
    r = run_cli("-m", *ARGS, "trainer.max_epochs=1,3", EVERY_2, "seed=7", f"hydra.sweep.dir={sweep}")
    assert r.returncode == 0, r.stderr[-3000:]
    (base / "stdout.txt").write_text(r.stdout)
    r = run_cli(*ARGS, "trainer.max_epochs=1", EVERY_2, "seed=7", f"hydra.run.dir={alone}")
    assert r.returncode == 0, r.stderr[-3000:]
    return {"sweep": sweep, "alone": alone, "stdout": base / "stdout.txt"}


# (where, the checkpoints it must hold, the epoch last.ckpt holds, what metrics.json says it tested)
CHECKPOINTS = [
    ("alone", {"last.ckpt"}, 1, "last (no validation)"),  # 1 epoch, validating every 2: none validated
    ("sweep/0", {"last.ckpt"}, 1, "last (no validation)"),  # the same run, derived from job 1
    ("sweep/1", {"last.ckpt", "best.ckpt"}, 3, "best (lowest val/loss)"),  # last.ckpt is epoch 3 of 3
]


@pytest.mark.slow
@pytest.mark.parametrize(("where", "files", "last_epoch", "tested"), CHECKPOINTS)
def test_last_ckpt_after_every_epoch_whatever_the_validation_schedule(
    every_2, where, files, last_epoch, tested
):
    run = every_2["sweep"] / where.partition("/")[2] if where.startswith("sweep") else every_2["alone"]
    assert {p.name for p in (run / "checkpoints").iterdir()} == files
    assert epoch_of(run / "checkpoints" / "last.ckpt") == last_epoch
    m = metrics(run)
    assert m["status"] == "completed" and m["best_checkpoint"] == tested
    if tested.startswith("last"):
        assert m["val/best_loss"] is None and m["best_epoch"] == m["epochs"] == last_epoch
    else:
        assert m["best_epoch"] == 2 and isinstance(m["val/best_loss"], float)


@pytest.mark.slow
def test_nested_epochs_without_validation_write_the_shorter_job_with_every_digit(every_2):
    sweep, alone = every_2["sweep"], every_2["alone"]
    assert not list(sweep.glob("*/error.txt"))
    assert metrics(sweep / "0")["derived_from"] == "1"
    # the derived history is the separate run's, byte for byte: no digit lost, no column it never logged
    assert (sweep / "0" / "metrics.csv").read_bytes() == (alone / "metrics.csv").read_bytes()
    lines = [line for line in every_2["stdout"].read_text().splitlines() if line.startswith("job ")]
    assert len(lines) == 2 and all(": completed, val/best_loss " in line for line in lines)
    assert "val/best_loss none, test/acc 0." in lines[1] and lines[1].endswith("derived from job 1")


@pytest.mark.slow
def test_a_sweep_with_validation_off_completes_and_reports(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    r = run_cli(
        "-m", *ARGS, "trainer.max_epochs=1,2", "trainer.limit_val_batches=0", f"hydra.sweep.dir={sweep}"
    )
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-3000:]
    assert "monitored key" not in r.stderr and "Warning" not in r.stderr, r.stderr[-2000:]
    lines = [line for line in r.stdout.splitlines() if line.startswith("job ")]
    assert len(lines) == 2 and all("completed, val/best_loss none, test/acc 0." in line for line in lines)
    for job in ("0", "1"):
        m = metrics(sweep / job)
        assert m["status"] == "completed" and m["best_checkpoint"] == "last (no validation)"
        assert (
            not (sweep / job / "error.txt").exists() and (sweep / job / "checkpoints" / "last.ckpt").exists()
        )
    from lstm_cls.report import main

    main([str(sweep)])
    out = capsys.readouterr().out
    assert "2 completed, 0 failed, 0 running, of 2 jobs." in out


def test_a_job_line_without_a_validation_loss() -> None:
    from lstm_cls.train import job_line

    line = job_line(
        Path("7"), {"status": "completed", "val/best_loss": None, "test/acc": 0.5, "fit_seconds": 1}
    )
    assert line.startswith("job 7 (): completed, val/best_loss none, test/acc 0.500, ")
