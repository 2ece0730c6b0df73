"""What the `key=value` entry points share (predict, evaluate, export): parsing, `--help`, where scores of a
checkpoint go, and the `error:` exit."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Sequence
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


def refuse_data_settings(argv: list[str], tool: str, keys: Sequence[str]) -> None:
    """A tool that scores a checkpoint reads new data with the checkpoint's own data settings (source kind,
    target, features, window, normalisation...): the model means nothing with others. Of the `data` keys,
    only those among the tool's `keys` (which file, how its dates are written) may be given; any other is a
    UserError saying that it comes from the checkpoint."""
    for a in argv:
        key = a.split("=", 1)[0].lstrip("+~")
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
