"""A newcomer's first hour, on a file this test writes: two date/time columns and spiky channels.

Train, a 3-job sweep, the report, evaluate and predict on new rows given only the checkpoint and the file,
export, onnxruntime: no traceback, no warning, and nothing written outside the run and output folders.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from .conftest import run_cli

pytestmark = pytest.mark.slow


def sensors(n: int, seed: int, start: str = "2024-01-01") -> pd.DataFrame:
    """Minute rows with separate Date and Time columns; channel a is spiky (rare values 100x its spread)."""
    rng = np.random.default_rng(seed)
    t = pd.date_range(start, periods=n, freq="min")
    occupied = (np.sin(np.arange(n) / 15) + rng.normal(0, 0.3, n)) > 0
    a = rng.normal(4_000, 50, n) + 300 * occupied
    a[rng.random(n) < 0.02] = 700_000  # the spikes an EEG or a faulty sensor gives
    b = rng.normal(0, 1, n) + occupied
    return pd.DataFrame(
        {
            "Date": t.strftime("%d/%m/%Y"),
            "Time": t.strftime("%H:%M"),
            "a": a,
            "b": b,
            "Occupancy": occupied.astype(int),
        }
    )


def ok(r) -> str:
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-3000:]
    assert "Warning" not in r.stderr, r.stderr[-3000:]
    return r.stdout


def test_a_newcomers_first_hour(tmp_path: Path) -> None:
    work = tmp_path / "work"  # the newcomer's current folder: only outputs/ may appear in it
    work.mkdir()
    data = tmp_path / "room.csv"
    sensors(1_500, 1).to_csv(data, index=False)
    new = tmp_path / "room_new.csv"
    sensors(120, 2, start="2024-02-01").to_csv(new, index=False)
    setting = [
        "data=csv",
        f"data.path={data}",
        "data.target=Occupancy",
        "data.time=[Date,Time]",
        "data.window=8",
        "data.scale=robust",
        "data.clip=5",
        "model.hidden=8",
        "trainer.max_epochs=3",
    ]
    run = work / "outputs" / "runs" / "first"
    ok(run_cli(*setting, f"hydra.run.dir={run}", cwd=work, warnings=True))
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["windows/train"] > 500

    sweep = work / "outputs" / "multirun" / "first"
    out = ok(
        run_cli("-m", *setting, "model.hidden=4,8,16", f"hydra.sweep.dir={sweep}", cwd=work, warnings=True)
    )
    assert sum(line.startswith("job ") for line in out.splitlines()) == 3
    out = ok(run_cli(str(sweep), cwd=work, module="lstm_cls.report", warnings=True))
    assert (sweep / "summary.md").is_file() and out.strip().splitlines()[-1].endswith("summary.md")

    ckpt = run / "checkpoints" / "best.ckpt"
    ok(run_cli(f"ckpt_path={ckpt}", f"data.path={new}", cwd=work, module="lstm_cls.evaluate", warnings=True))
    scored = json.loads((run / "evaluations" / "room_new.json").read_text())
    assert scored["windows"] == 120 - 8 + 1
    ok(run_cli(f"ckpt_path={ckpt}", f"data.path={new}", cwd=work, module="lstm_cls.predict", warnings=True))
    predictions = pd.read_csv(run / "predictions" / "room_new.csv")
    assert len(predictions) == 120 - 8 + 1 and "Date Time" in predictions.columns

    ok(run_cli(f"ckpt_path={ckpt}", "format=onnx", cwd=work, module="lstm_cls.export", warnings=True))
    import onnxruntime

    session = onnxruntime.InferenceSession(str(run / "checkpoints" / "best.onnx"))
    meta = session.get_modelmeta().custom_metadata_map
    features = json.loads(meta["feature_names"])
    rows = pd.read_csv(new)[features].to_numpy(np.float32)  # raw values, spikes and all: scaled in the graph
    windows = np.lib.stride_tricks.sliding_window_view(rows, 8, axis=0).transpose(0, 2, 1)
    p = session.run(["probabilities"], {"windows": np.ascontiguousarray(windows)})[0]
    cols = [f"p_{c}" for c in json.loads(meta["class_names"])]
    np.testing.assert_allclose(p, predictions[cols].to_numpy(), atol=1e-5)

    assert sorted(q.name for q in work.iterdir()) == ["outputs"]  # nothing else in the current folder
    assert sorted(q.name for q in tmp_path.iterdir()) == ["room.csv", "room_new.csv", "work"]
