"""One run across processes started together (torchrun, srun): which process is the first, the one that
checks, holds and writes the run's folder (lstm_cls.entry.rank_zero), and two torchrun "nodes" on this
machine's loopback training one run."""

from __future__ import annotations

import itertools
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from lstm_cls import UserError, config, entry

from .conftest import ROOT, TINY, compose_cfg

LAUNCHERS = ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK", "NODE_RANK")
SIZES = ("WORLD_SIZE", "SLURM_NTASKS", "SLURM_STEP_NUM_TASKS", "JSM_NAMESPACE_SIZE")


def clear(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in (*LAUNCHERS, *SIZES):
        monkeypatch.delenv(key, raising=False)


def test_the_global_rank_is_lightnings_for_every_launchers_variables(monkeypatch):
    # entry reads the environment as Lightning does (its rank_zero_only.rank starts from _get_rank), without
    # importing it: this test fails where Lightning changes which variables it reads, or their order
    from lightning.fabric.utilities.rank_zero import _get_rank

    assert entry.RANK_VARIABLES == ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK")
    for values in itertools.product((None, "0", "1", "3"), repeat=len(LAUNCHERS)):
        clear(monkeypatch)
        for key, value in zip(LAUNCHERS, values, strict=True):
            if value is not None:
                monkeypatch.setenv(key, value)
        lightning = _get_rank() or 0
        assert entry.global_rank() == lightning, values
        # a second node of Lightning's own launcher starts with NODE_RANK alone: not the first process
        assert entry.rank_zero() == (lightning == 0 and values[-1] in (None, "0")), values


@pytest.mark.parametrize(
    "env, together",
    [
        ({}, 1),
        ({"RANK": "1", "WORLD_SIZE": "2"}, 2),  # torchrun
        ({"LOCAL_RANK": "1", "NODE_RANK": "0", "WORLD_SIZE": "2"}, 1),  # started by Lightning's launcher
        ({"SLURM_PROCID": "1", "SLURM_NTASKS": "4", "SLURM_STEP_NUM_TASKS": "4"}, 4),  # srun -n 4
        ({"SLURM_PROCID": "0", "SLURM_NTASKS": "4"}, 1),  # a Slurm job's shell: one process runs the command
        ({"LOCAL_RANK": "0", "SLURM_PROCID": "0", "SLURM_STEP_NUM_TASKS": "4"}, 1),  # Lightning's, in srun
    ],
)
def test_processes_started_together(monkeypatch, env, together):
    clear(monkeypatch)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert entry.started_together() == together


def run_as(rank: int, *args: str, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "RANK": str(rank), "WORLD_SIZE": "2"}
    cmd = [sys.executable, "-m", "lstm_cls.train", *args]
    return subprocess.Popen(cmd, cwd=cwd, env=env, stderr=subprocess.PIPE, text=True)


def test_every_process_refuses_a_run_without_its_folder_or_in_a_finished_runs(tmp_path):
    # a dated folder (the default) would be another one in each process; each of a used folder's would
    # wait for the first one, which refused: all refuse, before Hydra or torch start, and write nothing
    done = tmp_path / "done"
    done.mkdir()
    (done / "metrics.json").write_text("{}")
    cases = {"": "2 processes started together train one run: give them its folder, e.g. hydra.run.dir="}
    cases[f"hydra.run.dir={done}"] = f"hydra.run.dir={done} already holds metrics.json"
    for folder, message in cases.items():
        procs = [run_as(rank, *TINY, *([folder] if folder else []), cwd=tmp_path) for rank in (0, 1)]
        for p in procs:
            err = p.communicate(timeout=120)[1]
            assert p.returncode == 2 and err.strip().splitlines()[-1].startswith(f"error: {message}"), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["done"] and os.listdir(done) == ["metrics.json"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(nodes: int, per_node: int, run: Path, cwd: Path) -> None:
    """One run on `nodes` torchrun "nodes" of this machine, `per_node` processes each, started together."""
    port = free_port()
    settings = [f"trainer.num_nodes={nodes}", f"trainer.devices={per_node}", "trainer.strategy=ddp"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                f"--nnodes={nodes}",
                f"--nproc_per_node={per_node}",
            ]
            + [f"--node_rank={n}", "--master_addr=127.0.0.1", f"--master_port={port}"]
            + ["-m", "lstm_cls.train", *TINY, *settings, f"hydra.run.dir={run}"],
            cwd=cwd,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(nodes)
    ]
    try:
        errs = [p.communicate(timeout=180)[1] for p in procs]
    finally:
        for p in procs:
            p.kill() if p.poll() is None else None
    for p, err in zip(procs, errs, strict=True):
        assert p.returncode == 0, err[-3000:]


@pytest.mark.slow
def test_two_torchrun_nodes_train_one_run_to_the_figures_of_one_node(tmp_path):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    torchrun(2, 1, tmp_path / "two_nodes", cwd)
    torchrun(1, 2, tmp_path / "one_node", cwd)
    timing = {"fit_seconds", "train_seconds", "test_seconds", "startup_seconds", "threads"}
    figures = []
    for run in (tmp_path / "two_nodes", tmp_path / "one_node"):
        m = json.loads((run / "metrics.json").read_text())
        assert m["status"] == "completed" and m["world_size"] == 2, m
        figures.append({k: v for k, v in m.items() if k not in timing})
        # the first process wrote the run's files; the second logged beside them, into the same folder
        assert (
            (run / ".hydra").is_dir()
            and (run / "train.log").is_file()
            and (run / "train_rank_1.log").is_file()
        )
        assert (run / "checkpoints" / "last.ckpt").is_file() and not (run / ".lock").exists()
    assert figures[0] == figures[1]
    # no process made a folder of its own: not in the working folder (outputs/...), not beside the runs
    assert os.listdir(cwd) == [] and sorted(p.name for p in tmp_path.iterdir()) == [
        "cwd",
        "one_node",
        "two_nodes",
    ]


def test_the_other_processes_hydra_writes_no_hydra_folder_and_logs_to_a_file_of_its_own(tmp_path):
    # the first process's .hydra/ is this run's, and its check of the folder must not find another's there
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "RANK": "1", "WORLD_SIZE": "2"}
    cmd = [sys.executable, "-m", "lstm_cls.train", "--cfg", "hydra", f"hydra.run.dir={tmp_path / 'r'}"]
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "output_subdir: null" in r.stdout and "name: train_rank_1" in r.stdout
    assert not (tmp_path / "r").exists()


def test_a_run_on_several_nodes_is_refused_inside_a_multirun():
    # each job of a sweep is one process: Lightning would wait for the other nodes forever
    with pytest.raises(
        UserError, match=r"use trainer.devices=1 and trainer.num_nodes=1 \(got .*num_nodes=2\)"
    ):
        config.check(compose_cfg(*TINY, "trainer.num_nodes=2"), multirun=True)
    config.check(compose_cfg(*TINY, "trainer.num_nodes=2"))  # a single run: started on each node
