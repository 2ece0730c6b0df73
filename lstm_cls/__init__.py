"""lstm_cls: classify multivariate time series with an LSTM, and study what drives overfitting."""

import time

__version__ = "0.1.0"
STARTED = time.time()  # about when the command started: for the start-up figure in metrics.json


class UserError(ValueError):
    """Bad input or settings: reported as one `error:` line with exit code 2, never a traceback."""
