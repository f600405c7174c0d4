"""What a runner is, and the one loop that drives a call on either backend.

A *runner* is one event loop (asyncio) or one trio run, kept open on the calling
thread. A *scope task* is one long-lived task on a runner, bound to one
``contextvars.Context``, that runs the calls it is given one after another. Every
async hook of a test (``asyncSetUp``, the test, ``asyncTearDown``, async cleanups)
runs in the same scope task, so a cancel scope or task group entered in
``asyncSetUp`` can be exited in a cleanup; the same holds for the class and
module hooks, each in a scope task of their own.

Driving a call is the same on both backends, and lives here once
(:meth:`Runner.drive`): hand the call to its scope task, run the host loop until
the call has finished, and meanwhile keep its time limit (cancel the call when it
passes; give up on it, leaving the runner behind, when it has not ended a grace
period later) and route Ctrl-C to it. A backend supplies the few primitives that
differ: hand over, run the loop for a while, cancel, raise on the host, and what
"left behind" means for it.

Time limits count real seconds, on the host: whatever clock the runner's loop
keeps, a test is given its limit of wall-clock time.

Drivers know nothing about unittest.
"""

from __future__ import annotations

import itertools
import math
import os
import sys
import threading
import time
import traceback
from collections.abc import Awaitable, Callable, Iterator
from contextvars import Context, ContextVar
from types import CoroutineType, FrameType, TracebackType
from typing import Any

import sniffio

from . import _sigint
from ._exceptions import (
    CallStuck,
    CallTimeout,
    FirstInterrupt,
    Interrupted,
    RunnerLeftBehind,
)

# our frames are hidden from reported tracebacks: unittest's flag, and pytest's
__unittest = True
__tracebackhide__ = True

AsyncFn = Callable[..., Awaitable[Any]]

#: seconds a call may go on after its time limit cancelled it before it is given
#: up and its runner left behind; also how long closing a runner waits for
#: tasks that ignore their cancellation, and for worker threads
GRACE = 1.0

# why a call was cancelled (Call.cancelled)
TIMED_OUT = "timed out"
INTERRUPTED = "interrupted"  # a first Ctrl-C: the test errors, then the run stops
STOPPED = "stopped"  # a Ctrl-C that a chained handler (unittest -c) turned soft


class Call:
    """One call handed to a scope task, and its outcome.

    Its state: handed over, then ``finished`` (by the scope task, in the loop).
    ``cancelled`` says why the driver cancelled it, if it did, whatever the
    call then did with the cancellation.
    """

    __slots__ = (
        "aborted",
        "args",
        "cancelled",
        "ended",
        "error",
        "finished",
        "fn",
        "limit",
        "task",
        "value",
        "where",
    )

    def __init__(
        self, fn: AsyncFn, args: tuple[Any, ...], limit: float | None, task: ScopeTask
    ) -> None:
        self.fn = fn
        self.args = args
        self.limit = limit
        self.task = task
        self.value: Any = None
        self.error: BaseException | None = None
        self.finished = False
        #: when it finished (time.monotonic(), taken only for a limited call)
        self.ended = 0.0
        self.cancelled: str | None = None
        #: a second Ctrl-C asked the driver to raise on the host for this call
        self.aborted = False
        #: where the call was waiting when it was cancelled (its await chain)
        self.where = ""

    def discard(self) -> None:
        """The call will never run: close a coroutine handed over with it."""
        for arg in self.args:
            if type(arg) is CoroutineType:
                arg.close()

    def outcome(self) -> Any:
        """Return the value, or raise what the call raised (dropping our reference)."""
        error, self.error = self.error, None
        if self.cancelled is TIMED_OUT:
            assert self.limit is not None
            # what the code made of the cancellation (an error it converted it
            # into) is shown as the cause; the cancellation itself is ours
            raise CallTimeout(self.limit, self.where) from error
        if self.cancelled is INTERRUPTED:
            raise FirstInterrupt
        if self.cancelled is STOPPED:
            raise Interrupted("interrupted by Ctrl-C; the run stops after this test")
        if error is not None:
            hide_own_frames(error)
            try:
                raise error
            finally:
                del error
        return self.value


#: set in each scope task's context to a marker of it: tasks started from there
#: inherit it, which is how a task is traced back to the test that started it
OWNER: ContextVar[object] = ContextVar("anyio_unittest.owner")


class ScopeTask:
    """One long-lived task on a runner; a backend supplies ``_hand_over``."""

    def __init__(self, runner: Runner, context: Context, name: str) -> None:
        self.runner = runner
        self.context = context
        #: who the task runs for ("test x.Y.test_z"), for messages
        self.name = name
        # a plain marker, not self: the context must not point back at us, or
        # every finished task would wait for the garbage collector
        self.marker = object()
        context.run(OWNER.set, self.marker)

    def call(self, fn: AsyncFn, /, *args: Any, timeout: float | None = None) -> Any:
        """Run ``await fn(*args)`` in this task and return or raise its outcome.

        :param timeout: seconds after which the call is cancelled and
            :exc:`CallTimeout` raised (``None``: no limit)
        """
        call = Call(fn, args, timeout, self)
        runner = self.runner
        if runner.left_behind is not None:
            call.discard()
            if runner.left_by_ctrl_c:
                # the user asked out: what was still due on it is skipped, and
                # the KeyboardInterrupt already raised is the whole report;
                # what it would have closed (an async generator of the runner's)
                # is kept, not finalised outside its runner
                _LEFT_BEHIND.append(args)
                return None
            raise runner.left_behind_error()
        self._hand_over(call)
        return runner.drive(call)

    def _hand_over(self, call: Call) -> None:
        raise NotImplementedError

    def coroutine(self) -> Any:
        """The task's coroutine, to show where it waits (None: not started)."""
        raise NotImplementedError

    def cancel_in_loop(self, call: Call) -> None:
        """Cancel *call* if it is running (called in the loop, by the driver)."""
        raise NotImplementedError

    async def pause(self) -> None:
        """Between two phases run in one call: what the backend would do between
        two calls (asyncio: the callbacks made ready run once, and a phase
        cancelled by Ctrl-C doesn't leave the next one cancelled)."""
        raise NotImplementedError

    def leaked_tasks(self, everything: bool = False) -> list[Any]:
        """Tasks started from this scope task's context that are still pending.

        :param everything: every pending task of the runner but the scope tasks
        """
        raise NotImplementedError

    def cancel_tasks(self, tasks: list[Any]) -> tuple[list[BaseException], list[Any]]:
        """Cancel *tasks* and wait up to GRACE for them; return what they raised
        instead of ending, and the tasks that did not end (the runner is then
        left behind).

        Backends that cannot cancel a single task from outside (trio) return
        at once, cancelling nothing.
        """
        raise NotImplementedError

    def close(self) -> None:
        """End the task; whatever it started and did not finish is cancelled."""
        raise NotImplementedError


class Runner:
    """One event loop or trio run; the backend supplies the primitives."""

    backend: str
    #: whether ScopeTask.cancel_tasks can cancel single tasks
    can_cancel_tasks: bool
    #: what the backend raises into cancelled code
    cancelled_exc_class: type[BaseException]
    #: who the runner was opened for ("class runner of x.Y"), for messages
    label = ""
    _left_behind: str | None = None
    _left_by_ctrl_c = False

    @property
    def left_behind(self) -> str | None:
        """Why nothing runs on it any more (None: it is usable)."""
        return self._left_behind

    @property
    def left_by_ctrl_c(self) -> bool:
        """Whether a second Ctrl-C left it behind (not a stuck call)."""
        return self._left_by_ctrl_c

    # -- the drive loop ------------------------------------------------------

    def drive(self, call: Call) -> Any:
        """Run the host loop until *call* (handed to its task) has finished;
        return or raise its outcome."""
        router = _sigint.router
        router.rearm()
        router.driver = self
        router.call = call
        try:
            if call.limit is None or call.limit == math.inf:
                self._step(call, None)
            else:
                self._run_limited(call)
        except KeyboardInterrupt:
            if call.aborted and not call.finished:
                self.leave_behind(
                    f"a second Ctrl-C interrupted {call.task.name}", ctrl_c=True
                )
            raise
        finally:
            router.driver = None
            router.call = None
        if call.aborted:
            # a second Ctrl-C as the call ended: the host loop never raised it
            raise KeyboardInterrupt
        return call.outcome()

    def _run_limited(self, call: Call) -> None:
        assert call.limit is not None
        deadline = time.monotonic() + call.limit
        passed = False
        while not call.finished:
            remaining = deadline - time.monotonic()
            if remaining > 0:
                self._step(call, remaining)
            elif not passed:
                passed = True
                if call.cancelled is None:  # not already cancelled by Ctrl-C
                    call.cancelled = TIMED_OUT
                    self._cancel(call, threadsafe=False)
                deadline = time.monotonic() + GRACE
            else:
                where = format_await_chain(call.task.coroutine()) or call.where
                self.leave_behind(
                    f"{call.task.name} did not end {GRACE:g} s after its time limit "
                    f"cancelled it"
                )
                raise CallStuck(call.limit, where, GRACE, other_threads())
        if not passed and call.cancelled is None and call.ended > deadline:
            # it ended by itself, but after its limit: it held the thread (a
            # blocking call), so no cancellation could reach it in time
            call.cancelled = TIMED_OUT
            call.where = (
                "  (nowhere: it ended by itself after its limit, having blocked "
                "the thread, e.g. in time.sleep(), where it can't be cancelled)\n"
            )

    # -- what the router asks (from the signal handler) ------------------------

    def interrupt(self, call: Call, hard: bool) -> None:
        # the reason is set even for a call that has just finished, or was
        # cancelled for its time limit: the Ctrl-C must still stop the run
        cancel = call.cancelled is None and not call.finished
        call.cancelled = INTERRUPTED if hard else STOPPED
        if cancel:
            self._cancel(call, threadsafe=True)

    def abort(self, call: Call) -> None:
        self._post_on_host(_Abort(call))

    # -- left behind -----------------------------------------------------------

    def leave_behind(self, reason: str, ctrl_c: bool = False) -> None:
        """Nothing may run on this runner any more: a call on it can't end.

        It is never closed or run again (which would wait for that call), only
        kept referenced so that its pending tasks are never finalised in the
        middle of a later test.
        """
        if self._left_behind is None:
            self._left_behind = reason
            self._left_by_ctrl_c = ctrl_c
            _LEFT_BEHIND.append(self)
            self._release()

    def left_behind_error(self) -> RunnerLeftBehind:
        return RunnerLeftBehind(
            f"the {self.label or self.backend + ' runner'} was left behind "
            f"({self.left_behind}); nothing can run on it any more"
        )

    # -- what a backend supplies -----------------------------------------------

    def _step(self, call: Call, timeout: float | None) -> None:
        """Run the loop until *call* has finished, or for *timeout* seconds."""
        raise NotImplementedError

    def _cancel(self, call: Call, threadsafe: bool) -> None:
        """Have the loop cancel *call* (and note where it waits) when it runs."""
        raise NotImplementedError

    def _post_on_host(self, fn: Callable[[], object]) -> None:
        """Have the host loop call *fn* (thread- and signal-safe)."""
        raise NotImplementedError

    def _release(self) -> None:
        """Give up what the runner holds in the process (the SIGINT router)."""
        raise NotImplementedError

    def take_errors(self) -> list[str]:
        """Errors the loop swallowed (logged only) since the last call, formatted."""
        raise NotImplementedError

    def busy_threads(self, owner: object, wait: float = 0.0) -> list[Any]:
        """The worker threads still running work that *owner*'s task started,
        after waiting up to *wait* seconds for them to finish it."""
        raise NotImplementedError

    def open_task(self, context: Context, name: str) -> ScopeTask:
        """Start a scope task whose calls all run in *context*."""
        raise NotImplementedError

    def close(self) -> None:
        """Cancel what still runs, finalise async generators, close the loop."""
        raise NotImplementedError


#: runners left behind, kept alive until the process ends
_LEFT_BEHIND: list[object] = []


class _Abort:
    """Posted on the host loop by a second Ctrl-C: raises KeyboardInterrupt
    there, once, unless the call ended first (then the drive loop raises it)."""

    __slots__ = ("call",)

    def __init__(self, call: Call) -> None:
        self.call = call

    def __call__(self) -> None:
        if self.call.aborted and not self.call.finished:
            raise KeyboardInterrupt


def detach(exc: BaseException) -> BaseException:
    """Drop the scope task's own frame from the head of *exc*'s traceback.

    That frame stays alive, suspended, after the call; whoever clears the frames
    of a reported traceback (``assertRaises`` does, ``traceback.clear_frames``)
    would otherwise finalise the scope task's coroutine and hang the next call.
    """
    tb = exc.__traceback__
    if tb is not None:
        exc.__traceback__ = tb.tb_next
    return exc


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def await_frames(coro: Any) -> Iterator[tuple[FrameType, int]]:
    """The frames a coroutine is suspended in, outermost first, down the chain
    of what each awaits (as ``trio.lowlevel.Task.iter_await_frames``)."""
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            yield frame, frame.f_lineno
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)


def format_await_chain(coro: Any) -> str:
    """Where a suspended coroutine waits, as a traceback without our frames."""
    frames = [
        entry
        for entry in traceback.StackSummary.extract(await_frames(coro))
        if not entry.filename.startswith(_PACKAGE_DIR)
    ]
    return "".join(traceback.format_list(frames))


#: at most this many threads, and lines of each, in a report
_THREADS_SHOWN = 8
_LINES_PER_THREAD = 12


def other_threads() -> str:
    """The stacks of the process's other threads (the ones a stuck call may be
    waiting on), innermost lines, bounded."""
    me = threading.get_ident()
    frames = sys._current_frames()  # documented in sys, despite the underscore
    threads = [
        (t, frames[t.ident])
        for t in threading.enumerate()
        if t.ident is not None
        and t.ident in frames
        and t.ident != me
        and not _idle_trio_thread(frames[t.ident])
    ]
    parts = []
    for thread, frame in threads[:_THREADS_SHOWN]:
        lines = "".join(traceback.format_stack(frame)).splitlines()
        shown = "\n".join(lines[-_LINES_PER_THREAD:])
        parts.append(f"Thread {thread.name!r}:\n{shown}")
    if len(threads) > _THREADS_SHOWN:
        parts.append(f"... and {len(threads) - _THREADS_SHOWN} more thread(s)")
    return "\n".join(parts)


def _idle_trio_thread(frame: FrameType) -> bool:
    """Whether a thread is the one a trio guest run waits for I/O in, or an idle
    one of trio's thread cache (judged by its innermost frame): there whatever
    the test does, they wait for nothing of the test's."""
    code = frame.f_code
    return f"{os.sep}trio{os.sep}" in code.co_filename and code.co_name in (
        "get_events",
        "_work",
    )


def hide_own_frames(error: BaseException) -> None:
    """Unlink this package's frames from *error*'s tracebacks (and those of the
    exceptions chained to it or grouped in it).

    unittest hides frames of modules marked ``__unittest`` only at the start of a
    traceback (and at the end, for failures); ours can also sit between the
    user's, e.g. under ``await self.enterAsyncContext(...)``. Tracebacks made only
    of our frames are left alone: then the error is ours and they are the story.
    """
    seen: set[int] = set()
    stack = [error]
    while stack:
        exc = stack.pop()
        if id(exc) in seen:
            continue
        seen.add(id(exc))
        exc.__traceback__ = _without_own_frames(exc.__traceback__)
        stack.extend(e for e in (exc.__cause__, exc.__context__) if e is not None)
        stack.extend(getattr(exc, "exceptions", ()))


def _own(tb: TracebackType) -> bool:
    return str(tb.tb_frame.f_globals.get("__name__", "")).startswith(_PACKAGE)


def _without_own_frames(tb: TracebackType | None) -> TracebackType | None:
    kept = []
    entry = tb
    while entry is not None:
        if not _own(entry):
            kept.append(entry)
        entry = entry.tb_next
    if not kept:
        return tb
    for first, second in itertools.pairwise(kept):
        first.tb_next = second
    kept[-1].tb_next = None
    return kept[0]


_PACKAGE = __name__.rpartition(".")[0] + "."


#: at most this many leaked tasks are described in one report
TASKS_SHOWN = 20


def describe_task(name: str, coro: Any) -> str:
    """A task's name, its coroutine and the line it is waiting at.

    Both are taken from the user's code where the chain of awaits has some: an
    anyio task runs anyio's wrapper coroutine, and every task ends up waiting
    deep inside its async library, neither of which tells where the leak is.
    """
    qualname = getattr(coro, "__qualname__", type(coro).__name__)
    frames = []
    names = {}  # frame -> its coroutine's qualified name (code has it from 3.11)
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            frames.append(frame)
            names[frame] = getattr(coro, "__qualname__", frame.f_code.co_name)
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    files = [getattr(sys.modules.get(name), "__file__", None) for name in _LIBRARIES]
    libraries = tuple(
        os.path.dirname(os.path.abspath(file)) + os.sep for file in files if file
    )
    users = [f for f in frames if not f.f_code.co_filename.startswith(libraries)]
    if users:
        qualname = names[users[0]]
    where = ""
    if frames:
        frame = (users or frames)[-1]
        where = f"{frame.f_code.co_filename}:{frame.f_lineno}"
    return f"{name!r} running {qualname}(), waiting at {where or '?'}"


#: the packages whose frames describe_task skips when the user's code has some
_LIBRARIES = (
    "asyncio",
    "trio",
    "anyio",
    "outcome",
    "uvloop",
    __name__.rpartition(".")[0],
)


def library_mismatch(expected: str) -> str | None:
    """Why every call of a runner must fail, if the library detected is not ours.

    anyio picks its backend the same way, so a plugin or a patched loop that made
    a trio test run as asyncio (or the reverse) is caught here, not hidden. What
    it detects doesn't change from test to test: runners look once.
    """
    try:
        found = sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        found = None
    if found == expected:
        return None
    return (
        f"anyio_unittest started a {expected} runner but the code inside it "
        f"detects {found!r}: another plugin or loop policy has taken over"
    )
