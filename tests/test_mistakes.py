"""What a careless or hurried user types, and faults: each row is (what was done, exit code, words).

Bad input is one `error:` line with exit code 2 and no traceback; nothing a user made is deleted or
rewritten; a valid request works.
"""

import json
import os
import signal
from pathlib import Path

import pytest

from .conftest import SLOW_RUN, TINY, run_cli, start_cli, until

# settings refused before torch is imported: each row costs a fraction of a second
BAD_SETTINGS = [
    ("model.lr=abc", "model.lr must be a number > 0 (got 'abc')"),
    ("model.dropout=abc", "model.dropout must be in [0, 1) (got 'abc')"),
    ("data.val_fraction=abc", "data.val_fraction must be in (0, 1) (got 'abc')"),
    ("seed=-1", "seed must be an integer in [0, 2**32) (got -1)"),
    ("data.block=0", "data.block must be a positive integer (got 0)"),
    ("data.eval_batch_size=0", "data.eval_batch_size must be a positive integer (got 0)"),
    ("data.num_workers=-1", "data.num_workers must be an integer >= 0 (got -1)"),
    ("model.bidirectional=maybe", "model.bidirectional must be true or false (got 'maybe')"),
    ("trainer.max_epochs=0", "trainer.max_epochs must be a positive integer"),
    ("ckpt_path=nowhere.ckpt", "ckpt_path: no such file: nowhere.ckpt"),
    ("data.noise=1.5", "data.noise must be in [0, 1) (got 1.5)"),
    (
        "callbacks.progress_bar.refresh_rate=abc",
        "callbacks.progress_bar.refresh_rate must be an integer >= 0",
    ),
    ("logger.csv.flush_logs_every_n_steps=0", "logger.csv.flush_logs_every_n_steps must be an integer >= 1"),
    ("trainer.strategy=bogus", "trainer: You selected an invalid strategy name"),  # Lightning's own words
    ("+trainer.profiler=bogus", "trainer: When passing string value for the `profiler` parameter"),
    ("data.n_classes=1", "data.n_classes must be an integer >= 2 (got 1)"),
    (
        "callbacks=[default,early_stopping] trainer.limit_val_batches=0",
        "callbacks.early_stopping watches val/loss, but trainer.limit_val_batches=0 turns validation off",
    ),
]


@pytest.mark.parametrize(("typed", "words"), BAD_SETTINGS)
def test_a_bad_setting_is_one_error_line_before_any_heavy_import(tmp_path, typed, words):
    # (that nothing heavy is imported first: tests/test_lightning.py::test_the_config_checks_import_no_torch)
    r = run_cli(*TINY, *typed.split(), f"hydra.run.dir={tmp_path / 'run'}")
    assert r.returncode == 2, r.stderr[-2000:]
    assert r.stderr.strip().splitlines()[-1].startswith(f"error: {words}"), r.stderr[-1000:]
    assert "Traceback" not in r.stderr and not (tmp_path / "run").exists()


def test_a_bad_setting_never_deletes_the_users_folder_or_files(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "lab.log").write_text("my notes\n")
    r = run_cli(*TINY, "model.hidden=0", f"hydra.run.dir={mine}")
    assert r.returncode == 2 and "model.hidden must be a positive integer" in r.stderr
    assert sorted(p.name for p in mine.iterdir()) == ["lab.log"]  # Hydra's .hydra/ and .lock went
    assert (mine / "lab.log").read_text() == "my notes\n"


@pytest.mark.parametrize("theirs", ["metrics.csv", "metrics.json", "checkpoints", ".hydra"])
def test_a_folder_holding_what_a_run_writes_is_refused_untouched(tmp_path, theirs):
    mine = tmp_path / "mine"
    (mine / theirs).parent.mkdir(parents=True, exist_ok=True)
    if theirs in ("checkpoints", ".hydra"):
        (mine / theirs).mkdir()
        (mine / theirs / "keep.txt").write_text("x")
    else:
        (mine / theirs).write_text("step,loss\n1,0.5\n")
    before = {p: p.read_bytes() for p in mine.rglob("*") if p.is_file()}
    r = run_cli(*TINY, f"hydra.run.dir={mine}")
    assert r.returncode == 2 and f"already holds {theirs}" in r.stderr, r.stderr[-1000:]
    assert {p: p.read_bytes() for p in mine.rglob("*") if p.is_file()} == before


def test_a_run_dir_that_is_a_file_is_refused(tmp_path):
    (f := tmp_path / "file").write_text("x")
    r = run_cli(*TINY, f"hydra.run.dir={f}")
    assert r.returncode == 2 and "is a file, not a directory" in r.stderr and f.read_text() == "x"


def test_a_sweep_folder_holding_a_sweep_is_refused(tmp_path):
    sweep = tmp_path / "sweep"
    (sweep / "0" / ".hydra").mkdir(parents=True)
    (sweep / "0" / ".hydra" / "overrides.yaml").write_text("- model.hidden=8\n")
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    r = run_cli("-m", *TINY, "model.hidden=16,32", f"hydra.sweep.dir={sweep}")
    assert r.returncode == 2 and "already holds a sweep" in r.stderr, r.stderr[-1000:]
    assert (sweep / "0" / ".hydra" / "overrides.yaml").read_text() == "- model.hidden=8\n"


def test_baselines_never_write_into_a_run(tmp_path):
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text("model: {hidden: 8}\n")
    (run / "metrics.json").write_text("{}")
    r = run_cli(f"hydra.run.dir={run}", module="lstm_cls.baselines")
    assert r.returncode == 2 and "already holds" in r.stderr
    assert (run / ".hydra" / "config.yaml").read_text() == "model: {hidden: 8}\n"


def test_two_runs_started_together_into_one_folder_one_is_refused(tmp_path):
    run = tmp_path / "shared"
    procs = [start_cli(*TINY, f"hydra.run.dir={run}") for _ in range(2)]
    codes = sorted(p.wait(timeout=300) for p in procs)
    errors = [p.stderr.read() for p in procs]
    assert codes == [0, 2], errors
    assert any("in use by a running run" in e or "already holds" in e for e in errors)
    assert json.loads((run / "metrics.json").read_text())["status"] == "completed"
    assert not (run / ".lock").exists()  # released at the end


@pytest.mark.parametrize(
    ("tool", "args", "words"),
    [
        ("lstm_cls.predict", ["batch_size=0", "data.path=x.csv"], "batch_size must be a positive integer"),
        ("lstm_cls.export", ["format=pdf"], "format must be one of onnx, torchscript"),
        ("lstm_cls.evaluate", ["output=scores.txt"], "output must end in .json"),
        ("lstm_cls.predict", ["output=p.xlsx", "data.path=x.csv"], "output must end in .csv or .parquet"),
    ],
)
def test_tool_arguments_are_checked_before_loading_anything(tmp_path, tool, args, words):
    (ckpt := tmp_path / "best.ckpt").write_bytes(b"not read")
    r = run_cli(f"ckpt_path={ckpt}", *args, cwd=tmp_path, module=tool)
    assert r.returncode == 2 and words in r.stderr and "Traceback" not in r.stderr, r.stderr[-1000:]


@pytest.mark.parametrize("tool", ["lstm_cls.predict", "lstm_cls.evaluate", "lstm_cls.export"])
@pytest.mark.parametrize(
    ("content", "words"),
    [(b"", "is empty"), (b"\x00garbage" * 100, "truncated or corrupt")],
)
def test_a_corrupt_checkpoint_is_one_error_line_for_every_tool(tmp_path, tool, content, words):
    (ckpt := tmp_path / "best.ckpt").write_bytes(content)
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    # predict and evaluate read a file: its path is checked before the checkpoint
    args = [f"ckpt_path={ckpt}"] + (["data.path=x.csv"] if tool != "lstm_cls.export" else [])
    r = run_cli(*args, cwd=tmp_path, module=tool)
    assert r.returncode == 2 and words in r.stderr and "Traceback" not in r.stderr, r.stderr[-1000:]


def test_train_refuses_a_corrupt_checkpoint_to_resume_from(tmp_path):
    (ckpt := tmp_path / "last.ckpt").write_bytes(b"PK\x03\x04" + b"\x00" * 64)
    r = run_cli(*TINY, f"ckpt_path={ckpt}", f"hydra.run.dir={tmp_path / 'run'}")
    assert r.returncode == 2 and "truncated or corrupt" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("module", "loading"),
    [
        ("lstm_cls.train", "libtorch"),  # start-up's longest part: importing torch and Lightning
        ("lstm_cls.report", "numpy"),  # pandas (numpy first): what report imports for 1-2 s
    ],
)
def test_ctrl_c_during_start_up_exits_130_without_a_traceback(tmp_path, module, loading):
    args = [*TINY, f"hydra.run.dir={tmp_path / 'run'}"] if module == "lstm_cls.train" else [str(tmp_path)]
    proc = start_cli(*args, module=module)  # as a terminal's Ctrl-C finds the command
    maps = Path(f"/proc/{proc.pid}/maps")
    until(lambda: loading in maps.read_text(), proc, timeout=60, every=0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err and "interrupted" in err


@pytest.mark.slow
def test_sigterm_saves_like_ctrl_c_and_exits_143(tmp_path):
    run = tmp_path / "run"
    proc = start_cli(*SLOW_RUN, f"hydra.run.dir={run}")
    until((run / "checkpoints" / "last.ckpt").exists, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-2000:]
    assert json.loads((run / "metrics.json").read_text())["status"] == "interrupted"
    assert "SIGTERM" in err and f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}" in err
    assert not (run / ".lock").exists()


def test_a_test_split_without_a_class_says_so_and_reports_no_auroc(make_cfg, tmp_path, caplog):
    import numpy as np
    import pandas as pd

    from lstm_cls.train import train

    rng = np.random.default_rng(0)
    n = 200
    label = np.where(np.arange(n) < 150, rng.integers(0, 2, n), 0)  # the last quarter: class 0 only
    pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "y": label}).to_csv(
        p := tmp_path / "t.csv", index=False
    )
    cfg = make_cfg(
        "data=csv",
        f"data.path={p}",
        "data.target=y",
        "data.window=4",
        "model.hidden=4",
        "trainer.max_epochs=1",
        "callbacks.progress_bar.refresh_rate=0",
    )
    m = train(cfg)
    assert m["classes/test/1"] == 0 and m["classes/test/0"] > 0 and m["classes/train/1"] > 0
    assert m["test/auroc"] is None and m["test/auroc_undefined"] == "no test window of class 1"
    assert "the test windows hold no class ['1']" in caplog.text
    saved = json.loads((Path(cfg.run_dir) / "metrics.json").read_text())
    assert saved["test/auroc"] is None


@pytest.mark.parametrize(
    ("file", "typed", "words"),
    [
        ("t.csv", ["data.target=rain"], "data.target: no column 'rain' in"),
        ("t.xlsx", ["data.target=y"], "is not a .csv, .csv.gz, .txt or .parquet file"),
        ("t.csv", ["data.target=y", "data.features=[a,y]"], "data.features: lists the target 'y'"),
    ],
)
def test_a_table_is_checked_from_its_header_before_anything_loads(tmp_path, file, typed, words):
    (p := tmp_path / file).write_text("a,b,y\n1,2,x\n3,4,z\n")
    r = run_cli("data=csv", f"data.path={p}", *typed, f"hydra.run.dir={tmp_path / 'run'}")
    assert r.returncode == 2 and words in r.stderr.strip().splitlines()[-1], r.stderr[-1000:]
    assert "Traceback" not in r.stderr and not (tmp_path / "run").exists()


def test_upper_case_suffixes_are_tables_too(tmp_path):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    pd.DataFrame({"a": rng.normal(size=120), "y": rng.integers(0, 2, 120)}).to_csv(p := tmp_path / "X.CSV")
    r = run_cli(
        "data=csv",
        f"data.path={p}",
        "data.target=y",
        "data.features=[a]",
        "data.window=4",
        "model.hidden=4",
        "trainer.max_epochs=1",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["status"] == "completed"


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="a GPU is here: the run would train")
def test_a_gpu_accelerator_without_a_gpu_is_one_error_line(tmp_path):
    r = run_cli(*TINY, "trainer.accelerator=gpu", f"hydra.run.dir={tmp_path / 'run'}")
    assert r.returncode == 2 and "sees no CUDA GPU on this machine" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "run").exists()


class CrashOnSecondProcess(__import__("lightning").Callback):
    """The second DDP process dies after testing, before the run is written up."""

    def on_test_end(self, trainer, pl_module) -> None:
        if trainer.global_rank == 1:
            os._exit(3)


@pytest.mark.slow
def test_ddp_where_a_process_dies_never_writes_completed(tmp_path):
    run = tmp_path / "ddp"
    r = run_cli(
        *TINY,
        "trainer.strategy=ddp",
        "trainer.devices=2",
        f"hydra.run.dir={run}",
        "+callbacks.crash._target_=tests.test_mistakes.CrashOnSecondProcess",
        timeout=240,
    )
    assert r.returncode != 0
    done = run / "metrics.json"
    assert not done.exists() or json.loads(done.read_text())["status"] != "completed"
