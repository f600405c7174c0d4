"""Virtual time: the clock of a runner with ``clock = "autojump"``.

On trio the clock is trio's own ``MockClock(autojump_threshold=...)``, given to
the run. asyncio has no clock to swap, so the package's asyncio loop for virtual
time (``_loops.VirtualTimeLoop``) brings its own, by public means only: its
``time()`` returns this module's :class:`AsyncioClock`, and it is built with an
:class:`AutojumpSelector`, a selector that jumps instead of sleeping. When the
loop would block (it passes ``select()`` the seconds until its next timer), the
selector first waits ``autojump_threshold`` real seconds for I/O, and if none
came, moves the clock to that timer and returns no events: the loop then finds
the timer due and runs it.

Both clocks only move by jumps (trio's ``MockClock`` with its default rate of
0): virtual time is the same on both backends, exactly the sum of what was
slept, whatever the machine's speed.

Time limits stay real: they are kept on the host thread (``_driver``), and on
asyncio the selector stops the loop at a call's real deadline (the *alarm*)
however far virtual time jumps meanwhile.
"""

from __future__ import annotations

import asyncio
import math
import selectors
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import sniffio

from ._exceptions import ConfigurationError

# our frames are hidden from reported tracebacks: unittest's flag, and pytest's
__unittest = True
__tracebackhide__ = True

CLOCKS = ("real", "autojump")
#: what asyncio's loops take for the resolution of their time()
_RESOLUTION = time.get_clock_info("monotonic").resolution


class VirtualClock(Protocol):
    """The virtual clock of a runner with ``clock = "autojump"``, as
    :func:`current_clock` returns it: trio's ``MockClock`` on trio, the
    package's own clock on asyncio."""

    @property
    def autojump_threshold(self) -> float:
        """Seconds of real idleness before time jumps to the next timer."""
        ...

    @autojump_threshold.setter
    def autojump_threshold(self, value: float) -> None: ...

    def current_time(self) -> float:
        """The virtual time (``anyio.current_time()``)."""
        ...

    def jump(self, seconds: float) -> None:
        """Move virtual time forward by *seconds*; the timers that became due
        run at the next checkpoint."""
        ...


def threshold_value(value: object, where: str) -> float:
    # "not >= 0" also rejects NaN
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ConfigurationError(
            f"{where} = {value!r}: give the seconds of real idleness before a "
            f"jump, a number >= 0 (0: jump as soon as nothing else can run)"
        )
    return float(value)


def clock_setting(cls: type, where: str) -> float | None:
    """The ``autojump_threshold`` of a class with ``clock = "autojump"``, or
    ``None`` for the real clock; ConfigurationError for a bad value."""
    clock = getattr(cls, "clock", "real")
    if not isinstance(clock, str) or clock not in CLOCKS:
        raise ConfigurationError(
            f"{where}: clock = {clock!r}; use 'real' or 'autojump'"
        )
    threshold = threshold_value(
        getattr(cls, "autojump_threshold", 0.0), f"{where}.autojump_threshold"
    )
    if clock == "real":
        if threshold:
            raise ConfigurationError(
                f"{where}: autojump_threshold = {threshold:g} has no effect with "
                f"clock = 'real'; set clock = 'autojump', or remove it"
            )
        return None
    return threshold


def clock_conflict(name: str, options: Mapping[str, Any]) -> str | None:
    """Why a runner of backend *name* with *options* can't keep virtual time."""
    if name == "asyncio":
        if options.get("use_uvloop"):
            what = "uvloop's loop (use_uvloop)"
        elif options.get("loop_factory") is not None:
            what = "the loop its loop_factory makes"
        else:
            return None
        return (
            f"clock = 'autojump' needs the package's own asyncio event loop, but "
            f"the {name} backend runs on {what}, whose clock can't be replaced by "
            f"public means; remove that option, or set clock = 'real'"
        )
    if options.get("clock") is not None:
        return (
            "clock = 'autojump' gives the trio run a MockClock, but the trio "
            "backend option 'clock' gives it another one; remove one of them"
        )
    return None


class AsyncioClock:
    """The virtual clock of an asyncio runner (see :class:`VirtualClock`)."""

    __slots__ = ("_threshold", "alarm", "in_executor", "now", "on_alarm")

    def __init__(self, autojump_threshold: float) -> None:
        #: the loop's time(); as on trio's MockClock, it starts at 0
        self.now = 0.0
        #: calls of the loop's run_in_executor() not yet done: while a worker
        #: thread runs, a task may still be woken by it, so time doesn't jump
        self.in_executor = 0
        self._threshold = autojump_threshold
        #: the time.monotonic() at which on_alarm must be called (a call's real
        #: time limit), or None
        self.alarm: float | None = None
        self.on_alarm: Callable[[], object] | None = None

    def __repr__(self) -> str:
        return (
            f"<anyio_unittest asyncio virtual clock, time={self.now:.7f}, "
            f"autojump_threshold={self._threshold:g}>"
        )

    @property
    def autojump_threshold(self) -> float:
        return self._threshold

    @autojump_threshold.setter
    def autojump_threshold(self, value: float) -> None:
        value = float(value)
        if not value >= 0:
            raise ValueError(f"autojump_threshold must be >= 0, not {value!r}")
        self._threshold = value

    def current_time(self) -> float:
        return self.now

    def jump(self, seconds: float) -> None:
        if not seconds >= 0:
            raise ValueError("time can't go backwards")
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        now = self.now + seconds
        if now + _RESOLUTION == now:
            # asyncio runs a timer once time() + the clock's resolution passes
            # its due time; past ~2**24 s a float can't add that resolution, and
            # a jump that lands exactly on a timer would never run it (real
            # time moves on; virtual time doesn't): land one float further
            now = math.nextafter(now, math.inf)
        self.now = now

    def set_alarm(self, seconds: float, callback: Callable[[], object]) -> None:
        """Have the selector call *callback* once *seconds* of real time have
        passed (virtual time may jump meanwhile)."""
        self.alarm = time.monotonic() + seconds
        self.on_alarm = callback

    def clear_alarm(self) -> None:
        self.alarm = self.on_alarm = None

    def ring(self) -> None:
        callback = self.on_alarm
        self.clear_alarm()
        if callback is not None:
            callback()


class AutojumpSelector(selectors.BaseSelector):
    """The system's default selector, but a wait that only a timer would end
    jumps the clock to that timer instead (see the module's docstring)."""

    def __init__(self, clock: AsyncioClock) -> None:
        self._inner = selectors.DefaultSelector()
        self._clock = clock

    def register(
        self, fileobj: Any, events: int, data: Any = None
    ) -> selectors.SelectorKey:
        return self._inner.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._inner.unregister(fileobj)

    def modify(
        self, fileobj: Any, events: int, data: Any = None
    ) -> selectors.SelectorKey:
        return self._inner.modify(fileobj, events, data)

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._inner.get_map()

    def close(self) -> None:
        self._inner.close()

    def select(
        self, timeout: float | None = None
    ) -> list[tuple[selectors.SelectorKey, int]]:
        clock = self._clock
        alarm = clock.alarm
        if timeout is not None and timeout <= 0:
            # something is ready to run: a look at I/O, no wait
            events = self._inner.select(0)
            if alarm is not None and time.monotonic() >= alarm:
                clock.ring()
            return events
        # The loop would block: until I/O, or for `timeout` (virtual) seconds
        # until its next timer, or for ever (None: no timer could wake it; a
        # thread, a signal or a socket still may, so that is a real wait). A
        # worker thread of the loop's (asyncio.to_thread, getaddrinfo) will
        # wake it when done: no jump before that.
        threshold = clock.autojump_threshold
        jump = timeout is not None and not clock.in_executor
        wait = threshold if jump and threshold != math.inf else None
        if alarm is not None:
            left = max(alarm - time.monotonic(), 0.0)
            if wait is None or left < wait:
                wait = left
        events = self._inner.select(wait)
        if alarm is not None and time.monotonic() >= alarm:
            # the call's real time limit (also when I/O stays ready): no jump
            clock.ring()
        elif jump and not events:
            assert timeout is not None
            clock.advance(timeout)
        return events


def current_clock() -> VirtualClock:
    """The virtual clock of the runner the calling test runs on.

    Call it from a test's async code (or its async hooks) on a class with
    ``clock = "autojump"``. On trio it is the run's
    :class:`trio.testing.MockClock`; on asyncio the package's own clock, which
    has the same ``jump()``, ``autojump_threshold`` and ``current_time()``.

    .. code-block:: python

        async def test_cache_expires(self):
            cache.put("key", "value", ttl=60)
            anyio_unittest.current_clock().jump(61)
            self.assertIsNone(cache.get("key"))

    A change of ``autojump_threshold`` lasts until the end of the test: the next
    test on a shared runner starts with its class's value again.

    :raises RuntimeError: outside async code, or if the runner keeps real time

    .. versionadded:: 0.2.0
    """
    try:
        library = sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        library = None
    clock: Any = None
    if library == "asyncio":
        clock = getattr(asyncio.get_running_loop(), "virtual_clock", None)
    elif library == "trio":
        import trio
        import trio.testing

        clock = trio.lowlevel.current_clock()
        if not isinstance(clock, trio.testing.MockClock):
            clock = None
    else:
        raise RuntimeError(
            "current_clock() must be called from a test's async code, on asyncio "
            "or trio"
        )
    if clock is None:
        raise RuntimeError(
            "current_clock(): this runner keeps real time; set clock = "
            "'autojump' on the test class for a virtual clock"
        )
    return clock  # type: ignore[no-any-return]
