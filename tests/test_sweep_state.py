"""A sweep's identity and the files it reads back: each checked by shape (an `error:` naming the file and the
field, exit 2, every file untouched), a sweep resumed whatever the order its jobs are typed in, a resume
refused where a completed job ran with other settings (unless sweep.resume=force), and a report that never
writes over a file it did not write nor counts what is not a job of the sweep."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from lstm_cls import UserError, sweeps
from lstm_cls.report import main
from lstm_cls.report.outputs import RECORD
from lstm_cls.report.read import find_runs

from .conftest import CONF, TINY, run_cli
from .helpers import fake_sweep

JOBS = [["model.hidden=4"], ["model.hidden=8"]]
STATE = json.dumps({"overrides": JOBS, "dirs": ["0", "1"]})


def checksums(folder: Path) -> dict[str, str]:
    """Every file under folder (hidden ones included) by its checksum."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


# (file, its content, what the error line says after the file's path): refused before any job starts
WRONG_SHAPES = [
    ("sweep.json", "[]", "sweep.json: the whole file is a list, not a JSON object"),
    ("sweep.json", "null", "sweep.json: the whole file is null, not a JSON object"),
    ("sweep.json", "{", "sweep.json cannot be read (Expecting property name"),
    (
        "sweep.json",
        '{"overrides": "model.hidden=4", "dirs": []}',
        "sweep.json: overrides is not a list of jobs",
    ),
    ("sweep.json", json.dumps({"overrides": JOBS, "dirs": ["0"]}), "sweep.json: dirs is not a list of 2 job"),
    (
        "sweep.json",
        json.dumps({"overrides": JOBS, "dirs": ["0", "../../elsewhere"]}),
        "sweep.json: dirs holds '../../elsewhere', not a job folder inside the sweep folder",
    ),
    ("sweep.json", json.dumps({"overrides": JOBS, "dirs": ["0", "0"]}), "sweep.json: dirs names one folder"),
    ("0/metrics.json", "[]", "0/metrics.json: the whole file is a list, not a JSON object"),
    ("0/metrics.json", '{"status": 1}', "0/metrics.json: status is 1, not a word"),
    ("0/metrics.json", "{", "0/metrics.json cannot be read"),
]


@pytest.mark.parametrize(("name", "content", "words"), WRONG_SHAPES)
def test_a_state_file_of_another_shape_is_one_error_line_and_nothing_is_touched(
    tmp_path, name, content, words
):
    sweep = tmp_path / "sweep"
    (sweep / "0" / ".hydra").mkdir(parents=True)
    (sweep / "sweep.json").write_text(STATE)
    (sweep / name).write_text(content)
    before = checksums(sweep)
    r = run_cli("-m", "model.hidden=4,8", f"hydra.sweep.dir={sweep}")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith(f"error: {sweep / name.partition('/')[0]}") and words in line, line
    assert checksums(sweep) == before and sorted(p.name for p in sweep.iterdir()) == ["0", "sweep.json"]


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("[]", "nested.json: the whole file is a list"),
        ('{"1": {"epochs": 2}}', "nested.json: 1 is not a list of shorter jobs"),
        ('{"1": [{"epochs": "2", "dir": "0"}]}', "nested.json: 1 is not a list of shorter jobs"),
        ('{"1": [{"epochs": 2, "dir": "/etc"}]}', "nested.json: 1 is not a list of shorter jobs"),
    ],
)
def test_nested_json_of_another_shape_is_named(tmp_path, content, words):
    (tmp_path / "1").mkdir()
    (tmp_path / sweeps.NESTED).write_text(content)
    with pytest.raises(UserError, match=words):
        sweeps.derived_jobs(tmp_path, tmp_path / "1")


def test_a_sweep_is_its_set_of_jobs_and_each_keeps_its_recorded_folder(tmp_path):
    recorded = [["model.hidden=4", "seed=1"], ["model.hidden=8", "seed=1"], ["model.hidden=8", "seed=2"]]
    (tmp_path / "sweep.json").write_text(json.dumps({"overrides": recorded, "dirs": ["a", "b", "c"]}))
    # values and keys in another order, Hydra's own settings changed: the same jobs, in their folders
    typed = [["seed=2", "model.hidden=8", "hydra.launcher.n_jobs=3"], ["seed=1", "model.hidden=4"]]
    typed.append(["sweep.resume=force", "seed=1", "model.hidden=8"])
    assert sweeps.check_resume(tmp_path, typed) == ["c", "a", "b"]
    # a job repeated keeps each recorded folder once
    (tmp_path / "sweep.json").write_text(
        json.dumps({"overrides": [["seed=1"], ["seed=1"]], "dirs": ["0", "1"]})
    )
    assert sweeps.check_resume(tmp_path, [["seed=1"], ["seed=1"]]) == ["0", "1"]
    for other in ([["seed=1"]], [["seed=1"], ["seed=2"]], [["seed=1"], ["seed=1"], ["seed=1"]]):
        with pytest.raises(UserError, match="holds a sweep of other settings"):
            sweeps.check_resume(tmp_path, other)


def test_a_key_given_twice_keeps_its_order_in_a_jobs_identity():
    assert sweeps.job_key(["b=1", "a=1", "a=2"]) == ("a=1", "a=2", "b=1")
    assert sweeps.job_key(["a=2", "a=1"]) != sweeps.job_key(["a=1", "a=2"])


def test_config_drift_names_the_key_and_both_values(tmp_path):
    from .conftest import compose_cfg

    cfg = compose_cfg("model.hidden=8", hydra_config=True)
    recorded = tmp_path / "config.yaml"
    OmegaConf.save(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]), recorded)
    assert sweeps.config_drift(recorded, cfg) == []
    drifted = OmegaConf.load(recorded)
    drifted.model.dropout, drifted.sweep.resume = 0.3, "force"  # how to resume is no setting of the job
    OmegaConf.save(drifted, recorded)
    assert sweeps.config_drift(recorded, cfg) == [("model.dropout", 0.3, 0.0)]
    recorded.write_text("[1, 2]\n")
    with pytest.raises(UserError, match="config.yaml: the whole file is a list"):
        sweeps.config_drift(recorded, cfg)


@pytest.mark.slow
def test_a_resume_is_the_same_jobs_in_any_order_and_refused_where_their_settings_changed(tmp_path):
    conf, sweep = tmp_path / "conf", tmp_path / "sweep"
    shutil.copytree(CONF, conf)  # a config folder of your own, whose group file you then edit
    args = ["-cp", str(conf), *(a for a in TINY if not a.startswith(("trainer.max_epochs", "model.hidden")))]
    args += ["trainer.max_epochs=1", f"hydra.sweep.dir={sweep}"]
    assert run_cli("-m", *args, "model.hidden=4,8", "seed=1").returncode == 0
    kept = checksums(sweep / "0")
    (sweep / "1" / "metrics.json").unlink()  # job 1 (model.hidden=8) was killed
    # the same sweep typed in another order: Hydra now numbers hidden=8 first, yet it resumes in folder 1
    r = run_cli("-m", *args, "seed=1", "model.hidden=8,4")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "1 of 2 jobs completed earlier" in r.stdout + r.stderr
    assert checksums(sweep / "0") == kept
    assert "model.hidden=8" in OmegaConf.load(sweep / "1" / ".hydra" / "overrides.yaml")
    assert OmegaConf.load(sweep / "1" / ".hydra" / "config.yaml").model.hidden == 8
    assert json.loads((sweep / "1" / "metrics.json").read_text())["status"] == "completed"
    # a group file edited between two attempts: refused, naming the key and both values, nothing touched
    lstm = conf / "model" / "lstm.yaml"
    lstm.write_text(lstm.read_text().replace("dropout: 0.0", "dropout: 0.3"))
    before = checksums(sweep)
    r = run_cli("-m", *args, "model.hidden=4,8", "seed=1")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith(f"error: hydra.sweep.dir={sweep}: job 0 completed with other settings")
    assert "model.dropout was 0.0 there, is 0.3 now" in line and "sweep.resume=force" in line
    assert checksums(sweep) == before
    # sweep.resume=force keeps the completed jobs as they are, saying so
    r = run_cli("-m", *args, "model.hidden=4,8", "seed=1", "sweep.resume=force")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "sweep.resume=force: job 0 kept though model.dropout was 0.0 there" in r.stdout + r.stderr
    assert checksums(sweep / "0") == kept
    # any other word is refused as a setting
    r = run_cli("-m", *args, "model.hidden=4,8", "seed=1", "sweep.resume=maybe")
    assert r.returncode == 2 and "sweep.resume must be one of auto, force (got 'maybe')" in r.stderr


def test_report_never_writes_over_a_file_it_did_not_write(tmp_path, capsys):
    sweep = tmp_path / "s"
    fake_sweep(sweep, ["model.hidden=4"], ["model.hidden=8"])
    (sweep / "summary.md").write_text("my notes\n")
    (sweep / "weight_norms.png").write_bytes(b"my figure")  # a name report may draw, then remove
    mine = {n: (sweep / n).read_bytes() for n in ("summary.md", "weight_norms.png")}
    main([str(sweep)])
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1] == f"summary: {sweep / 'summary-2.md'}"
    assert (sweep / "summary-2.md").read_text().startswith(f"# Sweep report: {sweep}")
    assert {n: (sweep / n).read_bytes() for n in mine} == mine
    # a second report rewrites its own files, never yours; one you edited since is yours
    (sweep / "summary.csv").write_text("edited\n")
    main([str(sweep)])
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1] == f"summary: {sweep / 'summary-2.md'}" and "summary-2.csv" in out[-2]
    assert {n: (sweep / n).read_bytes() for n in mine} == mine and (
        sweep / "summary.csv"
    ).read_text() == "edited\n"
    assert not (sweep / "summary-3.md").exists()


def test_report_counts_only_the_jobs_sweep_json_lists(tmp_path, capsys):
    sweep = tmp_path / "s"
    fake_sweep(sweep, ["model.hidden=4"], ["model.hidden=8"], ["model.hidden=16"])
    # a single run someone wrote into the sweep's root, and a folder of theirs holding another
    for stray in (sweep, sweep / "theirs"):
        (stray / ".hydra").mkdir(parents=True, exist_ok=True)
        shutil.copy(sweep / "0" / ".hydra" / "config.yaml", stray / ".hydra" / "config.yaml")
        shutil.copy(sweep / "0" / "metrics.json", stray / "metrics.json")
    shutil.move(sweep / "2", sweep / "theirs" / "2")
    (sweep / "sweep.json").write_text(json.dumps({"overrides": JOBS, "dirs": ["0", "1"], "started": 0}))
    assert find_runs(sweep) == [sweep / "0", sweep / "1"]
    main([str(sweep)])
    out, err = capsys.readouterr()
    assert "of 2 jobs." in out
    assert f"not counted: {sweep} is not a job of this sweep" in err
    assert f"not counted: {sweep / 'theirs'} is not a job of this sweep" in err
    # dirs of another shape: named, nothing written
    (sweep / "sweep.json").write_text(json.dumps({"overrides": JOBS, "dirs": "0,1"}))
    with pytest.raises(UserError, match=r"sweep.json: dirs is not a list of 2 job folders"):
        main([str(sweep)])


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("[]", "the whole file is a list"),
        ('{"summary.md": {"file": "../x", "sha256": "0"}}', "summary.md is not"),
    ],
)
def test_reports_own_record_of_another_shape_is_named(tmp_path, content, words):
    sweep = tmp_path / "s"
    fake_sweep(sweep, ["model.hidden=4"])
    (sweep / RECORD).write_text(content)
    with pytest.raises(UserError, match=f"{RECORD}: {words}"):
        main([str(sweep)])
    assert not (sweep / "summary.csv").exists()
