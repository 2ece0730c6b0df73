"""lstm_cls: classify multivariate time series with an LSTM, and study what drives overfitting."""

import os
import signal
import sys
import time

__version__ = "0.1.0"
STARTED = time.time()  # about when the command started: for the start-up figure in metrics.json


class UserError(ValueError):
    """Bad input or settings: reported as one `error:` line with exit code 2, never a traceback."""


if sys.argv[:1] == ["-m"]:  # `python -m lstm_cls.<tool>` is importing its package

    def _interrupted_while_importing(signum: int, frame: object) -> None:
        # Ctrl-C during the imports (torch and Lightning take seconds): exit quietly; each tool puts
        # Python's own handler back once it runs, so Lightning can still stop training gracefully
        sys.stderr.write("interrupted\n")
        os._exit(130)

    signal.signal(signal.SIGINT, _interrupted_while_importing)
