"""lstm_cls: classify multivariate time series with an LSTM, and study what drives overfitting."""

import time

__version__ = "0.1.0"
STARTED = time.time()  # about when the command started: for the start-up figure in metrics.json

# kept here, free of heavy imports, so that bad settings are refused before torch or lightning load
NAN_RULES = ("ffill", "drop", "error")


class UserError(ValueError):
    """Bad input or settings: reported as one `error:` line with exit code 2, never a traceback."""
