"""What the tests write instead of real data: small tables, and finished sweep jobs in the layout a real job
leaves (.hydra/config.yaml and overrides.yaml, metrics.json, metrics.csv) so that no model is trained."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf


def updown_table(n: int, seed: int) -> pd.DataFrame:
    """Numbers a and b, and a label ("up"/"down") that follows a."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    return pd.DataFrame({"a": a, "b": rng.normal(size=n), "label": np.where(a > 0, "up", "down")})


def site_table(
    n: int,
    seed: int,
    sites: tuple[str, ...] = ("north", "south"),
    spread: float = 1.0,
    centre: tuple[float, float] = (0.0, 0.0),
    shuffled: bool = False,
) -> pd.DataFrame:
    """Daily rows of each site: a, b (numbers, `spread` wide about `centre`) and rain (Yes/No, following a);
    in time order, or `shuffled` (then time and group must sort them)."""
    rng = np.random.default_rng(seed)
    frames = []
    for site in sites:
        a = rng.normal(size=n) * spread + centre[0]
        frames.append(
            pd.DataFrame(
                {
                    "site": site,
                    "day": pd.date_range("2021-01-01", periods=n).strftime("%d-%m-%Y"),
                    "a": a,
                    "b": rng.normal(size=n) * spread + centre[1],
                    "rain": np.where(a + rng.normal(size=n) > 0, "Yes", "No"),
                }
            )
        )
    rows = pd.concat(frames)
    return rows.sample(frac=1, random_state=seed) if shuffled else rows.reset_index(drop=True)


# the composed config a fake job starts from; its typed overrides are merged in
BASE = {
    "seed": 1,
    "data": {"batch_size": 32, "window": 8, "features": None},
    "model": {
        "hidden": 8,
        "lr": 0.001,
        "optimizer": "adam",
        "bidirectional": False,
        "class_weights": "none",
    },
    "trainer": {"max_epochs": 3},
}


def split(values: str) -> list[str]:
    """Hydra's choice list: commas outside brackets separate the values."""
    out, depth, cur = [], 0, ""
    for ch in values:
        depth += (ch == "[") - (ch == "]")
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    return [*out, cur]


def grid(*axes: str) -> list[list[str]]:
    """Every combination of `key=a,b,...` choices, the first key varying slowest (as Hydra orders jobs)."""
    choices = [[f"{key}={v}" for v in split(values)] for key, values in (a.split("=", 1) for a in axes)]
    return [list(c) for c in itertools.product(*choices)]


def write_job(run: Path, cfg: DictConfig, typed: list[str], csv_lines: list[str], metrics: dict) -> Path:
    """A finished job in `run`: its composed config, what was typed, per-epoch and final metrics."""
    (run / ".hydra").mkdir(parents=True)
    OmegaConf.save(cfg, run / ".hydra" / "config.yaml")
    OmegaConf.save(OmegaConf.create(typed), run / ".hydra" / "overrides.yaml")
    (run / "metrics.csv").write_text("\n".join(csv_lines) + "\n")
    (run / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return run


def fake_job(sweep: Path, n: int, overrides: list[str], epochs: int = 3) -> Path:
    """Job `n` of `sweep`, finished: BASE with what was typed, final and per-epoch metrics from `n` and the
    epoch."""
    typed = [f"trainer.max_epochs={epochs}", *overrides]
    cfg = OmegaConf.merge(BASE, OmegaConf.from_dotlist(typed))
    # per epoch the CSV logger writes a validation row, then a training row; the test row comes last
    lines = ["gap/acc,gap/loss,step,test/acc,test/loss,train/acc,train/loss,val/acc,val/loss"]
    for e in range(1, epochs + 1):
        val_loss = 0.7 - 0.05 * e + 0.01 * n
        lines.append(f",,{e},,,,,{0.5 + 0.02 * e},{val_loss}")
        lines.append(f"{0.01 * e + 0.01 * n},{0.02 * e},{e},,,{0.55 + 0.03 * e},{0.65 - 0.06 * e},,")
    lines.append(f",,{epochs},{0.6 + 0.01 * n},0.6,,,,")
    metrics = {
        "status": "completed",
        **{"train/loss": 0.4, "train/acc": 0.7, "val/loss": 0.55, "val/acc": 0.56},
        **{"test/loss": 0.6, "test/acc": 0.6 + 0.01 * n, "test/f1": 0.5},
        "best_epoch": epochs,
        "epochs": epochs,
        "fit_seconds": 1.5,
    }
    return write_job(sweep / str(n), cfg, typed, lines, metrics)


def fake_sweep(sweep: Path, *grid: list[str]) -> list[Path]:
    """One job per entry of the grid, numbered 0, 1, ... as Hydra numbers them."""
    return [fake_job(sweep, n, overrides) for n, overrides in enumerate(grid)]


def metrics(run: Path) -> dict:
    """The run's metrics.json."""
    return json.loads((run / "metrics.json").read_text())
