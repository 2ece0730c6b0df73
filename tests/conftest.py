from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from lstm_cls import schema
from lstm_cls.tensorboard import register_resolver

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(autouse=True, scope="session")
def resolvers() -> None:
    """lstm_cls's OmegaConf resolvers and schemas, as a command registers them (lstm_cls.entry.start)."""
    register_resolver()
    schema.register()


# a run that takes a second or two: few steps, tiny model
TINY = [
    "data.length=600",
    "data.window=8",
    "model.hidden=8",
    "trainer.max_epochs=2",
    "callbacks.progress_bar.refresh_rate=0",
]


def compose_cfg(
    *overrides: str, conf: Path = CONF, name: str = "train", hydra_config: bool = False
) -> DictConfig:
    """Compose a config of `conf` (or of an edited copy) with overrides, as Hydra's CLI would."""
    schema.register()  # as a command does first (lstm_cls.entry.start)
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        return compose(name, overrides=list(overrides), return_hydra_config=hydra_config)


# a run long enough to be interrupted or killed mid-way
SLOW_RUN = [
    "data.length=20000",
    "data.window=32",
    "trainer.max_epochs=200",
    "callbacks.progress_bar.refresh_rate=0",
]


@pytest.fixture
def make_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    """Compose conf/train.yaml with overrides, its run directory in tmp_path."""

    def _make(*overrides: str, run_dir: Path | None = None) -> DictConfig:
        return compose_cfg(f"run_dir={run_dir or tmp_path / 'run'}", *overrides)

    return _make


def run_cli(
    *args: str,
    cwd: Path | None = None,
    module: str = "lstm_cls.train",
    timeout: float = 300,
    warnings: bool = False,
) -> subprocess.CompletedProcess:
    """`python -m module args`; `warnings=True` shows Python's warnings as a user would see them."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    if not warnings:
        env["PYTHONWARNINGS"] = "ignore"
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd or ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_cli(
    *args: str,
    cwd: Path | None = None,
    module: str = "lstm_cls.train",
    stdout: int = subprocess.DEVNULL,
    session: bool = False,
) -> subprocess.Popen:
    """`python -m module args` in the background (in a session of its own if asked), stderr captured, with
    SIGINT at its default action.

    A child inherits an ignored SIGINT (a shell's background job has one, so may a CI runner), and Python
    then never raises KeyboardInterrupt: start it the way a terminal's Ctrl-C finds it.
    """
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    before = signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        return subprocess.Popen(
            [sys.executable, "-m", module, *args],
            cwd=cwd or ROOT,
            env=env,
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=session,
        )
    finally:
        signal.signal(signal.SIGINT, before)


def until(
    condition: Callable[[], object],
    proc: subprocess.Popen | None = None,
    timeout: float = 120,
    every: float = 0.05,
) -> None:
    """Wait for `condition()` to hold, asking every `every` s; fail if `proc` ends first (with its stderr's
    tail) or after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc is not None and proc.poll() is not None:
            err = proc.communicate()[1] or ""
            raise AssertionError(f"the process ended (exit {proc.returncode}) first: {err[-2000:]}")
        assert time.monotonic() < deadline, f"timed out after {timeout} s"
        time.sleep(every)
