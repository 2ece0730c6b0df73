"""Issue 24's small things: train's last line names its run folder; no progress bar in a redirected log (one
on a terminal); evaluate's majority line; a sweep's listing numbered by folder; `make train` passes the
experiment its help names."""

import fcntl
import json
import logging
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from hydra_plugins.lstm_cls_sweeper.sweeper import FolderNumbers
from lstm_cls.evaluate import majority_line

from .conftest import ROOT, run_cli
from .helpers import site_table

CSV_RUN = ["data=csv", "data.target=rain", "data.time=day", "data.group=site", "data.window=5"]
CSV_RUN += ["model.hidden=4", "trainer.max_epochs=1"]  # the progress bar left at its default on purpose


@pytest.fixture(scope="module")
def piped(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """A csv run whose output goes to a pipe (as `> log 2>&1` does), its test split a whole file."""
    tmp = tmp_path_factory.mktemp("small")
    site_table(120, 0, shuffled=True).to_csv(tmp / "train.csv", index=False)
    site_table(30, 3, shuffled=True).to_csv(tmp / "test.csv", index=False)
    r = run_cli(
        *CSV_RUN, f"data.path={tmp / 'train.csv'}", f"data.test_path={tmp / 'test.csv'}",
        f"hydra.run.dir={tmp / 'run'}", cwd=tmp,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    return tmp, r


def test_train_ends_naming_its_run_folder_and_writes_no_progress_bar_into_a_pipe(piped):
    tmp, r = piped
    assert r.stdout.strip().splitlines()[-1] == f"wrote {tmp / 'run'} (metrics.json, checkpoints/)"
    for out in (r.stdout, r.stderr):
        assert "\r" not in out and "it/s" not in out and "Epoch 0" not in out


def test_the_progress_bar_stays_on_a_terminal(tmp_path):
    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 100 columns: tqdm draws
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    args = ["data.length=600", "data.window=8", "model.hidden=8", "trainer.max_epochs=1", "fast=false"]
    args.append("callbacks.progress_bar.refresh_rate=1")  # each of its 13 steps drawn
    p = subprocess.Popen(
        [sys.executable, "-m", "lstm_cls.train", *args, f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=ROOT, stdout=child, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    os.close(child)
    out = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # the terminal's other end closed: the run has ended
            break
        if not chunk:
            break
        out += chunk
    os.close(main)
    assert p.wait(timeout=120) == 0
    text = out.decode(errors="replace")
    assert "Epoch 0" in text and "\r" in text
    assert f"wrote {tmp_path / 'run'}" in text


def test_evaluate_prints_the_training_majority_on_the_file_beside_the_models_accuracy(piped):
    tmp, _ = piped
    r = run_cli(
        f"ckpt_path={tmp / 'run/checkpoints/best.ckpt'}", f"data.path={tmp / 'test.csv'}",
        f"output={tmp / 'e.json'}", module="lstm_cls.evaluate",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    line = next(x for x in r.stdout.splitlines() if x.startswith("majority baseline:"))
    m = json.loads((tmp / "run/metrics.json").read_text())
    acc = json.loads((tmp / "e.json").read_text())["test/acc"]
    # the run's test split is test.csv whole: the same floor as the run's own test/majority_acc
    assert f"(the training majority) scores acc {m['test/majority_acc']:.3f} on this file" in line
    assert line.endswith(f"the model's acc {acc:.3f}")
    assert r.stdout.strip().splitlines()[-1] == f"wrote {tmp / 'e.json'}"


def test_the_majority_line_without_the_runs_counts_says_so(tmp_path):
    line = majority_line(tmp_path, ["No", "Yes"], [3, 7], 0.5)
    assert "unknown (no training class counts in" in line and "Yes, is 0.700 of it" in line
    (tmp_path / "metrics.json").write_text(json.dumps({"classes/train/No": 5, "classes/train/Yes": 5}))
    line = majority_line(tmp_path, ["No", "Yes"], [3, 7], 0.5)  # equal counts: the first, as training takes
    assert line.startswith("majority baseline: always No (the training majority) scores acc 0.300")


def test_the_sweep_listing_numbers_jobs_by_their_folders():
    name = "hydra._internal.core_plugins.basic_launcher"  # Hydra's basic launcher's logger
    lg, seen = logging.getLogger(name), []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    keep = Keep()
    lg.addHandler(keep)
    level = lg.level
    lg.setLevel(logging.INFO)
    try:
        with FolderNumbers(["3", "1"], "hydra._internal.core_plugins.basic_launcher"):
            lg.info("Launching 2 jobs locally")
            lg.info("\t#0 : model.hidden=8")
            lg.info("\t#%d : %s", 1, "model.hidden=4")  # lstm_cls's forkserver launcher's form
        lg.info("\t#0 : after")  # taken off after the launch
    finally:
        lg.removeHandler(keep)
        lg.setLevel(level)
    assert seen == [
        "Launching 2 jobs locally",
        "\t#3 : model.hidden=8",
        "\t#1 : model.hidden=4",
        "\t#0 : after",
    ]


def test_make_train_passes_the_experiment_its_help_names():
    makefile = (ROOT / "Makefile").read_text()
    target = makefile.split("\ntrain:", 1)[1].split("\n\n", 1)[0]
    assert "(experiment=cm3)" in target.splitlines()[0]
    assert "-m lstm_cls.train experiment=cm3 $(ARGS)" in target
