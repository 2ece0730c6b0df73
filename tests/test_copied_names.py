"""Names the project copies from a library to check settings before importing it: a test per copy, failing
the day the library's own list moves."""

import typing

from lstm_cls import schema


def literals(t: object) -> set:
    """Every value of a (union of) typing.Literal."""
    args = typing.get_args(t)
    if typing.get_origin(t) is typing.Literal:
        return set(args)
    return set().union(*(literals(a) for a in args))


def test_the_precision_names_are_lightnings_own():
    # schema.py types trainer.precision before torch is imported, so it holds a copy of Lightning's list
    from lightning.fabric.connector import _PRECISION_INPUT  # noqa: PLC2701 - the copy's source

    assert literals(schema.Precision) == literals(_PRECISION_INPUT)
