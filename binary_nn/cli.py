"""Shared CLI plumbing: turn a ``BinaryNNError`` into one sentence and an exit code."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

from .errors import BinaryNNError, ConfigError, os_error


class HelpFormatter(argparse.HelpFormatter):
    """Shows a flag's default once: where its help does not say it already, and there is one."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if (
            "default" not in text
            and action.default not in (None, False, "", argparse.SUPPRESS)
            and action.option_strings
        ):
            text += " (default: %(default)s)"
        return text


def describe(doc: str | None) -> str:
    """A command's description from its module docstring: its first paragraph (a whole
    sentence, however many lines it takes) without the ``python -m ...`` usage in front and
    without reST markup."""
    paragraph = " ".join((doc or "").strip().split("\n\n")[0].split())
    if paragraph.startswith("``") and "``: " in paragraph:
        paragraph = paragraph.split("``: ", 1)[1]
    text = paragraph.replace("``", "").rstrip(":")
    return text[:1].upper() + text[1:]


class ArgumentParser(argparse.ArgumentParser):
    """An argparse parser whose errors are a ``ConfigError`` (one sentence, exit code 2)
    and whose help shows each default once."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> Any:
        raise ConfigError(f"{message} (see --help)")


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a batch scheduler's time limit) while a command runs: unwinds like
    Ctrl-C, so a run stops where it is and keeps everything logged so far."""


@contextlib.contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return

    def terminate(signum: Any, frame: Any) -> Any:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class StopRequest:
    """Ctrl-C or SIGTERM asked the work to stop; it stops at the next safe point (a run:
    between two steps, after writing its checkpoint). See ``deferred_stop``."""

    def __init__(self) -> None:
        self.signal: int | None = None

    @property
    def requested(self) -> bool:
        return self.signal is not None

    def exception(self) -> KeyboardInterrupt:
        """What stopping raises: ``Terminated`` for SIGTERM, else KeyboardInterrupt."""
        return Terminated() if self.signal == signal.SIGTERM else KeyboardInterrupt()


@contextlib.contextmanager
def deferred_stop() -> Iterator[StopRequest]:
    """While inside, the first Ctrl-C or SIGTERM only sets the yielded request (the work
    checks it at safe points); a second one stops at once. Signals this process ignores
    (campaign workers ignore Ctrl-C, which their parent handles) stay ignored; outside the
    main thread nothing is installed."""
    stop = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def request(signum: int, frame: object) -> None:
        if stop.requested:
            raise stop.exception()
        stop.signal = signum

    previous = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(signum) is not signal.SIG_IGN:
            previous[signum] = signal.signal(signum, request)
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def run_cli(prog: str, main: Callable[[], int | None]) -> int:
    """Call ``main``; a user error prints ``prog: error: <sentence>`` and returns its exit code.
    Ctrl-C and SIGTERM stop it with one line (exit codes 130 and 143)."""
    try:
        with _sigterm_unwinds():
            return main() or 0
    except BinaryNNError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Terminated:
        print(f"{prog}: terminated (SIGTERM); everything logged so far is kept", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; everything logged so far is kept", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of our output went away (| head): not an error
        silence_stdout()
        return 0
    except OSError as exc:  # a file system refused what no earlier check could foresee
        error = os_error(exc)
        print(f"{prog}: error: {error}", file=sys.stderr)
        return error.exit_code


def silence_stdout() -> None:
    """Point stdout at /dev/null once its reader has gone (``| head``), so that nothing
    written later, nor Python's flush at exit, raises ``BrokenPipeError``."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real stdout (a test's capture): nothing to redirect
        pass
    finally:
        os.close(devnull)
