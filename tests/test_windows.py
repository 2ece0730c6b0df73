import numpy as np
import pytest
import torch

from lstm_cls.data import SyntheticDataModule
from lstm_cls.data.batches import loader
from lstm_cls.data.scaling import fit_normaliser
from lstm_cls.data.series import Series, synthetic
from lstm_cls.data.windows import WindowSet, make_splits, split_segments, window_starts


def ramp(n: int = 200, f: int = 3, bounds=None) -> Series:
    """x[t, j] = 10 t + j, so every value says which step and feature it came from."""
    x = (torch.arange(n)[:, None] * 10 + torch.arange(f)[None, :]).float()
    return Series(x, torch.arange(n) % 2, bounds or [(0, n)], [f"f{j}" for j in range(f)], ["0", "1"])


def test_window_shapes_and_values_at_known_indices():
    s = ramp()
    ws = WindowSet(s.x, s.y, torch.tensor([0, 5, 100]), window=4)
    x, y = ws[[0, 2]]
    assert x.shape == (2, 4, 3) and x.dtype == torch.float32
    assert x[0, :, 0].tolist() == [0, 10, 20, 30]
    assert x[1, 3, 2].item() == 103 * 10 + 2  # window starting at 100, its last step, feature 2
    assert y.tolist() == [s.y[3].item(), s.y[103].item()]  # label at the last step


def test_horizon_labels_a_later_step_and_stride_skips_starts():
    s = ramp()
    ws = WindowSet(s.x, s.y, window_starts(0, 20, window=5, stride=3, horizon=2), window=5, horizon=2)
    assert ws.starts.tolist() == [0, 3, 6, 9, 12]  # 12 + 5 - 1 + 2 = 18 < 20; 15 would need step 21
    _, y = ws[[1]]
    assert y.item() == s.y[3 + 4 + 2].item()


def test_no_window_or_label_in_two_splits_and_test_is_a_quarter_of_train():
    s = ramp(1000, bounds=[(0, 600), (600, 1000)])
    segs = split_segments(s, 0.125, 0.175)
    starts, _ = make_splits(s, segs, window=10, horizon=3)
    owner = torch.full((1000,), -1)
    for k, split in enumerate(("train", "val", "test")):
        for a, b in segs[split]:
            owner[a:b] = k
        st = starts[split]
        steps = st[:, None] + torch.arange(10 + 3)  # every step a window reads, plus its label step
        assert (owner[steps] == k).all(), f"a {split} window leaves its split"
        group = (st >= 600).long()
        assert (((steps >= 600).long()) == group[:, None]).all(), "a window spans two groups"
    train_steps = sum(b - a for a, b in segs["train"])
    test_steps = sum(b - a for a, b in segs["test"])
    assert test_steps / train_steps == pytest.approx(0.25, abs=0.01)
    # chronological within each group: val after train, test after val
    assert segs["train"][0][1] == segs["val"][0][0] and segs["val"][0][1] == segs["test"][0][0]


def test_windows_with_a_missing_label_or_a_nan_are_dropped_and_counted():
    s = ramp(100)
    s.y[20] = -1
    s.x[40, 1] = float("nan")
    starts, dropped = make_splits(s, split_segments(s, 0.2, 0.2), window=5)
    assert 16 not in starts["train"].tolist()  # the window ending at step 20
    assert not set(range(36, 41)) & set(starts["train"].tolist())  # the 5 windows holding step 40
    assert {15, 17, 35, 41} <= set(starts["train"].tolist())
    assert dropped == {"label": 1, "nan": 5}


def test_normalisation_statistics_come_from_training_steps_only():
    s = ramp(100)
    s.x[70:] = 1e6  # val and test are wildly different: they must not move the statistics
    segs = split_segments(s, 0.15, 0.15)
    assert segs["train"] == [(0, 70)]
    mean, std = fit_normaliser(s.x, segs["train"], chunk=16)  # chunked sums give the plain answer
    ref = s.x[:70].double().numpy()
    np.testing.assert_allclose(mean.numpy(), ref.mean(0), rtol=1e-6)
    np.testing.assert_allclose(std.numpy(), ref.std(0), rtol=1e-6)


def test_datamodule_stores_the_series_once_and_batches_are_views_of_it():
    dm = SyntheticDataModule(length=500, window=12, batch_size=7)
    dm.setup("fit")
    ptrs = {ws.x.data_ptr() for ws in dm.sets.values()}
    assert ptrs == {dm.series.x.data_ptr()}  # one series shared by all splits, never copied per window
    x, y = next(iter(dm.train_dataloader()))  # no trainer: one batch per item (the standard path)
    assert x.shape == (7, 12, 13) and y.shape == (7,) and x.dtype == torch.float32
    n = sum(len(xb) for xb, _ in loader(dm.sets["val"], 7, shuffle=False))
    assert n == len(dm.sets["val"])
    # normalised with training statistics: the training steps have mean ~0 and std ~1
    a, b = split_segments(dm.series, 0.125, 0.175)["train"][0]
    assert dm.series.x[a:b].mean().abs() < 1e-5
    assert dm.series.x[a:b].std(0, correction=0).sub(1).abs().max() < 1e-3


def forward_filter(x: np.ndarray, signal: float, regime: float) -> np.ndarray:
    """The Bayes-optimal causal classifier for two regimes: an HMM forward pass, written out."""
    mu = np.zeros((2, x.shape[1]))
    mu[0, 0::2], mu[1, 1::2] = signal, signal
    loglik = -0.5 * ((x[:, None, :] - mu[None]) ** 2).sum(-1)  # [steps, 2]
    p = 1 / regime
    belief, out = np.array([0.5, 0.5]), np.empty(len(x), dtype=np.int64)
    for t in range(len(x)):
        belief = (belief * (1 - p) + belief[::-1] * p) * np.exp(loglik[t] - loglik[t].max())
        belief /= belief.sum()
        out[t] = belief.argmax()
    return out


def test_synthetic_is_deterministic_float32_and_its_label_needs_the_past():
    a, b, c = synthetic(3000, seed=1), synthetic(3000, seed=1), synthetic(3000, seed=2)
    assert a.x.dtype == torch.float32 and a.x.shape == (3000, 13)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert not torch.equal(a.x, c.x)
    clean = synthetic(20000, noise=0.0, signal=0.4, regime=20, seed=1)
    x, y = clean.x.double().numpy(), clean.y.numpy()
    # the documented rule: regime c lifts the mean of features c, c + 2, ... by `signal`
    own = x[:, 0::2].mean(1) - x[:, 1::2].mean(1)  # > 0 leans to class 0
    assert own[y == 0].mean() > 0.35 and own[y == 1].mean() < -0.35
    assert 20000 / (y[1:] != y[:-1]).sum() == pytest.approx(20, rel=0.15)  # mean regime length
    assert 0.4 < y.mean() < 0.6
    # one step is weak evidence; filtering the past is strong: a sequence model has the edge
    one_step = ((own < 0) == y).mean()
    filtered = (forward_filter(x, 0.4, 20) == y).mean()
    assert 0.72 < one_step < 0.8 and filtered > one_step + 0.1
    noisy = synthetic(20000, noise=0.2, signal=0.4, regime=20, seed=1)
    assert torch.equal(noisy.x, clean.x)
    assert (noisy.y != clean.y).float().mean() == pytest.approx(0.2, abs=0.02)


def test_synthetic_three_classes():
    s = synthetic(30000, n_classes=3, noise=0.0, seed=0)
    counts = torch.bincount(s.y, minlength=3)
    assert counts.min() > 8000 and s.class_names == ["0", "1", "2"]
    # at a switch the regime always moves to another class
    assert ((s.y[1:] - s.y[:-1]) != 0).float().mean() == pytest.approx(0.05, abs=0.01)


def test_blocks_keep_batch_semantics_exact():
    """Blocks change how batches are gathered, never which: same order, sizes and step count."""
    s = ramp(500, f=1)
    ws = WindowSet(s.x, s.y, torch.arange(0, 437), window=4)  # 437 windows: 13 full batches of 32 + 21
    torch.manual_seed(3)
    blocks = [b for block in loader(ws, 32, shuffle=True, block=5) for b in block]
    torch.manual_seed(3)
    plain = list(loader(ws, 32, shuffle=True))
    assert len(blocks) == len(plain) == 14  # ceil(437 / 32) optimizer steps either way
    assert [len(y) for _, y in blocks] == [32] * 13 + [21]
    for (xa, ya), (xb, yb) in zip(blocks, plain, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    firsts = torch.cat([x[:, 0, 0] for x, _ in blocks]) / 10  # each window's start step
    assert sorted(firsts.long().tolist()) == list(range(437))  # every window once per epoch


def test_batch_indices_follow_random_samplers_order():
    """Index tensors instead of a Python list, the same permutation for the same seed."""
    from torch.utils.data import RandomSampler

    from lstm_cls.data.batches import BatchIndices, LeanRandomSampler

    torch.manual_seed(5)
    ours = torch.cat(list(BatchIndices(1000, 64, shuffle=True)))
    torch.manual_seed(5)
    assert ours.tolist() == list(RandomSampler(range(1000)))
    torch.manual_seed(5)
    lean = list(LeanRandomSampler(range(100_000)))  # the standard path's sampler, in chunks of 65,536
    torch.manual_seed(5)
    assert lean == list(RandomSampler(range(100_000))) and isinstance(lean[0], int)
    assert [len(b) for b in BatchIndices(100, 32, shuffle=False)] == [32, 32, 32, 4]
