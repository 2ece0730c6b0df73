"""The sweep report, `python -m lstm_cls.report SWEEP_DIR` (command.py). One idea a file, each standing on
those before it: values.py (a setting's values as shown and grouped), read.py (a sweep's jobs read and
checked), timing.py (wall time, training time, jobs at once), tables.py (summary.md's sentences and
tables), outputs.py (never writing over a file report did not write), figures.py, command.py."""

from lstm_cls.report.command import Summary, main, summarise

__all__ = ["Summary", "main", "summarise"]
