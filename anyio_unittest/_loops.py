"""The event loops asyncio runners make: asyncio's own and uvloop's, subclassed
by public means to trace each timer to the test that scheduled it.

On a shared loop a timer one test leaves pending (``loop.call_later(...)``)
would fire during a later test and be blamed on it; a fresh loop per test just
drops it. So the runner's loop records the timers scheduled from a test's
context (the owner marker in it, see ``_driver.OWNER``), and the test is checked
for them at its end, like for tasks. Callbacks made ready with ``call_soon`` run
before the test's last call ends, so they can't outlive it. A timer scheduled by
a task the test started (a sleep, a ``wait_for``) ends with that task, which is
what the test is checked for first.

A loop that a ``loop_factory`` makes, or that an event loop policy other than
asyncio's default one makes, is used as it is: its timers are not traced.

With ``clock = "autojump"`` the runner's loop is a :class:`VirtualTimeLoop`,
whatever the policy: the same loop, keeping virtual time (see ``_clock``).
"""

from __future__ import annotations

import asyncio
import math
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from ._clock import AsyncioClock, AutojumpSelector
from ._driver import OWNER

T = TypeVar("T")

# our frames are hidden from reported tracebacks: unittest's flag, and pytest's
__unittest = True
__tracebackhide__ = True


class Timer:
    """A timer a test scheduled: its handle, and where in the test's code."""

    __slots__ = ("handle", "where")

    def __init__(self, handle: Any, where: str) -> None:
        self.handle = handle
        self.where = where


class TimerTracing:
    """What both loop classes add: ``timers``, by owner marker."""

    timers: dict[object, list[Timer]]

    def _trace(self, handle: Any) -> Any:
        owner = OWNER.get(None)
        if owner is not None:
            timers = self.timers.get(owner)
            if timers is None:
                timers = self.timers[owner] = []
            elif len(timers) >= _PRUNE_AT:
                # an owner that lives long (a class's task) keeps scheduling:
                # forget the timers that fired or were cancelled
                now = self.time()  # type: ignore[attr-defined]
                timers[:] = [
                    t
                    for t in timers
                    if not t.handle.cancelled() and t.handle.when() > now
                ]
            timers.append(Timer(handle, _scheduled_at()))
        return handle

    def pending_timers(self, owner: object) -> list[Timer]:
        """The timers *owner*'s test scheduled that are still due. (Asked after
        the test's leftover tasks were cancelled: a sleeping task's timer is
        cancelled with it.)"""
        timers = self.timers.get(owner)
        if not timers:
            return []
        now = self.time()  # type: ignore[attr-defined]
        pending = [
            timer
            for timer in timers
            if not timer.handle.cancelled() and timer.handle.when() > now
        ]
        if not pending:
            del self.timers[owner]
        return pending


class SelectorLoop(TimerTracing, asyncio.SelectorEventLoop):
    def __init__(self, selector: Any = None) -> None:
        super().__init__(selector)
        self.timers = {}

    def call_at(  # type: ignore[override]
        self, when: float, callback: Callable[..., object], *args: Any, **kw: Any
    ) -> asyncio.TimerHandle:
        return self._trace(super().call_at(when, callback, *args, **kw))  # type: ignore[no-any-return]


class VirtualTimeLoop(SelectorLoop):
    """A loop whose time is the virtual clock's, and that jumps instead of
    sleeping when only a timer could wake it."""

    def __init__(self, autojump_threshold: float) -> None:
        #: what current_clock() returns
        self.virtual_clock = AsyncioClock(autojump_threshold)
        super().__init__(AutojumpSelector(self.virtual_clock))
        # debug mode's "Executing <Handle> took N seconds" measures time(),
        # which stands still while a callback runs (it would report only a
        # jump() made inside one, as if the callback had taken that long)
        self.slow_callback_duration = math.inf

    def time(self) -> float:
        return self.virtual_clock.now

    def run_in_executor(  # type: ignore[override]
        self, executor: Any, func: Callable[..., T], *args: Any
    ) -> asyncio.Future[T]:
        future = super().run_in_executor(executor, func, *args)
        clock = self.virtual_clock
        clock.in_executor += 1
        future.add_done_callback(lambda _: _executor_done(clock))
        return future


def _executor_done(clock: AsyncioClock) -> None:
    clock.in_executor -= 1


def uvloop_loop() -> asyncio.AbstractEventLoop:
    """A uvloop loop that traces timers (its call_at goes through call_later)."""
    global _UvloopLoop
    if _UvloopLoop is None:
        import uvloop

        class UvloopLoop(TimerTracing, uvloop.Loop):  # type: ignore[misc]
            def __init__(self) -> None:
                super().__init__()
                self.timers = {}

            def call_later(  # type: ignore[override]
                self,
                delay: float,
                callback: Callable[..., object],
                *args: Any,
                **kw: Any,
            ) -> asyncio.TimerHandle:
                return self._trace(super().call_later(delay, callback, *args, **kw))  # type: ignore[no-any-return]

        _UvloopLoop = UvloopLoop
    return _UvloopLoop()  # type: ignore[no-any-return]


_UvloopLoop: Any = None


def default_loop() -> asyncio.AbstractEventLoop:
    """The loop an asyncio runner makes without a loop_factory."""
    if sys.platform != "win32" and type(asyncio.get_event_loop_policy()) is (
        asyncio.DefaultEventLoopPolicy
    ):
        return SelectorLoop()
    return asyncio.new_event_loop()  # another policy's loop, used as it is


_HERE = os.path.dirname(os.path.abspath(__file__)) + os.sep


#: an owner's list of timers is pruned when it reaches this length
_PRUNE_AT = 64
#: the directories of the libraries whose frames are skipped, by the modules
#: of them imported when they were looked up
_LIBRARY_DIRS: dict[tuple[bool, ...], tuple[str, ...]] = {}
_LIBRARIES = ("asyncio", "anyio", "uvloop")


def _library_dirs() -> tuple[str, ...]:
    key = tuple(name in sys.modules for name in _LIBRARIES)
    dirs = _LIBRARY_DIRS.get(key)
    if dirs is None:
        found = [_HERE]
        for name in _LIBRARIES:
            file = getattr(sys.modules.get(name), "__file__", None)
            if file:
                found.append(os.path.dirname(os.path.abspath(file)) + os.sep)
        dirs = _LIBRARY_DIRS[key] = tuple(found)
    return dirs


def _scheduled_at() -> str:
    """The first frame of the caller's code (not asyncio's, anyio's or ours)."""
    libraries = _library_dirs()
    frame: Any = sys._getframe(2)
    for _ in range(12):
        if frame is None:
            break
        filename = frame.f_code.co_filename
        if not filename.startswith(libraries):
            return f"{filename}:{frame.f_lineno}"
        frame = frame.f_back
    return "?"
