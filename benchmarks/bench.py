"""Performance benchmark: `make bench` (or `python benchmarks/bench.py [--quick]`).

Every figure is measured in this run, side by side with a reference measured in the same run:
  1. training throughput with every default on, against a plain PyTorch loop on the same windows;
     1b. with gradient clipping, weight decay and a cosine schedule, against a loop that does the same,
     and Lightning's standard path (fast=false) beside it
  2. peak memory of a 10M-step series against its own size
  3. 4 sweep jobs with the joblib launcher against the same 4 run one after another
     3b. the efficiency of a 12-job study sweep (training time / (wall time x jobs at once)): the forkserver
     launcher against Hydra's joblib launcher, with nested epochs, and the forkserver launcher without
  4. inference windows/s (test evaluation, and a raw no-grad forward) on one core
  5. start-up: seconds from the command to the first training step
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOG = ROOT / "outputs" / "bench.log"
# the machine class of the targets: batch 32, 50-step windows, 13 features, hidden 32, one thread
SHAPE = ["data.window=50", "data.batch_size=32", "model.hidden=32", "data.n_features=13", "threads=1"]
# what an overfitting study adds to the defaults: the block path clips at every step itself
CLIPPED = ["trainer.gradient_clip_val=1.0", "model.weight_decay=0.01", "model.scheduler=cosine"]


def compose(overrides: list[str], run_dir: str):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return hydra_compose("train", overrides=[f"run_dir={run_dir}", *overrides])


def plain_loop(
    cfg, epochs: int, device: str = "cpu", fused: bool = False, clip: float | None = None, knobs: bool = False
) -> float:
    """The reference: all training windows in one tensor, batches sliced from a random permutation.

    torch's default Adam, as such a loop is written; `fused=True` gives it the fused kernel lstm_cls uses.
    `clip`: clip the gradient norm at every step; `knobs`: weight decay 0.01 and a cosine schedule over
    the epochs (the CLIPPED line's settings).
    """
    import hydra
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(1)
    torch.manual_seed(0)
    dm = hydra.utils.instantiate(cfg.data)
    dm.setup("fit")
    ws = dm.sets["train"]
    x, y = ws[list(range(len(ws)))]  # materialised once: [windows, timesteps, features]
    x, y = x.to(device), y.to(device)
    model = hydra.utils.instantiate(cfg.model, n_features=x.shape[2], n_classes=len(dm.class_names)).to(
        device
    )
    opt = torch.optim.Adam(
        model.parameters(), lr=1e-3, fused=fused or None, weight_decay=0.01 if knobs else 0
    )
    sch = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs) if knobs else None
    bs = cfg.data.batch_size
    t0 = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(len(x), device=device)
        for i in range(0, len(x), bs):
            idx = perm[i : i + bs]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            opt.step()
        if sch:
            sch.step()
    return epochs * len(x) / (time.perf_counter() - t0)


def harness(overrides: list[str], epochs: int) -> dict:
    """lstm_cls.train with every default on; training windows/s excluding the validation passes.

    Its console output (summary, progress bar) still renders, into outputs/bench.log.
    """
    from lstm_cls.train import train

    LOG.parent.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, LOG.open("a") as log:
        cfg = compose([*overrides, f"trainer.max_epochs={epochs}"], tmp)
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            m = train(cfg)
    return {"windows_per_s": m["epochs"] * m["windows/train"] / m["train_seconds"], "metrics": m}


def child(args: list[str]) -> None:
    """Run one training in this process and print its peak RSS (for the memory figure)."""
    from lstm_cls.train import train

    with tempfile.TemporaryDirectory() as tmp:
        train(compose(args, tmp))
    print("MAXRSS_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def peak_rss_mb(overrides: list[str]) -> float:
    r = subprocess.run(
        [sys.executable, __file__, "_child", *overrides], capture_output=True, text=True, cwd=ROOT
    )
    line = [ln for ln in r.stdout.splitlines() if ln.startswith("MAXRSS_KB")]
    if r.returncode != 0 or not line:
        raise RuntimeError(r.stderr[-2000:])
    return int(line[-1].split()[1]) / 1024


def sweep_seconds(launcher: str, overrides: list[str], parent: str, name: str = "") -> float:
    """One sweep, in its own new folder under `parent` named after the launcher (or `name`)."""
    sweep_dir = tempfile.mkdtemp(prefix=f"{name or launcher}_", dir=parent)
    t0 = time.perf_counter()
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "lstm_cls.train",
            "-m",
            *overrides,
            f"hydra/launcher={launcher}",
            f"hydra.sweep.dir={sweep_dir}",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if r.returncode != 0:
        raise RuntimeError(r.stderr[-2000:])
    seconds = time.perf_counter() - t0
    Path(sweep_dir, "command_seconds").write_text(f"{seconds}\n")  # the whole command, imports included
    return seconds


def sweep_efficiency(parent: Path, name: str) -> dict:
    """Training time / (wall time x jobs at once), averaged over the sweeps named `name` under `parent`:
    the sum of the trained jobs' fit_seconds (a derived job trained nothing of its own) over the whole
    command's wall time."""
    out = []
    for d in parent.glob(f"{name}_*"):
        state = json.loads((d / "sweep.json").read_text())
        runs = [json.loads(p.read_text()) for p in d.glob("*/metrics.json")]
        trained = [m for m in runs if "derived_from" not in m]
        wall = float((d / "command_seconds").read_text())
        out.append((sum(m["fit_seconds"] for m in trained) / (wall * state["jobs_at_once"]), len(trained)))
    return {"efficiency": statistics.mean(e for e, _ in out), "trained": out[0][1]}


def most_at_once(sweep_dir: Path) -> int:
    """The most jobs of a sweep that ran at the same time: from each job's first and last file."""
    spans = [
        ((d / ".hydra" / "config.yaml").stat().st_mtime, (d / "metrics.json").stat().st_mtime)
        for d in sweep_dir.iterdir()
        if (d / "metrics.json").is_file()
    ]
    return max(sum(a <= t < b for a, b in spans) for t, _ in spans)


def median_of(n: int, f: Callable[[], float]) -> float:
    return statistics.median(f() for _ in range(n))


def in_turns(a: Callable[[], float], b: Callable[[], float], abba: bool) -> tuple[list[float], list[float]]:
    """Seconds of each of two measurements, run in the order A B B A (A B if not `abba`): a drift in the
    machine's speed weighs on both sides alike."""
    seconds: dict[Callable[[], float], list[float]] = {a: [], b: []}
    for f in [a, b, b, a] if abba else [a, b]:
        seconds[f].append(f())
    return seconds[a], seconds[b]


def parallel_ceiling(abba: bool) -> float:
    """What 2 processes can gain over 1 here at all: a plain torch loop, twice in a row vs twice at once."""
    code = (
        "import torch,time\ntorch.set_num_threads(1)\nm=torch.nn.LSTM(13,32,batch_first=True)\n"
        "x=torch.randn(32,50,13);o=torch.optim.Adam(m.parameters());t=time.time()\n"
        "for _ in range(3000):\n o.zero_grad();m(x)[0].sum().backward();o.step()\nprint(time.time()-t)"
    )

    def one_by_one() -> float:
        t0 = time.perf_counter()
        for _ in range(2):
            subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
        return time.perf_counter() - t0

    def at_once() -> float:
        t0 = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL) for _ in range(2)]
        for p in procs:
            p.wait()
        return time.perf_counter() - t0

    seq, par = in_turns(one_by_one, at_once, abba)
    return sum(seq) / sum(par)


def inference(cfg) -> dict:
    """Windows/s of a no-grad forward over the test windows in large batches, one thread."""
    import hydra
    import torch

    torch.set_num_threads(1)
    dm = hydra.utils.instantiate(cfg.data)
    dm.setup("fit")
    model = hydra.utils.instantiate(cfg.model, n_features=dm.n_features, n_classes=len(dm.class_names)).eval()
    ws = dm.sets["test"]
    bs = 4096
    out = {}
    with torch.inference_mode():
        model(ws[list(range(min(bs, len(ws))))][0])  # warm-up
        t0 = time.perf_counter()
        for i in range(0, len(ws), bs):
            x, _ = ws[list(range(i, min(i + bs, len(ws))))]
            model.probabilities(model(x))
        out["forward_windows_per_s"] = len(ws) / (time.perf_counter() - t0)
    return out


def study_sweep(q: bool, results: dict) -> None:
    # 3b. a 12-job study sweep over hidden x batch x epochs (Albury where ../shared has it): how much of the
    # wall time the cores spend training. The forkserver launcher and Hydra's joblib launcher in turns, both
    # with nested epochs (the 10-epoch jobs derived from the 30-epoch ones); then the forkserver launcher
    # without (+hydra.sweeper.nested=false: all 12 train)
    albury = ROOT.parent / "shared" / "data" / "weatherAUS_albury.csv"
    data = (
        ["data=weather_aus", f"data.path={albury}"]
        if albury.is_file()
        else ["data.length=4000", "data.n_features=13"]
    )
    study = [
        *data,
        "model.hidden=8,32,128",
        "data.batch_size=16,128",
        f"trainer.max_epochs={'1,2' if q else '10,30'}",
        "callbacks.progress_bar.refresh_rate=0",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        fork_s, joblib_s = in_turns(
            lambda: sweep_seconds("forkserver", study, tmp),
            lambda: sweep_seconds("joblib", study, tmp),
            not q,
        )
        plain = [*study, "+hydra.sweeper.nested=false"]
        plain_s = [sweep_seconds("forkserver", plain, tmp, "plain") for _ in range(1 if q else 2)]
        eff = {kind: sweep_efficiency(Path(tmp), kind) for kind in ("forkserver", "joblib", "plain")}
    results["study_sweep"] = {
        "data": "Albury" if albury.is_file() else "synthetic",
        "forkserver_s": fork_s,
        "joblib_s": joblib_s,
        "plain_forkserver_s": plain_s,
        "efficiency": eff,
    }
    print(
        f"3b. 12-job study sweep ({results['study_sweep']['data']}; hidden 8,32,128 x batch 16,128 x "
        f"{'1,2' if q else '10,30'} epochs), training time / (wall time x jobs at once), target >= 0.80:\n"
        f"   forkserver launcher, nested epochs ({eff['forkserver']['trained']} jobs train): "
        f"{statistics.mean(fork_s):.1f} s, {eff['forkserver']['efficiency']:.2f}; every job trained: "
        f"{statistics.mean(plain_s):.1f} s, {eff['plain']['efficiency']:.2f}\n"
        f"   Hydra's joblib launcher, nested epochs: {statistics.mean(joblib_s):.1f} s, "
        f"{eff['joblib']['efficiency']:.2f} (timed in turns with the forkserver's, "
        f"{'A B B A' if not q else 'A B'})"
    )


def gpu_section(base: list[str], epochs: int, results: dict) -> None:
    """On a GPU (trainer=gpu): the plain loop and lstm_cls there, in one run."""
    import torch

    # on a GPU (trainer=gpu): the series sits on the device and batches are gathered there (cuDNN LSTM)
    if torch.cuda.is_available():
        gpu = [*base, "trainer=gpu"]
        with tempfile.TemporaryDirectory() as tmp:
            cfg = compose(gpu, tmp)
            plain_loop(cfg, 1, "cuda")
            ref_gpu = plain_loop(cfg, epochs, "cuda")
            ref_gpu_fused = plain_loop(cfg, epochs, "cuda", fused=True)
        harness(gpu, 1)
        ours_gpu = harness(gpu, epochs)["windows_per_s"]
        results["gpu"] = {
            "plain_loop": ref_gpu,
            "lstm_cls": ours_gpu,
            "ratio": ours_gpu / ref_gpu,
            "ratio_to_fused_adam_loop": ours_gpu / ref_gpu_fused,
            "device": torch.cuda.get_device_name(),
        }
        print(
            f"GPU ({results['gpu']['device']}): plain loop {ref_gpu:,.0f} windows/s "
            f"({ref_gpu_fused:,.0f} with fused Adam); lstm_cls {ours_gpu:,.0f} "
            f"-> ratio {ours_gpu / ref_gpu:.2f} ({ours_gpu / ref_gpu_fused:.2f})"
        )
    else:
        print("GPU: none here (torch.cuda.is_available() is False); on one, this prints the same comparison")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller sizes: a smoke run, not the figures")
    ap.add_argument(
        "--only",
        choices=["study-sweep", "gpu"],
        help="one section alone: 3b (the study sweep's efficiency) or gpu",
    )
    args = ap.parse_args()
    q = args.quick
    if args.only == "study-sweep":
        study_sweep(q, results := {})
        return
    if args.only == "gpu":  # the GPU comparison alone, at the full sizes (a lent GPU's time is short)
        gpu_section([*SHAPE, "data.length=20000", "callbacks.progress_bar.refresh_rate=20"], 3, {})
        return
    import lightning
    import torch

    print(f"# lstm_cls benchmark, {time.strftime('%Y-%m-%d')}")
    print(
        f"cores {os.cpu_count()}, python {platform.python_version()}, torch {torch.__version__}, "
        f"lightning {lightning.__version__}\n"
    )
    results = {}

    # 1. training throughput, same windows, same batch semantics
    length = 3000 if q else 20000
    epochs = 1 if q else 3
    base = [*SHAPE, f"data.length={length}", "callbacks.progress_bar.refresh_rate=20"]
    # all warmed up, then run in turns; each round's ratio is taken within the round, and the median
    # round reported: this machine's speed drifts by 10-20% from minute to minute
    rounds = 1 if q else 7
    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose(base, tmp)
        plain_loop(cfg, 1)
        harness(base, 1)
        refs, refs_fused, trials = [], [], []
        refs_clip, trials_clip, trials_std = [], [], []
        for _ in range(rounds):
            refs.append(plain_loop(cfg, epochs))
            refs_fused.append(plain_loop(cfg, epochs, fused=True))
            trials.append(harness(base, epochs))
            refs_clip.append(plain_loop(cfg, epochs, clip=1.0, knobs=True))
            trials_clip.append(harness([*base, *CLIPPED], epochs)["windows_per_s"])
            trials_std.append(harness([*base, *CLIPPED, "fast=false"], epochs)["windows_per_s"])
    rates = [t["windows_per_s"] for t in trials]
    ratio = statistics.median(r / p for r, p in zip(rates, refs, strict=True))
    ratio_fused = statistics.median(r / p for r, p in zip(rates, refs_fused, strict=True))
    ours = sorted(trials, key=lambda t: t["windows_per_s"])[len(trials) // 2]
    results["train"] = {
        "rounds": rounds,
        "plain_loop": statistics.median(refs),
        "plain_loop_fused_adam": statistics.median(refs_fused),
        "lstm_cls": statistics.median(rates),
        "ratio": ratio,
        "ratio_to_fused_adam_loop": ratio_fused,
        "round_ratios": [r / p for r, p in zip(rates, refs, strict=True)],
    }
    print(
        f"1. training, windows/s (medians of {rounds} rounds): plain loop {statistics.median(refs):,.0f}; "
        f"lstm_cls, every default on {statistics.median(rates):,.0f} -> ratio {ratio:.2f} (target >= 0.90)\n"
        f"   the plain loop given lstm_cls's fused Adam: {statistics.median(refs_fused):,.0f} "
        f"-> ratio {ratio_fused:.2f}"
    )

    ratio_clip = statistics.median(r / p for r, p in zip(trials_clip, refs_clip, strict=True))
    ratio_std = statistics.median(r / p for r, p in zip(trials_std, refs_clip, strict=True))
    results["train_clipped"] = {
        "settings": CLIPPED,
        "plain_loop_clipping": statistics.median(refs_clip),
        "lstm_cls": statistics.median(trials_clip),
        "lstm_cls_standard_path": statistics.median(trials_std),
        "ratio": ratio_clip,
        "ratio_standard_path": ratio_std,
    }
    print(
        f"1b. the same with {' '.join(CLIPPED)}: plain loop clipping the gradient norm (and the same decay "
        f"and schedule) {statistics.median(refs_clip):,.0f}; lstm_cls {statistics.median(trials_clip):,.0f} "
        f"-> ratio {ratio_clip:.2f} (target >= 0.90)\n"
        f"   Lightning's standard path forced (fast=false), one batch per training_step: "
        f"{statistics.median(trials_std):,.0f} -> ratio {ratio_std:.2f}"
    )

    # 5. start-up, in a fresh process: the command to its first training step, and what imports cost
    def startup() -> float:
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "lstm_cls.train",
                    *base,
                    "trainer.max_epochs=1",
                    f"hydra.run.dir={tmp}/run",
                ],
                capture_output=True,
                check=True,
                cwd=ROOT,
            )
            return json.loads((Path(tmp) / "run" / "metrics.json").read_text())["startup_seconds"]

    def import_lightning() -> float:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import lightning"], check=True)
        return time.perf_counter() - t0

    n = 1 if q else 3
    to_first_step, imports = median_of(n, startup), median_of(n, import_lightning)
    results["startup"] = {"to_first_step_s": to_first_step, "import_lightning_s": imports}
    print(
        f"5. start-up (medians of {n}): {to_first_step:.2f} s from `python -m lstm_cls.train` importing the "
        f"package to its first training step; a fresh `python -c 'import lightning'`: {imports:.2f} s"
    )

    # 4. inference
    with tempfile.TemporaryDirectory() as tmp:
        inf = inference(compose(base, tmp))
    test_rate = ours["metrics"]["windows/test"] / ours["metrics"]["test_seconds"]
    results["inference"] = {**inf, "test_windows_per_s": test_rate}
    print(
        f"4. inference, one core: no-grad forward {inf['forward_windows_per_s']:,.0f} windows/s; "
        f"test evaluation {test_rate:,.0f} windows/s (target >= 40,000)"
    )

    # 2. memory: a 10M-step series against a small one, same everything else
    big = 1_000_000 if q else 10_000_000
    mem = [
        *SHAPE,
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=50",  # Lightning's standard path (a batch limit): its lean sampler
        "trainer.limit_val_batches=20",
        "trainer.limit_test_batches=20",
        "callbacks.progress_bar.refresh_rate=0",
    ]
    small_mb = peak_rss_mb([*mem, "data.length=20000"])
    big_mb = peak_rss_mb([*mem, f"data.length={big}"])
    series_mb = big * 13 * 4 / 2**20
    results["memory"] = {
        "small_mb": small_mb,
        "big_mb": big_mb,
        "series_mb": series_mb,
        "ratio": (big_mb - small_mb) / series_mb,
    }
    print(
        f"2. memory: {big:,}-step series ({series_mb:,.0f} MB as float32; 50-step windows would be "
        f"{series_mb * 50 / 1024:,.1f} GB): peak {big_mb:,.0f} MB vs {small_mb:,.0f} MB small run -> "
        f"{results['memory']['ratio']:.2f}x the series' bytes above it (target <= 2)"
    )

    # 3. sweeps: 4 jobs, joblib on all cores vs one after another
    # jobs of ~25-30 s of training each, like the reference run: a real study's are longer; each
    # worker process pays its own start-up (~4 s importing lightning), which one sequential process pays once
    jobs = [
        "model.hidden=16,32",
        "seed=1,2",
        f"data.length={2000 if q else 30000}",
        "data.window=50",
        f"trainer.max_epochs={2 if q else 30}",
        "callbacks.progress_bar.refresh_rate=0",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        seq_s, par_s = in_turns(
            lambda: sweep_seconds("basic", jobs, tmp), lambda: sweep_seconds("joblib", jobs, tmp), not q
        )
        runs = [json.loads(p.read_text()) for p in Path(tmp).glob("joblib_*/*/metrics.json")]
        at_once = max(most_at_once(d) for d in Path(tmp).glob("joblib_*"))
    threads = max(m["threads"] for m in runs)
    seq, par = statistics.mean(seq_s), statistics.mean(par_s)
    ceiling = parallel_ceiling(abba=not q)
    results["sweep"] = {
        "sequential_s": seq_s,
        "joblib_s": par_s,
        "speedup": seq / par,
        "hardware_ceiling": ceiling,
        "jobs_at_once": at_once,
        "threads_per_job": threads,
    }
    print(
        f"3. sweep of 4 jobs, timed {'A B B A' if not q else 'A B'}: (A) one after another {seq:.1f} s, "
        f"(B) joblib {par:.1f} s -> {seq / par:.2f}x "
        f"(target >= 1.7x on 2 cores)\n"
        f"   joblib ran {at_once} jobs at once, {threads} torch thread(s) each, on {os.cpu_count()} cores; "
        f"the hardware's own ceiling, two plain torch loops at once vs one after another: {ceiling:.2f}x"
    )

    study_sweep(q, results)

    gpu_section(base, epochs, results)

    out = ROOT / "outputs" / "bench.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_child":
        child(sys.argv[2:])
    else:
        main()
