"""lstm_cls.checkpoints: guarded loading, atomic writes, and Lightning's checkpoint writer through them."""

from __future__ import annotations

import errno
import json
from pathlib import Path
from typing import IO, Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lstm_cls import UserError, __version__
from lstm_cls import checkpoints as ck
from lstm_cls.checkpoints import load, write_atomic, write_json_atomic
from tests.conftest import TINY, compose_cfg

ENOSPC = OSError(errno.ENOSPC, "No space left on device")
# no .hypothesis/ directory in the repository; fixtures here are module-scoped, built once
FUZZ = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """best.ckpt of a tiny real training run (trained once for the module)."""
    from lstm_cls.train import train

    run = tmp_path_factory.mktemp("ckpt") / "run"
    train(compose_cfg(f"run_dir={run}", *TINY))
    return run / "checkpoints" / "best.ckpt"


@pytest.fixture(scope="module")
def real_bytes(real: Path) -> bytes:
    return real.read_bytes()


def saved(path: Path, obj: Any) -> Path:
    torch.save(obj, path)
    return path


def edited(real: Path, path: Path, **changes: Any) -> Path:
    """The real checkpoint with some keys replaced (None: removed), saved at `path`."""
    ckpt = torch.load(real, weights_only=True)
    for k, v in changes.items():
        if v is None:
            ckpt.pop(k)
        else:
            ckpt[k] = v
    return saved(path, ckpt)


def refused(path: Path, *words: str, what: str = "ckpt_path") -> str:
    with pytest.raises(UserError) as e:
        load(path, what=what)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith(f"{what}: {path}"), msg
    for w in words:
        assert w in msg, msg
    return msg


# load: what it accepts


def test_load_returns_a_real_checkpoint(real: Path) -> None:
    ckpt = load(real)
    assert {"state_dict", "hyper_parameters", "data_info", "epoch", "global_step"} <= set(ckpt)
    assert "net.lstm.weight_ih_l0" in ckpt["state_dict"]
    assert ckpt["hyper_parameters"]["hidden"] == 8


def test_load_accepts_the_same_major_minor_version(real: Path, tmp_path: Path) -> None:
    major, minor = __version__.split(".")[:2]
    ckpt = load(edited(real, tmp_path / "x.ckpt", lstm_cls_version=f"{major}.{minor}.99"))
    assert ckpt["lstm_cls_version"] == f"{major}.{minor}.99"


# load: what it refuses, each as one UserError line that names the setting, the file and the problem


def test_load_missing_file(tmp_path: Path) -> None:
    refused(tmp_path / "nope.ckpt", "no such file")


def test_load_directory(tmp_path: Path) -> None:
    refused(tmp_path, "is a directory")


def test_load_empty_file(tmp_path: Path) -> None:
    p = tmp_path / "empty.ckpt"
    p.write_bytes(b"")
    refused(p, "is empty")


def test_load_truncated_file(real_bytes: bytes, tmp_path: Path) -> None:
    p = tmp_path / "half.ckpt"
    p.write_bytes(real_bytes[: len(real_bytes) // 2])
    refused(p, "truncated or corrupt", "not a torch checkpoint")


def test_load_random_bytes(tmp_path: Path) -> None:
    p = tmp_path / "noise.ckpt"
    p.write_bytes(bytes(range(256)) * 8)
    refused(p, "truncated or corrupt")


def test_load_plain_state_dict(tmp_path: Path) -> None:
    from lstm_cls.backbone import LSTMBackbone

    p = saved(tmp_path / "model.pt", LSTMBackbone(hidden=4).state_dict())
    refused(p, "is not an lstm_cls checkpoint", "bare state_dict", "no hyper_parameters")


def test_load_dict_without_hyper_parameters(real: Path, tmp_path: Path) -> None:
    msg = refused(edited(real, tmp_path / "x.ckpt", hyper_parameters=None), "not an lstm_cls checkpoint")
    assert msg.endswith("(no hyper_parameters)"), msg


def test_load_dict_of_tensors_without_net_weights(real: Path, tmp_path: Path) -> None:
    p = edited(real, tmp_path / "x.ckpt", state_dict={"encoder.weight": torch.zeros(2)})
    refused(p, "not an lstm_cls checkpoint", "no net.* weights")


def test_load_not_a_dict(tmp_path: Path) -> None:
    refused(saved(tmp_path / "x.ckpt", [torch.zeros(2)]), "not an lstm_cls checkpoint", "list")


def test_load_pickled_module(tmp_path: Path) -> None:
    # torch.save(model): a valid file, but Python objects that weights_only refuses to rebuild
    refused(saved(tmp_path / "x.ckpt", torch.nn.Linear(2, 2)), "not an lstm_cls checkpoint", "Python objects")


def test_load_newer_version(real: Path, tmp_path: Path) -> None:
    p = edited(real, tmp_path / "x.ckpt", lstm_cls_version="9.9.0")
    refused(p, "9.9.0", "incompatible", __version__)


def test_load_unreadable_version(real: Path, tmp_path: Path) -> None:
    refused(edited(real, tmp_path / "x.ckpt", lstm_cls_version="dev"), "unreadable lstm_cls_version")


def test_load_old_layout(real: Path, tmp_path: Path) -> None:
    state = torch.load(real, weights_only=True)["state_dict"]
    old = {k.removeprefix("net."): v for k, v in state.items()}  # lstm.weight_ih_l0, fc1.weight...
    refused(edited(real, tmp_path / "x.ckpt", state_dict=old), "from an older lstm_cls layout")


def test_load_names_the_setting(tmp_path: Path) -> None:
    refused(tmp_path / "nope.ckpt", "no such file", what="teacher_ckpt")


# load: whatever the bytes, a dict or a UserError


def _dict_or_user_error(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    try:
        out = load(path)
    except UserError as e:
        assert "\n" not in str(e)
    else:
        assert isinstance(out, dict)


@FUZZ
@given(data=st.binary(max_size=2048))
def test_load_arbitrary_bytes(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    _dict_or_user_error(tmp_path_factory.getbasetemp() / "fuzz_bytes.ckpt", data)


@FUZZ
@given(draw=st.data())
def test_load_damaged_checkpoint(
    real_bytes: bytes, tmp_path_factory: pytest.TempPathFactory, draw: st.DataObject
) -> None:
    n = len(real_bytes)
    data = bytearray(real_bytes)
    # byte changes anywhere, or in the last 1 KiB (the zip's central directory and data.pkl's end)
    where = st.one_of(st.integers(0, n - 1), st.integers(max(0, n - 1024), n - 1))
    for i, b in draw.draw(st.lists(st.tuples(where, st.integers(0, 255)), max_size=8), label="edits"):
        data[i] = b
    cut = draw.draw(st.one_of(st.none(), st.integers(0, n)), label="truncate at")
    if cut is not None:
        data = data[:cut]
    _dict_or_user_error(tmp_path_factory.getbasetemp() / "fuzz_damaged.ckpt", bytes(data))


# atomic writes


def fail_halfway(f: IO[bytes]) -> None:
    f.write(b"new bytes, half of them")
    raise ENOSPC


def test_write_atomic_replaces_the_file(tmp_path: Path) -> None:
    p = tmp_path / "out.bin"
    p.write_bytes(b"old")
    write_atomic(p, lambda f: f.write(b"new"))
    assert p.read_bytes() == b"new"
    assert [q.name for q in tmp_path.iterdir()] == ["out.bin"]


def test_write_atomic_disk_full_keeps_the_previous_file(tmp_path: Path) -> None:
    p = tmp_path / "metrics.json"
    p.write_bytes(b"previous")
    with pytest.raises(UserError, match="could not write .*metrics.json: No space left on device") as e:
        write_atomic(p, fail_halfway)
    assert "the previous file is kept" in str(e.value)
    assert p.read_bytes() == b"previous"
    assert [q.name for q in tmp_path.iterdir()] == ["metrics.json"]  # no temporary file left


def test_write_atomic_disk_full_without_previous_file(tmp_path: Path) -> None:
    p = tmp_path / "new.bin"
    with pytest.raises(UserError, match="nothing was written"):
        write_atomic(p, fail_halfway)
    assert list(tmp_path.iterdir()) == []


def test_write_atomic_other_errors_pass_through(tmp_path: Path) -> None:
    # not a disk problem: the caller's own error, unchanged, and still no temporary file
    p = tmp_path / "out.bin"
    p.write_bytes(b"old")

    def interrupted(f: IO[bytes]) -> None:
        f.write(b"partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomic(p, interrupted)
    assert p.read_bytes() == b"old"
    assert [q.name for q in tmp_path.iterdir()] == ["out.bin"]


def test_write_json_atomic(tmp_path: Path) -> None:
    p = tmp_path / "m.json"
    write_json_atomic(p, {"a": 1})
    assert p.read_text() == '{\n  "a": 1\n}\n'
    with pytest.raises(TypeError):  # not JSON: fails before the file is touched
        write_json_atomic(p, {"a": object()})
    assert json.loads(p.read_text()) == {"a": 1}
    assert [q.name for q in tmp_path.iterdir()] == ["m.json"]


# Lightning's checkpoint writer


def torch_save_disk_full(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
    f.write(b"PK\x03\x04 the start of a zip")
    raise ENOSPC


def test_checkpoint_io_disk_full_keeps_the_previous_checkpoint(
    real_bytes: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = tmp_path / "checkpoints" / "best.ckpt"
    p.parent.mkdir()
    p.write_bytes(real_bytes)
    monkeypatch.setattr(torch, "save", torch_save_disk_full)
    with pytest.raises(UserError, match=f"could not write {p}: No space left on device"):
        ck.AtomicCheckpointIO().save_checkpoint({"state_dict": {}}, p)
    assert p.read_bytes() == real_bytes
    assert [q.name for q in p.parent.iterdir()] == ["best.ckpt"]


def test_checkpoint_io_creates_the_directory(tmp_path: Path) -> None:
    p = tmp_path / "a" / "b" / "x.ckpt"
    ck.AtomicCheckpointIO().save_checkpoint({"w": torch.ones(2)}, p)
    assert torch.equal(torch.load(p, weights_only=True)["w"], torch.ones(2))


def test_checkpoint_io_is_what_a_trainer_writes_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.demos.boring_classes import BoringModel

    def fit(root: Path) -> L.Trainer:
        trainer = L.Trainer(
            default_root_dir=root,
            max_epochs=1,
            limit_train_batches=2,
            limit_val_batches=1,
            plugins=[ck.AtomicCheckpointIO()],
            callbacks=[ModelCheckpoint(dirpath=tmp_path / "checkpoints", filename="best", save_last=True)],
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
        )
        trainer.fit(BoringModel())
        return trainer

    written: list[str] = []
    real_write = ck.write_atomic
    monkeypatch.setattr(
        ck, "write_atomic", lambda path, w: (written.append(Path(path).name), real_write(path, w))
    )
    trainer = fit(tmp_path)
    assert isinstance(trainer.strategy.checkpoint_io, ck.AtomicCheckpointIO)
    assert sorted(written) == ["best.ckpt", "last.ckpt"]
    best = tmp_path / "checkpoints" / "best.ckpt"
    before = best.read_bytes()
    assert torch.load(best, weights_only=True)["global_step"] == 2

    # a full disk during the next run's checkpoint: one UserError out of fit, the old checkpoint intact
    monkeypatch.setattr(torch, "save", torch_save_disk_full)
    with pytest.raises(UserError, match="No space left on device"):
        fit(tmp_path)
    assert best.read_bytes() == before
    assert sorted(q.name for q in best.parent.iterdir()) == ["best.ckpt", "last.ckpt"]


def test_checkpoint_io_pickles() -> None:
    # strategies that spawn processes pickle their plugins: the lazily built class must be findable
    import pickle

    io = pickle.loads(pickle.dumps(ck.AtomicCheckpointIO()))
    assert type(io) is ck.AtomicCheckpointIO


def test_importing_the_module_does_not_import_lightning() -> None:
    # predict and export read checkpoints through load(): they must not pay for Lightning's import
    import subprocess
    import sys

    code = "import sys, lstm_cls.checkpoints; assert 'lightning' not in sys.modules, 'lightning imported'"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
