"""`python -m lstm_cls.export`: raw feature values in (the checkpoint's scaling is in the graph), any batch
(and, for labelled sequences, any number of steps), the names in the metadata, no warning, `--help`, and the
README's onnxruntime snippet run as written against `predict`."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from lstm_cls.backbone import LSTMBackbone, load_backbone
from lstm_cls.export import export

from .conftest import ROOT, compose_cfg, run_cli
from .helpers import site_table

# the README's example, exactly as printed there; MODEL and DATA are replaced by a test's own files
README_SNIPPET = """\
import json

import numpy as np
import onnxruntime
import pandas as pd

session = onnxruntime.InferenceSession("outputs/runs/<run>/checkpoints/best.onnx")
meta = session.get_modelmeta().custom_metadata_map  # JSON strings
features, classes = json.loads(meta["feature_names"]), json.loads(meta["class_names"])
window = json.loads(meta["data_info"])["window"]
rows = pd.read_csv("new.csv")[features].to_numpy(np.float32)  # raw values of one series, in time order
windows = np.lib.stride_tricks.sliding_window_view(rows, window, axis=0).transpose(0, 2, 1)
probabilities = session.run(["probabilities"], {"windows": np.ascontiguousarray(windows)})[0]
print(pd.DataFrame(probabilities, columns=classes))  # a row per window, the first ending at row window-1
"""
MODEL, DATA = "outputs/runs/<run>/checkpoints/best.onnx", "new.csv"


def test_the_readme_shows_this_very_snippet() -> None:
    readme = (ROOT / "docs" / "tools.md").read_text()  # the page the README links for export
    blocks = [b.split("```", 1)[0] for b in readme.split("```python\n")[1:]]
    assert README_SNIPPET in blocks  # the README and the snippet the next test runs cannot drift apart


CENTRE = (0.3, -2.0)  # the site tables' a and b: b far from 0, so the centre matters
CLIP = 1.5  # the trained model's data.clip: small, so that the raw test values below do get clipped


def scaled(x: torch.Tensor, info: dict, clip: float | None) -> torch.Tensor:
    """What predict does to raw values (windows.scale_), written out independently."""
    x = (x - torch.tensor(info["mean"])) / torch.tensor(info["std"])
    return x if clip is None else x.clamp(-clip, clip)


def plain_export(*args: str) -> subprocess.CompletedProcess:
    """`python -m lstm_cls.export` as a user runs it: warnings shown (conftest.run_cli hides them)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    return subprocess.run(
        [sys.executable, "-m", "lstm_cls.export", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A small window model (window 5, features a and b, classes No/Yes) trained with data.clip."""
    from lstm_cls.train import train

    tmp = tmp_path_factory.mktemp("onnx")
    site_table(150, 0, centre=CENTRE).sample(frac=1, random_state=0).to_csv(tmp / "train.csv", index=False)
    cfg = compose_cfg(
        f"run_dir={tmp / 'run'}",
        "data=csv",
        f"data.path={tmp / 'train.csv'}",
        "data.target=rain",
        "data.time=day",
        "data.group=site",
        "data.window=5",
        f"data.clip={CLIP}",
        "model.hidden=8",
        "trainer.max_epochs=3",
        "callbacks.progress_bar.refresh_rate=0",
    )
    train(cfg)
    return tmp / "run/checkpoints/best.ckpt"


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("exported") / "best.onnx"
    return out, plain_export(f"ckpt_path={trained}", f"output={out}")


def test_a_plain_export_prints_no_warning_and_ends_with_the_path(exported):
    out, r = exported
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Warning" not in r.stderr and "warning" not in r.stderr.lower(), r.stderr[-3000:]
    assert r.stderr == "", r.stderr[-3000:]  # not even a logged line
    assert r.stdout.strip().splitlines()[-1] == f"wrote {out}"
    assert out.is_file()


def test_the_readme_snippet_gives_predicts_probabilities_from_raw_values(trained, exported, tmp_path, capsys):
    out, r = exported
    assert r.returncode == 0, r.stderr[-3000:]
    # one site in time order, values spread three times wider than in training: many are clipped
    site_table(40, 7, sites=("north",), spread=3.0, centre=CENTRE).to_csv(tmp_path / "new.csv", index=False)
    p = run_cli(
        f"ckpt_path={trained}",
        f"data.path={tmp_path / 'new.csv'}",
        f"output={tmp_path / 'p.csv'}",
        module="lstm_cls.predict",
    )
    assert p.returncode == 0, p.stderr[-2000:]
    expected = pd.read_csv(tmp_path / "p.csv")
    code = README_SNIPPET.replace(MODEL, str(out)).replace(DATA, str(tmp_path / "new.csv"))
    assert code != README_SNIPPET
    namespace: dict = {}
    exec(code, namespace)  # noqa: S102 - the README's own example, run as written
    got = namespace["probabilities"]
    assert namespace["classes"] == ["No", "Yes"] and namespace["features"] == ["a", "b"]
    assert got.shape == (40 - 5 + 1, 2) and len(expected) == len(got)
    np.testing.assert_allclose(got, expected[["p_No", "p_Yes"]].to_numpy(), atol=1e-5)
    assert "No" in capsys.readouterr().out  # it printed the table
    # the comparison has teeth: the clipping is in the exported graph, and it changes the probabilities
    net, info = load_backbone(trained)
    assert info["clip"] == CLIP
    raw = torch.from_numpy(np.ascontiguousarray(namespace["windows"]))
    assert scaled(raw, info, None).abs().max() > 2 * CLIP
    with torch.no_grad():
        unclipped = net.probabilities(net(scaled(raw, info, None))).numpy()
    assert np.abs(unclipped - got).max() > 1e-3


@pytest.mark.parametrize("batch", [1, 7])
def test_the_onnx_model_takes_raw_windows_of_any_batch(trained, exported, batch):
    import onnx
    import onnxruntime

    out, r = exported
    assert r.returncode == 0, r.stderr[-3000:]
    net, info = load_backbone(trained)
    session = onnxruntime.InferenceSession(str(out))
    (windows,) = session.get_inputs()
    assert windows.name == "windows" and windows.shape == ["batch", 5, 2]
    assert session.get_outputs()[0].name == "probabilities"
    raw = torch.randn(batch, 5, 2, generator=torch.Generator().manual_seed(batch)) * 3 - 1
    got = session.run(None, {"windows": raw.numpy()})[0]
    with torch.no_grad():
        expected = net.probabilities(net(scaled(raw, info, info["clip"]))).numpy()
    assert got.shape == (batch, 2)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(meta["feature_names"]) == ["a", "b"]
    assert json.loads(meta["class_names"]) == ["No", "Yes"]
    assert json.loads(meta["data_info"]) == json.loads(json.dumps(info))


def test_torchscript_takes_raw_windows_and_carries_the_names(trained, tmp_path):
    out = export_to(trained, "torchscript", None)
    assert out == trained.with_suffix(".torchscript.pt")  # beside the checkpoint
    try:
        files = {"data_info.json": "", "feature_names.json": "", "class_names.json": ""}
        ts = torch.jit.load(str(out), _extra_files=files)
    finally:
        out.unlink()  # the module's checkpoint folder stays as the other tests expect it
    net, info = load_backbone(trained)
    assert json.loads(files["feature_names.json"]) == ["a", "b"]
    assert json.loads(files["class_names.json"]) == ["No", "Yes"]
    assert json.loads(files["data_info.json"])["clip"] == CLIP
    for batch in (1, 7):
        raw = torch.randn(batch, 5, 2) * 3
        with torch.no_grad():
            got, expected = ts(raw), net.probabilities(net(scaled(raw, info, CLIP)))
        assert got.shape == (batch, 2)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def export_to(ckpt: Path, fmt: str, output: Path | None) -> Path:
    """lstm_cls.export in this process (quicker than a subprocess)."""
    return export(OmegaConf.create({"ckpt_path": str(ckpt), "format": fmt, "output": output and str(output)}))


def fake_checkpoint(path: Path, net: LSTMBackbone, info: dict, hparams: dict) -> Path:
    """A checkpoint as training writes it, of an untrained network: what export reads, nothing more."""
    state = {f"net.{k}": v for k, v in net.state_dict().items()}
    torch.save({"state_dict": state, "hyper_parameters": hparams, "data_info": info}, path)
    return path


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_a_sequence_model_takes_raw_cases_of_any_batch_and_length(tmp_path, fmt):
    import onnxruntime

    torch.manual_seed(0)
    hp = {"n_features": 3, "n_classes": 3, "hidden": 6, "num_layers": 2, "loss": "ce"}
    info = {
        "kind": "sequences",
        "feature_names": ["x", "y", "z"],
        "class_names": ["p", "q", "r"],
        "mean": [1.0, -2.0, 0.5],
        "std": [2.0, 0.5, 3.0],
        "clip": 2.0,
        "max_length": 29,
    }
    net = LSTMBackbone(3, 3, hidden=6, num_layers=2).eval()
    ckpt = fake_checkpoint(tmp_path / "seq.ckpt", net, info, hp)
    if fmt == "onnx":
        # a window model first, in this process: torch then caches nn.LSTM's plain decomposition, which
        # would fix the sequence model's steps to the example's (export clears that cache)
        windows = {**info, "window": 4}
        del windows["kind"]
        single = {**hp, "num_layers": 1}
        first = fake_checkpoint(tmp_path / "win.ckpt", LSTMBackbone(3, 3, hidden=6), windows, single)
        export_to(first, "onnx", tmp_path / "w.onnx")
    out = export_to(ckpt, fmt, tmp_path / f"m.{fmt}")
    if fmt == "onnx":
        session = onnxruntime.InferenceSession(str(out))
        assert [(i.name, i.shape) for i in session.get_inputs()] == [
            ("cases", ["batch", "steps", 3]),
            ("lengths", ["batch"]),
        ]

        def run(cases, lengths):
            return session.run(None, {"cases": cases.numpy(), "lengths": lengths.numpy()})[0]
    else:
        ts = torch.jit.load(str(out))

        def run(cases, lengths):
            return ts(cases, lengths).detach().numpy()

    g = torch.Generator().manual_seed(1)
    for batch in (1, 7):
        for steps in (1, 4, 29):
            raw = torch.randn(batch, steps, 3, generator=g) * 4
            lengths = torch.randint(1, steps + 1, (batch,), generator=g)
            lengths[0] = steps
            padded = raw.clone()
            for i, n in enumerate(lengths):
                padded[i, n:] = 1e6  # whatever follows a case's length is ignored
            with torch.no_grad():  # packed: each case alone, never its padding
                expected = net.probabilities(net(scaled(raw, info, 2.0), lengths)).numpy()
            got = run(padded, lengths)
            assert got.shape == (batch, 3)
            np.testing.assert_allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_lists_every_argument_with_its_default_and_an_example(flag):
    r = run_cli(flag, module="lstm_cls.export")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    lines = r.stdout.splitlines()
    for key, default in (("ckpt_path", "(required)"), ("format", "onnx"), ("output", "null")):
        (line,) = [x for x in lines if x.split()[:1] == [key]]
        assert line.split()[1] == default and len(line.split()) > 2  # key, default, meaning
    assert any(x.strip().startswith("python -m lstm_cls.export ckpt_path=") for x in lines)


def test_no_checkpoint_is_one_error_line():
    r = run_cli(module="lstm_cls.export")
    assert r.returncode == 2 and r.stderr.startswith("error: ckpt_path is not set")
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
