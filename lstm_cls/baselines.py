"""Baselines on exactly the LSTM's windows: `python -m lstm_cls.baselines [the same data overrides]`.

Majority class, and a logistic regression (scikit-learn) on the flattened, normalised training windows,
both scored on the same test windows as the LSTM. Writes `baselines.json` in its run directory.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hydra
from omegaconf import DictConfig

from lstm_cls import config
from lstm_cls.checkpoints import write_json_atomic
from lstm_cls.entry import cli, run_task

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)


def padded(x: np.ndarray, lengths: np.ndarray | None, longest: int, centre: np.ndarray | None) -> np.ndarray:
    """Cases [cases, steps, features] padded (with 0) or cut to `longest` steps; with `centre` [features],
    every step past a case's own length holds it instead. `lengths` None: windows, all of one length."""
    import numpy as np

    out = np.pad(x, ((0, 0), (0, max(0, longest - x.shape[1])), (0, 0)))[:, :longest].copy()
    if centre is not None and lengths is not None:
        out[np.arange(longest)[None, :] >= lengths[:, None]] = centre
    return out


def baselines(cfg: DictConfig) -> dict[str, Any]:
    config.check(cfg)
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score

    dm = hydra.utils.instantiate(cfg.data)
    dm.setup("fit")

    def rows(split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        ws = dm.sets[split]
        batch = ws[list(range(len(ws)))]  # x [rows, timesteps, features], y (, lengths): fine at these sizes
        return batch[0].numpy(), batch[1].numpy(), batch[2].numpy() if len(batch) > 2 else None

    x_train, y_train, len_train = rows("train")
    x_test, y_test, len_test = rows("test")
    # labelled sequences of unequal length: test cases padded or cut to the training cases' length, which the
    # baselines' fixed inputs need. The padding is read as data here: it is the training centre, which
    # scaling maps to 0; unscaled (data.scale=none), each channel's training mean, never a raw 0
    longest = x_train.shape[1]
    centre = None
    if len_train is not None and getattr(dm, "scale", None) == "none":
        real = np.arange(longest)[None, :] < len_train[:, None]  # [cases, timesteps]: a case's own steps
        centre = x_train[real].mean(axis=0)  # [features]: over every real training step
    x_train = padded(x_train, len_train, longest, centre)
    x_test = padded(x_test, len_test, longest, centre)
    majority = np.bincount(y_train).argmax()
    logreg = LogisticRegression(max_iter=2000).fit(x_train.reshape(len(x_train), -1), y_train)
    predictions = {
        "majority": np.full_like(y_test, majority),
        "logreg": logreg.predict(x_test.reshape(len(x_test), -1)),
    }
    out: dict[str, Any] = {
        "logreg/train_acc": float(logreg.score(x_train.reshape(len(x_train), -1), y_train))
    }
    # MiniRocket (aeon): random convolutions and a ridge classifier, the field's fast strong baseline.
    # It wants [cases, channels, timesteps] of equal length (sequences padded as above) and at least 9
    # timesteps
    if longest < 9:
        print(f"minirocket: skipped, {longest} timesteps per row; MiniRocket needs at least 9")
    else:
        from aeon.classification.convolution_based import MiniRocketClassifier

        rocket = MiniRocketClassifier(random_state=cfg.seed)
        rocket.fit(x_train.transpose(0, 2, 1), y_train)
        predictions["minirocket"] = rocket.predict(x_test.transpose(0, 2, 1))
    for name, pred in predictions.items():
        out[f"{name}/acc"] = float(accuracy_score(y_test, pred))
        out[f"{name}/f1"] = float(f1_score(y_test, pred, average="macro", labels=range(len(dm.class_names))))
    out.update({f"windows/{s}": len(w) for s, w in dm.sets.items()})
    Path(cfg.run_dir).mkdir(parents=True, exist_ok=True)
    write_json_atomic(Path(cfg.run_dir) / "baselines.json", out)
    print(f"{'test windows':<24}{len(y_test):>10}")
    for name in predictions:
        print(f"{name:<24}acc {out[f'{name}/acc']:.4f}   macro F1 {out[f'{name}/f1']:.4f}")
    print(f"wrote {Path(cfg.run_dir) / 'baselines.json'}")
    return out


@hydra.main(version_base="1.3", config_path="../conf", config_name="baselines")
def main(cfg: DictConfig) -> None:
    run_task(baselines, cfg)


if __name__ == "__main__":
    cli(main, "baselines")
