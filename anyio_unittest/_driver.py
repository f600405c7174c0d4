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

import math
import time
from collections.abc import Awaitable, Callable
from contextvars import Context, ContextVar
from types import CoroutineType
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
from ._frames import (
    format_await_chain,
    format_tasks,
    hide_own_frames,
    other_threads,
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
        "others",
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
        #: where the call was waiting when it was cancelled (its await chain),
        #: and where the other tasks of its runner were
        self.where = ""
        self.others = ""

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
            raise CallTimeout(self.limit, self.where, self.others) from error
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


class Owner:
    """A scope task's marker: who runs there, for reports about its tasks.

    A plain object, not the scope task: the context must not point back at the
    task, or every finished task would wait for the garbage collector.
    """

    __slots__ = ("doing", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        #: for a class or module scope task: its last step ("asyncSetUpClass of
        #: x.Y"), set by the scope before each; tests run after the set-up
        #: step, so a task found during a test was started by that step
        self.doing: str | None = None

    def started(self) -> str:
        """Who started a task carrying this marker, for a report."""
        return f"started by {self.doing or self.name}"


#: set in each scope task's context to a marker of it: tasks started from there
#: inherit it, which is how a task is traced back to the test that started it
OWNER: ContextVar[Owner] = ContextVar("anyio_unittest.owner")


def note_where(call: Call) -> None:
    """In the loop, as the driver cancels *call*: where it waits, and where
    every other task of its runner waits (what it may be waiting on)."""
    task = call.task
    call.where = format_await_chain(task.coroutine())
    call.others = format_tasks(task.runner.other_tasks(task), task.marker)


class ScopeTask:
    """One long-lived task on a runner; a backend supplies ``_hand_over``."""

    def __init__(self, runner: Runner, context: Context, name: str) -> None:
        self.runner = runner
        self.context = context
        #: who the task runs for ("test x.Y.test_z"), for messages
        self.name = name
        self.marker = Owner(name)
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

    def cancel_tasks(self, tasks: list[Any]) -> list[Any]:
        """Cancel *tasks* and wait up to GRACE for them; return the tasks that
        did not end (the runner is then left behind). What one raises instead of
        ending goes to the loop's exception handler.

        Backends that cannot cancel a single task from outside (trio) return
        at once, cancelling nothing.
        """
        raise NotImplementedError

    def close(self) -> None:
        """End the task; whatever it started and did not finish is cancelled."""
        raise NotImplementedError


_UNCHECKED = object()


class Runner:
    """One event loop or trio run; the backend supplies the primitives."""

    backend: str
    #: whether ScopeTask.cancel_tasks can cancel single tasks
    can_cancel_tasks: bool
    #: what the backend raises into cancelled code
    cancelled_exc_class: type[BaseException]
    #: who the runner was opened for ("class runner of x.Y"), for messages
    label = ""
    #: why nothing runs on it any more (None: it is usable)
    left_behind: str | None = None
    #: what the package reports about it (a ``_report.Record``), if anything
    record: Any = None
    _mismatch: Any = _UNCHECKED

    def library_mismatch(self) -> str | None:
        """Why every call of this runner must fail, if the async library
        detected in it is not its own (see :func:`library_mismatch`). Called
        by its scope tasks; it looks once."""
        if self._mismatch is _UNCHECKED:
            self._mismatch = library_mismatch(self.backend)
        return self._mismatch  # type: ignore[no-any-return]

    #: a second Ctrl-C left it behind (not a stuck call)
    left_by_ctrl_c = False

    # -- the drive loop ------------------------------------------------------

    def drive(self, call: Call) -> Any:
        """Run the host loop until *call* (handed to its task) has finished;
        return or raise its outcome."""
        # Ctrl-C goes to this call while it is driven
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
                others = format_tasks(self.other_tasks(call.task), call.task.marker)
                others = others or call.others
                self.leave_behind(
                    f"{call.task.name} did not end {GRACE:g} s after its time limit "
                    f"cancelled it"
                )
                raise CallStuck(call.limit, where, GRACE, other_threads(), others)
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
        if self.left_behind is None:
            self.left_behind = reason
            self.left_by_ctrl_c = ctrl_c
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

    def other_tasks(self, task: ScopeTask) -> list[tuple[str, Any, Owner | None]]:
        """Every live task of the runner but *task* and the idle scope tasks:
        (name, coroutine, the owner marker it carries or None), for a report."""
        raise NotImplementedError

    def pending_timers(self, owner: object) -> list[Any]:
        """The timers *owner*'s task scheduled that are still due (only the
        loops the package makes know: see ``_loops``)."""
        return []

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
