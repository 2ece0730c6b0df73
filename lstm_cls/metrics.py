"""The results schema: a run's `metrics.json` (RunMetrics) and a checkpoint's scores on a file
(`Evaluation`), their keys, built for the commands that write them, metrics.json read back checked.

metrics.json is written by training (`train.fit_and_test`: a completed run; `train.interrupted`: Ctrl-C or
SIGTERM; `pruning`: a trial Optuna pruned) and by a sweep's nested epochs (`nested.write_runs`: a shorter run
derived from a longer job). Read by the sweeper (`sweeps.completed`: which jobs are done), the report
(`report.read`) and TensorBoard (`tensorboard.write_final`: the final scalars). `evaluate` writes
`<run>/evaluations/<file stem>.json` with the same test/ keys. The files' keys, their order and their values
are those the commands have always written: the builders here only put them in one place.

No torch here, nor OmegaConf: the sweeper and the report read these files before any job runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypedDict

FILE = "metrics.json"
TRAIN = ("train/loss", "train/acc")  # the last training epoch's
VAL = ("val/loss", "val/acc")  # the last validation pass's
TEST = ("test/loss", "test/acc", "test/f1", "test/auroc")  # the tested checkpoint's, on the test split
SECONDS = ("fit_seconds", "train_seconds", "test_seconds", "startup_seconds")  # rounded to ms

# every key a run's metrics.json may hold, in the order written; `classes/<split>/<class>` and
# `windows/<split>` come once per split (and class). null where a run has no such figure.
RunMetrics = TypedDict(
    "RunMetrics",
    {
        "status": str,  # "completed", "interrupted" or "pruned" (a failed job writes none: its error.txt)
        "train/loss": float | None,
        "train/acc": float | None,
        "val/loss": float | None,  # null without validation (limit_val_batches=0)
        "val/acc": float | None,
        "val/best_loss": float | None,  # the lowest validation loss, the best checkpoint's: minimise this
        "test/loss": float | None,  # the test scores of the tested checkpoint (best_checkpoint)
        "test/acc": float | None,
        "test/f1": float | None,
        "test/auroc": float | None,  # null where a class has no test window (test/auroc_undefined says so)
        "test/majority_acc": float,  # the floor any model must beat: always the training majority class
        "best_epoch": int,  # epochs done when the tested checkpoint was saved
        "best_checkpoint": str,  # which one was tested: "best (lowest val/loss)", "last (no validation)"
        "epochs": int,  # epochs trained
        "global_step": int,  # optimizer steps taken
        "train_path": str,  # "block" (several batches per training_step) or "standard" (Lightning's)
        "params_trainable": int,
        "fit_seconds": float,  # trainer.fit, start to end
        "train_seconds": float | None,  # first training step to the end of fitting, less validation
        "test_seconds": float,  # the test pass
        "startup_seconds": float | None,  # command (a sweep's job) start to the first training step
        "threads": int,  # torch's threads: one per job in a sweep
        "world_size": int,  # processes (DDP)
        "test/auroc_undefined": str,  # only where test/auroc is null: the classes without a test window
        "derived_from": str,  # only in a nested-epochs run: the sweep's job that trained its epochs
    },
    total=False,
)

# what a completed run must hold for the report (older runs lack OPTIONAL's keys)
AT_END = [*TRAIN, *VAL, *TEST[:3]]
OPTIONAL = ["test/majority_acc", "windows/train"]


def scores(train: dict, val: dict, test: dict, best_score: float | None) -> dict[str, Any]:
    """The figures a run ends with: the last epoch's train/ and val/ ones, the lowest validation loss
    (`best_score`, the best checkpoint's; None: no checkpoint kept by it, then the last val/loss) and the
    test scores. `train`, `val`, `test`: the model's per-stage figures (`epoch_metrics`)."""
    return {
        **{k: train.get(k) for k in TRAIN},
        **{k: val.get(k) for k in VAL},
        "val/best_loss": best_score if best_score is not None else val.get("val/loss"),
        **{k: test.get(k) for k in TEST},
    }


def _rounded(seconds: dict[str, float | None]) -> dict[str, float | None]:
    return {k: None if v is None else round(v, 3) for k, v in seconds.items()}


def completed(
    ended: dict[str, Any],
    *,
    majority_acc: float,
    classes: dict[str, dict[str, int]],
    windows: dict[str, int],
    seconds: dict[str, float | None],
    no_test_window: list[str],
    **counts: Any,
) -> RunMetrics:
    """A completed run's metrics. `ended`: `scores`; `classes`: windows per class of each split;
    `windows`: windows of each split; `seconds`: SECONDS' figures; `no_test_window`: the classes the test
    split misses (test/auroc is then null); `counts`: best_epoch, best_checkpoint, epochs, global_step,
    train_path, params_trainable, threads, world_size."""
    m: dict[str, Any] = {
        "status": "completed",
        **ended,
        "test/majority_acc": majority_acc,
        **{f"classes/{s}/{c}": k for s, per in classes.items() for c, k in per.items()},
        **{k: counts[k] for k in ("best_epoch", "best_checkpoint", "epochs", "global_step", "train_path")},
        "params_trainable": counts["params_trainable"],
        **{f"windows/{s}": n for s, n in windows.items()},
        **_rounded({k: seconds[k] for k in SECONDS}),
        "threads": counts["threads"],
        "world_size": counts["world_size"],
    }
    return _auroc_undefined(m, no_test_window, "test window")  # type: ignore[return-value]


def _auroc_undefined(m: dict[str, Any], absent: list[str], what: str) -> dict[str, Any]:
    """`m`, test/auroc null where a class has no `what`: undefined, never torchmetrics' 0.0 for it."""
    if absent:
        m["test/auroc"] = None
        m["test/auroc_undefined"] = f"no {what} of class {', '.join(absent)}"
    return m


def interrupted(train: dict, val: dict, epochs: int, global_step: int) -> RunMetrics:
    """An interrupted run's: how far it got (every training figure of its last epoch, val loss and acc)."""
    return {  # type: ignore[return-value]
        "status": "interrupted",
        **train,
        **{k: v for k, v in val.items() if k in VAL},
        "epochs": epochs,
        "global_step": global_step,
    }


def pruned(train: dict, val: dict, epochs: int, global_step: int) -> RunMetrics:
    """A trial Optuna's pruner stopped (`lstm_cls.pruning`): how far it got, as an interrupted run's."""
    return {**interrupted(train, val, epochs, global_step), "status": "pruned"}  # type: ignore[return-value]


def derived(long: RunMetrics, ended: dict[str, Any], seconds: dict[str, float], **counts: Any) -> RunMetrics:
    """A nested-epochs run's: the longer run's metrics (its data, settings, threads...) with this run's own
    `scores`, `seconds` (fit, train, test) and `counts` (best_epoch, best_checkpoint, epochs, global_step,
    derived_from) in their place; `derived_from`, the one new key, comes last."""
    m: dict[str, Any] = {**long, **ended}
    if long.get("test/auroc") is None and "test/auroc_undefined" in long:
        m["test/auroc"] = None  # the same test split misses the same class
    m.update(_rounded(seconds))
    m.update(counts)
    return m  # type: ignore[return-value]


# evaluate's scores of a checkpoint on a whole labelled file (`<run>/evaluations/<file stem>.json`), in the
# order written: the test/ keys as in metrics.json, then `classes/<class>` (its windows) once per class
Evaluation = TypedDict(
    "Evaluation",
    {
        "ckpt_path": str,  # the model scored, resolved
        "data_path": str,  # the file scored, resolved
        "test/loss": float,
        "test/acc": float,
        "test/f1": float,
        "test/auroc": float | None,  # null where a class has no window (test/auroc_undefined says so)
        "windows": int,  # windows scored; cases, for a model of labelled sequences (as in metrics.json)
        "class_names": list[str],
        "confusion_matrix": list[list[int]],  # rows: true class, columns: predicted class
        "test/auroc_undefined": str,
    },
    total=False,
)


def evaluation(
    ckpt_path: str, data_path: str, test: dict, classes: dict[str, int], confusion: list
) -> Evaluation:
    """evaluate's scores: `test`, the model's test figures (`epoch_metrics["test"]`); `classes`, the file's
    windows per class, in the model's order; `confusion`, the confusion matrix."""
    m: dict[str, Any] = {
        "ckpt_path": ckpt_path,
        "data_path": data_path,
        **test,
        "windows": sum(classes.values()),  # every window scored has a label (predict.read, labelled=True)
        **{f"classes/{c}": k for c, k in classes.items()},
        "class_names": list(classes),
        "confusion_matrix": confusion,
    }
    return _auroc_undefined(m, [c for c, k in classes.items() if k == 0], "window")  # type: ignore[return-value]


class Unfit(ValueError):
    """A metrics.json that is not what training writes. `cause`: the error reading or parsing it, else
    None and `content` holds what it parsed to (not a JSON object, or a status that is not a word)."""

    def __init__(self, cause: Exception | None = None, content: Any = None) -> None:
        super().__init__(str(cause) if cause else "not a JSON object with a word for status")
        self.cause, self.content = cause, content


def read(run: Path) -> dict[str, Any] | None:
    """A run's metrics.json: a JSON object whose status, if any, is a word; None where there is none.
    Raises Unfit otherwise (each reader words it as its users expect)."""
    try:
        m = json.loads((run / FILE).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:  # JSON's and UTF-8's errors are ValueErrors
        raise Unfit(cause=e) from None
    if not isinstance(m, dict) or not isinstance(m.get("status", ""), str):
        raise Unfit(content=m)
    return m


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def problem(m: dict[str, Any]) -> str | None:
    """Why `read`'s metrics are not what the report needs (None: they are): the keys its status implies
    (an interrupted run writes only how far it got; a completed one every figure, some may be null) and
    numbers where numbers go. A run without status is an older completed one."""
    need = ["epochs", *(["best_epoch", *AT_END] if m.get("status", "completed") == "completed" else [])]
    missing = [k for k in need if k not in m]
    if missing:
        return f"{FILE} lacks {', '.join(missing)}"
    bad = next(
        (k for k in [*need, "fit_seconds", *OPTIONAL] if m.get(k) is not None and not is_number(m[k])), None
    )
    return f"{FILE}: {bad} is {m[bad]!r}, not a number" if bad else None
