"""The LightningModule: LSTM -> last hidden state -> Linear -> ReLU -> Linear, with its loss and metrics."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.strategies import SingleDeviceStrategy
from torch import nn
from torchmetrics import MeanMetric, MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassAUROC,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
)

from lstm_cls import UserError

LOSSES = ("ce", "bce", "mse")


class LSTMClassifier(L.LightningModule):
    """The reference model (Keras: LSTM(32) -> Dense(10, relu) -> Dense(2, softmax)) and its training.

    Hyperparameters are plain numbers and strings, so checkpoints load with `weights_only=True`.
    `loss`: "ce" cross-entropy on logits (the reference's softmax + categorical cross-entropy),
    "bce" one sigmoid output (binary only), "mse" squared error of softmax probabilities to one-hot.
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
        lr: float = 1e-3,
        loss: str = "ce",
        keras_parity: bool = False,
    ) -> None:
        super().__init__()
        # several optimizer steps per Lightning call: see training_step
        self.automatic_optimization = False
        self.first_step_at: float | None = None  # wall clock of the first training step (start-up time)
        self.seconds = {"val": 0.0, "test": 0.0}  # time spent in evaluation loops, for throughput figures
        # logger=False: hparams go to TensorBoard once, at the end, with the final metrics
        self.save_hyperparameters(logger=False)
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
        self.fc2 = nn.Linear(head, 1 if loss == "bce" else n_classes)
        if keras_parity:
            self._keras_init()
        # keyed "train_" etc.: a ModuleDict key cannot be "train" (nn.Module.train)
        self.losses = nn.ModuleDict({f"{s}_": MeanMetric() for s in ("train", "val", "test")})
        self.scores = nn.ModuleDict(
            {
                f"{s}_": MetricCollection(
                    {
                        "acc": MulticlassAccuracy(n_classes, average="micro"),
                        "f1": MulticlassF1Score(n_classes, average="macro"),
                        "auroc": MulticlassAUROC(n_classes),
                    }
                )
                for s in ("train", "val", "test")
            }
        )
        self.confusion = MulticlassConfusionMatrix(n_classes)
        self.epoch_metrics: dict[str, dict[str, float]] = {}  # last computed, per stage
        # what using the model needs (feature and class names, normalisation, window...): plain data,
        # set by train.py from the data module and stored in every checkpoint
        self.data_info: dict[str, Any] = {}

    def _keras_init(self) -> None:
        """Keras LSTM defaults: glorot-uniform kernel, orthogonal recurrent kernel, zero bias with
        forget-gate bias 1, and a single bias per gate. Dense: glorot-uniform kernel, zero bias."""
        h = self.hparams.hidden
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[batch, timesteps, features] -> logits [batch, classes] ([batch, 1] for bce)."""
        _, (h, _) = self.lstm(x)  # h: [layers * directions, batch, hidden]
        if self.hparams.bidirectional:
            last = torch.cat([h[-2], h[-1]], dim=1)  # [batch, 2 * hidden]
        else:
            last = h[-1]  # [batch, hidden]
        return self.fc2(F.relu(self.fc1(self.drop(last))))  # [batch, head] -> [batch, classes]

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Logits -> class probabilities [batch, classes], whatever the loss."""
        if self.hparams.loss == "bce":
            p1 = torch.sigmoid(logits[:, 0])
            return torch.stack([1 - p1, p1], dim=1)
        return torch.softmax(logits, dim=1)

    def loss_fn(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.hparams.loss == "ce":
            return F.cross_entropy(logits, y)
        if self.hparams.loss == "bce":
            return F.binary_cross_entropy_with_logits(logits[:, 0], y.float())
        return F.mse_loss(torch.softmax(logits, 1), F.one_hot(y, self.hparams.n_classes).float())

    def _shared_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], stage: str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss and logits of one batch; val and test update their metrics here, training per block."""
        x, y = batch
        logits = self(x)
        loss = self.loss_fn(logits, y)
        if stage != "train":
            self._update(stage, logits, y, loss)
        return loss, logits

    def _update(self, stage: str, logits: torch.Tensor, y: torch.Tensor, loss: torch.Tensor) -> None:
        # update only: computing and logging every step was measured to halve training speed
        self.losses[f"{stage}_"].update(loss.detach(), len(y))
        probs = self.probabilities(logits.detach())
        self.scores[f"{stage}_"].update(probs, y)
        if stage == "test":
            self.confusion.update(probs, y)

    def training_step(self, batches: list[tuple[torch.Tensor, torch.Tensor]], batch_idx: int) -> None:
        """One Lightning call, one optimizer step per batch of the block (`data.block` batches).

        Every step still sees `data.batch_size` windows; Lightning's per-call overhead and the metric
        updates are paid once per block instead of once per step.
        """
        if self.first_step_at is None:
            self.first_step_at = time.time()
        opt = self.optimizers()
        # Full precision on one device: Lightning's manual_backward and optimizer-step wrappers only add
        # hook calls nothing here uses, measured at ~10% of this model's step time. Step the torch
        # optimizer directly and count the step as LightningOptimizer.step does (global_step, resume).
        # Anything else (mixed precision, several devices) takes Lightning's full path.
        direct = str(self.trainer.precision) in ("32-true", "32", "64-true", "64") and isinstance(
            self.trainer.strategy, SingleDeviceStrategy
        )
        progress = self.trainer.fit_loop.epoch_loop.manual_optimization.optim_step_progress
        logits, losses = [], []
        for batch in batches:
            loss, out = self._shared_step(batch, "train")
            opt.zero_grad(set_to_none=True)
            if direct:
                loss.backward()
                progress.increment_ready()
                opt.optimizer.step()
                progress.increment_completed()
            else:
                self.manual_backward(loss)
                opt.step()
            logits.append(out.detach())
            losses.append(loss.detach() * len(out))
        losses = torch.stack(losses)
        finite = torch.isfinite(losses)
        if not finite.all():  # once per block: one sync, not one per step
            i = int((~finite).nonzero()[0])
            step = self.global_step - len(batches) + i + 1
            raise UserError(
                f"the loss became {float(losses[i])} at epoch {self.current_epoch + 1}, step {step}: "
                "training stopped; the last good checkpoint is the run's checkpoints/last.ckpt"
            )
        y = torch.cat([b[1] for b in batches])
        self._update("train", torch.cat(logits), y, losses.sum() / len(y))

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._shared_step(batch, "val")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._shared_step(batch, "test")

    def _epoch_metrics(self, stage: str) -> dict[str, float]:
        """Compute this epoch's metrics of one stage from the per-step updates, then reset them."""
        m = {f"{stage}/loss": self.losses[f"{stage}_"].compute()}
        m.update({f"{stage}/{k}": v for k, v in self.scores[f"{stage}_"].compute().items()})
        self.losses[f"{stage}_"].reset()
        self.scores[f"{stage}_"].reset()
        self.epoch_metrics[stage] = {k: float(v) for k, v in m.items()}
        return self.epoch_metrics[stage]

    def _log(self, values: dict[str, float], prog_bar: bool = False) -> None:
        self.log_dict(values, prog_bar=prog_bar)
        # every logger's x-axis: epochs counted from 1; a test after fitting sits on the last epoch
        self.log("step", float(self.current_epoch + (0 if self.trainer.testing else 1)))

    def on_validation_epoch_start(self) -> None:
        self._eval_started = time.perf_counter()

    def on_test_epoch_start(self) -> None:
        self._eval_started = time.perf_counter()

    def on_validation_epoch_end(self) -> None:
        self.seconds["val"] += time.perf_counter() - self._eval_started
        self._log(self._epoch_metrics("val"), prog_bar=True)

    def on_train_epoch_end(self) -> None:
        # runs after this epoch's validation, so the gaps compare the same epoch
        if self.losses["train_"].update_count == 0:
            # resuming from a checkpoint saved at this epoch's validation: its training was logged then
            return
        train, val = self._epoch_metrics("train"), self.epoch_metrics.get("val")
        gaps = {}
        if val is not None:
            gaps = {
                "gap/acc": train["train/acc"] - val["val/acc"],
                "gap/loss": val["val/loss"] - train["train/loss"],
            }
            self.epoch_metrics["gap"] = gaps
        self._log({**train, **gaps}, prog_bar=True)

    def on_test_epoch_end(self) -> None:
        self.seconds["test"] += time.perf_counter() - self._eval_started
        self._log(self._epoch_metrics("test"))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["data_info"] = self.data_info

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.data_info = checkpoint.get("data_info", {})

    def configure_optimizers(self) -> torch.optim.Optimizer:
        params = [p for p in self.parameters() if p.requires_grad]
        # the fused kernel: the same Adam update in one call instead of ~10 small ops per tensor, measured
        # at ~12% of this model's CPU step time; devices without one take the default implementation
        fused = all(p.device.type in ("cpu", "cuda") for p in params)
        return torch.optim.Adam(params, lr=self.hparams.lr, fused=fused)

    def summary(self) -> str:
        """Keras' model.summary() layout: layer, output shape, params; total, trainable, non-trainable."""
        rows = [
            (
                f"lstm (LSTM{', bidirectional' if self.hparams.bidirectional else ''})",
                f"(None, {self.fc1.in_features})",
                self.lstm,
            )
        ]
        rows += [("dense (Linear, relu)", f"(None, {self.fc1.out_features})", self.fc1)]
        rows += [("dense_1 (Linear)", f"(None, {self.fc2.out_features})", self.fc2)]
        line = "_" * 66
        out = [line, f"{'Layer (type)':<34}{'Output Shape':<20}{'Param #':>12}", "=" * 66]
        for name, shape, mod in rows:
            out.append(f"{name:<34}{shape:<20}{sum(p.numel() for p in mod.parameters()):>12,}")
        total = sum(p.numel() for p in self.parameters())
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
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


def load_checkpoint(path: str | Path) -> LSTMClassifier:
    """A trained model, in eval mode, with its `data_info`; plain-data checkpoints only (weights_only)."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"ckpt_path: no such file: {p}")
    ckpt = torch.load(p, map_location="cpu", weights_only=True)
    model = LSTMClassifier(**ckpt["hyper_parameters"])
    model.load_state_dict(ckpt["state_dict"])
    model.data_info = ckpt.get("data_info", {})
    return model.eval()
