"""Evaluate a checkpoint on test windows.

    python -m lstm_cls.evaluate ckpt_path=... [data overrides] [output=evaluation.json]

The data overrides are those of `lstm_cls.train` (e.g. `data=weather_aus data.path=...`); the windows
and normalisation are the checkpoint's. Prints the test metrics and the confusion matrix and writes them
as JSON.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lstm_cls import UserError, config
from lstm_cls.cli import parse, run

CONF = Path(__file__).resolve().parents[1] / "conf"


def evaluate(ckpt_path: str, overrides: list[str], output: str) -> dict[str, Any]:
    out = config.check_tool("evaluate", {"ckpt_path": ckpt_path, "output": output})
    import hydra
    import lightning as L
    from hydra import compose, initialize_config_dir

    from lstm_cls.model import LSTMClassifier

    model = LSTMClassifier.from_checkpoint(ckpt_path)
    info = model.data_info
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[*overrides, "run_dir=."])
    config.check(cfg)
    keep = {k: info[k] for k in ("window", "stride", "horizon") if k in info}  # labelled sequences: none
    dm = hydra.utils.instantiate(cfg.data, **keep, stats={"mean": info["mean"], "std": info["std"]})
    dm.setup("test")
    for what in ("feature_names", "class_names"):
        got = dm.info()[what]
        if got != info[what]:
            raise UserError(
                f"the data's {what.replace('_', ' ')} {got} differ from the checkpoint's {info[what]}"
            )
    trainer = L.Trainer(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.test(model, datamodule=dm, verbose=False)
    result = {
        **model.epoch_metrics["test"],
        "windows": len(dm.sets["test"]),
        "class_names": info["class_names"],
        # rows: true class, columns: predicted class
        "confusion_matrix": model.confusion_matrix.tolist(),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "confusion_matrix"}))
    width = max(len(c) for c in info["class_names"]) + 2
    print("confusion matrix (rows: true, columns: predicted)")
    print(" " * width + "".join(f"{c:>{width}}" for c in info["class_names"]))
    for c, row in zip(info["class_names"], result["confusion_matrix"], strict=True):
        print(f"{c:<{width}}" + "".join(f"{n:>{width}}" for n in row))
    return result


def main(argv: list[str]) -> None:
    own = [a for a in argv if a.split("=", 1)[0] in ("ckpt_path", "output")]
    cfg = parse({"ckpt_path": None, "output": "evaluation.json"}, own)
    evaluate(cfg.ckpt_path, [a for a in argv if a not in own], cfg.output)


if __name__ == "__main__":
    run(main)
