"""Hydra finds sweepers in the `hydra_plugins` package: this one is lstm_cls's default (see
conf/train.yaml and lstm_cls/sweeps.py)."""
