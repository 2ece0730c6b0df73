"""The sweep report, `python -m lstm_cls.report SWEEP_DIR` (command.py says what it reads and writes).
Each file stands on those listed before it: values.py (a setting's values as shown and grouped), read.py
(a sweep's jobs read and checked), outputs.py (never writing over a file report did not write), timing.py,
tables.py (summary.md's sentences and tables), figures.py, command.py."""

from lstm_cls.report.command import Summary, main, summarise

__all__ = ["Summary", "main", "summarise"]
