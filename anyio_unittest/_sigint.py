"""Ctrl-C while runners are open.

Python's default SIGINT handler raises ``KeyboardInterrupt`` wherever the main
thread happens to be. Inside an event loop's own machinery that can leave a task
half-stepped and the loop unusable for the teardown that must still run; trio's
handler, installed by a guest run, instead defers a Ctrl-C that lands in host code
until the run's next tick, so a Ctrl-C during a long *sync* ``setUp`` would wait
for the next async call. Neither is what a test runner wants, so while any runner
is open we install one handler for the whole process (once, not around every
call: swapping handlers costs as much as a call):

* while a call is being driven, the first Ctrl-C cancels that call through its
  backend's thread- and signal-safe entry point; the call ends, its
  ``KeyboardInterrupt`` is raised on the host, and the async teardown that follows
  can still run;
* in sync code, ``KeyboardInterrupt`` is raised at once; so is it on a second
  Ctrl-C, by the driver's own loop on the host when a call is being driven
  (never inside the async code, which could catch it), and that call's runner
  is left behind. If the call holds the thread (a blocking call in a test), the
  loop never gets to raise it: a third Ctrl-C raises in place.

If another Python handler is in place (``python -m unittest -c`` installs one that
asks the run to stop after the current test, and raises on a second Ctrl-C), it
is chained: it is called first, and if it returns, the current call is cancelled
and fails its test with :class:`Interrupted`, so the stop it asked for comes now
rather than when a hung ``await`` returns.

The router has two states: *armed* (no Ctrl-C yet) and *interrupted* (a first
Ctrl-C was handled, so the next one is the second). Independently of them, it
knows the call being driven, if any, and the runner driving it.

A Python-level handler runs only when the main thread executes bytecode: a
Ctrl-C that lands just before the thread blocks in an asyncio loop's
``select()`` would wait for that wait to end (30 s for a test in
``sleep(30)``). Python's remedy is a wakeup fd, written by the C-level handler:
the router keeps a pipe for the process (plain descriptors, which a forked
process shares and nothing needs to close), and an asyncio runner on a selector
loop watches it and sets it as the wakeup fd while it drives a call, and only
then (a trio run, or ``trio.run()`` in a sync test, would take a wakeup fd left
set as a collision). uvloop sets one of its own as it runs; so does a trio run.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found,unused-ignore]
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any, NoReturn, Protocol

from ._exceptions import FirstInterrupt, Interrupted

# our frames are hidden from reported tracebacks: unittest's flag, and pytest's
__unittest = True
__tracebackhide__ = True


class Driven(Protocol):
    """A call being driven, as the router sees it."""

    #: set once a second Ctrl-C has asked the driver to raise for this call
    aborted: bool


class Driver(Protocol):
    """What the router asks of the runner driving a call. Both methods are
    called from the signal handler: they only schedule work on the runner's
    loop, through its thread- and signal-safe entry point."""

    def interrupt(self, call: Any, hard: bool) -> None:
        """Cancel *call* (hard: it ends with FirstInterrupt; soft: Interrupted)."""

    def abort(self, call: Any) -> None:
        """Make the host raise ``KeyboardInterrupt`` from the loop driving *call*."""


#: no Ctrl-C yet
ARMED = "armed"
#: a first Ctrl-C was handled: the next one is the second
INTERRUPTED = "interrupted"


class _Router:
    def __init__(self) -> None:
        self.users = 0
        self.previous: Any = None
        self.installed = False
        self.state = ARMED
        #: the runner driving a call, and that call (both None between calls)
        self.driver: Driver | None = None
        self.call: Driven | None = None
        #: the wakeup pipe (reader, writer), once an asyncio runner asked for it
        self._wakeup: tuple[int, int] | None = None

    def handler(self, signum: int, frame: FrameType | None) -> None:
        if self.previous is not signal.default_int_handler:
            # put it back while it runs: unittest's handler defers to the default
            # one (raising at once) when it finds it is not the installed handler
            signal.signal(signal.SIGINT, self.previous)
            try:
                self.previous(signum, frame)  # may raise: a second Ctrl-C under -c
            except KeyboardInterrupt:
                if self._abort():
                    return
                raise
            finally:
                signal.signal(signal.SIGINT, self.handler)
            if self.driver is not None:
                self.driver.interrupt(self.call, False)
            return
        if self.state is INTERRUPTED:
            if self._abort():
                return
            raise KeyboardInterrupt
        self.state = INTERRUPTED
        if self.driver is None:
            raise FirstInterrupt
        self.driver.interrupt(self.call, True)

    def _abort(self) -> bool:
        """A second Ctrl-C while a call is driven: have the driver raise
        ``KeyboardInterrupt`` on the host, from its own loop. Raised here, it
        would land in whatever the thread runs, a task's code included, which
        catches it (or, in trio, crashes the run into cancelling everything),
        while the host goes on waiting for a call stuck in a shielded await."""
        call = self.call
        if self.driver is None or call is None or call.aborted:
            # no call, or a third Ctrl-C: the code holds the thread (a blocking
            # call inside a test) and never lets the loop run, so raise here
            return False
        call.aborted = True
        self.driver.abort(call)
        return True

    def rearm(self) -> None:
        """Put the handler back if asyncio put Python's default one in its place
        (it does when a test's own SIGINT receiver closes). Called before each
        call: one look at the installed handler."""
        if self.installed and _getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, self.handler)

    def acquire(self) -> None:
        self.users += 1
        if (
            self.users == 1
            and threading.current_thread() is threading.main_thread()
            and callable(_getsignal(signal.SIGINT))
        ):
            self.previous = _signal.signal(signal.SIGINT, self.handler)
            self.installed = True

    def release(self) -> None:
        self.users -= 1
        if not self.installed:
            return
        if self.users == 0:
            self.installed = False
            self.state = ARMED
            if _getsignal(signal.SIGINT) == self.handler:
                _signal.signal(signal.SIGINT, self.previous)

    def wakeup_pipe(self) -> tuple[int, int] | None:
        """The wakeup pipe (reader, writer), made at the first call; None where
        no wakeup fd can be set: off the main thread, and on Windows (where it
        must be a socket; not done)."""
        if (
            threading.current_thread() is not threading.main_thread()
            or sys.platform == "win32"
        ):
            return None
        if self._wakeup is None:
            reader, writer = os.pipe()
            os.set_blocking(reader, False)
            os.set_blocking(writer, False)
            self._wakeup = (reader, writer)
        return self._wakeup

    def drain_wakeup(self) -> None:
        """Read what the C-level handler wrote (asyncio runners' reader
        callback: waking the loop was all it was for)."""
        assert self._wakeup is not None
        try:
            while os.read(self._wakeup[0], 512):
                pass
        except OSError:  # BlockingIOError: drained
            pass


def as_test_error() -> Interrupted:
    """A first Ctrl-C in a hook of a test, as an error of the test, so that
    unittest goes on with its teardown and cleanups (the run stops after)."""
    return Interrupted(
        "interrupted by Ctrl-C: teardown and cleanups run, then the run stops"
    )


def stop_run(*steps: Callable[[], object]) -> NoReturn:
    """A first Ctrl-C in class-level async code: stop the run as a plain Ctrl-C
    does, but after *steps* (the class's cleanups, which unittest does not run
    when a class hook raises ``KeyboardInterrupt``; closing the runners). A
    second Ctrl-C still raises at once."""
    try:
        for step in steps:
            step()
    except Exception as exc:
        raise KeyboardInterrupt from exc
    # from None: a plain Ctrl-C, not one "during handling of" the first
    raise KeyboardInterrupt from None


#: ``signal.getsignal`` and ``signal.signal`` without their conversion of the
#: result to an enum member, which for a handler that is a function raises and
#: catches a ValueError (each runner of function scope pays it twice): the C
#: functions that they call themselves
_getsignal = getattr(_signal, "getsignal", signal.getsignal)

router = _Router()
