"""Predict with a trained model.

    python -m lstm_cls.predict ckpt_path=<run>/checkpoints/best.ckpt data.path=new.csv

The new file is read whole with the checkpoint's data settings (source kind, features, time and group
columns, window, stride, missing-value rule, normalisation statistics, class names): none of them can be
given again. One output row per window: the group (if any), the time (or row number) of the window's last
step, the predicted class and a probability per class. The prediction is for `horizon` steps after that last
step, as in training. A model of labelled sequences gets one row per case. The output goes beside the
checkpoint's run, `<run>/predictions/<file stem>.csv`, unless `output=` says otherwise; nothing is
overwritten.

`read` is the one reader of a new file with a checkpoint's settings: `evaluate` scores the same rows
against their labels.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lstm_cls import UserError
from lstm_cls.cli import SCORING, check_tool, parse_scoring, run, scoring_help

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

DEFAULTS = SCORING  # its arguments, for `cli.parse(DEFAULTS, argv)` (cli.SCORING: predict and evaluate)
HELP = scoring_help(
    "predict",
    "Predict the class of every window (or case) of a whole file, one row each. The file is read with the\n"
    "checkpoint's data settings (features, time, group, window, stride, NaN rule, normalisation, classes):\n"
    "they cannot be given.",
    {
        "data.path": "the file (.csv, .csv.gz, .txt, .parquet; .ts): labels not needed",
        "output": "null: <run>/predictions/<file stem>.csv; or a new .csv / .parquet file",
    },
)


@dataclass
class Rows:
    """A file read with a checkpoint's settings. `data`: its windows (`WindowSet`) or cases (`CaseSet`),
    scaled as in training, which give (x, y) or (x, y, lengths) batches; y is -1 where a row has no label.
    `ids`: the columns that name each row in an output (group and time, or case)."""

    data: Any
    ids: dict[str, Any]


def predict(cfg: Any) -> pd.DataFrame:
    """Write one row per window (or case) of `cfg.data.path`: its names, the predicted class, p_<class>."""
    import numpy as np  # here, not at the top: a command's Ctrl-C handler comes first
    import pandas as pd

    out = check_tool("predict", cfg)
    ckpt_path = cfg.ckpt_path
    import torch

    from lstm_cls.backbone import load_backbone

    torch.set_num_threads(cfg.threads)
    model, info = load_backbone(ckpt_path)
    rows = read(info, cfg.data.path, labelled=False, dayfirst=cfg.data.dayfirst)
    probs = []
    with torch.inference_mode():  # large no-grad batches
        for i in range(0, len(rows.data), cfg.batch_size):
            # windows: (x, y); cases: (x, y, lengths), each batch cut to its own longest case
            batch = rows.data[torch.arange(i, min(i + cfg.batch_size, len(rows.data)))]
            probs.append(model.probabilities(model(batch[0], batch[2] if len(batch) > 2 else None)))
    p = torch.cat(probs).numpy()
    cols = dict(rows.ids)
    classes = info["class_names"]
    cols["predicted"] = np.array(classes, dtype=object)[p.argmax(1)]
    cols.update({f"p_{c}": p[:, j] for j, c in enumerate(classes)})
    return write(pd.DataFrame(cols), out)


def _target(info: dict[str, Any], df: pd.DataFrame, path: str) -> str:
    """The label column a labelled read needs: the checkpoint's target, which the file must hold."""
    target = info.get("target")
    if not target:  # data=synthetic: made in memory, never read from a file
        raise UserError(
            "this model was trained on data=synthetic, which has no label column to read from a file; "
            "its test scores are in its run's metrics.json"
        )
    if target not in df.columns:
        raise UserError(
            f"{path} has no column {target!r}, the labels to score against (the model's data.target); "
            f"its columns are {list(df.columns)}. python -m lstm_cls.predict needs no labels"
        )
    return target


def read(info: dict[str, Any], path: str, labelled: bool, dayfirst: bool | None = None) -> Rows:
    """Every window (or case) of the file at `path`, read with the checkpoint's `data_info`: never split.

    labelled=False (predict): every complete window, the target column may be absent. labelled=True
    (evaluate): the windows whose label (`horizon` steps after their last step) the file holds, every
    label one of the checkpoint's classes (else a UserError naming it). `dayfirst`: the file's date order,
    None for the checkpoint's.
    """
    import numpy as np  # here, not at the top: a command's Ctrl-C handler comes first

    if info.get("kind") == "sequences":
        return read_cases(info, path, labelled, dayfirst)
    import torch

    from lstm_cls.data import tables
    from lstm_cls.data.scaling import scale_
    from lstm_cls.data.times import time_label
    from lstm_cls.data.windows import WindowSet, nan_free, window_starts

    df = tables.read_table(path)
    missing = [f for f in info["feature_names"] if f not in df.columns]
    if missing:
        raise UserError(f"{path} lacks the model's features {missing}; its columns are {list(df.columns)}")
    target = _target(info, df, path) if labelled else None
    setting = {k: info.get(k) for k in ("time", "group", "dayfirst", "nan")}
    if dayfirst is not None:
        setting["dayfirst"] = dayfirst
    series = tables.table(
        df,
        target,  # None: labels are not read (classes the model never saw are then no error)
        features=info["feature_names"],
        classes=info["class_names"],
        where=str(path),
        time=setting["time"],
        group=setting["group"],
        dayfirst=setting["dayfirst"],
        nan=setting["nan"] or "ffill",
    )
    scale_(series.x, info)  # (x - mean) / std, clipped to +-clip if the checkpoint has one
    window = info["window"]
    # predict: the label is `horizon` steps beyond the window, often past the file's end: every window is
    # predicted. evaluate: only the windows whose label step the file holds
    horizon = info.get("horizon", 0) if labelled else 0
    starts = torch.cat([window_starts(a, b, window, info["stride"], horizon) for a, b in series.bounds])
    clean = nan_free(series.x, window)(starts)
    if (~clean).any():
        log.info("dropped %d windows holding a missing feature value", int((~clean).sum()))
    keep = clean
    if labelled:
        has_label = series.y[starts + window - 1 + horizon] >= 0
        if (clean & ~has_label).any():
            log.info("dropped %d windows without a label", int((clean & ~has_label).sum()))
        keep = clean & has_label
    starts = starts[keep]
    if len(starts) == 0:
        what = f"{window} steps" + (f" with a label {horizon} steps later" if horizon else "")
        raise UserError(f"{path}: no complete window of {what} to {'score' if labelled else 'predict on'}")
    last = (starts + window - 1).numpy()  # each window's last step
    cols: dict[str, Any] = {}
    if series.group_names is not None:
        sizes = [b - a for a, b in series.bounds]
        cols[setting["group"]] = np.repeat(np.array(series.group_names, dtype=object), sizes)[last]
    cols[time_label(setting["time"]) or "row"] = series.steps[last]
    return Rows(WindowSet(series.x, series.y, starts, window, horizon), cols)


def write(frame: pd.DataFrame, out: Any) -> pd.DataFrame:
    """Write the predictions to `out` (checked free by cli.check_tool) and say where, last."""
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        if out.suffix.lower() == ".parquet":
            frame.to_parquet(out, index=False)
        else:
            frame.to_csv(out, index=False, mode="x")  # "x": not even a file made since the check is replaced
    except FileExistsError:
        raise UserError(f"output: {out} appeared while predicting; nothing was overwritten") from None
    print(f"wrote {len(frame)} predictions to {out}")
    return frame


def read_cases(info: dict[str, Any], path: str, labelled: bool, dayfirst: bool | None = None) -> Rows:
    """A model trained on labelled sequences: every case of a .ts file (its 0-based number, its label in the
    file) or of a table of cases (its name, grouped as in training). labelled=True: each case's label must be
    one of the checkpoint's classes, a UserError naming any other."""
    import numpy as np  # here, not at the top: a command's Ctrl-C handler comes first
    import torch

    from lstm_cls.data import uea
    from lstm_cls.data.sequences import CaseSet, pad

    classes = info["class_names"]
    cols: dict[str, Any] = {}
    if info.get("case"):  # a table of cases (data=csv data.case=...): grouped as in training
        from lstm_cls.data import tables

        df = tables.read_table(path)
        series = tables.table(
            df,
            _target(info, df, path) if labelled else None,  # predict: the target may be absent
            features=info["feature_names"],
            classes=classes,
            time=info.get("time"),
            group=info["case"],
            group_key="data.case",  # a row without a case id is named as such
            nan=info.get("nan") or "ffill",
            dayfirst=dayfirst if dayfirst is not None else info.get("dayfirst"),
            where=str(path),
        )
        xs, y = [], []
        for (a, b), name in zip(series.bounds, series.group_names, strict=True):
            present = series.y[a:b][series.y[a:b] >= 0].unique().tolist()
            if labelled and len(present) != 1:  # as in training: a case has one label
                found = sorted(classes[i] for i in present) or "none"
                raise UserError(
                    f"data.path: case {name!r} of column {info['case']!r} has labels {found}; a case has one"
                )
            if series.x[a:b].isnan().any():  # the LSTM would turn it into NaN probabilities
                raise UserError(
                    f"data.path: case {name!r} holds a missing feature value after data.nan={info.get('nan')}"
                )
            xs.append(series.x[a:b].numpy())
            y.append(present[0] if len(present) == 1 else -1)
        cols[info["case"]] = series.group_names
    else:
        cases = uea.read_ts(path, "data.path")
        if len(cases.channel_names) != len(info["feature_names"]):
            raise UserError(
                f"data.path: {path} has {len(cases.channel_names)} channels, "
                f"the model was trained on {len(info['feature_names'])}"
            )
        labels = [str(v) for v in cases.y]
        unknown = sorted(set(labels) - set(classes))
        if labelled and unknown:
            raise UserError(
                f"data.path: {path} has labels {unknown} that the model never saw; its classes are {classes}"
            )
        index = {c: i for i, c in enumerate(classes)}
        y = [index.get(v, -1) for v in labels]
        xs = cases.x
        cols.update({"case": np.arange(len(xs)), "label": cases.y})
    x, lengths = pad(xs, torch.tensor(info["mean"]), torch.tensor(info["std"]), info.get("clip"))
    return Rows(CaseSet(x, torch.tensor(y, dtype=torch.long), lengths), cols)


def main(argv: list[str]) -> None:
    predict(parse_scoring("predict", argv))


if __name__ == "__main__":
    run(main, HELP)
