"""The network as a plain `nn.Module`: LSTM -> last hidden state -> Linear -> ReLU -> Linear.

No Lightning here: `predict` and `export` load it from a checkpoint without the ~4 s Lightning import.
The LightningModule (`lstm_cls.model`) holds it as `net` and adds the loss, metrics and optimizer.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lstm_cls import UserError
from lstm_cls.checkpoints import check_data_info, load


class LSTMBackbone(nn.Module):
    """The reference network (Keras: LSTM(32) -> Dense(10, relu) -> Dense(2, softmax)).

    `keras_parity`: one bias per gate (PyTorch's second bias frozen at zero) and Keras' initialisers.
    """

    def __init__(
        self,
        n_features: int = 13,
        n_classes: int = 2,
        hidden: int = 32,
        head: int = 10,
        num_layers: int = 1,
        dropout: float = 0.0,
        bidirectional: bool = False,
        output: str = "softmax",
        keras_parity: bool = True,
    ) -> None:
        super().__init__()
        self.n_classes, self.output, self.bidirectional = n_classes, output, bidirectional
        self.lstm = nn.LSTM(
            n_features,
            hidden,
            num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,  # between LSTM layers only
            bidirectional=bidirectional,
        )
        self.drop = nn.Dropout(dropout)
        self.fc1 = nn.Linear(hidden * (2 if bidirectional else 1), head)
        self.fc2 = nn.Linear(head, 1 if output == "sigmoid" else n_classes)
        if keras_parity:
            self.keras_init()

    def keras_init(self) -> None:
        """Keras LSTM defaults: glorot-uniform kernel, orthogonal recurrent kernel, zero bias with
        forget-gate bias 1, and a single bias per gate. Dense: glorot-uniform kernel, zero bias."""
        h = self.lstm.hidden_size
        for name, p in self.lstm.named_parameters():
            if name.startswith("weight_ih"):
                nn.init.xavier_uniform_(p)  # same limit as Keras on the [in, 4h] kernel
            elif name.startswith("weight_hh"):
                nn.init.orthogonal_(p)
            elif name.startswith("bias_ih"):
                nn.init.zeros_(p)
                with torch.no_grad():
                    p[h : 2 * h] = 1.0  # gates are ordered i, f, g, o in both frameworks
            elif name.startswith("bias_hh"):
                nn.init.zeros_(p)
                p.requires_grad_(False)  # Keras has one bias per gate: keep this one at zero
        for fc in (self.fc1, self.fc2):
            nn.init.xavier_uniform_(fc.weight)
            nn.init.zeros_(fc.bias)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """[batch, timesteps, features] -> logits [batch, classes] ([batch, 1] for a sigmoid output).

        `lengths` [batch]: labelled sequences of unequal length, right-padded to `timesteps`. They are
        packed, so each case's state is the one after its own last real step (both directions of a
        bidirectional LSTM included): a prediction never depends on padding or on the other cases.
        """
        if lengths is not None:
            # lengths on the CPU, as pack_padded_sequence wants; enforce_sorted=False keeps the batch order
            x = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, (h, _) = self.lstm(x)  # h: [layers * directions, batch, hidden]
        if self.bidirectional:
            last = torch.cat([h[-2], h[-1]], dim=1)  # [batch, 2 * hidden]
        else:
            last = h[-1]  # [batch, hidden]
        return self.head(last)

    def head(self, last: torch.Tensor) -> torch.Tensor:
        """The last LSTM state [batch, hidden] -> [batch, head] -> logits [batch, classes]."""
        return self.fc2(F.relu(self.fc1(self.drop(last))))

    def forward_at(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The same logits as forward(x, lengths), without packing, for exporters that cannot pack: the top
        layer's output at each case's last real step. A unidirectional LSTM's output at a step depends on
        the steps before it only, so padding after it does not matter; a backward direction would read
        the padding first, so bidirectional models need packing."""
        out, _ = self.lstm(x)  # [batch, steps, hidden]
        return self.head(out[torch.arange(x.shape[0]), lengths - 1])  # [batch, hidden] -> logits

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Logits -> class probabilities [batch, classes], whatever the output function."""
        if self.output == "sigmoid":
            p1 = torch.sigmoid(logits[:, 0])
            return torch.stack([1 - p1, p1], dim=1)
        if self.output == "tanh":
            # tanh units in (-1, 1), trained against -1/+1: shifted to (0, 1) and normalised; the
            # class is the arg-max either way
            p = (torch.tanh(logits) + 1) / 2
            return p / p.sum(1, keepdim=True).clamp(min=1e-12)
        return torch.softmax(logits, dim=1)

    def summary(self) -> str:
        """Keras' model.summary() layout: layer, output shape, params; total, trainable, non-trainable."""
        rows = [
            (
                f"lstm (LSTM{', bidirectional' if self.bidirectional else ''})",
                f"(None, {self.fc1.in_features})",
                self.lstm,
            ),
            ("dense (Linear, relu)", f"(None, {self.fc1.out_features})", self.fc1),
            ("dense_1 (Linear)", f"(None, {self.fc2.out_features})", self.fc2),
        ]
        line = "_" * 66
        out = [line, f"{'Layer (type)':<34}{'Output Shape':<20}{'Param #':>12}", "=" * 66]
        for name, shape, mod in rows:
            out.append(f"{name:<34}{shape:<20}{sum(p.numel() for p in mod.parameters()):>12,}")
        total = sum(p.numel() for p in self.parameters())
        trainable = count_trainable(self)
        out += [
            "=" * 66,
            f"Total params: {total:,}",
            f"Trainable params: {trainable:,}",
            f"Non-trainable params: {total - trainable:,}",
            line,
        ]
        return "\n".join(out)


def count_trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def backbone_output(loss: str, output: str) -> str:
    """The network's output function: one sigmoid unit where the loss is binary cross-entropy."""
    return "sigmoid" if loss == "bce" else output


def backbone_kwargs(hparams: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's hyperparameters (the LightningModule's, flat) -> this network's arguments: the keys
    of its signature; a key a checkpoint lacks takes the signature's default (keras_parity: see below)."""
    names = inspect.signature(LSTMBackbone).parameters
    out = {k: v for k, v in hparams.items() if k in names}
    out["output"] = backbone_output(hparams.get("loss", "ce"), hparams.get("output", "softmax"))
    out.setdefault("keras_parity", False)  # a checkpoint without the key predates it: PyTorch's LSTM
    return out


def load_backbone(path: str | Path, reads: bool = True) -> tuple[LSTMBackbone, dict[str, Any]]:
    """The trained network in eval mode, and the checkpoint's `data_info`, without Lightning.

    The checkpoint's parts must agree (its data settings, hyperparameters and weights): a file whose
    parts disagree is one UserError naming what disagrees, not an IndexError from predicting. `reads`:
    a file will be read with its data settings (predict), not only its names (export)."""
    ckpt = load(path)  # guarded: a missing, corrupt or foreign file is one error line
    where = f"ckpt_path: {path}"
    info = check_data_info(ckpt, where, reads)
    net = network(ckpt, where)
    return net.eval(), info


def network(ckpt: dict[str, Any], where: str) -> LSTMBackbone:
    """The checkpoint's network, built from its hyperparameters and holding its weights; a UserError
    naming the hyperparameter or weight that does not fit."""
    hp = ckpt["hyper_parameters"]
    try:
        net = LSTMBackbone(**backbone_kwargs(hp))
    except (TypeError, ValueError, RuntimeError) as e:  # hidden=0, a string where a number goes...
        raise UserError(
            f"{where} is inconsistent: its hyper_parameters build no network ({str(e).splitlines()[0]}); "
            "it cannot be used"
        ) from None
    # the LightningModule holds the network as `net`: its keys are "net.<name>"
    weights = {k[4:]: v for k, v in ckpt["state_dict"].items() if isinstance(k, str) and k.startswith("net.")}
    expected = net.state_dict()
    missing = sorted(set(expected) - set(weights))
    extra = sorted(set(weights) - set(expected))
    if missing or extra:
        what = f"lacks net.{missing[0]}" if missing else f"has net.{extra[0]}"
        raise UserError(
            f"{where} is inconsistent: its weights do not fit its hyper_parameters (it {what}); "
            "it cannot be used"
        )
    for k, v in weights.items():
        if not isinstance(v, torch.Tensor) or v.shape != expected[k].shape:
            shape = list(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
            raise UserError(
                f"{where} is inconsistent: its weight net.{k} is {shape}, its hyper_parameters "
                f"(n_features={hp.get('n_features')}, n_classes={hp.get('n_classes')}, "
                f"hidden={hp.get('hidden')}, head={hp.get('head')}) make it {list(expected[k].shape)}; "
                "it cannot be used"
            )
    net.load_state_dict(weights)
    return net
