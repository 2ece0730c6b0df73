"""The LightningModule: the network (`backbone.LSTMBackbone`), its loss, metrics, optimizer and steps.

Two training paths share this module (`lstm_cls.fast_path` picks one per run):
- the block path (manual optimization): one `training_step` gets `data.block` batches and takes one
  optimizer step per batch, so Lightning's per-call overhead is paid once per block;
- Lightning's standard path (automatic optimization): one batch per `training_step`, Lightning steps.
Both see the same batches in the same order and take the same optimizer steps.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.utilities.types import OptimizerLRScheduler
from torch import nn
from torchmetrics import MeanMetric, Metric, MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassAUROC,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
)

from lstm_cls import UserError
from lstm_cls.backbone import LSTMBackbone, backbone_output
from lstm_cls.checkpoints import load

# x [batch, timesteps, features], y [batch], and for labelled sequences lengths [batch]
Batch = tuple[torch.Tensor, ...]


class ClassCounts(Metric):
    """How many targets of each class a stage saw this epoch (summed over processes under DDP): AUROC is
    undefined for a class without any, and torchmetrics would average a 0.0 in for it."""

    full_state_update = False

    def __init__(self, n_classes: int) -> None:
        super().__init__()
        self.n_classes = n_classes
        self.add_state("counts", default=torch.zeros(n_classes, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, target: torch.Tensor) -> None:
        self.counts += torch.bincount(target, minlength=self.n_classes)

    def compute(self) -> torch.Tensor:
        return self.counts


class LSTMClassifier(L.LightningModule):
    """Loss, metrics, optimizer and scheduler around `LSTMBackbone`.

    `net`: the network's own arguments (`n_features`, `hidden`, `head`, `num_layers`, `dropout`,
    `bidirectional`, `keras_parity`: `LSTMBackbone`'s signature, declared there only), passed on to it.
    Hyperparameters are plain numbers, strings and lists, so checkpoints load with `weights_only=True`.
    `loss`: "ce" cross-entropy on logits (the reference's softmax + categorical cross-entropy),
    "bce" one sigmoid output (binary only), "mse" squared error of the outputs (`output`: softmax
    probabilities against one-hot, or tanh against -1/+1). `class_weights`: one weight per class
    (train.py turns "balanced" into the list), or None.
    """

    def __init__(
        self,
        n_classes: int = 2,
        lr: float = 1e-3,
        loss: str = "ce",
        output: str = "softmax",
        optimizer: str = "adam",
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        scheduler: str = "none",
        step_size: int = 30,
        gamma: float = 0.1,
        patience: int = 10,
        class_weights: list[float] | str | None = None,
        **net: Any,
    ) -> None:
        super().__init__()
        if class_weights == "balanced":
            raise UserError("class_weights=balanced needs the training labels: train.py turns it into a list")
        if class_weights == "none":  # the config's word for None
            class_weights = None
        # logger=False: the run's settings go to TensorBoard once, at the end, with the final metrics, and to
        # other trackers as it starts (lstm_cls.trackers); `net`'s keys are saved flat beside the others
        # (Lightning collects **kwargs), as checkpoints have always held them
        self.save_hyperparameters(logger=False)
        self.net = LSTMBackbone(n_classes=n_classes, output=backbone_output(loss, output), **net)
        weights = torch.tensor(class_weights if class_weights else [1.0] * n_classes)
        self.register_buffer("class_weight", weights, persistent=False)
        # set by train.py for the block path (Trainer(gradient_clip_val=...) is Lightning's for its own)
        self.clip: tuple[float | None, str | None] = (None, None)
        self.direct = False  # the block path steps the torch optimizer itself: see on_train_start
        self.first_step_at: float | None = None  # wall clock of the first training step (start-up time)
        self.seconds = {"val": 0.0, "test": 0.0}  # time spent in evaluation loops, for throughput figures
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
        self.support = nn.ModuleDict({f"{s}_": ClassCounts(n_classes) for s in ("train", "val", "test")})
        self.confusion = MulticlassConfusionMatrix(n_classes)
        self.epoch_metrics: dict[str, dict[str, float]] = {}  # last computed, per stage
        self.confusion_matrix: torch.Tensor | None = None  # of the last test
        self.val_epoch = -1  # the last epoch whose validation ran (the gap compares the same epoch)
        # what using the model needs (feature and class names, normalisation, window...): plain data,
        # set by train.py from the data module and stored in every checkpoint
        self.data_info: dict[str, Any] = {}

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """[batch, timesteps, features] -> logits [batch, classes] ([batch, 1] for bce); `lengths`: see
        LSTMBackbone.forward (labelled sequences of unequal length)."""
        return self.net(x, lengths)

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return self.net.probabilities(logits)

    def summary(self) -> str:
        return self.net.summary()

    def loss_fn(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The batch's loss: a class-weighted mean (sum of w[y] * loss over the sum of w[y])."""
        hp, w = self.hparams, self.class_weight
        if hp.loss == "ce":
            return F.cross_entropy(logits, y, weight=w if hp.class_weights else None)
        if hp.loss == "bce":
            per = F.binary_cross_entropy_with_logits(logits[:, 0], y.float(), reduction="none")
        else:  # mse against one-hot (softmax) or -1/+1 (tanh) targets, averaged over classes
            target = F.one_hot(y, hp.n_classes).float()
            if hp.output == "tanh":
                out, target = torch.tanh(logits), 2 * target - 1
            else:
                out = torch.softmax(logits, 1)
            per = F.mse_loss(out, target, reduction="none").mean(1)
        if not hp.class_weights:
            return per.mean()
        wy = w[y]
        return (per * wy).sum() / wy.sum()

    def _shared_step(self, batch: Batch, stage: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss and logits of one batch; val and test update their metrics here, the block path per block.

        A batch is (x, y) of windows, or (x, y, lengths) of labelled sequences."""
        x, y = batch[0], batch[1]
        logits = self(x, batch[2] if len(batch) > 2 else None)
        loss = self.loss_fn(logits, y)
        if stage != "train" or self.automatic_optimization:
            self._update(stage, logits, y, loss)
        return loss, logits

    def _update(self, stage: str, logits: torch.Tensor, y: torch.Tensor, loss: torch.Tensor) -> None:
        # update only: computing and logging every step was measured to halve training speed
        self.losses[f"{stage}_"].update(loss.detach(), len(y))
        probs = self.probabilities(logits.detach())
        self.scores[f"{stage}_"].update(probs, y)
        self.support[f"{stage}_"].update(y)
        if stage == "test":
            self.confusion.update(probs, y)

    def training_step(self, batch: Batch | list[Batch], batch_idx: int) -> torch.Tensor | None:
        if self.first_step_at is None:
            self.first_step_at = time.time()
        if self.automatic_optimization:  # Lightning's standard path: Lightning does the rest
            loss, _ = self._shared_step(batch, "train")
            self._stop_if_not_finite(loss.detach()[None], 1)
            return loss
        self._block_step(batch)
        if batch_idx + 1 == self.trainer.num_training_batches:
            self._step_scheduler(plateau=False)  # where Lightning steps it: after the epoch's last batch
        return None

    def _block_step(self, batches: list[Batch]) -> None:
        """The block path: one optimizer step per batch of the block, exactly as Lightning would take them.

        Every step still sees `data.batch_size` windows; Lightning's per-call overhead and the metric
        updates are paid once per block instead of once per step.
        """
        opt = self.optimizers()
        clip_val, clip_algorithm = self.clip
        logits, losses = [], []
        for batch in batches:
            loss, out = self._shared_step(batch, "train")
            opt.zero_grad(set_to_none=True)
            if self.direct:
                # full precision, one device, no callback hooking the step: Lightning's wrappers would only
                # add hook calls (measured at ~10% of this model's step time), so step the torch optimizer
                # and count the step as LightningOptimizer.step does (global_step, resume, max_steps)
                loss.backward()
                if clip_val:
                    self.clip_gradients(opt, clip_val, clip_algorithm)
                self._step_progress.increment_ready()
                opt.optimizer.step()
                self._step_progress.increment_completed()
            else:
                # Lightning's calls: on_before_backward / on_after_backward / on_before_optimizer_step fire
                # once per step, precision plugins and strategies apply; clipping in on_before_optimizer_step
                self.manual_backward(loss)
                opt.step()
            logits.append(out.detach())
            losses.append(loss.detach() * len(out))
        losses = torch.stack(losses)
        self._stop_if_not_finite(losses, len(batches))
        y = torch.cat([b[1] for b in batches])
        self._update("train", torch.cat(logits), y, losses.sum() / len(y))

    def _stop_if_not_finite(self, losses: torch.Tensor, steps: int) -> None:
        finite = torch.isfinite(losses)
        if not finite.all():  # once per block: one sync, not one per step
            i = int((~finite).nonzero()[0])
            step = self.global_step - steps + i + 1
            last = [Path(c.dirpath) / "last.ckpt" for c in self.trainer.checkpoint_callbacks if c.dirpath]
            kept = next((p for p in last if p.is_file()), None)
            raise UserError(
                f"the loss became {float(losses[i])} at epoch {self.current_epoch + 1}, step {step}: "
                "training stopped; "
                + (f"the last good checkpoint is {kept}" if kept else "no checkpoint was saved before it")
            )

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        # the block path's clipping when it steps through Lightning: where Lightning's automatic path clips,
        # after every callback's on_before_optimizer_step (the direct step clips in _block_step)
        if not self.automatic_optimization and self.clip[0]:
            self.clip_gradients(optimizer, *self.clip)

    def on_train_start(self) -> None:
        from lstm_cls.fast_path import steps_directly

        # a resume from a checkpoint saved mid-epoch (Ctrl-C, SIGTERM) goes on inside that epoch: Lightning
        # then skips on_train_epoch_start, and the epoch's rate is the restored optimizer's
        self.epoch_lr = self.optimizers().param_groups[0]["lr"]

        self.direct = not self.automatic_optimization and steps_directly(self.trainer)
        if self.direct:
            # what LightningOptimizer.step would increment (a test pins this attribute's meaning)
            loop = self.trainer.fit_loop.epoch_loop.manual_optimization
            self._step_progress = loop.optim_step_progress

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._shared_step(batch, "val")

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._shared_step(batch, "test")

    def _epoch_metrics(self, stage: str) -> dict[str, float]:
        """Compute this epoch's metrics of one stage from the per-step updates, then reset them."""
        m = {f"{stage}/loss": self.losses[f"{stage}_"].compute()}
        m.update({f"{stage}/{k}": v for k, v in self.scores[f"{stage}_"].compute().items()})
        if (self.support[f"{stage}_"].compute() == 0).any():
            # a class without a window in this split: its AUROC is undefined (metrics.json says null), so
            # none is logged, rather than torchmetrics' macro average with a 0.0 for that class
            del m[f"{stage}/auroc"]
        self.losses[f"{stage}_"].reset()
        self.scores[f"{stage}_"].reset()
        self.support[f"{stage}_"].reset()
        self.epoch_metrics[stage] = {k: float(v) for k, v in m.items()}
        return self.epoch_metrics[stage]

    def _log(self, values: dict[str, float], prog_bar: bool = False) -> None:
        # torchmetrics already reduced them over processes (DDP): sync_dist averages equal values, and
        # says so to Lightning, which would warn otherwise
        self.log_dict(values, prog_bar=prog_bar, sync_dist=True)
        # every logger's x-axis: epochs counted from 1; a test after fitting sits on the last epoch
        self.log("step", float(self.current_epoch + (0 if self.trainer.testing else 1)), sync_dist=True)

    def on_validation_epoch_start(self) -> None:
        self._eval_started = time.perf_counter()

    def on_test_epoch_start(self) -> None:
        self._eval_started = time.perf_counter()

    def on_validation_epoch_end(self) -> None:
        self.seconds["val"] += time.perf_counter() - self._eval_started
        if self.losses["val_"].update_count == 0:  # limit_val_batches=0: nothing to report
            return
        self.val_epoch = self.current_epoch
        self._log(self._epoch_metrics("val"), prog_bar=True)

    def on_train_epoch_end(self) -> None:
        # runs after this epoch's validation, so the gaps compare the same epoch
        if self.losses["train_"].update_count == 0:
            # resuming from a checkpoint saved at this epoch's validation: its training was logged then
            return
        train = {**self._epoch_metrics("train"), "lr": self.epoch_lr}
        gaps = {}
        val = self.epoch_metrics.get("val")
        if val is not None and self.val_epoch == self.current_epoch:
            gaps = {
                "gap/acc": train["train/acc"] - val["val/acc"],
                "gap/loss": val["val/loss"] - train["train/loss"],
            }
            self.epoch_metrics["gap"] = gaps
        # how large the weights grew this epoch (what weight decay holds back), in both paths alike: off the
        # progress bar, into every logger beside the epoch's other metrics
        self.log_dict(self.weight_norms(), sync_dist=True)
        self._log({**train, **gaps}, prog_bar=True)
        self._weight_histograms()
        if not self.automatic_optimization:
            self._step_scheduler(plateau=True)

    def weight_norms(self) -> dict[str, float]:
        """L2 norm of each layer's weights: `norm/lstm` (every `weight_*` matrix of the LSTM, all layers and
        directions together: the square root of their summed squares), `norm/fc1`, `norm/fc2`.

        Biases are left out: these norms follow the weight matrices, which weight decay shrinks and
        memorising inflates; keras_parity's forget-gate biases start at 1 and would add an offset that hides
        how much the matrices moved.
        """
        net = self.net
        layers = {
            "lstm": [p for name, p in net.lstm.named_parameters() if name.startswith("weight_")],
            "fc1": [net.fc1.weight],
            "fc2": [net.fc2.weight],
        }
        # float64 sums: one small reduction per tensor, once an epoch
        return {
            f"norm/{k}": float(torch.stack([p.detach().double().square().sum() for p in ps]).sum().sqrt())
            for k, ps in layers.items()
        }

    def _weight_histograms(self) -> None:
        """Every trainable tensor of the network as a TensorBoard histogram, once an epoch, at the epoch
        counted from 1 (the scalars' x-axis); only TensorBoard loggers draw histograms.

        64 equal buckets between the tensor's min and max, counted by torch and written raw: TensorBoard's
        `add_histogram` (numpy, ~1,500 exponential buckets) took ~12 ms an epoch for the reference model,
        as much as training a small one, and filled the events file."""
        from lightning.pytorch.loggers import TensorBoardLogger

        writers = [lg.experiment for lg in self.trainer.loggers if isinstance(lg, TensorBoardLogger)]
        if not writers:
            return
        epoch = self.current_epoch + 1
        for name, p in self.net.named_parameters():
            if not p.requires_grad:  # keras_parity's frozen zero bias would be one bar at 0 forever
                continue
            # counted on the CPU: CUDA's histc has no deterministic kernel (trainer.deterministic=true
            # refuses it), and a few thousand weights once an epoch cost nothing to copy
            v = p.detach().float().flatten().cpu()
            lo, hi = v.min().item(), v.max().item()
            top = hi if hi > lo else lo + 1e-12  # one value: one bucket
            counts = torch.histc(v, bins=64, min=lo, max=top).tolist()
            limits = torch.linspace(lo, top, 65)[1:].tolist()  # each bucket's right edge
            stats = (lo, hi, v.numel(), v.sum().item(), (v * v).sum().item(), limits, counts)
            for writer in writers:
                writer.add_histogram_raw(f"weights/{name}", *stats, global_step=epoch)

    def on_train_epoch_start(self) -> None:
        self.epoch_lr = self.optimizers().param_groups[0]["lr"]  # the rate this epoch trains with

    def _step_scheduler(self, plateau: bool) -> None:
        """The block path steps the scheduler itself, once per epoch, where Lightning's automatic path
        does: after the epoch's last batch, or for a plateau scheduler after on_train_epoch_end, on the
        latest `val/loss` (none yet: no step)."""
        sch = self.lr_schedulers()
        if sch is None or isinstance(sch, torch.optim.lr_scheduler.ReduceLROnPlateau) != plateau:
            return
        if not plateau:
            sch.step()
        elif (val_loss := self.trainer.callback_metrics.get("val/loss")) is not None:
            sch.step(float(val_loss))

    def on_test_epoch_end(self) -> None:
        self.seconds["test"] += time.perf_counter() - self._eval_started
        self._log(self._epoch_metrics("test"))
        # computed on every process (under DDP, compute() gathers from all): rows true, columns predicted
        self.confusion_matrix = self.confusion.compute()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        from lstm_cls import __version__

        checkpoint["data_info"] = self.data_info
        checkpoint["lstm_cls_version"] = __version__
        # which path took the steps: the two count their progress apart, so a resume must take the same one
        checkpoint["train_path"] = "standard" if self.automatic_optimization else "block"
        # the next epoch's shuffling (and dropout) draws from torch's global generator: a resumed run must
        # draw what the uninterrupted one would have (a tensor: still loads with weights_only=True)
        checkpoint["torch_rng_state"] = torch.get_rng_state()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.data_info = checkpoint.get("data_info", {})
        if "torch_rng_state" in checkpoint and self.trainer.state.fn == "fit":  # resuming, not testing
            torch.set_rng_state(checkpoint["torch_rng_state"])

    def configure_optimizers(self) -> OptimizerLRScheduler:
        hp = self.hparams
        params = [p for p in self.parameters() if p.requires_grad]
        # the fused kernel: the same update in one call instead of ~10 small ops per tensor, measured at
        # ~12% of this model's CPU step time (Adam); devices without one take the default implementation
        fused = all(p.device.type in ("cpu", "cuda") for p in params)
        common = {"lr": hp.lr, "weight_decay": hp.weight_decay, "fused": fused}
        if hp.optimizer == "adamw":
            opt = torch.optim.AdamW(params, **common)
        elif hp.optimizer == "sgd":
            opt = torch.optim.SGD(params, momentum=hp.momentum, **common)
        else:
            opt = torch.optim.Adam(params, **common)
        if hp.scheduler == "none":
            return opt
        if hp.scheduler == "cosine":
            sch = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, self.trainer.max_epochs))
        elif hp.scheduler == "step":
            sch = torch.optim.lr_scheduler.StepLR(opt, step_size=hp.step_size, gamma=hp.gamma)
        else:
            sch = torch.optim.lr_scheduler.ReduceLROnPlateau(
                opt, mode="min", factor=hp.gamma, patience=hp.patience
            )
        if not self.automatic_optimization:
            return {"optimizer": opt, "lr_scheduler": sch}  # stepped in _step_scheduler
        # Lightning steps it once per epoch; strict=False: an epoch without validation skips the plateau
        config: dict[str, Any] = {"scheduler": sch, "interval": "epoch"}
        if hp.scheduler == "plateau":
            config.update(monitor="val/loss", strict=False)
        return {"optimizer": opt, "lr_scheduler": config}

    @classmethod
    def from_checkpoint(cls, path: str | Path) -> LSTMClassifier:
        """A trained model, in eval mode, with its `data_info`; plain-data checkpoints only (weights_only)."""
        from lstm_cls.backbone import network
        from lstm_cls.checkpoints import check_data_info

        ckpt, where = load(path), f"ckpt_path: {path}"
        info = check_data_info(ckpt, where)  # its parts agree: a UserError naming what does not
        network(ckpt, where)
        model = cls(**ckpt["hyper_parameters"])
        model.load_state_dict(ckpt["state_dict"])
        model.data_info = info
        return model.eval()
