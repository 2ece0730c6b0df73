"""The LightningDataModules of labelled sequences, one label per case: the UEA/UCR archive (`data=uea`) and
a table of cases (`data=csv data.case=COLUMN`); and `table_data`, which `data=csv` names."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from lstm_cls import UserError
from lstm_cls.data import tables, uea
from lstm_cls.data.header import plain_time
from lstm_cls.data.scaling import channel_stats
from lstm_cls.data.sequences import CaseSet, pad
from lstm_cls.data.window_modules import BatchedDataModule, CsvDataModule, settings_of

log = logging.getLogger(__name__)


def _stratified(cases: Any, y: Any, fraction: float, seed: int, key: str) -> tuple[Any, Any]:
    """Cases (an index array) cut into (kept, held out), every class in both parts in proportion."""
    from sklearn.model_selection import train_test_split

    try:
        kept, held = train_test_split(cases, test_size=fraction, random_state=seed, stratify=y)
    except ValueError:  # a class with a single case cannot be in both
        log.warning("%s: some class has too few cases to stratify; the cases were sampled at random", key)
        kept, held = train_test_split(cases, test_size=fraction, random_state=seed)
    return kept, held


def _class_order(labels: Any) -> list[str]:
    """Class names in order: numerically where they are integers ("2" before "10"), else as text."""
    names = {str(v) for v in labels}
    return sorted(
        names, key=lambda v: (not v.lstrip("-").isdigit(), int(v) if v.lstrip("-").isdigit() else 0, v)
    )


class SequenceDataModule(BatchedDataModule):
    """`data=uea`: labelled sequences (the UEA/UCR archive, read with aeon). Each case is one row of the
    (rows, timesteps, features) tensor, right-padded, with its length beside it; its label is the case's.

    The TEST file is the test set; validation is a stratified, seeded sample of the TRAIN cases
    (`val_fraction`); scaling (`scale`, `clip`) is per channel, over the real steps of the training cases
    only.
    """

    test_fraction = 0.0  # a TEST file is the test set

    def __init__(
        self,
        name: str | None = None,
        path: str | None = None,
        test_path: str | None = None,
        val_fraction: float = 0.2,
        seed: int = 0,
        **batched: Any,
    ) -> None:
        super().__init__(**batched)
        self.name, self.path, self.test_path = name, path, test_path
        self.val_fraction, self.seed = val_fraction, seed

    def setup(self, stage: str | None = None) -> None:
        if self.sets:  # fit, then test: read once
            return
        train, test = self.read()
        self.class_names, self.feature_names = _class_order(train.y), train.channel_names
        index = {c: i for i, c in enumerate(self.class_names)}
        y_train = np.array([index[str(v)] for v in train.y])
        cases = np.arange(len(train.x))
        if test is None:  # no TEST file (a table of cases): a stratified, seeded test part of the cases
            cases, held = _stratified(cases, y_train, self.test_fraction, self.seed, "data.test_fraction")
            test = uea.Cases([train.x[i] for i in held], train.y[held], train.channel_names, train.source)
        uea.check_pair(train, test)
        y_test = np.array([index[str(v)] for v in test.y])
        fit, val = _stratified(cases, y_train[cases], self.val_fraction, self.seed, "data.val_fraction")
        self.fit_scaling(lambda: channel_stats([train.x[i] for i in fit], self.scale))

        def rows(xs: list, ys: Any) -> CaseSet:
            x, lengths = pad(xs, self.mean, self.std, self.clip)
            return CaseSet(x, torch.as_tensor(ys, dtype=torch.long), lengths)

        self.sets = {
            "train": rows([train.x[i] for i in fit], y_train[fit]),
            "val": rows([train.x[i] for i in val], y_train[val]),
            "test": rows(test.x, y_test),
        }
        lengths = torch.cat([s.lengths for s in self.sets.values()])
        log.info(
            "cases: %s; %d channels; lengths %d to %d steps",
            {s: len(c) for s, c in self.sets.items()},
            self.n_features,
            int(lengths.min()),
            int(lengths.max()),
        )

    def read(self) -> tuple[uea.Cases, uea.Cases | None]:
        """The TRAIN and TEST cases; TEST None: cut it from TRAIN by `test_fraction`."""
        if self.name:
            return uea.load_named(self.name, "train"), uea.load_named(self.name, "test")
        return uea.read_ts(self.path, "data.path"), uea.read_ts(self.test_path, "data.test_path")

    def info(self) -> dict[str, Any]:
        return {
            "kind": "sequences",
            **super().info(),
            "max_length": max(int(s.lengths.max()) for s in self.sets.values()),
            "source": self.name or self.path,
        }


class CaseTableDataModule(SequenceDataModule):
    """`data=csv data.case=COLUMN`: a long table whose rows belong to cases (a trial, a recording); each
    case is one sequence, in time order, with one label. The test set is `test_path`'s cases, or a
    stratified, seeded `test_fraction` of the cases; validation a stratified `val_fraction` of the rest.
    How the table is read (features, time, nan, dayfirst): `tables.table`'s settings, as in CsvDataModule."""

    def __init__(
        self,
        case: str,
        path: str,
        target: str,
        test_path: str | None = None,
        test_fraction: float = 0.175,
        **kwargs: Any,
    ) -> None:
        skip = ("group", "groups", "classes", "where", "group_key")
        self.columns = settings_of(tables.table, kwargs, skip)
        self.columns["time"] = plain_time(self.columns["time"])
        super().__init__(path=path, test_path=test_path, **kwargs)
        self.case, self.target, self.test_fraction = case, target, test_fraction

    def read(self) -> tuple[uea.Cases, uea.Cases | None]:
        main = self._cases(self.path, "data.path", None)
        test = self._cases(self.test_path, "data.test_path", main) if self.test_path else None
        return main, test

    def _cases(self, path: str, what: str, main: uea.Cases | None) -> uea.Cases:
        """A table's rows grouped by case (`tables.table` sorts by case, then time; checks the columns)."""
        columns = {**self.columns, "features": main.channel_names} if main is not None else self.columns
        series = tables.table(
            tables.read_table(path, what),
            self.target,
            group=self.case,
            group_key="data.case",
            where=str(path),
            **columns,
        )
        x, y, labels = series.x.numpy(), series.y.numpy(), []
        for (a, b), name in zip(series.bounds, series.group_names, strict=True):
            present = set(y[a:b][y[a:b] >= 0].tolist())
            if len(present) != 1:
                found = sorted(series.class_names[i] for i in present) or "none"
                raise UserError(
                    f"{what}: case {name!r} of column {self.case!r} has labels {found}; a case has one"
                )
            if np.isnan(x[a:b]).any():
                nan = self.columns["nan"]
                raise UserError(f"{what}: case {name!r} holds a missing feature value after data.nan={nan}")
            labels.append(series.class_names[present.pop()])
        return uea.Cases(
            [x[a:b] for a, b in series.bounds], np.array(labels), series.feature_names, str(path)
        )

    def info(self) -> dict[str, Any]:
        # and how the table was read, so that `predict` groups a new file the same way
        read = {"time": self.columns["time"], "nan": self.columns["nan"]}
        return {**super().info(), "case": self.case, "target": self.target, **read}


def table_data(case: str | None = None, **kwargs: Any) -> BatchedDataModule:
    """`data=csv` and its presets: windows of long series, or with `case` one labelled sequence per case."""
    if case is None:
        return CsvDataModule(**kwargs)
    # the keys of long series and their windows do not apply to whole cases: config.check refuses any value
    # but conf/data's own (group, val_path, window, stride, horizon, train_fraction), so none is lost
    unused = ("group", "groups", "hint", "val_path", "window", "stride", "horizon", "train_fraction")
    return CaseTableDataModule(case=case, **{k: v for k, v in kwargs.items() if k not in unused})
