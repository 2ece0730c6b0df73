"""A new user's first hour with a trained model: evaluate and predict a new file given only the checkpoint and
the file, results beside the run (never in the current folder), --help, and the path each tool wrote."""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lstm_cls.evaluate import confusion_table

from .conftest import TINY, compose_cfg, run_cli
from .helpers import updown_table

WINDOW, HORIZON = 5, 1


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """A tiny csv model, trained as a user would: `<tmp>/run/checkpoints/best.ckpt`, windows of 5 steps
    labelled 1 step later."""
    tmp = tmp_path_factory.mktemp("model")
    updown_table(200, 0).to_csv(tmp / "train.csv", index=False)
    r = run_cli(
        "data=csv",
        f"data.path={tmp / 'train.csv'}",
        "data.target=label",
        f"data.window={WINDOW}",
        f"data.horizon={HORIZON}",
        "model.hidden=4",
        "trainer.max_epochs=1",
        "callbacks.progress_bar.refresh_rate=0",
        f"hydra.run.dir={tmp / 'run'}",
        cwd=tmp,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    return tmp / "run" / "checkpoints" / "best.ckpt"


def new_file(folder: Path, n: int = 80, seed: int = 1) -> Path:
    """A new labelled file of `n` rows; feature b is missing in its first row, which no rule can fill."""
    folder.mkdir(parents=True, exist_ok=True)
    df = updown_table(n, seed)
    df.loc[0, "b"] = np.nan
    df.to_csv(path := folder / "new.csv", index=False)
    return path


def last_line(out: str) -> str:
    return out.strip().splitlines()[-1]


def test_evaluate_and_predict_a_new_file_given_only_the_checkpoint_and_the_file(model, tmp_path):
    run = model.parent.parent
    new = new_file(tmp_path / "data")
    (cwd := tmp_path / "cwd").mkdir()
    r = run_cli(f"ckpt_path={model}", f"data.path={new}", cwd=cwd, module="lstm_cls.evaluate")
    assert r.returncode == 0, r.stderr[-2000:]
    out = run / "evaluations" / "new.json"
    assert last_line(r.stdout) == f"wrote {out}"
    e = json.loads(out.read_text())
    # every window with a label, none split off: 80 rows, less the window, the horizon, and the one window
    # holding row 0 (its missing value cannot be forward-filled)
    assert e["windows"] == 80 - WINDOW + 1 - HORIZON - 1 == np.sum(e["confusion_matrix"])
    assert e["class_names"] == ["down", "up"] and e["data_path"] == str(new)
    assert e["classes/down"] + e["classes/up"] == e["windows"]
    assert 0 <= e["test/acc"] <= 1 and "test/loss" in e and "test/f1" in e
    lines = r.stdout.splitlines()  # the confusion matrix: a title, then an aligned table with class names
    at = next(i for i, line in enumerate(lines) if line.startswith("confusion matrix"))
    table_lines = lines[at + 1 : at + 4]
    assert len({len(line) for line in table_lines}) == 1, table_lines
    assert table_lines[0].split() == ["down", "up"]
    assert [t.split()[0] for t in table_lines[1:]] == ["down", "up"]

    r = run_cli(f"ckpt_path={model}", f"data.path={new}", cwd=cwd, module="lstm_cls.predict")
    assert r.returncode == 0, r.stderr[-2000:]
    out = run / "predictions" / "new.csv"
    assert last_line(r.stdout) == f"wrote 75 predictions to {out}"
    p = pd.read_csv(out)
    # every complete window: the prediction is for the step after the file's last, so no label is needed
    assert len(p) == 80 - WINDOW + 1 - 1 and list(p.columns) == ["row", "predicted", "p_down", "p_up"]
    assert list(cwd.iterdir()) == []  # nothing in the current folder


def test_scores_of_two_files_with_one_name_never_collide(model, tmp_path):
    run = model.parent.parent
    first, second = new_file(tmp_path / "a", seed=2), new_file(tmp_path / "b", n=60, seed=3)
    paths = []
    for f in (first, second):
        r = run_cli(f"ckpt_path={model}", f"data.path={f}", cwd=tmp_path, module="lstm_cls.evaluate")
        assert r.returncode == 0, r.stderr[-2000:]
        paths.append(Path(last_line(r.stdout).removeprefix("wrote ")))
    assert paths[0] != paths[1] and paths[0].parent == paths[1].parent == run / "evaluations"
    assert [json.loads(p.read_text())["data_path"] for p in paths] == [str(first), str(second)]
    # an explicit output is honoured, never overwritten
    (taken := tmp_path / "taken.json").write_text("mine\n")
    r = run_cli(f"ckpt_path={model}", f"data.path={first}", f"output={taken}", module="lstm_cls.evaluate")
    assert r.returncode == 2 and "already exists" in r.stderr and taken.read_text() == "mine\n"


def test_a_checkpoint_outside_a_run_is_scored_beside_itself(model, tmp_path):
    (tmp_path / "models").mkdir()
    shutil.copy(model, ckpt := tmp_path / "models" / "m.ckpt")
    new = new_file(tmp_path / "data")
    r = run_cli(f"ckpt_path={ckpt}", f"data.path={new}", cwd=tmp_path, module="lstm_cls.evaluate")
    assert r.returncode == 0, r.stderr[-2000:]
    assert last_line(r.stdout) == f"wrote {tmp_path / 'models' / 'evaluations' / 'new.json'}"
    # an explicit output= is honoured as given
    args = (f"ckpt_path={ckpt}", f"data.path={new}")
    r = run_cli(*args, "output=e.json", cwd=tmp_path, module="lstm_cls.predict")
    assert r.returncode == 2 and "output must end in .csv or .parquet" in r.stderr
    r = run_cli(*args, "output=p.csv", cwd=tmp_path, module="lstm_cls.predict")
    assert r.returncode == 0 and last_line(r.stdout) == "wrote 75 predictions to p.csv"
    assert (tmp_path / "p.csv").is_file()


@pytest.mark.parametrize("tool", ["lstm_cls.evaluate", "lstm_cls.predict"])
@pytest.mark.parametrize(
    ("setting", "words"),
    [
        ("data.window=8", "data.window comes from the checkpoint"),
        ("data.target=x", "data.target comes from the checkpoint"),
        ("data.nan=drop", "data.nan comes from the checkpoint"),
        ("data=csv", "the data settings come from the checkpoint"),
        ("data.test_path=x.csv", "reads the whole of one file"),
    ],
)
def test_a_setting_that_comes_from_the_checkpoint_is_refused(model, tmp_path, tool, setting, words):
    new = new_file(tmp_path / "data")
    r = run_cli(f"ckpt_path={model}", f"data.path={new}", setting, cwd=tmp_path, module=tool)
    assert r.returncode == 2, r.stderr[-2000:]
    assert r.stderr.startswith("error: ") and len(r.stderr.strip().splitlines()) == 1 and words in r.stderr
    assert r.stdout == "" and sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_a_label_the_model_never_saw_is_named(model, tmp_path):
    run = model.parent.parent
    before = set((run / "evaluations").glob("*")) if (run / "evaluations").exists() else set()
    df = updown_table(40, 4)
    df.loc[7, "label"] = "sideways"
    df.to_csv(p := tmp_path / "odd.csv", index=False)
    r = run_cli(f"ckpt_path={model}", f"data.path={p}", cwd=tmp_path, module="lstm_cls.evaluate")
    assert r.returncode == 2 and "'sideways'" in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (run / "evaluations" / "odd.json").exists()
    after = set((run / "evaluations").glob("*")) if (run / "evaluations").exists() else set()
    assert after == before
    # without the label column: evaluate says which column it needs; predict needs none
    df.drop(columns="label").to_csv(q := tmp_path / "unlabelled.csv", index=False)
    r = run_cli(f"ckpt_path={model}", f"data.path={q}", cwd=tmp_path, module="lstm_cls.evaluate")
    assert r.returncode == 2 and "no column 'label'" in r.stderr


def test_a_synthetic_model_has_no_file_to_evaluate(tmp_path):
    from lstm_cls.train import train

    train(compose_cfg(f"run_dir={tmp_path / 'run'}", *TINY))
    pd.DataFrame({f"x{i}": np.zeros(20) for i in range(13)}).to_csv(p := tmp_path / "x.csv", index=False)
    r = run_cli(
        f"ckpt_path={tmp_path / 'run/checkpoints/best.ckpt'}",
        f"data.path={p}",
        cwd=tmp_path,
        module="lstm_cls.evaluate",
    )
    assert r.returncode == 2 and "data=synthetic" in r.stderr and "metrics.json" in r.stderr, r.stderr[-2000:]
    assert not (tmp_path / "run" / "evaluations").exists()


def test_a_table_of_cases_is_scored_case_by_case(tmp_path):
    from lstm_cls.train import train

    from .test_sequences import CASES_RUN, cases_table

    cases_table(p := tmp_path / "cases.csv", n_cases=30)
    train(compose_cfg(f"run_dir={tmp_path / 'run'}", *CASES_RUN, f"data.path={p}"))
    (tmp_path / "new").mkdir()
    cases_table(new := tmp_path / "new" / "cases.csv", n_cases=12)  # the same name as the training file
    ckpt = f"ckpt_path={tmp_path / 'run/checkpoints/best.ckpt'}"
    r = run_cli(ckpt, f"data.path={new}", cwd=tmp_path, module="lstm_cls.evaluate")
    assert r.returncode == 0, r.stderr[-2000:]
    e = json.loads((tmp_path / "run" / "evaluations" / "cases.json").read_text())
    assert e["windows"] == 12 == np.sum(e["confusion_matrix"])  # every case of the file, none split off
    r = run_cli(ckpt, f"data.path={new}", cwd=tmp_path, module="lstm_cls.predict")
    assert r.returncode == 0, r.stderr[-2000:]
    assert len(pd.read_csv(tmp_path / "run" / "predictions" / "cases.csv")) == 12


@pytest.mark.parametrize("flag", ["--help", "-h"])
@pytest.mark.parametrize(
    ("tool", "args", "keys"),
    [
        ("lstm_cls.predict", [], ["ckpt_path", "data.path", "output", "batch_size", "threads"]),
        ("lstm_cls.evaluate", ["ckpt_path=nowhere.ckpt"], ["ckpt_path", "data.path", "output", "batch_size"]),
        ("lstm_cls.baselines", [], ["data.path", "data.target", "data.window", "seed", "hydra.run.dir"]),
        ("lstm_cls.report", [], ["SWEEP_DIR"]),
    ],
)
def test_help_lists_the_arguments_and_an_example(tmp_path, flag, tool, args, keys):
    r = run_cli(*args, flag, cwd=tmp_path, module=tool)
    assert r.returncode == 0, r.stderr[-2000:]
    assert all(k in r.stdout for k in keys), r.stdout
    assert "example" in r.stdout and f"python -m {tool} " in r.stdout.split("example", 1)[1]
    assert list(tmp_path.iterdir()) == []  # help writes nothing


def test_the_confusion_matrix_is_aligned_when_a_count_is_wider_than_the_names():
    text = confusion_table(["no", "yes"], [[207, 209], [12345, 3]])
    lines = text.splitlines()[1:]  # the title, then the header and one row per true class
    assert lines == [
        "        no    yes",
        "no     207    209",
        "yes  12345      3",
    ]
    # names wider than the counts: the names set the width
    lines = confusion_table(["ArrowHead", "x"], [[1, 2], [3, 4]]).splitlines()[1:]
    assert len({len(line) for line in lines}) == 1 and lines[1].endswith("          1          2")


def test_baselines_and_report_end_with_the_path_they_wrote(model, tmp_path):
    out = tmp_path / "baselines"
    r = run_cli(*TINY[:2], f"hydra.run.dir={out}", cwd=tmp_path, module="lstm_cls.baselines")
    assert r.returncode == 0, r.stderr[-2000:]
    assert last_line(r.stdout) == f"wrote {out / 'baselines.json'}" and (out / "baselines.json").is_file()
    shutil.copytree(model.parent.parent, run := tmp_path / "run")
    r = run_cli(str(run), cwd=tmp_path, module="lstm_cls.report")
    assert r.returncode == 0, r.stderr[-2000:]
    assert last_line(r.stdout) == f"summary: {run / 'summary.md'}" and (run / "summary.md").is_file()
