"""Ctrl-C while runners are open.

Python's default SIGINT handler raises ``KeyboardInterrupt`` wherever the main
thread happens to be. Inside an event loop's own machinery that can leave a task
half-stepped and the loop unusable for the teardown that must still run; trio's
handler, installed by a guest run, instead defers a Ctrl-C that lands in host code
until the run's next tick, so a Ctrl-C during a long *sync* ``setUp`` would wait
for the next async call. Neither is what a test runner wants, so while any runner
is open we install one handler for the whole process (not once per call: swapping
handlers costs ~70 µs a call, see ``asyncio.Runner``):

* while a call is being driven, the first Ctrl-C cancels that call through its
  backend's thread- and signal-safe entry point; the call ends, its
  ``KeyboardInterrupt`` is raised on the host, and the async teardown that follows
  can still run;
* in sync code, ``KeyboardInterrupt`` is raised at once; so is it on a second
  Ctrl-C, by the driver's own loop on the host when a call is being driven
  (never inside the async code, which could catch it). If the call holds the
  thread (a blocking call in a test), the loop never gets to raise it: a third
  Ctrl-C raises in place.

If another Python handler is in place (``python -m unittest -c`` installs one that
asks the run to stop after the current test, and raises on a second Ctrl-C), it
is chained: it is called first, and if it returns, the current call is cancelled
and fails its test with :class:`Interrupted`, so the stop it asked for comes now
rather than when a hung ``await`` returns.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from ._driver import FirstInterrupt

# our frames are hidden from reported tracebacks: unittest's flag, and pytest's
__unittest = True
__tracebackhide__ = True


class _Router:
    def __init__(self) -> None:
        self.users = 0
        self.previous: Any = None
        self.installed = False
        #: set by a driver while it drives a call: schedules that call's
        #: cancellation (hard: KeyboardInterrupt; soft: Interrupted)
        self.interrupt_current: Callable[[bool], None] | None = None
        #: set by a driver while it drives a call: makes the host raise
        #: KeyboardInterrupt from the driver's own loop (a second Ctrl-C)
        self.abort_current: Callable[[], object] | None = None
        self.interrupting = False
        #: set by a second Ctrl-C: the user wants out now, so a runner that can't
        #: be closed without waiting (a trio run in a shielded await) is left
        self.abandoned = False
        #: a second Ctrl-C was handed to the driver (a third raises in place)
        self.aborted = False

    def handler(self, signum: int, frame: FrameType | None) -> None:
        if self.previous is not signal.default_int_handler:
            # put it back while it runs: unittest's handler defers to the default
            # one (raising at once) when it finds it is not the installed handler
            signal.signal(signal.SIGINT, self.previous)
            try:
                self.previous(signum, frame)  # may raise: a second Ctrl-C under -c
            except KeyboardInterrupt:
                self.abandoned = True
                if self._abort():
                    return
                raise
            finally:
                signal.signal(signal.SIGINT, self.handler)
            interrupt = self.interrupt_current
            if interrupt is not None:
                interrupt(False)
            return
        if self.interrupting:
            self.abandoned = True
            if self._abort():
                return
            raise KeyboardInterrupt
        self.interrupting = True
        interrupt = self.interrupt_current
        if interrupt is None:
            raise FirstInterrupt
        interrupt(True)

    def _abort(self) -> bool:
        """A second Ctrl-C while a call is driven: have the driver raise
        ``KeyboardInterrupt`` on the host, from its own loop. Raised here, it
        would land in whatever the thread runs, a task's code included, which
        catches it (or, in trio, crashes the run into cancelling everything),
        while the host goes on waiting for a call stuck in a shielded await."""
        abort = self.abort_current
        if abort is None or self.aborted:
            # no call, or a third Ctrl-C: the code holds the thread (a blocking
            # call inside a test) and never lets the loop run, so raise here
            return False
        self.aborted = True
        abort()
        return True

    def acquire(self) -> None:
        self.users += 1
        if (
            self.users == 1
            and threading.current_thread() is threading.main_thread()
            and callable(signal.getsignal(signal.SIGINT))
        ):
            self.previous = signal.signal(signal.SIGINT, self.handler)
            self.installed = True

    def release(self) -> None:
        self.users -= 1
        if self.users == 0 and self.installed:
            self.installed = False
            self.interrupting = False
            self.abandoned = False
            self.aborted = False
            if signal.getsignal(signal.SIGINT) == self.handler:
                signal.signal(signal.SIGINT, self.previous)


router = _Router()
