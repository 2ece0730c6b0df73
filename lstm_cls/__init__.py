"""lstm_cls: classify multivariate time series with an LSTM, and study what drives overfitting."""

__version__ = "0.1.0"

# kept here, free of heavy imports, so that bad settings are refused before torch or lightning load
NAN_RULES = ("ffill", "drop", "error")


class UserError(ValueError):
    """Bad input or settings: reported as one `error:` line with exit code 2, never a traceback."""
