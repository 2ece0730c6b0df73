"""The data rooms: sources (`series`, `tables`, `times`, `header`, `uea`), their windows or cases
(`windows`, `sequences`, `scaling`, `batches`) and the LightningDataModules (`window_modules`,
`sequence_modules`).

The data modules are named here as conf/data names them (`lstm_cls.data.SyntheticDataModule`) and loaded
on first use: importing `lstm_cls.data.header` (torch-free, for `config.check`) loads no torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "BatchedDataModule": "window_modules",
    "WindowDataModule": "window_modules",
    "SyntheticDataModule": "window_modules",
    "CsvDataModule": "window_modules",
    "SequenceDataModule": "sequence_modules",
    "CaseTableDataModule": "sequence_modules",
    "table_data": "sequence_modules",
}
__all__ = list(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
