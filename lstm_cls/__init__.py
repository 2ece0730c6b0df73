"""lstm_cls: classify multivariate time series with an LSTM, and study what drives overfitting."""

__version__ = "0.1.0"
