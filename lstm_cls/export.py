"""Export a checkpoint: `python -m lstm_cls.export ckpt_path=... format=onnx|torchscript [output=...]`.

The exported model takes normalised windows [batch, timesteps, features] and returns class
probabilities [batch, classes]. The checkpoint's data settings (feature and class names, normalisation
statistics, window) travel with it: ONNX metadata `data_info`, TorchScript extra file `data_info.json`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lstm_cls import UserError, config
from lstm_cls.cli import parse, run


def export(cfg: Any) -> Path:
    out = config.check_tool("export", cfg)
    ckpt_path = cfg.ckpt_path
    import torch

    from lstm_cls.backbone import load_backbone

    model, info = load_backbone(ckpt_path)
    sequences = info.get("kind") == "sequences"
    if sequences and model.bidirectional:
        raise UserError(
            "export of a bidirectional model of labelled sequences needs packing, which ONNX lacks"
        )
    out.parent.mkdir(parents=True, exist_ok=True)  # output=exports/model.onnx into a new folder

    class Probabilities(torch.nn.Module):
        """Normalised windows [batch, timesteps, features] -> class probabilities [batch, classes]; for
        labelled sequences, right-padded cases and their lengths [batch] (int64)."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
            logits = self.model(x) if lengths is None else self.model.forward_at(x, lengths)
            return self.model.probabilities(logits)

    wrapper = Probabilities().eval()
    # batch 1, as the ONNX exporter advises for LSTMs; the batch (and a sequence's length) axes stay dynamic
    steps = info["max_length"] if sequences else info["window"]
    example: tuple[torch.Tensor, ...] = (torch.randn(1, steps, len(info["feature_names"])),)
    names, axes = ["windows"], {"windows": {0: "batch"}, "probabilities": {0: "batch"}}
    if sequences:
        example += (torch.tensor([steps]),)
        names, axes = ["cases", "lengths"], {"cases": {0: "batch", 1: "steps"}, "lengths": {0: "batch"}}
        axes["probabilities"] = {0: "batch"}
    meta = json.dumps(info)
    if cfg.format == "onnx":
        import onnx

        torch.onnx.export(
            wrapper,
            example,
            str(out),
            input_names=names,
            output_names=["probabilities"],
            dynamic_axes=axes,
            dynamo=False,
        )
        proto = onnx.load(str(out))
        onnx.helper.set_model_props(proto, {"data_info": meta})
        onnx.save(proto, str(out))
    else:
        with torch.no_grad():  # a plain nn.Module: no Lightning attribute to work around
            traced = torch.jit.trace(wrapper, example)  # (a sequence model: its lengths input too)
        torch.jit.save(traced, str(out), _extra_files={"data_info.json": meta})
    print(f"wrote {out}")
    return out


def main(argv: list[str]) -> None:
    export(parse({"ckpt_path": None, "format": "onnx", "output": None}, argv))


if __name__ == "__main__":
    run(main)
