"""Exceptions that carry a message meant for the person running binary_nn.

The command-line tools catch ``BinaryNNError`` and print its message as one sentence
instead of a traceback; anything else escaping is a bug in binary_nn.
"""

from __future__ import annotations

import errno


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


#: what an OSError says, in words a user can act on
_REASONS = {
    errno.ENOSPC: ("the disk is full", "free some space and run it again"),
    errno.EDQUOT: ("the disk quota is used up", "free some space and run it again"),
    errno.EACCES: ("permission denied", "choose a path you may write"),
    errno.EPERM: ("permission denied", "choose a path you may write"),
    errno.EROFS: ("the file system is read-only", "choose a writable path"),
    errno.ENAMETOOLONG: ("a name is longer than the file system allows", "choose a shorter one"),
    errno.ENOTDIR: ("a part of the path is a file, not a directory", "choose another path"),
    errno.EISDIR: ("it is a directory where a file belongs", "give a file path"),
    errno.EEXIST: ("it exists already", "choose another path"),
    errno.ENOENT: ("it does not exist", "check the path"),
}


def os_error(exc: OSError) -> BinaryNNError:
    """An OSError as one sentence naming the path and what to do (exit code 4 for a full
    disk, 2 otherwise)."""
    reason, action = _REASONS.get(exc.errno or 0, (exc.strerror or str(exc), "check the path"))
    where = f" {exc.filename}" if exc.filename else ""
    message = f"cannot write or read{where}: {reason}; {action}"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFullError(message + " (what was written before is kept)")
    return ConfigError(message)
