"""Shared CLI plumbing: turn a :class:`BinaryNNError` into one sentence and an exit code."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from .errors import BinaryNNError, ConfigError


class ArgumentParser(argparse.ArgumentParser):
    """An argparse parser whose errors are a :class:`ConfigError` (one sentence, exit code 2)."""

    def error(self, message: str):
        raise ConfigError(f"{message} (see --help)")


def run_cli(prog: str, main: Callable[[], int | None]) -> int:
    """Call ``main``; a user error prints ``prog: error: <sentence>`` and returns its exit code."""
    try:
        return main() or 0
    except BinaryNNError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; everything logged so far is kept", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of our output went away (| head): not an error
        from .run.tracking import silence_stdout

        silence_stdout()
        return 0
