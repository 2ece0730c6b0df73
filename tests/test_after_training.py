"""Using a trained model: predict, evaluate, export."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from lstm_cls.model import LSTMClassifier
from lstm_cls.train import train

from .conftest import run_cli
from .helpers import site_table


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    from .conftest import compose_cfg

    tmp = tmp_path_factory.mktemp("trained")
    site_table(150, 0, shuffled=True).to_csv(tmp / "train.csv", index=False)
    site_table(30, 3, shuffled=True).to_csv(tmp / "test.csv", index=False)  # the run's test set: a whole file
    cfg = compose_cfg(
        f"run_dir={tmp / 'run'}",
        "data=csv",
        f"data.path={tmp / 'train.csv'}",
        f"data.test_path={tmp / 'test.csv'}",
        "data.target=rain",
        "data.time=day",
        "data.group=site",
        "data.window=5",
        "model.hidden=8",
        "trainer.max_epochs=3",
        "callbacks.progress_bar.refresh_rate=0",
    )
    train(cfg)
    return tmp


def test_predict_a_file_of_another_length(trained, tmp_path):
    new = site_table(40, 1, shuffled=True)
    new.drop(columns="rain").to_csv(tmp_path / "new.csv", index=False)
    r = run_cli(
        f"ckpt_path={trained / 'run/checkpoints/best.ckpt'}",
        f"data.path={tmp_path / 'new.csv'}",
        f"output={tmp_path / 'p.csv'}",
        module="lstm_cls.predict",
    )
    assert r.returncode == 0, r.stderr[-2000:]
    p = pd.read_csv(tmp_path / "p.csv")
    assert list(p.columns) == ["site", "day", "predicted", "p_No", "p_Yes"]
    assert len(p) == 2 * (40 - 5 + 1)  # every window of each site, none across sites
    assert set(p.predicted) <= {"No", "Yes"} and np.allclose(p.p_No + p.p_Yes, 1, atol=1e-6)
    # one row by hand: the south site's window ending on its 10th day, normalised with the checkpoint's stats
    model = LSTMClassifier.from_checkpoint(trained / "run/checkpoints/best.ckpt")
    info = model.data_info
    south = (
        new[new.site == "south"].assign(day=lambda d: pd.to_datetime(d.day, dayfirst=True)).sort_values("day")
    )
    raw = torch.tensor(south[["a", "b"]].to_numpy(np.float32)[5:10])
    x = (raw - torch.tensor(info["mean"])) / torch.tensor(info["std"])
    expected = model.probabilities(model(x[None]))[0, 1].item()
    row = p[(p.site == "south") & (p.day == str(south.day.iloc[9].date()))]
    assert row.p_Yes.item() == pytest.approx(expected, abs=1e-6)


def test_predict_errors(trained, tmp_path):
    ckpt = f"ckpt_path={trained / 'run/checkpoints/best.ckpt'}"
    site_table(20, 2, shuffled=True).drop(columns="b").to_csv(tmp_path / "nob.csv", index=False)
    r = run_cli(
        ckpt, f"data.path={tmp_path / 'nob.csv'}", f"output={tmp_path / 'p.csv'}", module="lstm_cls.predict"
    )
    assert (
        r.returncode == 2 and "lacks the model's features ['b']" in r.stderr and "Traceback" not in r.stderr
    )
    (tmp_path / "taken.csv").write_text("mine\n")
    r = run_cli(
        ckpt,
        f"data.path={trained / 'train.csv'}",
        f"output={tmp_path / 'taken.csv'}",
        module="lstm_cls.predict",
    )
    assert r.returncode == 2 and "already exists" in r.stderr
    assert (tmp_path / "taken.csv").read_text() == "mine\n"  # never overwritten
    r = run_cli(ckpt, "data.pth=x.csv", module="lstm_cls.predict")
    assert r.returncode == 2 and r.stderr.startswith("error: ")


def test_evaluate_reproduces_the_runs_test_metrics(trained, tmp_path):
    # the run's test set is test.csv, whole: evaluate given that file alone scores the same windows
    r = run_cli(
        f"ckpt_path={trained / 'run/checkpoints/best.ckpt'}",
        f"data.path={trained / 'test.csv'}",
        f"output={tmp_path / 'e.json'}",
        module="lstm_cls.evaluate",
    )
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads((tmp_path / "e.json").read_text())
    run = json.loads((trained / "run/metrics.json").read_text())
    for k in ("test/acc", "test/loss", "test/f1", "test/auroc"):
        assert got[k] == pytest.approx(run[k], abs=1e-6), k
    assert np.sum(got["confusion_matrix"]) == got["windows"] == run["windows/test"]
    assert "confusion matrix" in r.stdout


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_matches_pytorch_on_the_test_windows(trained, tmp_path, fmt):
    ckpt = trained / "run/checkpoints/best.ckpt"
    out = tmp_path / "exports" / f"model.{fmt}"  # a folder that does not exist yet
    r = run_cli(f"ckpt_path={ckpt}", f"format={fmt}", f"output={out}", module="lstm_cls.export")
    assert r.returncode == 0, r.stderr[-2000:]
    from lstm_cls.data import CsvDataModule

    model = LSTMClassifier.from_checkpoint(ckpt)
    info = model.data_info
    dm = CsvDataModule(
        path=str(trained / "train.csv"),
        target="rain",
        time="day",
        group="site",
        window=info["window"],
        stats={"mean": [0.0, 0.0], "std": [1.0, 1.0]},  # scaled by nothing: the raw test windows
    )
    dm.setup("test")
    x, _ = dm.sets["test"][list(range(len(dm.sets["test"])))]
    # the exported model scales raw windows itself, as the checkpoint's model was trained on them
    scaled = (x - torch.tensor(info["mean"])) / torch.tensor(info["std"])
    if info.get("clip") is not None:
        scaled = scaled.clamp(-info["clip"], info["clip"])
    with torch.no_grad():
        expected = model.probabilities(model(scaled)).numpy()
    if fmt == "onnx":
        import onnx
        import onnxruntime

        got = onnxruntime.InferenceSession(str(out)).run(None, {"windows": x.numpy()})[0]
        meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    else:
        extra = {"data_info.json": ""}
        ts = torch.jit.load(str(out), _extra_files=extra)
        got = ts(x).detach().numpy()
        meta = {"data_info": extra["data_info.json"]}
    assert got.shape == (len(x), 2)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert json.loads(meta["data_info"])["feature_names"] == ["a", "b"]
