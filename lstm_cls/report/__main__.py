"""`python -m lstm_cls.report SWEEP_DIR`: the command (command.py says what it reads and writes)."""

from lstm_cls import cli
from lstm_cls.report.command import main

if __name__ == "__main__":
    cli.run(main)  # UserError: one `error:` line, exit 2; Ctrl-C: exit 130
