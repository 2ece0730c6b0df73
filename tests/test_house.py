"""The house rules a next maintainer relies on: the tested Hydra minor pinned, Hydra's public API only, no
import with side effects, one grid for a sweep."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from packaging.requirements import Requirement
from packaging.version import Version

from lstm_cls import UserError
from lstm_cls.precheck import grid

ROOT = Path(__file__).resolve().parents[1]
tomllib = pytest.importorskip("tomllib" if sys.version_info >= (3, 11) else "tomli")


def pinned(name: str) -> Requirement:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return next(r for r in map(Requirement, deps) if r.name == name)


def test_hydra_core_is_the_minor_the_sweeper_was_tested_with():
    # the sweeper and the forkserver launcher are Hydra plugins: a new minor may move what they use. The pin
    # is one minor (>=X.Y,<X.Y+1), and the installed hydra-core is of it
    pin = pinned("hydra-core")
    bounds = {s.operator: Version(s.version) for s in pin.specifier}
    assert set(bounds) == {">=", "<"}, pin
    low, high = bounds[">="], bounds["<"]
    assert (high.major, high.minor) == (low.major, low.minor + 1), pin
    installed = Version(version("hydra-core"))
    assert (installed.major, installed.minor) == (low.major, low.minor), f"hydra-core {installed}, pin {pin}"


def test_no_private_hydra_module_in_the_package():
    used = [
        f"{p.relative_to(ROOT)}:{n}"
        for folder in ("lstm_cls", "hydra_plugins")
        for p in sorted((ROOT / folder).rglob("*.py"))
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if "hydra._internal" in line or "_return_value" in line
    ]
    assert not used


def test_importing_the_package_changes_nothing_in_the_process():
    # no SIGINT handler, no OmegaConf resolver, no warning filter: each command sets them up as it starts;
    # and baselines does not import train (and its work) to share the entry point
    code = (
        "import signal, sys, warnings\n"
        "from omegaconf import OmegaConf\n"
        "filters = list(warnings.filters)\n"
        "import lstm_cls, lstm_cls.tensorboard, lstm_cls.baselines, lstm_cls.entry\n"
        "import lstm_cls.forkserver_exit\n"
        "assert signal.getsignal(signal.SIGINT) is signal.default_int_handler\n"
        "assert not OmegaConf.has_resolver(lstm_cls.tensorboard.RESOLVER)\n"
        "assert 'lstm_cls.train' not in sys.modules, 'baselines imports train'\n"
        "import lstm_cls.train\n"
        "assert warnings.filters == filters and not OmegaConf.has_resolver(lstm_cls.tensorboard.RESOLVER)\n"
        "lstm_cls.entry.start()\n"
        "assert OmegaConf.has_resolver(lstm_cls.tensorboard.RESOLVER)\n"
        "assert signal.getsignal(signal.SIGINT) is lstm_cls.exit_on_interrupt\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]


def jobs(*overrides: str, search: bool = False) -> list[list[str]]:
    return [[t for _, t in job] for job in grid(OverridesParser.create().parse_overrides(overrides), search)]


def test_the_grid_is_hydras():
    # Hydra's basic sweeper: the product in the order the keys came; a key given again keeps its first
    # place and takes the later values (a preset's params, then the command line)
    assert jobs("model.hidden=8,16", "seed=1", "data.batch_size=4,5") == [
        ["model.hidden=8", "seed=1", "data.batch_size=4"],
        ["model.hidden=8", "seed=1", "data.batch_size=5"],
        ["model.hidden=16", "seed=1", "data.batch_size=4"],
        ["model.hidden=16", "seed=1", "data.batch_size=5"],
    ]
    assert jobs("model.hidden=8,16", "seed=1,2", "model.hidden=32") == [
        ["model.hidden=32", "seed=1"],
        ["model.hidden=32", "seed=2"],
    ]
    assert jobs("+x=1", "x=2", "seed=range(1,3)") == [["+x=1", "x=2", "seed=1"], ["+x=1", "x=2", "seed=2"]]


def test_a_range_is_a_search_not_a_grid():
    with pytest.raises(UserError, match=r"model.lr=interval\(0.1,1\): a range is a search space"):
        jobs("model.lr=interval(0.1,1)", "seed=1,2")
    assert jobs("model.lr=interval(0.1,1)", "seed=1,2", search=True) == [["seed=1"], ["seed=2"]]
