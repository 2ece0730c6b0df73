"""The sweep report, `python -m lstm_cls.report SWEEP_DIR` (command.py says what it reads and writes).
Each file stands on those listed before it: values.py (a setting's values as shown and grouped), read.py
(a sweep's jobs read and checked), outputs.py (never writing over a file report did not write), timing.py,
tables.py (summary.md's sentences and tables), figures.py, command.py.

`from lstm_cls.report import main` loads command.py on first use: importing the package imports nothing
heavy, so `python -m lstm_cls.report` puts in its Ctrl-C handler (__main__.py) before pandas loads."""

from typing import Any

__all__ = ["Summary", "main", "summarise"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from lstm_cls.report import command

        return getattr(command, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
