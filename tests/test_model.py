import lightning as L
import pytest
import torch

from lstm_cls.backbone import count_trainable
from lstm_cls.data import SyntheticDataModule
from lstm_cls.model import LSTMClassifier


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, 6240),  # the default is the Keras reference: 5,888 + 330 + 22
        ({"keras_parity": False}, 6368),  # PyTorch keeps two biases per gate
        ({"hidden": 8, "keras_parity": False}, 848),
        ({"hidden": 8}, 848 - 32),  # one bias per gate: 4 x 8 fewer
        ({"loss": "bce"}, 6240 - 11),  # one sigmoid output instead of two
        ({"bidirectional": True, "keras_parity": False}, 2 * 6016 + 650 + 22),
        ({"bidirectional": True}, 2 * (6016 - 128) + 650 + 22),
    ],
)
def test_trainable_parameter_counts(kwargs, expected):
    assert count_trainable(LSTMClassifier(n_features=13, n_classes=2, **kwargs)) == expected


def test_summary_is_in_the_reference_form():
    text = LSTMClassifier().summary()
    assert "(None, 32)" in text and "(None, 10)" in text and "(None, 2)" in text
    assert "Total params: 6,368" in text
    assert "Trainable params: 6,240" in text
    assert "Non-trainable params: 128" in text


def keras_lstm(x, w_ih, w_hh, b):
    """Keras' LSTM equations, one bias, step by step: [batch, time, feat] -> [batch, hidden]."""
    h = torch.zeros(x.shape[0], w_hh.shape[1])
    c = torch.zeros_like(h)
    for t in range(x.shape[1]):
        i, f, g, o = (x[:, t] @ w_ih.T + h @ w_hh.T + b).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
    return h


def test_keras_parity_forward_matches_a_hand_written_one_bias_lstm():
    torch.manual_seed(0)
    m = LSTMClassifier(keras_parity=True).eval()
    with torch.no_grad():
        m.net.lstm.bias_ih_l0.normal_()  # a non-trivial bias, still the only one
    x = torch.randn(5, 7, 13)
    h = keras_lstm(x, m.net.lstm.weight_ih_l0, m.net.lstm.weight_hh_l0, m.net.lstm.bias_ih_l0)
    expected = m.net.fc2(torch.relu(m.net.fc1(h)))
    torch.testing.assert_close(m(x), expected, atol=1e-5, rtol=1e-5)


def test_keras_parity_initialisers_and_frozen_second_bias():
    torch.manual_seed(0)
    m = LSTMClassifier(keras_parity=True)
    b = m.net.lstm.bias_ih_l0.detach()
    assert b[32:64].eq(1).all() and b[:32].eq(0).all() and b[64:].eq(0).all()  # forget gate bias 1
    w_hh = m.net.lstm.weight_hh_l0.detach()  # [4h, h]: orthonormal columns, as Keras' [h, 4h] has rows
    torch.testing.assert_close(w_hh.T @ w_hh, torch.eye(32), atol=1e-5, rtol=0)
    limit = (6 / (13 + 4 * 32)) ** 0.5  # glorot-uniform on Keras' [13, 128] kernel
    assert m.net.lstm.weight_ih_l0.abs().max() <= limit
    opt = m.configure_optimizers()
    loss = m.loss_fn(m(torch.randn(4, 5, 13)), torch.tensor([0, 1, 0, 1]))
    loss.backward()
    opt.step()
    assert m.net.lstm.bias_hh_l0.eq(0).all() and not m.net.lstm.bias_hh_l0.requires_grad


def test_optimizer_is_adam_with_the_configured_lr_and_matches_torch_reference_adam():
    # the fused kernel is a speed choice only: its steps must be torch's own Adam's
    torch.manual_seed(0)
    ours = LSTMClassifier(lr=3e-3)
    ref = LSTMClassifier(lr=3e-3)
    ref.load_state_dict(ours.state_dict())
    opt = ours.configure_optimizers()
    assert isinstance(opt, torch.optim.Adam) and opt.defaults["lr"] == 3e-3 and opt.defaults["fused"]
    ref_opt = torch.optim.Adam(ref.parameters(), lr=3e-3, foreach=False)
    x, y = torch.randn(8, 6, 13), torch.randint(0, 2, (8,))
    start = [p.detach().clone() for p in ours.parameters()]
    for _ in range(5):
        for m, o in ((ours, opt), (ref, ref_opt)):
            o.zero_grad()
            m.loss_fn(m(x), y).backward()
            o.step()
    for (name, a), b in zip(ours.named_parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5, msg=name)
    moved = {n: (a - b).abs().max().item() for (n, a), b in zip(ours.named_parameters(), start, strict=True)}
    frozen = {n for n, p in ours.named_parameters() if not p.requires_grad}
    assert frozen == {"net.lstm.bias_hh_l0"}  # Keras: one bias per gate
    assert all(moved[n] == 0 for n in frozen)
    # 5 steps of lr 3e-3 moved every trainable tensor: the comparison is not vacuous
    assert min(v for n, v in moved.items() if n not in frozen) > 1e-3


@pytest.mark.parametrize("loss", ["ce", "bce", "mse"])
def test_each_loss_trains_and_gives_probabilities(loss):
    torch.manual_seed(0)
    m = LSTMClassifier(n_features=3, n_classes=2, hidden=8, loss=loss)
    x, y = torch.randn(16, 6, 3), torch.randint(0, 2, (16,))
    logits = m(x)
    assert logits.shape == (16, 1 if loss == "bce" else 2)
    p = m.probabilities(logits)
    torch.testing.assert_close(p.sum(1), torch.ones(16))
    opt = m.configure_optimizers()
    first = m.loss_fn(m(x), y).item()
    for _ in range(30):
        opt.zero_grad()
        m.loss_fn(m(x), y).backward()
        opt.step()
    assert m.loss_fn(m(x), y).item() < first


def test_mse_is_squared_error_of_softmax_to_one_hot():
    m = LSTMClassifier(n_classes=3, loss="mse")
    logits, y = torch.tensor([[2.0, 0.0, -1.0]]), torch.tensor([1])
    p = torch.softmax(logits, 1)[0]
    expected = ((p - torch.tensor([0.0, 1.0, 0.0])) ** 2).mean()
    torch.testing.assert_close(m.loss_fn(logits, y), expected)


@pytest.mark.slow
def test_small_model_memorises_a_few_dozen_windows(tmp_path):
    L.seed_everything(0, verbose=False)
    # 48 training windows of pure noise labels: only memorising gets them right
    dm = SyntheticDataModule(
        length=80, window=4, noise=0.5, batch_size=8, val_fraction=0.1, test_fraction=0.1
    )
    dm.setup("fit")
    assert len(dm.sets["train"]) < 70
    model = LSTMClassifier(n_features=13, n_classes=2, hidden=32, lr=0.01)
    trainer = L.Trainer(
        max_epochs=150,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, datamodule=dm)
    assert model.epoch_metrics["train"]["train/acc"] >= 0.97


def test_the_network_settings_are_the_backbones_own_and_a_misspelt_one_is_refused():
    # LSTMClassifier passes n_features, hidden, ... on to LSTMBackbone, whose signature declares them once
    m = LSTMClassifier(n_features=5, hidden=7, head=3)
    assert (m.net.lstm.input_size, m.net.lstm.hidden_size, m.net.fc1.out_features) == (5, 7, 3)
    assert m.hparams["hidden"] == 7  # saved flat, as every checkpoint holds them
    with pytest.raises(TypeError, match="hiden"):
        LSTMClassifier(hiden=7)
