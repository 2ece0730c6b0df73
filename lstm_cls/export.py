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
    if info.get("kind") == "sequences":
        raise UserError("export of a model trained on labelled sequences (data=uea) is not supported yet")
    out.parent.mkdir(parents=True, exist_ok=True)  # output=exports/model.onnx into a new folder

    class Probabilities(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(
            self, x: torch.Tensor
        ) -> torch.Tensor:  # [batch, timesteps, features] -> [batch, classes]
            return self.model.probabilities(self.model(x))

    wrapper = Probabilities().eval()
    # batch 1, as the ONNX exporter advises for LSTMs; the batch axis stays dynamic
    example = torch.randn(1, info["window"], len(info["feature_names"]))
    meta = json.dumps(info)
    if cfg.format == "onnx":
        import onnx

        torch.onnx.export(
            wrapper,
            (example,),
            str(out),
            input_names=["windows"],
            output_names=["probabilities"],
            dynamic_axes={"windows": {0: "batch"}, "probabilities": {0: "batch"}},
            dynamo=False,
        )
        proto = onnx.load(str(out))
        onnx.helper.set_model_props(proto, {"data_info": meta})
        onnx.save(proto, str(out))
    else:
        with torch.no_grad():  # a plain nn.Module: no Lightning attribute to work around
            traced = torch.jit.trace(wrapper, example)
        torch.jit.save(traced, str(out), _extra_files={"data_info.json": meta})
    print(f"wrote {out}")
    return out


def main(argv: list[str]) -> None:
    export(parse({"ckpt_path": None, "format": "onnx", "output": None}, argv))


if __name__ == "__main__":
    run(main)
