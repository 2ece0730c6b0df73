"""lstm_cls: classify multivariate time series with an LSTM, and study what drives overfitting."""

import os
import sys
import time

__version__ = "0.1.0"
STARTED = time.time()  # about when the command started: for the start-up figure in metrics.json


class UserError(ValueError):
    """Bad input or settings: reported as one `error:` line with exit code 2, never a traceback."""


def exit_on_interrupt(signum: int, frame: object) -> None:
    """SIGINT's handler while a command starts (the imports of torch and Lightning take seconds) or in a
    tool: exit 130 at once, without a traceback. Installed by the command itself (`lstm_cls.entry.start`,
    `lstm_cls.cli.run`); `train` hands Ctrl-C back to Python just before fitting, so that Lightning can stop
    training gracefully and keep last.ckpt."""
    sys.stderr.write("interrupted\n")
    os._exit(130)  # no unwinding: an interrupt inside half-done imports must not surface as another error
