"""Every spelling of a folder is one folder, and a refused command writes nothing anywhere.

Rows of "Nothing lost: the ways around the rules": a quoted path, `${oc.env:...}`, `++hydra.run.dir`, a
symlink, a trailing slash; Hydra's own errors as one `error:` line; unwritable folders; a sweep's folder
given to a single run; a sweep with one bad job. Each is refused before torch is imported (under a second).
"""

import hashlib
import os
from pathlib import Path

import pytest

from lstm_cls import rundir

from .conftest import TINY, run_cli


def checksums(folder: Path) -> dict[str, str]:
    """Every file under `folder` (dot-files included) by relative path -> sha256."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def refused(r, words: str) -> None:
    assert r.returncode == 2, r.stderr[-2000:]
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and words in last, r.stderr[-2000:]
    assert "Traceback" not in r.stderr


@pytest.fixture
def users_folder(tmp_path: Path) -> Path:
    mine = tmp_path / "user dir"  # a space, as in many home folders
    (mine / "sub").mkdir(parents=True)
    (mine / "notes.txt").write_text("my notes\n")
    (mine / "sub" / "data.csv").write_text("a,b\n1,2\n")
    return mine


@pytest.mark.parametrize(
    "spelling",
    [
        "hydra.run.dir='{path}'",  # quoted, as a shell user writes a path with a space
        "hydra.run.dir=${{oc.env:UD}}",
        "++hydra.run.dir='{path}'",
        "hydra.run.dir='{path}/'",  # a trailing slash
        "hydra.run.dir='{path}/sub/..'",
    ],
)
def test_a_bad_setting_never_touches_the_users_folder_however_it_is_spelled(tmp_path, users_folder, spelling):
    before = checksums(users_folder)
    work = tmp_path / "work"
    work.mkdir()
    env_arg = spelling.format(path=users_folder)
    os.environ["UD"] = str(users_folder)
    try:
        r = run_cli(*TINY, "model.hidden=0", env_arg, cwd=work)
    finally:
        del os.environ["UD"]
    refused(r, "model.hidden must be a positive integer")
    assert checksums(users_folder) == before
    assert sorted(p.name for p in users_folder.iterdir()) == ["notes.txt", "sub"]  # no .hydra, no .lock
    assert list(work.iterdir()) == []  # no stray folder named after the unresolved spelling


def test_a_finished_run_given_in_quotes_is_refused_and_its_files_unchanged(tmp_path):
    run = tmp_path / "a run"
    r = run_cli(*TINY, "trainer.max_epochs=1", f"hydra.run.dir='{run}'")
    assert r.returncode == 0, r.stderr[-2000:]
    before = checksums(run)
    r = run_cli(*TINY, "model.hidden=16", f"hydra.run.dir='{run}'")
    refused(r, "already holds")
    assert checksums(run) == before  # .hydra/config.yaml, hydra.yaml and overrides.yaml included


# Hydra's own errors: (typed, words of the one error line)
HYDRA_ERRORS = [
    ("model.hiddn=8", "model.hiddn=8: no setting model.hiddn in this config; did you mean model.hidden?"),
    ("data=foo", "data=foo: no such option; data has csv, occupancy, synthetic, uea, weather_aus"),
    ("model.hidden=[8", "cannot read the override 'model.hidden=[8'"),
    ("data.target=CO(GT)", "quote a value holding brackets, commas or spaces: \"data.target='CO(GT)'\""),
    ("model.hidden=8,16", "model.hidden=8,16: several values sweep only with -m"),
    ("-m hydra/launcher=joblib hydra.launcher.n_jobs=abc", "hydra.launcher.n_jobs=abc: Value 'abc'"),
    (
        "-m hydra/launcher=forkserver hydra.launcher.n_jobs=0",
        "hydra.launcher.n_jobs must be a non-zero integer",
    ),
    ("-m hydra/launcher=joblib hydra.launcher.n_jobs=0", "hydra.launcher.n_jobs must be a non-zero integer"),
    (
        "-m model.hidden=8,0",
        "model.hidden must be a positive integer (got 0) (in the sweep's job model.hidden=0)",
    ),
    ("-m model.hidden=8,16 data.batch_size=32,-1", "data.batch_size must be a positive integer"),
]


@pytest.mark.parametrize(("typed", "words"), HYDRA_ERRORS)
def test_hydras_errors_and_bad_sweeps_are_one_error_line_leaving_nothing(
    tmp_path, users_folder, typed, words
):
    before = checksums(users_folder)
    where = "hydra.sweep.dir" if typed.startswith("-m") else "hydra.run.dir"
    flags = [a for a in typed.split() if a.startswith("-")]  # flags first, as Hydra's argparse wants
    overrides = [a for a in typed.split() if not a.startswith("-")]
    r = run_cli(*flags, *TINY, *overrides, f"{where}={users_folder / 'out'}", cwd=tmp_path)
    refused(r, words)
    assert checksums(users_folder) == before and not (users_folder / "out").exists()


def test_a_sweeps_folder_is_refused_as_a_single_runs_or_baselines_folder(tmp_path):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "sweep.json").write_text('{"overrides": [], "dirs": []}')
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    before = checksums(sweep)
    for module in ("lstm_cls.train", "lstm_cls.baselines"):
        r = run_cli(*TINY, f"hydra.run.dir={sweep}", module=module)
        refused(r, "is a sweep's folder")
    assert checksums(sweep) == before and sorted(p.name for p in sweep.iterdir()) == [
        "multirun.yaml",
        "sweep.json",
    ]


def test_a_runs_folder_is_refused_as_a_sweep_folder(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text('{"status": "completed"}')
    r = run_cli("-m", *TINY, "model.hidden=8,16", f"hydra.sweep.dir={run}")
    refused(r, "holds a run (metrics.json)")
    assert sorted(p.name for p in run.iterdir()) == ["metrics.json"]


@pytest.mark.parametrize("key", ["hydra.run.dir", "hydra.sweep.dir"])
@pytest.mark.parametrize("case", ["parent is a file", "dangling symlink", "proc"])
def test_an_unwritable_folder_is_refused_before_any_work(tmp_path, key, case):
    if case == "parent is a file":
        (tmp_path / "afile").write_text("x")
        target, words = tmp_path / "afile" / "run", "is a file, not a directory"
    elif case == "dangling symlink":
        (tmp_path / "link").symlink_to(tmp_path / "gone")
        target, words = tmp_path / "link" / "run", "is a symbolic link to nothing"
    else:
        target, words = Path("/proc/lstm_cls_nowhere/run"), "/proc/lstm_cls_nowhere"
    sweep = ["-m", "model.hidden=8,16"] if key == "hydra.sweep.dir" else []
    r = run_cli(*sweep[:1], *TINY, *sweep[1:], f"{key}={target}", cwd=tmp_path)
    refused(r, words)


def test_a_symlink_to_a_finished_run_is_the_run_itself(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "metrics.json").write_text('{"status": "completed"}')
    (tmp_path / "alias").symlink_to(run)
    before = checksums(run)
    r = run_cli(*TINY, f"hydra.run.dir={tmp_path / 'alias'}/")
    refused(r, "already holds metrics.json")
    assert checksums(run) == before


def test_clean_up_removes_only_what_this_run_made_by_name(tmp_path):
    folder = tmp_path / "shared"
    folder.mkdir()
    (folder / "mine.txt").write_text("x")
    before = rundir.snapshot(folder)
    # this run's (Hydra's .hydra/, its log, its lock) and, meanwhile, another process's files
    (folder / ".hydra").mkdir()
    (folder / ".hydra" / "config.yaml").write_text("a: 1\n")
    (folder / "train.log").write_text("log\n")
    (folder / f"events.out.tfevents.1.host.{os.getpid()}.0").write_text("tb")
    others = [folder / f"other_{i}.json" for i in range(21)] + [folder / "events.out.tfevents.1.host.1.0"]
    for p in others:
        p.write_text("theirs")
    rundir.remove_created(folder, before)
    assert sorted(p.name for p in folder.iterdir()) == sorted(["mine.txt", *(p.name for p in others)])


def test_a_flag_after_the_overrides_is_one_error_line(tmp_path):
    r = run_cli(*TINY, "-m", "model.hidden=8,16", f"hydra.sweep.dir={tmp_path / 's'}")
    refused(r, "-m after the overrides: flags come first, e.g. python -m lstm_cls.train -m data.length=600")
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("tool", ["predict", "evaluate", "export"])
def test_a_tools_output_that_cannot_be_written_is_refused_before_the_checkpoint_is_read(tmp_path, tool):
    (ckpt := tmp_path / "model.ckpt").write_bytes(b"never read")
    (data := tmp_path / "new.csv").write_text("a,b\n1,2\n")
    (tmp_path / "afile").write_text("x")
    out = tmp_path / "afile" / {"predict": "p.csv", "evaluate": "e.json", "export": "m.onnx"}[tool]
    args = [f"ckpt_path={ckpt}", f"output={out}"] + ([f"data.path={data}"] if tool != "export" else [])
    r = run_cli(*args, *(["format=onnx"] if tool == "export" else []), module=f"lstm_cls.{tool}")
    refused(r, f"output={out}: {tmp_path / 'afile'} is a file, not a directory")


@pytest.mark.parametrize("typed", ["hydra.run.dir=", "hydra.run.dir=''", "-m hydra.sweep.dir="])
def test_an_empty_folder_setting_is_refused_not_taken_as_the_current_folder(tmp_path, typed):
    r = run_cli(*typed.split()[:-1], *TINY, typed.split()[-1], cwd=tmp_path)
    refused(r, "is empty: give a folder")
    assert list(tmp_path.iterdir()) == []
