"""Baselines on exactly the LSTM's windows: `python -m lstm_cls.baselines [the same data overrides]`.

Majority class, and a logistic regression (scikit-learn) on the flattened, normalised training windows,
both scored on the same test windows as the LSTM. Writes `baselines.json` in its run directory.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from lstm_cls import config
from lstm_cls.checkpoints import write_json_atomic
from lstm_cls.train import cli, refuse

log = logging.getLogger(__name__)


def baselines(cfg: DictConfig) -> dict[str, Any]:
    config.check(cfg)
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score

    dm = hydra.utils.instantiate(cfg.data)
    dm.setup("fit")

    def rows(split: str) -> tuple[np.ndarray, np.ndarray]:
        ws = dm.sets[split]
        batch = ws[list(range(len(ws)))]  # x [rows, timesteps, features], y (, lengths): fine at these sizes
        return batch[0].numpy(), batch[1].numpy()

    x_train, y_train = rows("train")
    x_test, y_test = rows("test")
    # labelled sequences of unequal length: test cases zero-padded (zero is the training mean after
    # normalisation) or cut to the training cases' length, which the baselines' fixed inputs need
    longest = x_train.shape[1]
    x_test = np.pad(x_test, ((0, 0), (0, max(0, longest - x_test.shape[1])), (0, 0)))[:, :longest]
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
    # It wants [cases, channels, timesteps] of equal length (sequences are zero-padded, zero being the
    # training mean after normalisation) and at least 9 timesteps
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
    refuse(baselines, cfg)


if __name__ == "__main__":
    cli(main)
