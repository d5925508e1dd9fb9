"""Exceptions that carry a message meant for the person running binary_nn.

The command-line tools catch :class:`BinaryNNError` and print its message as one sentence
instead of a traceback; anything else escaping is a bug in binary_nn.
"""

from __future__ import annotations


class BinaryNNError(Exception):
    """An error the user can act on; ``exit_code`` is what the CLI exits with."""

    exit_code = 2


class ConfigError(BinaryNNError, ValueError):
    """A parameter, flag or input file has a value binary_nn cannot use."""


class DataError(BinaryNNError):
    """A dataset is missing, unreadable or corrupt."""


class DivergenceError(BinaryNNError):
    """The loss became NaN or infinite during training."""

    exit_code = 3


class DiskFullError(BinaryNNError):
    """The disk (or quota) ran out while a run or campaign wrote its results."""

    exit_code = 4
