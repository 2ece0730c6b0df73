"""What the `key=value` entry points share (predict, evaluate, export): parsing and the `error:` exit."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, NoReturn

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from lstm_cls import UserError


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


def fail(error: Exception | str) -> NoReturn:
    """The one way every entry point refuses: one `error:` line on stderr, exit code 2, no traceback."""
    print(f"error: {error}", file=sys.stderr)
    sys.exit(2)


def run(main: Callable[[list[str]], Any]) -> None:
    """Call main(argv); a UserError becomes one `error:` line on stderr and exit code 2; Ctrl-C exits 130
    (lstm_cls.exit_on_interrupt, or here when the tool runs in-process)."""
    try:
        main(sys.argv[1:])
    except UserError as e:
        fail(e)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
