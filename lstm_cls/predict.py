"""Predict with a trained model.

    python -m lstm_cls.predict ckpt_path=<run>/checkpoints/best.ckpt data.path=new.csv output=predictions.csv

The new file is read and windowed with the checkpoint's settings (features, time and group columns,
window, stride) and normalised with its training statistics. One output row per window: the group (if
any), the time (or row number) of the window's last step, the predicted class and a probability per class.
The prediction is for `horizon` steps after that last step, as in training.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from lstm_cls import UserError, config
from lstm_cls.cli import parse, run

log = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = {
    "ckpt_path": None,
    "output": "predictions.csv",  # .csv or .parquet; never overwritten
    "batch_size": 4096,
    "threads": 1,
    # how to read the file: null takes the checkpoint's setting
    "data": {"path": None, "time": None, "group": None, "dayfirst": None, "nan": None},
}


def predict(cfg: Any) -> pd.DataFrame:
    out = config.check_tool("predict", cfg)
    ckpt_path = cfg.ckpt_path
    import torch

    from lstm_cls import sources
    from lstm_cls.backbone import load_backbone
    from lstm_cls.windows import WindowSet, nan_free, normalise_, window_starts

    torch.set_num_threads(cfg.threads)
    model, info = load_backbone(ckpt_path)
    if info.get("kind") == "sequences":
        return write(predict_cases(model, info, cfg), out)
    df = sources.read_table(cfg.data.path)
    missing = [f for f in info["feature_names"] if f not in df.columns]
    if missing:
        raise UserError(
            f"{cfg.data.path} lacks the model's features {missing}; its columns are {list(df.columns)}"
        )
    setting = {
        k: cfg.data[k] if cfg.data[k] is not None else info.get(k)
        for k in ("time", "group", "dayfirst", "nan")
    }
    series = sources.table(
        df,
        None,
        features=info["feature_names"],
        classes=info["class_names"],
        where=str(cfg.data.path),
        time=setting["time"],
        group=setting["group"],
        dayfirst=setting["dayfirst"],
        nan=setting["nan"] or "ffill",
    )
    normalise_(series.x, torch.tensor(info["mean"]), torch.tensor(info["std"]))
    window = info["window"]
    starts = torch.cat([window_starts(a, b, window, info["stride"]) for a, b in series.bounds])
    clean = nan_free(series.x, window)(starts)
    if (~clean).any():
        log.info("dropped %d windows holding a missing feature value", int((~clean).sum()))
    starts = starts[clean]
    if len(starts) == 0:
        raise UserError(f"{cfg.data.path}: no complete window of {window} steps to predict on")
    ws = WindowSet(series.x, series.y, starts, window)
    probs = []
    with torch.inference_mode():  # large no-grad batches
        for i in range(0, len(ws), cfg.batch_size):
            x, _ = ws[torch.arange(i, min(i + cfg.batch_size, len(ws)))]
            probs.append(model.probabilities(model(x)))
    p = torch.cat(probs).numpy()
    last = (starts + window - 1).numpy()  # each window's last step
    cols: dict[str, Any] = {}
    if series.group_names is not None:
        sizes = [b - a for a, b in series.bounds]
        cols[setting["group"]] = np.repeat(np.array(series.group_names, dtype=object), sizes)[last]
    cols[setting["time"] or "row"] = series.steps[last]
    classes = info["class_names"]
    cols["predicted"] = np.array(classes, dtype=object)[p.argmax(1)]
    cols.update({f"p_{c}": p[:, j] for j, c in enumerate(classes)})
    return write(pd.DataFrame(cols), out)


def write(frame: pd.DataFrame, out: Any) -> pd.DataFrame:
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(out, index=False) if out.suffix.lower() == ".parquet" else frame.to_csv(out, index=False)
    print(f"wrote {len(frame)} predictions to {out}")
    return frame


def predict_cases(model: Any, info: dict[str, Any], cfg: Any) -> pd.DataFrame:
    """A model trained on labelled sequences: one row per case of a .ts file (its 0-based number, its label
    in the file) or of a table of cases (its name), then the predicted class and p_<class> for each class."""
    import torch

    from lstm_cls import uea
    from lstm_cls.sequences import pad

    cols: dict[str, Any] = {}
    if info.get("case"):  # a table of cases (data=csv data.case=...): grouped as in training
        from lstm_cls import sources

        series = sources.table(
            sources.read_table(cfg.data.path),
            None,  # the target may be absent: nothing is scored here
            features=info["feature_names"],
            classes=info["class_names"],
            time=info.get("time"),
            group=info["case"],
            nan=info.get("nan") or "ffill",
            where=str(cfg.data.path),
        )
        xs = [series.x[a:b].numpy() for a, b in series.bounds]
        cols[info["case"]] = series.group_names
    else:
        cases = uea.read_ts(cfg.data.path, "data.path")
        if len(cases.channel_names) != len(info["feature_names"]):
            raise UserError(
                f"data.path: {cfg.data.path} has {len(cases.channel_names)} channels, "
                f"the model was trained on {len(info['feature_names'])}"
            )
        xs = cases.x
        cols.update({"case": np.arange(len(xs)), "label": cases.y})
    x, lengths = pad(xs, torch.tensor(info["mean"]), torch.tensor(info["std"]))
    probs = []
    with torch.inference_mode():
        for i in range(0, len(x), cfg.batch_size):
            part = slice(i, i + cfg.batch_size)
            n = int(lengths[part].max())  # the batch's own longest case
            probs.append(model.probabilities(model(x[part, :n], lengths[part])))
    p = torch.cat(probs).numpy()
    classes = info["class_names"]
    cols["predicted"] = np.array(classes, dtype=object)[p.argmax(1)]
    cols.update({f"p_{c}": p[:, j] for j, c in enumerate(classes)})
    return pd.DataFrame(cols)


def main(argv: list[str]) -> None:
    predict(parse(DEFAULTS, argv))


if __name__ == "__main__":
    run(main)
