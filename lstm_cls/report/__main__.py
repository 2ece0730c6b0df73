"""`python -m lstm_cls.report SWEEP_DIR`: the command (command.py says what it reads and writes)."""

import signal

from lstm_cls import cli, exit_on_interrupt

if __name__ == "__main__":
    # first: Ctrl-C while pandas and matplotlib import (1-2 s) exits 130 without a traceback
    signal.signal(signal.SIGINT, exit_on_interrupt)
    from lstm_cls.report.command import main

    cli.run(main)  # UserError: one `error:` line, exit 2; Ctrl-C: exit 130
