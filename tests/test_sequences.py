"""Labelled sequences of unequal length: one row per case, padded, and packed in the LSTM."""

import hydra
import numpy as np
import pytest
import torch

from lstm_cls.backbone import LSTMBackbone
from lstm_cls.data.batches import loader
from lstm_cls.data.scaling import channel_stats
from lstm_cls.data.sequences import CaseSet, pad


@pytest.mark.parametrize("bidirectional", [False, True])
def test_a_case_gives_the_same_logits_alone_and_beside_longer_ones(bidirectional):
    torch.manual_seed(0)
    net = LSTMBackbone(n_features=3, n_classes=4, hidden=8, num_layers=2, bidirectional=bidirectional).eval()
    cases = [torch.randn(n, 3) for n in (3, 12, 7)]
    x = torch.zeros(3, 12, 3)
    for i, c in enumerate(cases):
        x[i, : len(c)] = c
    x[0, 3:] = 100.0  # whatever sits in the padding must not matter
    with torch.no_grad():
        together = net(x, torch.tensor([3, 12, 7]))
        for i, c in enumerate(cases):
            alone = net(c[None], torch.tensor([len(c)]))
            torch.testing.assert_close(together[i], alone[0], atol=1e-5, rtol=1e-5)
            # and without packing, a case alone in its own exact length is the same too
            torch.testing.assert_close(net(c[None])[0], alone[0], atol=1e-5, rtol=1e-5)
        # padding read as data (no lengths) would change the short case's prediction
        assert not torch.allclose(net(x)[0], together[0], atol=1e-3)


def test_normalisation_uses_real_steps_only_and_padding_is_zero():
    cases = [np.full((2, 1), 1.0, np.float32), np.full((6, 1), 3.0, np.float32)]
    mean, std = channel_stats(cases)
    assert float(mean) == pytest.approx((2 * 1 + 6 * 3) / 8)  # weighted by real steps, no padding zeros
    x, lengths = pad(cases, mean, std)
    assert x.shape == (2, 6, 1) and lengths.tolist() == [2, 6]
    assert torch.all(x[0, 2:] == 0) and torch.allclose(x[1], (torch.tensor(3.0) - mean) / std)


def test_case_batches_are_cut_to_their_longest_case_in_both_loaders():
    lengths = torch.tensor([2, 9, 4, 3, 5])
    cases = CaseSet(torch.randn(5, 9, 2), torch.tensor([0, 1, 0, 1, 0]), lengths)
    x, y, ln = cases[[0, 3]]
    assert x.shape == (2, 3, 2) and ln.tolist() == [2, 3] and y.tolist() == [0, 1]
    torch.manual_seed(1)
    plain = list(loader(cases, 2, shuffle=True))
    torch.manual_seed(1)
    blocks = [b for block in loader(cases, 2, shuffle=True, block=2) for b in block]
    assert [b[1].tolist() for b in plain] == [b[1].tolist() for b in blocks]  # same batches, same order
    assert all(len(b) == 3 for b in plain + blocks)  # (x, y, lengths)
    assert sorted(i for b in plain for i in b[2].tolist()) == sorted(lengths.tolist())


@pytest.mark.parametrize("fast", ["true", "false"])
def test_japanese_vowels_trains_end_to_end_in_both_paths(make_cfg, fast):
    from lstm_cls.train import train

    cfg = make_cfg(
        "data=uea",
        "data.name=JapaneseVowels",
        "model.hidden=8",
        "trainer.max_epochs=2",
        "callbacks.progress_bar.refresh_rate=0",
        f"fast={fast}",
    )
    m = train(cfg)
    # 270 TRAIN cases: a stratified 20% (54) for validation; the 370 TEST cases are the test set
    assert (m["windows/train"], m["windows/val"], m["windows/test"]) == (216, 54, 370)
    assert m["global_step"] == 2 * -(-216 // 32) and m["train_path"] == (
        "block" if fast == "true" else "standard"
    )
    assert sum(m[f"classes/val/{c}"] for c in map(str, range(1, 10))) == 54
    assert all(m[f"classes/val/{c}"] >= 5 for c in map(str, range(1, 10)))  # stratified: every class in val
    ckpt = torch.load(f"{cfg.run_dir}/checkpoints/best.ckpt", weights_only=True)
    info = ckpt["data_info"]
    assert info["kind"] == "sequences" and info["max_length"] == 29 and len(info["feature_names"]) == 12
    assert info["class_names"] == [str(c) for c in range(1, 10)]


@pytest.mark.parametrize(
    ("typed", "words"),
    [
        (["data=uea"], "data=uea needs data.name=NAME"),
        (["data=uea", "data.path=x.ts"], "data.test_path is not set"),
        (["data=uea", "data.name=BasicMotions", "data.path=x.ts"], "not both"),
    ],
)
def test_uea_settings_are_checked_first(tmp_path, typed, words):
    from .conftest import run_cli

    r = run_cli(*typed, f"hydra.run.dir={tmp_path / 'run'}")
    assert r.returncode == 2 and words in r.stderr and "Traceback" not in r.stderr, r.stderr[-1000:]


def test_predict_on_a_ts_file_scores_each_case_as_the_test_did(make_cfg, tmp_path):
    import pandas as pd

    from lstm_cls.data import uea
    from lstm_cls.train import train

    from .conftest import run_cli

    cfg = make_cfg(
        "data=uea",
        "data.name=JapaneseVowels",
        "model.hidden=8",
        "trainer.max_epochs=2",
        "callbacks.progress_bar.refresh_rate=0",
    )
    m = train(cfg)
    test_file = uea._shipped()["JapaneseVowels"] / "JapaneseVowels_TEST.ts"
    out = tmp_path / "p.csv"
    r = run_cli(
        f"ckpt_path={cfg.run_dir}/checkpoints/best.ckpt",
        f"data.path={test_file}",
        f"output={out}",
        module="lstm_cls.predict",
    )
    assert r.returncode == 0, r.stderr[-2000:]
    p = pd.read_csv(out)
    assert len(p) == 370 and list(p.columns[:3]) == ["case", "label", "predicted"]
    assert (p.label.astype(str) == p.predicted.astype(str)).mean() == pytest.approx(m["test/acc"], abs=1e-6)
    probs = p[[f"p_{c}" for c in range(1, 10)]].to_numpy()
    assert np.allclose(probs.sum(1), 1, atol=1e-5)


def test_evaluate_a_sequence_model_on_the_archive_test_file(make_cfg, tmp_path):
    import json

    from lstm_cls.data import uea
    from lstm_cls.train import train

    from .conftest import run_cli

    cfg = make_cfg(
        "data=uea",
        "data.name=BasicMotions",
        "model.hidden=8",
        "trainer.max_epochs=3",
        "callbacks.progress_bar.refresh_rate=0",
    )
    m = train(cfg)
    out = tmp_path / "e.json"
    test_file = uea._shipped()["BasicMotions"] / "BasicMotions_TEST.ts"  # the run's test set
    r = run_cli(
        f"ckpt_path={cfg.run_dir}/checkpoints/best.ckpt",
        f"data.path={test_file}",
        f"output={out}",
        module="lstm_cls.evaluate",
    )
    assert r.returncode == 0, r.stderr[-2000:]
    e = json.loads(out.read_text())
    assert e["windows"] == 40 and e["test/acc"] == pytest.approx(m["test/acc"], abs=1e-6)
    assert sum(map(sum, e["confusion_matrix"])) == 40


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_of_a_sequence_model_matches_the_packed_lstm(make_cfg, tmp_path, fmt):
    from lstm_cls.backbone import load_backbone
    from lstm_cls.data import uea
    from lstm_cls.train import train

    from .conftest import run_cli

    cfg = make_cfg(
        "data=uea",
        "data.name=JapaneseVowels",
        "model.hidden=8",
        "model.num_layers=2",
        "trainer.max_epochs=1",
        "callbacks.progress_bar.refresh_rate=0",
    )
    train(cfg)
    ckpt = f"{cfg.run_dir}/checkpoints/best.ckpt"
    out = tmp_path / f"m.{fmt}"
    r = run_cli(f"ckpt_path={ckpt}", f"format={fmt}", f"output={out}", module="lstm_cls.export")
    assert r.returncode == 0, r.stderr[-2000:]
    net, info = load_backbone(ckpt)
    cases = uea.load_named("JapaneseVowels", "test")
    mean, std = torch.tensor(info["mean"]), torch.tensor(info["std"])
    x, lengths = pad(cases.x, mean, std, info.get("clip"))  # 370 cases, 7-29 steps
    raw, _ = pad(cases.x, torch.zeros_like(mean), torch.ones_like(std))  # the exported model scales them
    with torch.no_grad():
        expected = net.probabilities(net(x, lengths)).numpy()  # packed
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(out))
        got = session.run(None, {"cases": raw.numpy(), "lengths": lengths.numpy()})[0]
    else:
        got = torch.jit.load(str(out))(raw, lengths).detach().numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)


# a quick model of the table `cases_table` writes (add data.path=)
CASES_RUN = [
    "data=csv",
    "data.target=label",
    "data.case=trial",
    "data.time=step",
    "model.hidden=4",
    "trainer.max_epochs=1",
    "callbacks.progress_bar.refresh_rate=0",
]


def cases_table(path, n_cases=60, conflict=None):
    import pandas as pd

    rng = np.random.default_rng(0)
    rows = []
    for c in range(n_cases):
        label = c % 3
        for t in range(int(rng.integers(5, 15))):
            y = "w" if (conflict == c and t == 2) else "xyz"[label]
            rows.append(
                {"trial": f"t{c}", "step": t, "a": rng.normal() + label, "b": rng.normal(), "label": y}
            )
    pd.DataFrame(rows).sample(frac=1, random_state=0).to_csv(path, index=False)  # shuffled rows
    return rows


def test_a_table_of_cases_trains_one_sequence_per_case(make_cfg, tmp_path):
    from lstm_cls.train import train

    rows = cases_table(p := tmp_path / "cases.csv")
    cfg = make_cfg(
        "data=csv",
        f"data.path={p}",
        "data.target=label",
        "data.case=trial",
        "data.time=step",
        "model.hidden=4",
        "trainer.max_epochs=2",
        "callbacks.progress_bar.refresh_rate=0",
    )
    m = train(cfg)
    # 60 cases: a stratified 17.5% (11) for testing, 12.5% of the rest (7) for validation
    assert (m["windows/train"], m["windows/val"], m["windows/test"]) == (42, 7, 11)
    assert (
        sum(m[f"classes/test/{c}"] for c in "xyz") == 11 and min(m[f"classes/test/{c}"] for c in "xyz") >= 3
    )
    dm = hydra.utils.instantiate(cfg.data)
    dm.setup("fit")
    lengths = sorted(int(n) for s in dm.sets.values() for n in s.lengths)
    expected = sorted(sum(r["trial"] == f"t{c}" for r in rows) for c in range(60))
    assert lengths == expected  # every case whole, once
    ckpt = torch.load(f"{cfg.run_dir}/checkpoints/best.ckpt", weights_only=True)
    assert ckpt["data_info"]["case"] == "trial" and ckpt["data_info"]["kind"] == "sequences"


def test_a_case_with_two_labels_is_an_error_naming_it(tmp_path):
    from .conftest import run_cli

    cases_table(p := tmp_path / "cases.csv", conflict=4)
    r = run_cli(
        "data=csv",
        f"data.path={p}",
        "data.target=label",
        "data.case=trial",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert r.returncode == 2, r.stderr[-2000:]
    assert "case 't4' of column 'trial' has labels ['w', 'y']; a case has one" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "run").exists()


def test_predict_a_table_of_cases_gives_one_row_per_case(make_cfg, tmp_path):
    import pandas as pd

    from lstm_cls.train import train

    from .conftest import run_cli

    cases_table(p := tmp_path / "cases.csv")
    cfg = make_cfg(*CASES_RUN, f"data.path={p}")
    train(cfg)
    new = pd.read_csv(p).drop(columns="label")  # new data: no labels
    new.to_csv(q := tmp_path / "new.csv", index=False)
    r = run_cli(
        f"ckpt_path={cfg.run_dir}/checkpoints/best.ckpt",
        f"data.path={q}",
        f"output={tmp_path / 'p.csv'}",
        module="lstm_cls.predict",
    )
    assert r.returncode == 0, r.stderr[-2000:]
    out = pd.read_csv(tmp_path / "p.csv")
    assert sorted(out.trial) == sorted(f"t{c}" for c in range(60)) and set(out.predicted) <= set("xyz")


def test_the_baselines_pad_unscaled_cases_with_the_training_centre_not_a_raw_zero():
    from lstm_cls.baselines import padded

    # two training-length cases of 2 and 3 steps, 2 channels; a 5-step test case cut to 4
    x = np.arange(24, dtype=np.float32).reshape(2, 4, 3)[:, :, :2] + 10
    centre = np.array([-1.0, -2.0], dtype=np.float32)
    out = padded(x, np.array([2, 3]), 4, centre)
    assert out.shape == (2, 4, 2)
    np.testing.assert_array_equal(out[0, :2], x[0, :2])  # a case's own steps untouched
    np.testing.assert_array_equal(out[0, 2:], [centre, centre])  # its padding is the centre
    np.testing.assert_array_equal(out[1, 3], centre)
    # scaled data: no centre given, the padding is 0 (the centre once scaled); the longer test case is cut
    longer = np.ones((1, 5, 2), dtype=np.float32)
    assert padded(longer, np.array([5]), 4, centre).shape == (1, 4, 2)
    short = padded(np.ones((1, 2, 2), dtype=np.float32), np.array([2]), 4, None)
    np.testing.assert_array_equal(short[0, 2:], np.zeros((2, 2)))
    # windows (no lengths) are never touched
    np.testing.assert_array_equal(padded(x, None, 4, centre), x)
