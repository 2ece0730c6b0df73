"""Evaluate a checkpoint on a labelled file.

    python -m lstm_cls.evaluate ckpt_path=<run>/checkpoints/best.ckpt data.path=new.csv

The whole file is scored, never split: every window with a label (or every case, for a model of labelled
sequences), read with the checkpoint's data settings exactly as `predict` reads it (`predict.read`). Its
labels must be the model's classes. Prints the metrics and the confusion matrix, and writes them as JSON
beside the checkpoint's run: `<run>/evaluations/<file stem>.json` (a counter is added where that name is
taken), or `output=`, which must not exist yet.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lstm_cls import UserError
from lstm_cls.cli import check_tool, file_stem, free_path, parse_scoring, run, run_folder, scoring_help
from lstm_cls.metrics import Evaluation, evaluation

if TYPE_CHECKING:
    import lightning as L

HELP = scoring_help(
    "evaluate",
    "Score a checkpoint on every labelled window (or case) of a whole file; print the metrics and the\n"
    "confusion matrix, and write them as JSON. The file is read with the checkpoint's data settings\n"
    "(target, features, time, group, window, stride, horizon, NaN rule, normalisation, classes): they\n"
    "cannot be given.",
    {
        "data.path": "the file (.csv, .csv.gz, .txt, .parquet; .ts), with the label column",
        "output": "null: <run>/evaluations/<file stem>.json; or a new .json file",
    },
)


def confusion_table(names: Sequence[str], matrix: Sequence[Sequence[int]]) -> str:
    """The confusion matrix as an aligned table: rows the true class, columns the predicted one. Every
    column is as wide as the widest class name or count, and two spaces apart, so that counts never run
    together (207 and 209 printed as `207209`)."""
    first = max(len(n) for n in names)
    width = max(max(len(n) for n in names), max(len(str(v)) for row in matrix for v in row))
    lines = ["confusion matrix (rows: true class, columns: predicted class)"]
    lines.append(" " * first + "".join(f"  {n:>{width}}" for n in names))
    for name, row in zip(names, matrix, strict=True):
        lines.append(f"{name:<{first}}" + "".join(f"  {v:>{width}}" for v in row))
    return "\n".join(lines)


def write_new(out: Path, result: Evaluation, stem: str | None) -> Path:
    """Write `result` as JSON to `out`, never over an existing file. A name taken since the arguments were
    checked is an error for the user's `output=` (stem None); for the default one, `stem` with the next
    free counter."""
    out.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result, indent=2) + "\n"
    while True:
        try:
            with open(out, "x") as f:  # "x": fails rather than replace a file
                f.write(text)
            return out
        except FileExistsError:
            if stem is None:
                raise UserError(f"output: {out} appeared while evaluating; nothing was overwritten") from None
            out = free_path(out.parent, stem, out.suffix)


def tester(accelerator: str = "cpu") -> L.Trainer:
    """A Trainer that only tests a model (evaluate, and nested epochs' shorter runs) and writes nothing: no
    logger (a run's metrics.csv and events must not get these tests), checkpoint, progress bar or summary."""
    import lightning as L

    return L.Trainer(
        accelerator=accelerator,
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )


def evaluate(cfg: Any) -> Evaluation:
    """Score the checkpoint on every labelled window (or case) of `cfg.data.path`; print and write it."""
    out = check_tool("evaluate", cfg)
    import torch

    from lstm_cls.backbone import network
    from lstm_cls.checkpoints import check_data_info, load
    from lstm_cls.predict import read

    torch.set_num_threads(cfg.threads)
    # the data settings first, and the file read with them, before Lightning's import (seconds): a file the
    # model cannot score is refused at once
    ckpt, where = load(cfg.ckpt_path), f"ckpt_path: {cfg.ckpt_path}"
    info = check_data_info(ckpt, where)
    network(ckpt, where)  # its weights fit its hyper_parameters: a UserError naming the one that does not
    if info.get("kind") != "sequences" and not info.get("target"):
        # its data is generated in memory from settings the checkpoint does not keep: no file to read
        raise UserError(
            "this model was trained on data=synthetic, which has no file to score: its test scores are in "
            f"{run_folder(cfg.ckpt_path) / 'metrics.json'}; evaluate scores files of models trained "
            "on data=csv or data=uea"
        )
    rows = read(info, cfg.data.path, labelled=True, dayfirst=cfg.data.dayfirst)
    from lstm_cls.data.batches import loader
    from lstm_cls.model import LSTMClassifier

    # Lightning's start-up lines (no GPU, no TPU, a logger tip) say nothing about the scores
    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", ".*LeafSpec.*is deprecated.*")
    model = LSTMClassifier.from_checkpoint(cfg.ckpt_path)
    # the LightningModule's own test step: the same loss and metrics as the run's test
    tester().test(model, dataloaders=loader(rows.data, cfg.batch_size, False), verbose=False)
    classes = info["class_names"]
    counts = torch.bincount(rows.data.labels(), minlength=len(classes)).tolist()
    result = evaluation(
        str(Path(cfg.ckpt_path).resolve()),
        str(Path(cfg.data.path).resolve()),
        model.epoch_metrics["test"],
        dict(zip(classes, counts, strict=True)),
        model.confusion_matrix.tolist(),
    )
    path = write_new(out, result, None if cfg.output else file_stem(cfg.data.path))
    print(json.dumps({k: v for k, v in result.items() if k not in ("confusion_matrix", "class_names")}))
    print(confusion_table(classes, result["confusion_matrix"]))
    print(f"wrote {path}")
    return result


def main(argv: list[str]) -> None:
    evaluate(parse_scoring("evaluate", argv))


if __name__ == "__main__":
    run(main, HELP)
