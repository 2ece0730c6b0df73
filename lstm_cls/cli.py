"""What the `key=value` entry points share (predict, evaluate, export): parsing, `--help`, where scores of a
checkpoint go, and the `error:` exit. And what every reader of settings shares: `parse_override` (the
setting an override sets) and `SHORT_NAMES` (settings' short names)."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from lstm_cls import UserError, exit_on_interrupt

HELP_FLAGS = ("-h", "--help")


def parse(defaults: dict[str, Any], argv: list[str]) -> DictConfig:
    """`key=value` arguments over `defaults`; an unknown key or a malformed argument is a UserError."""
    bad = [a for a in argv if "=" not in a]
    if bad:
        raise UserError(f"arguments are key=value, got {bad}; known keys: {sorted(defaults)}")
    cfg = OmegaConf.create(defaults)
    OmegaConf.set_struct(cfg, True)
    try:
        return OmegaConf.merge(cfg, OmegaConf.from_dotlist(argv))
    except OmegaConfBaseException as e:
        raise UserError(f"{str(e).splitlines()[0]} (known keys: {sorted(defaults)})") from None


def parse_override(override: str) -> tuple[str, str]:
    """The setting an override sets, without its +/++/~ prefix, and its value as typed ("" for a deletion,
    `~key`): `+trainer.max_epochs=5` sets trainer.max_epochs to "5"."""
    key, _, value = override.partition("=")
    return key.lstrip("+~"), value


def override_key(override: str) -> str:
    """`parse_override`'s key alone."""
    return parse_override(override)[0]


# settings' short names: summary.csv's columns (always shown; another key by its full name) and TensorBoard's
# run names (`tb/hidden=32,batch_size=128`; another key by its last part)
SHORT_NAMES = {
    "model.hidden": "hidden",
    "data.batch_size": "batch_size",
    "trainer.max_epochs": "max_epochs",
    "seed": "seed",
    "model.lr": "lr",
}

# predict's and evaluate's arguments: of the data settings, which file and how its dates are written (null: as
# in training); every other is the checkpoint's. output null: beside the checkpoint's run (check_tool)
SCORING: dict[str, Any] = {
    "ckpt_path": None,
    "output": None,
    "batch_size": 4096,
    "threads": 1,
    "data": {"path": None, "dayfirst": None},
}
SCORING_ARGS = [  # key, default, meaning (None: the tool's own): --help prints them
    ("ckpt_path", "(required)", "the model: outputs/runs/<run>/checkpoints/best.ckpt"),
    ("data.path", "(required)", None),
    ("data.dayfirst", "null", "its dates dd-mm-yyyy (true) or mm-dd-yyyy (false); null: as in training"),
    ("output", "null", None),
    ("batch_size", "4096", "windows per forward pass"),
    ("threads", "1", "torch threads"),
]


def scoring_help(tool: str, summary: str, meanings: Mapping[str, str]) -> str:
    """predict's or evaluate's `--help`: SCORING_ARGS, the tool's own `meanings` of data.path and output."""
    args = [(k, d, m or meanings[k]) for k, d, m in SCORING_ARGS]
    ckpt = "ckpt_path=outputs/runs/<run>/checkpoints/best.ckpt"
    return usage(tool, summary, args, [f"python -m lstm_cls.{tool} {ckpt} data.path=new.csv"])


def parse_scoring(tool: str, argv: list[str]) -> DictConfig:
    """predict's or evaluate's arguments over SCORING. A tool that scores a checkpoint reads new data with
    the checkpoint's own data settings (source kind, target, features, window, normalisation...): the model
    means nothing with others. Of the `data` keys, only SCORING_ARGS' (which file, how its dates are written)
    may be given; any other is a UserError saying that it comes from the checkpoint."""
    keys = [k for k, _, _ in SCORING_ARGS]
    for a in argv:
        key = override_key(a)
        if key == "data":  # a config group choice of `train` (data=csv, data=uea...)
            raise UserError(
                f"{a}: the data settings come from the checkpoint; pass only the file: "
                f"python -m lstm_cls.{tool} ckpt_path=CKPT data.path=FILE"
            )
        if key in ("data.test_path", "data.val_path"):  # the old way to score a file with evaluate
            raise UserError(
                f"{key}: {tool} reads the whole of one file, never a split: pass it as data.path=FILE"
            )
        if key.startswith("data.") and key not in keys:
            raise UserError(
                f"{key} comes from the checkpoint: a model is scored with the data settings it was trained "
                f"with; {tool} takes {', '.join(keys)} (python -m lstm_cls.{tool} --help)"
            )
    return parse(SCORING, argv)


def usage(tool: str, summary: str, args: Sequence[tuple[str, str, str]], examples: Sequence[str]) -> str:
    """The `--help` text of a key=value tool: what it does, each argument (key, default, meaning), example."""
    key_w = max(len(k) for k, _, _ in args)
    default_w = max(len(d) for _, d, _ in args)
    lines = [f"usage: python -m lstm_cls.{tool} key=value ...", "", summary, "", "arguments:"]
    lines += [f"  {k:<{key_w}}  {d:<{default_w}}  {m}" for k, d, m in args]
    lines += ["", "example:" if len(examples) == 1 else "examples:", *(f"  {e}" for e in examples)]
    return "\n".join(lines)


def run_folder(ckpt_path: str | Path) -> Path:
    """Where a checkpoint's scores go: its run directory (the parent of `checkpoints/`), or the checkpoint's
    own folder when it sits anywhere else. Never the current folder: results stay beside their model."""
    folder = Path(ckpt_path).parent
    return folder.parent if folder.name == "checkpoints" else folder


def file_stem(path: str | Path) -> str:
    """A data file's name without its suffixes: `new.csv` and `new.csv.gz` are both `new`."""
    p = Path(path)
    return (p.with_suffix("") if p.suffix.lower() == ".gz" else p).stem


def free_path(folder: Path, stem: str, suffix: str) -> Path:
    """`folder/stem+suffix`, or with a counter (`stem-2`, `stem-3`...) where that exists: scores of two files
    with one name (from two folders), or of one file twice, never overwrite each other."""
    n = 1
    while (p := folder / f"{stem}{'' if n == 1 else f'-{n}'}{suffix}").exists():
        n += 1
    return p


def fail(error: Exception | str) -> NoReturn:
    """The one way every entry point refuses: one `error:` line on stderr, exit code 2, no traceback."""
    print(f"error: {error}", file=sys.stderr)
    sys.exit(2)


def run(main: Callable[[list[str]], Any], help_text: str | None = None) -> None:
    """A key=value tool's command (its `if __name__ == "__main__":` block): call main(argv); a UserError
    becomes one `error:` line on stderr and exit code 2; Ctrl-C exits 130 (lstm_cls.exit_on_interrupt, or
    here if the tool puts Python's handler back). With `help_text`, `-h` or `--help` anywhere prints it and
    exits 0, before anything is checked or read."""
    signal.signal(signal.SIGINT, exit_on_interrupt)
    argv = sys.argv[1:]
    if help_text is not None and any(a in HELP_FLAGS for a in argv):
        print(help_text)
        sys.exit(0)
    try:
        main(argv)
    except UserError as e:
        fail(e)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


EXPORT_FORMATS = {"onnx": ".onnx", "torchscript": ".torchscript.pt"}
PREDICTION_FILES = (".csv", ".parquet")


def check_tool(tool: str, cfg: Mapping[str, Any]) -> Path:
    """The arguments of `predict`, `evaluate` and `export` (after `cli.parse` rejected unknown keys);
    returns the output path, which holds nothing yet: nothing a user made is overwritten.

    Without `output=`, predict and evaluate write beside the checkpoint's run (`cli.run_folder`), never into
    the current folder: `<run>/predictions/<file stem>.csv` and `<run>/evaluations/<file stem>.json`, with a
    counter where the name is taken. export writes beside the checkpoint."""
    ckpt = cfg.get("ckpt_path")
    if not ckpt:
        raise UserError("ckpt_path is not set: pass ckpt_path=<run>/checkpoints/best.ckpt")
    if not Path(ckpt).is_file():
        what = "is a directory, not a checkpoint file" if Path(ckpt).is_dir() else "no such file"
        raise UserError(f"ckpt_path: {what}: {ckpt}")
    problems = []
    for key in ("batch_size", "threads"):
        if key in cfg and not (_count(cfg[key]) and cfg[key] > 0):
            problems.append(f"{key} must be a positive integer (got {cfg[key]!r})")
    if tool == "export" and cfg.get("format") not in EXPORT_FORMATS:
        problems.append(f"format must be one of {', '.join(EXPORT_FORMATS)} (got {cfg.get('format')!r})")
    output = str(cfg.get("output") or "")
    if tool == "predict" and output and not output.lower().endswith(PREDICTION_FILES):
        problems.append(f"output must end in .csv or .parquet (got {output!r})")
    if tool == "evaluate" and output and not output.lower().endswith(".json"):
        problems.append(f"output must end in .json (got {output!r})")
    scoring = tool in ("predict", "evaluate")  # they read a data file with the checkpoint's settings
    if scoring and cfg["data"].get("dayfirst") not in (None, True, False):
        problems.append(f"data.dayfirst must be true, false or null (got {cfg['data']['dayfirst']!r})")
    if problems:
        raise UserError("; ".join(problems))
    if tool == "export" and not output:  # beside the checkpoint
        output = str(Path(ckpt).with_suffix(EXPORT_FORMATS[cfg["format"]]))
    if output and Path(output).exists():
        raise UserError(f"output: {output} already exists; choose another output=")
    if not scoring:
        return writable(Path(output))
    path = cfg["data"].get("path")
    if not path:
        what = "the file to predict on" if tool == "predict" else "a labelled file to score"
        raise UserError(
            f"data.path is not set: pass data.path=FILE, {what} (every other data setting "
            "comes from the checkpoint)"
        )
    if not Path(path).is_file():
        what = "is a directory, not a file" if Path(path).is_dir() else "no such file"
        raise UserError(f"data.path: {what}: {path}")
    if output:
        return writable(Path(output))
    folder = run_folder(ckpt) / ("predictions" if tool == "predict" else "evaluations")
    return writable(free_path(folder, file_stem(path), ".csv" if tool == "predict" else ".json"))


def writable(output: Path) -> Path:
    """A tool's output file, whose folder can be made and written (checked before the checkpoint is read)."""
    from lstm_cls.rundir import check_writable

    check_writable(output.parent, "output", shown=output)
    return output


def _count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)
