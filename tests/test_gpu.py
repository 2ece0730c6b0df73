"""trainer=gpu: the series sits on the device, batches are gathered there, and nn.LSTM runs cuDNN's kernel.

Skipped where torch sees no CUDA device (this project's CI machines have none).
"""

import json

import hydra
import lightning as L
import pytest
import torch

from lstm_cls.train import train

from .conftest import TINY

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")


def test_gpu_batches_are_gathered_on_the_device_and_the_lstm_is_cudnns(make_cfg):
    cfg = make_cfg(*TINY, "trainer=gpu", "trainer.max_epochs=1")
    devices = []

    class Spy(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            devices.append({t.device.type for b in batch for t in b})  # a block: [(x, y), ...]

    dm = hydra.utils.instantiate(cfg.data)
    dm.setup("fit")
    model = hydra.utils.instantiate(cfg.model, n_features=dm.n_features, n_classes=len(dm.class_names))
    model.automatic_optimization = False  # the block path, as train.py picks it for these settings
    trainer = hydra.utils.instantiate(
        cfg.trainer, logger=False, callbacks=[Spy()], enable_checkpointing=False
    )
    trainer.fit(model, datamodule=dm)
    assert devices and all(d == {"cuda"} for d in devices)
    assert dm.series.x.is_cuda and all(w.starts.is_cuda for w in dm.sets.values())  # moved once, whole
    assert model.global_step == -(-len(dm.sets["train"]) // cfg.data.batch_size)
    x, _ = dm.sets["val"][torch.arange(4)]
    model.cuda()  # Lightning's teardown moved it back to the CPU after fitting
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        model(x)
    assert any("cudnn_rnn" in e.name for e in prof.events()), "nn.LSTM did not run cuDNN's kernel"


def test_gpu_run_end_to_end_writes_metrics(make_cfg, tmp_path):
    m = train(make_cfg(*TINY, "trainer=gpu"))
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["status"] == "completed" and saved["epochs"] == 2
    assert 0.0 <= m["test/acc"] <= 1.0 and m["windows/train"] > 0


def test_gpu_standard_path_trains_too(make_cfg, tmp_path):
    m = train(make_cfg(*TINY, "trainer=gpu", "fast=false"))
    assert m["train_path"] == "standard" and m["global_step"] == 2 * -(-m["windows/train"] // 32)
