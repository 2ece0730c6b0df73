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

    def flat(split: str) -> tuple[np.ndarray, np.ndarray]:
        ws = dm.sets[split]
        x, y = ws[list(range(len(ws)))]  # [windows, timesteps, features]: fine at baseline sizes
        return x.reshape(len(x), -1).numpy(), y.numpy()

    x_train, y_train = flat("train")
    x_test, y_test = flat("test")
    majority = np.bincount(y_train).argmax()
    logreg = LogisticRegression(max_iter=2000).fit(x_train, y_train)
    out: dict[str, Any] = {}
    for name, pred in (("majority", np.full_like(y_test, majority)), ("logreg", logreg.predict(x_test))):
        out[f"{name}/acc"] = float(accuracy_score(y_test, pred))
        out[f"{name}/f1"] = float(f1_score(y_test, pred, average="macro", labels=range(len(dm.class_names))))
    out["logreg/train_acc"] = float(logreg.score(x_train, y_train))
    out.update({f"windows/{s}": len(w) for s, w in dm.sets.items()})
    Path(cfg.run_dir).mkdir(parents=True, exist_ok=True)
    write_json_atomic(Path(cfg.run_dir) / "baselines.json", out)
    print(f"{'test windows':<24}{len(y_test):>10}")
    for name in ("majority", "logreg"):
        print(f"{name:<24}acc {out[f'{name}/acc']:.4f}   macro F1 {out[f'{name}/f1']:.4f}")
    return out


@hydra.main(version_base="1.3", config_path="../conf", config_name="baselines")
def main(cfg: DictConfig) -> None:
    refuse(baselines, cfg)


if __name__ == "__main__":
    cli(main)
