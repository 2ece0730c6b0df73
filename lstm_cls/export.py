"""Export a checkpoint: `python -m lstm_cls.export ckpt_path=... format=onnx|torchscript [output=...]`.

The exported model takes RAW windows [batch, timesteps, features] (float32, the feature values as they are
in the data, columns in `feature_names` order) and returns class probabilities [batch, classes] (columns in
`class_names` order). The checkpoint's scaling is part of the graph: `(x - mean) / std`, then clamped to
[-clip, clip] when the checkpoint has a `clip`, exactly as `predict` scales a file. A model of labelled
sequences takes raw `cases` [batch, steps, features], right-padded (whatever the padding holds, the steps
after a case's length are ignored), and `lengths` [batch] (int64); the batch and the steps are dynamic.

ONNX (torch's torch.export-based exporter; inputs `windows`, or `cases` and `lengths`; output
`probabilities`) carries these metadata entries, each a JSON string:

- `data_info`: all of the checkpoint's data settings (window, stride, horizon, mean, std, clip, ...);
- `feature_names`: the input's feature columns, in order (also `data_info["feature_names"]`);
- `class_names`: the output's class columns, in order (also `data_info["class_names"]`).

TorchScript carries the same three as extra files `data_info.json`, `feature_names.json` and
`class_names.json` (read them with `torch.jit.load(path, _extra_files={"data_info.json": ""})`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lstm_cls import UserError
from lstm_cls.cli import check_tool, parse, run, usage

if TYPE_CHECKING:
    import torch

DEFAULTS: dict[str, Any] = {"ckpt_path": None, "format": "onnx", "output": None}

HELP = usage(
    "export",
    "Export a checkpoint to ONNX or TorchScript: raw feature values in (the checkpoint's scaling is built\n"
    "in), class probabilities out; feature and class names and the data settings travel in the file.",
    [
        ("ckpt_path", "(required)", "the model: outputs/runs/<run>/checkpoints/best.ckpt"),
        ("format", "onnx", "onnx or torchscript"),
        ("output", "null", "null: beside the checkpoint (best.onnx, best.torchscript.pt); or a new file"),
    ],
    ["python -m lstm_cls.export ckpt_path=outputs/runs/<run>/checkpoints/best.ckpt format=onnx"],
)

# Warnings the torch.export-based ONNX exporter (torch 2.13) prints on every export of this model, each
# about torch's own code, none about the exported graph (which the tests check against PyTorch in
# onnxruntime): silenced by message, during the export only, so that any other warning still shows.
EXPORTER_NOISE: tuple[tuple[str, type[Warning]], ...] = (
    # torch's own while_loop decomposition of nn.LSTM (what keeps the steps dynamic) calls _check_is_size
    (r"_check_is_size will be removed", FutureWarning),
    # nn.LSTM keeps a list `_flat_weights` of its parameters, which export sees re-assigned when it swaps
    # in its fake parameters; the weights are exported as the parameters they are
    (r"The tensor attributes .*_flat_weights.* were assigned during export", UserWarning),
    # torch's pytree code, inside the exporter
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning),
)


class _NoTorchvision(logging.Filter):
    """The exporter logs one warning per torchvision operator it cannot register when torchvision is not
    installed; this model uses none of them."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("torchvision is not installed")


@contextlib.contextmanager
def quiet_exporter() -> Iterator[None]:
    """Around one ONNX export: the EXPORTER_NOISE warnings and the torchvision log lines are not shown."""
    registry_log = logging.getLogger("torch.onnx._internal.exporter._registration")
    no_torchvision = _NoTorchvision()
    with warnings.catch_warnings():
        for message, category in EXPORTER_NOISE:
            warnings.filterwarnings("ignore", message=message, category=category)
        registry_log.addFilter(no_torchvision)
        try:
            yield
        finally:
            registry_log.removeFilter(no_torchvision)


def raw_input_model(model: torch.nn.Module, info: dict[str, Any]) -> torch.nn.Module:
    """`model` (an LSTMBackbone) behind the checkpoint's scaling: raw windows (or raw cases and their
    lengths) in, class probabilities out. What `export` writes; in eval mode."""
    import torch

    mean = torch.tensor(info["mean"], dtype=torch.float32)
    std = torch.tensor(info["std"], dtype=torch.float32)
    clip = info.get("clip")  # absent in checkpoints from before data.clip: no clipping
    clip = None if clip is None else float(clip)

    class RawProbabilities(torch.nn.Module):
        """Raw windows [batch, timesteps, features] -> class probabilities [batch, classes]; for labelled
        sequences, raw right-padded cases and their lengths [batch] (int64)."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model
            # buffers, not parameters: saved in the exported file as constants, never trained
            self.register_buffer("mean", mean)
            self.register_buffer("std", std)

        def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
            x = (x - self.mean) / self.std  # as data.scaling.scale_: the same float32 results
            if clip is not None:
                x = x.clamp(-clip, clip)
            # forward_at, not packing: neither exporter can pack (bidirectional sequence models are refused)
            logits = self.model(x) if lengths is None else self.model.forward_at(x, lengths)
            return self.model.probabilities(logits)

    return RawProbabilities().eval()


def export(cfg: Any) -> Path:
    """Write the checkpoint `cfg.ckpt_path` as `cfg.format` to `cfg.output` (or beside the checkpoint)."""
    out = check_tool("export", cfg)
    import torch

    from lstm_cls.backbone import load_backbone

    model, info = load_backbone(cfg.ckpt_path, reads=False)  # no file is read: stride is not needed
    sequences = info.get("kind") == "sequences"
    if sequences and model.bidirectional:
        raise UserError(
            "export of a bidirectional model of labelled sequences needs packing, which ONNX lacks"
        )
    out.parent.mkdir(parents=True, exist_ok=True)  # output=exports/model.onnx into a new folder
    wrapper = raw_input_model(model, info)
    n_features = len(info["feature_names"])
    # an example batch of 2 (export specialises a dimension whose example size is 0 or 1); the values do
    # not matter, only shapes and dtypes: the batch (and a sequence's steps) stay dynamic
    if sequences:
        example: tuple[torch.Tensor, ...] = (torch.randn(2, 3, n_features), torch.tensor([3, 2]))
    else:
        example = (torch.randn(2, info["window"], n_features),)
    files = {
        "data_info": json.dumps(info),
        "feature_names": json.dumps(info["feature_names"]),
        "class_names": json.dumps(info["class_names"]),
    }
    if cfg.format == "onnx":
        export_onnx(wrapper, example, out, files, sequences)
    else:
        with torch.no_grad():  # a plain nn.Module: no Lightning attribute to work around
            traced = torch.jit.trace(wrapper, example)  # (a sequence model: its lengths input too)
        torch.jit.save(traced, str(out), _extra_files={f"{k}.json": v for k, v in files.items()})
    print(f"wrote {out}")
    return out


def export_onnx(
    wrapper: torch.nn.Module,
    example: tuple[torch.Tensor, ...],
    out: Path,
    metadata: dict[str, str],
    sequences: bool,
) -> None:
    """torch.onnx.export(dynamo=True), torch's recommended exporter, with a dynamic batch (and steps)."""
    import torch
    from torch.export import Dim

    batch = Dim("batch")
    if sequences:
        names = ["cases", "lengths"]
        # lengths' batch is the cases' batch; a second name for it would only draw a warning
        shapes: tuple[dict[int, Any], ...] = ({0: batch, 1: Dim("steps")}, {0: Dim.DYNAMIC})
    else:
        names, shapes = ["windows"], ({0: batch},)
    # torch caches the kernel an op dispatches to: after an earlier export in this process, nn.LSTM would
    # run its plain decomposition, which fixes the steps, instead of the exporter's while_loop one
    # (a private name: should torch rename it, this does nothing and the check below refuses a fixed steps)
    getattr(torch.ops.aten.lstm.input, "_dispatch_cache", {}).clear()
    with quiet_exporter():
        program = torch.onnx.export(
            wrapper,
            example,
            dynamo=True,
            dynamic_shapes=shapes,
            input_names=names,
            output_names=["probabilities"],
            verbose=False,  # no progress lines on stdout
        )
    assert program is not None  # dynamo=True always returns the program
    graph = program.model.graph
    # a dimension is an int where the graph fixed it, a symbol where it is dynamic
    fixed = [f"{i.name}'s batch" for i in graph.inputs if isinstance(i.shape[0], int)]
    if sequences and isinstance(graph.inputs[0].shape[1], int):
        fixed.append("cases' steps")
    if fixed:  # a torch change that would make the file fail on other shapes: refuse to write it
        raise RuntimeError(f"the ONNX exporter fixed the size of {fixed}; expected them dynamic")
    program.model.metadata_props.update(metadata)
    program.save(str(out), external_data=False)  # one file: the weights are small


def main(argv: list[str]) -> None:
    export(parse(DEFAULTS, argv))


if __name__ == "__main__":
    run(main, HELP)
