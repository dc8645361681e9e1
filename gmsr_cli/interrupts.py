"""Ctrl-C and SIGTERM: handlers that stop a run for certain, and the safe points that make sure.

Python runs a signal handler between bytecodes of whatever is executing, and a KeyboardInterrupt
raised while a ``__del__`` or weakref callback runs is printed ("Exception ignored in ...") and
dropped: the run would go on and finish as if nothing happened. So the handlers here raise
`Interrupted` *and* remember the signal; `check()`, called at safe points (every row block
written, before an output is renamed into place, before each photo of a batch), raises it again
if the first raise was swallowed. Without installed handlers `check()` does nothing.

A KeyboardInterrupt can also land in the middle of a library's own bookkeeping (numba's compiler
was seen half-closing an LLVM object), whose finalizer then fails later and Python prints
"Exception ignored in ... Traceback ...". Once a signal has been received, such reports are noise
after the run's one line ("Interrupted; ..."), so the handlers' block drops them (logged at debug
level); before any signal they are reported as usual.
"""

from __future__ import annotations

import gc
import logging
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager

_received: int | None = None
_log = logging.getLogger(__name__)


class Interrupted(KeyboardInterrupt):
    """The run was stopped by a signal (SIGINT: Ctrl-C, SIGTERM: kill or a scheduler's time limit).

    A KeyboardInterrupt, so that every ``except Exception`` lets it through and every cleanup
    that handles Ctrl-C handles it too. ``signum``: the signal; ``exit_code``: 128 + signum, as
    shells report a process stopped by that signal (130 for SIGINT, 143 for SIGTERM).
    """

    def __init__(self, signum: int = signal.SIGINT):
        self.signum = int(signum)
        super().__init__(signal.Signals(self.signum).name)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def _handler(signum: int, frame) -> None:
    global _received
    if _received is None:
        _received = signum
    raise Interrupted(signum)


def received() -> int | None:
    """The first signal received since the handlers were installed, or None."""
    return _received


def check() -> None:
    """Raise Interrupted if a signal was received: a safe point at which a stop that was
    swallowed (raised inside a finalizer) takes effect after all."""
    if _received is not None:
        raise Interrupted(_received)


def _unraisable_hook(previous):
    def hook(unraisable) -> None:
        if _received is None:
            previous(unraisable)
            return
        _log.debug("after %s, dropped an error in a finalizer of %r: %r", signal.Signals(_received).name,
                   unraisable.object, unraisable.exc_value)
    return hook


def exit_code(exc: BaseException) -> int:
    """The exit status for a run stopped by ``exc`` (a KeyboardInterrupt): 128 + the signal."""
    signum = getattr(exc, "signum", None) or _received or signal.SIGINT
    return 128 + int(signum)


@contextmanager
def handling_signals() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM raise Interrupted (and are remembered for `check`).
    Only in the main thread (signal handlers can only be set there); the previous handlers come
    back afterwards, and the signal is forgotten (read `received()` inside the block). After a
    signal, errors raised in finalizers (``sys.unraisablehook``) are dropped instead of printed."""
    global _received
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _received = None
    previous = {sig: signal.signal(sig, _handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    previous_hook = sys.unraisablehook
    sys.unraisablehook = _unraisable_hook(previous_hook)
    try:
        yield
    finally:
        if _received is not None:
            # Objects the interrupt left half-done may sit in reference cycles: collect them while
            # their finalizers' errors are still dropped.
            gc.collect()
        sys.unraisablehook = previous_hook
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _received = None
