"""The asyncio driver: one event loop kept open and driven from the calling thread.

Each scope task is an ``asyncio.Task`` created with the scope's context; the host
hands it a call by resolving the future it waits on, then runs the loop with
``run_forever()``, which the scope task stops as the call ends (cheaper than
``run_until_complete``, and no per-call SIGINT swap as in ``asyncio.Runner``).

Each scope task runs its calls inside one anyio ``CancelScope``: time limits and
Ctrl-C cancel a call through it, so a shielded scope of the test's
(``anyio.CancelScope(shield=True)``) is honoured as anyio defines it, and the
driver knows the call was cancelled whatever the code then did with the
``CancelledError``. Cancellation in asyncio is edge-triggered, so once a
cancelled call has ended the scope is replaced by a fresh one and the next call
(``asyncTearDown``, a cleanup) runs normally; only while a cancel scope of the
test's own, entered by a cancelled call, is still open inside it can't it be
replaced, and then the rest of the task runs cancelled, as on trio.

Python 3.10 has no ``context=`` for tasks: there the task runs in a copy of the
scope's context: what the host set in the scope's context (sync hooks run in it)
is copied in before each call, and what a call changes is copied back after it
(a variable *reset* to unset is the one thing that does not travel).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import signal
import sys
import time
import traceback
import weakref
from collections.abc import Callable, Iterable
from contextvars import Context
from typing import Any

import anyio

from . import _sigint
from ._clock import AsyncioClock
from ._driver import (
    GRACE,
    OWNER,
    Call,
    Owner,
    Runner,
    ScopeTask,
    note_where,
)
from ._frames import detach, format_await_chain
from ._loops import Timer, TimerTracing, VirtualTimeLoop, default_loop, uvloop_loop
from ._threads import Work, WorkerThreads

# our frames are hidden from reported tracebacks: unittest's flag, and pytest's
__unittest = True
__tracebackhide__ = True

_TASK_CONTEXT = sys.version_info >= (3, 11)


class AsyncioScopeTask(ScopeTask):
    runner: AsyncioRunner

    def __init__(self, runner: AsyncioRunner, context: Context, name: str) -> None:
        super().__init__(runner, context, name)
        self._task: asyncio.Task[None] | None = None
        self._inbox: asyncio.Future[None] | None = None
        self._next: Call | None = None
        #: the call running, and the cancel scope it runs in
        self._current: Call | None = None
        self._scope: Any = None

    def coroutine(self) -> Any:
        return None if self._task is None else self._task.get_coro()

    def leaked_tasks(self, everything: bool = False) -> list[Any]:
        if everything:
            candidates: Any = asyncio.all_tasks(self.runner.loop)
        else:
            candidates = self.runner.owned.get(self.marker, ())
        return [t for t in candidates if t is not self._task and not t.done()]

    def cancel_tasks(self, tasks: list[Any]) -> list[Any]:
        if not tasks:
            return []
        stuck: list[Any] = self.call(_cancel_and_wait, self.runner, tasks)
        if stuck:
            self.runner.leave_behind(
                f"{len(stuck)} task(s) that {self.name} left ignored their cancellation"
            )
        return stuck

    def _hand_over(self, call: Call) -> None:
        if self._task is None:
            # asyncio.Task directly, not loop.create_task(): our own task needs
            # no task factory (the owner-tracing one)
            coro = self._main(call)
            loop = self.runner.loop
            if _TASK_CONTEXT:
                self._task = asyncio.Task(coro, loop=loop, context=self.context)  # type: ignore[call-arg,unused-ignore]
            else:
                self._task = self.context.run(asyncio.Task, coro, loop=loop)
            return
        if self._task.done() or self._next is _END:
            call.discard()
            raise RuntimeError("this scope task has ended")
        self._next = call
        inbox = self._inbox
        if inbox is not None and not inbox.done():
            inbox.set_result(None)

    async def _main(self, call: Call | None) -> None:
        runner = self.runner
        loop = runner.loop
        mismatch = self.runner.library_mismatch()
        if runner.scope_class is None:
            # anyio.CancelScope() looks its backend up at each call; the class
            # it makes is looked up once (with a running loop)
            runner.scope_class = type(anyio.CancelScope())
        self._scope = runner.scope_class().__enter__()
        try:
            while call is not None:
                if not _TASK_CONTEXT:
                    _copy_in(self.context)
                self._current = call
                try:
                    if mismatch is not None:
                        raise RuntimeError(mismatch)
                    if call.cancelled is not None:
                        # Ctrl-C came before the call started: cancel it here
                        self._scope.cancel()
                    call.value = await call.fn(*call.args)
                except GeneratorExit:
                    raise  # the coroutine is being closed: no more awaiting here
                except BaseException as exc:  # reported on the host
                    call.error = detach(exc)
                self._current = None
                if self._scope.cancel_called:
                    if call.cancelled is not None and isinstance(
                        call.error, asyncio.CancelledError
                    ):
                        # our own cancellation: the driver says why
                        call.error = None
                    self._scope = _renew(self._scope, runner.scope_class)
                if not _TASK_CONTEXT:
                    _copy_back(contextvars.copy_context(), self.context)
                if call.limit is not None:
                    call.ended = time.monotonic()
                call.finished = True
                # The host's run_forever() returns after the next iteration: the
                # callbacks the call's last step scheduled (call_soon, a task's
                # done callbacks) run first, so an error they raise is blamed on
                # this call's test and not on the next one. No future involved.
                loop.call_soon(loop.stop)
                call = await self._next_call()
        finally:
            # exited even when the task ends cancelled: entered, the scope
            # keeps the task alive in anyio's table of task states
            # (a scope of the user's may still be open inside it)
            with contextlib.suppress(RuntimeError):
                self._scope.__exit__(None, None, None)

    async def pause(self) -> None:
        if self._scope.cancel_called:
            # the phase before was cancelled (Ctrl-C): the next one runs
            # normally, as it would in a call of its own
            self._scope = _renew(self._scope, self.runner.scope_class)
        await asyncio.sleep(0)

    def cancel_in_loop(self, call: Call) -> None:
        if self._current is call and self._scope is not None:
            self._scope.cancel()
        # else: not started yet, and _main cancels it as it starts

    async def _next_call(self) -> Call | None:
        runner = self.runner
        shielded = self._scope.cancel_called
        while True:
            call = self._next
            if call is not None:
                self._next = None
                return None if call is _END else call
            inbox: asyncio.Future[None] = runner.loop.create_future()
            self._inbox = inbox
            try:
                if shielded:
                    # a cancelled cancel scope (ours, or one of the user's left
                    # open by an earlier call) would cancel this wait again at
                    # every iteration: the cancellation is for the calls
                    with anyio.CancelScope(shield=True):
                        await inbox
                else:
                    await inbox
            except asyncio.CancelledError:
                if runner.closing:
                    raise
                shielded = True
                task = asyncio.current_task()
                if task is not None and hasattr(task, "uncancel"):
                    task.uncancel()

    def close(self) -> None:
        self.runner.owned.pop(self.marker, None)
        timers = getattr(self.runner.loop, "timers", None)
        if timers:
            timers.pop(self.marker, None)
        if self._task is not None and not self._task.done():
            # no loop iteration here: the task ends the next time the loop runs
            self._next = _END
            inbox = self._inbox
            if inbox is not None and not inbox.done():
                inbox.set_result(None)


_MAIN_CODE = AsyncioScopeTask._main.__code__


def _renew(scope: anyio.CancelScope, new: Any) -> anyio.CancelScope:
    """A fresh cancel scope in place of *scope*, which was cancelled: possible
    when no cancel scope of the user's is still open inside it. Otherwise the
    task stays cancelled (anyio refuses to exit a scope around an open one,
    before it changes anything), as trio's scope tasks do."""
    try:
        scope.__exit__(None, None, None)
    except RuntimeError:
        return scope
    return new().__enter__()  # type: ignore[no-any-return]


async def _cancel_and_wait(
    runner: AsyncioRunner, tasks: list[asyncio.Task[Any]]
) -> list[asyncio.Task[Any]]:
    """Cancel *tasks*, wait up to GRACE for them; return those still pending.
    What one raised instead of ending cancelled goes to the loop's exception
    handler, as ``asyncio.Runner`` reports it (so ``loop_errors`` decides)."""
    for task in tasks:
        task.cancel()
    pending = await _wait_real(runner, tasks, GRACE)
    _report_raised(runner.loop, [task for task in tasks if task not in pending])
    return [task for task in tasks if task in pending]


async def _wait_real(
    runner: AsyncioRunner, futures: Iterable[asyncio.Future[Any]], seconds: float
) -> set[asyncio.Future[Any]]:
    """Wait up to *seconds* of real time for *futures* (however far a virtual
    clock jumps, and even if one keeps the loop busy so that it never jumps);
    return those still pending."""
    expired = runner.loop.create_future()

    def expire() -> None:
        if not expired.done():
            expired.set_result(None)

    cancel = runner._after(seconds, expire)
    pending: set[asyncio.Future[Any]] = set(futures)
    try:
        while pending and not expired.done():
            _, pending = await asyncio.wait(
                [*pending, expired], return_when=asyncio.FIRST_COMPLETED
            )
            pending.discard(expired)
    finally:
        cancel()
    return pending


def _report_raised(loop: asyncio.AbstractEventLoop, tasks: Any) -> None:
    for task in tasks:
        if task.cancelled():
            continue
        exc = task.exception()
        if exc is not None:
            loop.call_exception_handler(
                {
                    "message": "a leftover task raised while it was being cancelled",
                    "exception": exc,
                    "task": task,
                }
            )


_END = Call(None, (), None, None)  # type: ignore[arg-type]  # ends a scope task


def _copy_back(snapshot: Context, context: Context) -> None:
    for var, value in snapshot.items():
        if context.get(var, _MISSING) is not value:
            context.run(var.set, value)


def _copy_in(context: Context) -> None:
    # 3.10, in the task: what the host set in the scope's context since the last
    # call (a sync tearDown or cleanup runs in it) must be seen by this call
    for var, value in context.items():
        if var.get(_MISSING) is not value:
            var.set(value)


_MISSING = object()


def _loop_running() -> bool:
    """Whether an event loop already runs on this thread (a test run from inside
    an async test): ours must then not be run at all. Python 3.13.0 would even
    mark the outer loop as stopped after refusing (python/cpython#130145).

    ``_get_running_loop`` is in ``asyncio.__all__`` (for event loops and their
    runners, as here): unlike ``get_running_loop`` it raises nothing when no
    loop runs, which is the case of every test.
    """
    return asyncio._get_running_loop() is not None


class _Alarm:
    """Stops the loop at a call's time limit (and says it did)."""

    __slots__ = ("loop", "rang")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.rang = False

    def __call__(self) -> None:
        self.rang = True
        self.loop.stop()


class AsyncioRunner(Runner):
    backend = "asyncio"
    can_cancel_tasks = True
    cancelled_exc_class: type[BaseException] = asyncio.CancelledError

    def __init__(
        self,
        label: str = "",
        *,
        debug: bool | None = None,
        use_uvloop: bool = False,
        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
        autojump_threshold: float | None = None,
    ) -> None:
        self.label = label
        #: the virtual clock (clock = "autojump"), and its threshold for each test
        self.clock: AsyncioClock | None = None
        self._threshold = autojump_threshold or 0.0
        loop: asyncio.AbstractEventLoop
        if autojump_threshold is not None:
            # the class definition refused uvloop and loop_factory with it
            virtual = VirtualTimeLoop(autojump_threshold)
            self.clock = virtual.virtual_clock
            loop = virtual
        else:
            if loop_factory is None:
                loop_factory = uvloop_loop if use_uvloop else default_loop
            loop = loop_factory()
        self.loop = loop
        if debug is not None:
            # None keeps asyncio's own default: PYTHONASYNCIODEBUG and -X dev
            loop.set_debug(debug)
        self._errors: list[str] = []
        self.closing = False
        self._released = False
        #: the class anyio.CancelScope() makes on asyncio, once known
        self.scope_class: Any = None
        loop.set_exception_handler(self._record_error)
        self.threads = WorkerThreads()
        loop.set_default_executor(self.threads)
        #: before 3.12, tasks by the scope task they were started from (weakly:
        #: a finished task must be freed at once, or its "exception was never
        #: retrieved" would be logged after the test that caused it)
        self.owned: dict[Owner, weakref.WeakSet[Any]] = {}
        self._kept: set[asyncio.Task[Any]] = set()
        self._trace_owners()
        router = _sigint.router
        router.acquire()
        #: the wakeup pipe this loop watches (see _sigint), if it does
        self._wakeup: tuple[int, int] | None = None
        if router.installed and isinstance(loop, asyncio.SelectorEventLoop):
            # a Ctrl-C wakes the loop even if it lands just before select()
            # (uvloop sets a wakeup fd of its own as it runs)
            self._wakeup = router.wakeup_pipe()
            if self._wakeup is not None:
                loop.add_reader(self._wakeup[0], router.drain_wakeup)

    def _trace_owners(self) -> None:
        # Tasks are traced to the scope task whose context they were started
        # from (the owner marker in it) as they are created, by a task factory:
        # a test's leftovers are then a look at its own list, where walking
        # asyncio.all_tasks() would cost every test; our own tasks bypass it.
        loop = self.loop
        owned = self.owned
        inner = loop.get_task_factory()

        def factory(loop: Any, coro: Any, **kwargs: Any) -> Any:
            if inner is not None:
                task = inner(loop, coro, **kwargs)
            else:
                task = asyncio.Task(coro, loop=loop, **kwargs)
            context = kwargs.get("context")
            owner = OWNER.get(None) if context is None else context.get(OWNER, None)
            if owner is not None:
                tasks = owned.get(owner)
                if tasks is None:
                    tasks = owned[owner] = weakref.WeakSet()
                tasks.add(task)
            return task

        loop.set_task_factory(factory)

    # -- the primitives of the drive loop ---------------------------------------

    def _after(
        self, seconds: float, callback: Callable[[], object]
    ) -> Callable[[], object]:
        """Have the loop call *callback* after *seconds* of real time, however
        far a virtual clock jumps meanwhile; return what cancels it."""
        clock = self.clock
        if clock is None:
            return self.loop.call_later(seconds, callback).cancel
        clock.set_alarm(seconds, callback)
        return clock.clear_alarm

    def _step(self, call: Call, timeout: float | None) -> None:
        loop = self.loop
        alarm = None
        cancel = None
        if timeout is not None:
            alarm = _Alarm(loop)
            cancel = self._after(timeout, alarm)
        wakeup = None
        try:
            if self._wakeup is not None:
                wakeup = _claim_wakeup(self._wakeup[1])
            loop.run_forever()
        except BaseException:
            # the loop itself failed (stopped or closed from the test, Ctrl-C in its
            # machinery): end this task so that nothing of the test lingers
            if not call.finished and not call.aborted:
                self._abandon(call)
            raise
        finally:
            if wakeup is not None:
                _release_wakeup(wakeup)
            if cancel is not None:
                cancel()
        if not call.finished and (alarm is None or not alarm.rang):
            self._abandon(call)
            raise RuntimeError(
                "the event loop was stopped while a test was running on it "
                "(loop.stop() called from the test?)"
            )

    def _cancel(self, call: Call, threadsafe: bool) -> None:
        loop = self.loop
        schedule = loop.call_soon_threadsafe if threadsafe else loop.call_soon
        schedule(_cancel_in_loop, call)

    def _post_on_host(self, fn: Callable[[], object]) -> None:
        self.loop.call_soon_threadsafe(fn)

    def _release(self) -> None:
        if not self._released:
            self._released = True
            _sigint.router.release()

    def leave_behind(self, reason: str, ctrl_c: bool = False) -> None:
        if self.left_behind is None:
            # referenced, so that no pending task is finalised later
            self._kept = asyncio.all_tasks(self.loop)
        super().leave_behind(reason, ctrl_c)

    def _abandon(self, call: Call) -> None:
        # End the task, not only the call: cancelled, the call ends, _main stops
        # the loop and (handed _END) returns. Left waiting for a next call, the
        # task would be destroyed pending, an error of the next test on this
        # runner.
        task = call.task
        assert isinstance(task, AsyncioScopeTask)
        task._next = _END
        if task._task is not None:
            task._task.cancel()
        loop = self.loop
        if not loop.is_closed() and not loop.is_running() and not _loop_running():
            # best effort: the error that brought us here is the one to report
            cancel = self._after(GRACE, loop.stop)  # a test deaf to cancellation
            with contextlib.suppress(BaseException):
                loop.run_forever()
            cancel()
        task._task = None
        task._inbox = None

    # -- the rest of the runner ------------------------------------------------

    def _record_error(
        self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]
    ) -> None:
        # logged as asyncio would (assertLogs sees it), and kept for the test
        loop.default_exception_handler(context)
        self._errors.append(format_loop_error(context))

    def take_errors(self) -> list[str]:
        if self.loop.get_exception_handler() != self._record_error:
            # a test set a handler of its own: it wins for that test (as on a
            # loop of its own), and the next test gets the runner's back
            self.loop.set_exception_handler(self._record_error)
        errors, self._errors = self._errors, []
        return errors

    def other_tasks(self, task: ScopeTask) -> list[tuple[str, Any, Owner | None]]:
        exclude = task._task if isinstance(task, AsyncioScopeTask) else None
        # a task's owner: from its context (3.12+), else from what the task
        # factory recorded (a closed scope task's record is gone)
        recorded = {t: owner for owner, ts in self.owned.items() for t in ts}
        found = []
        for t in asyncio.all_tasks(self.loop):
            coro = t.get_coro()
            if t is exclude or getattr(coro, "cr_code", None) is _MAIN_CODE:
                continue  # the call's own task (reported apart), idle scope tasks
            get_context = getattr(t, "get_context", None)
            owner = get_context().get(OWNER, None) if get_context else recorded.get(t)
            found.append((t.get_name(), coro, owner))
        return found

    def pending_timers(self, owner: object) -> list[Timer]:
        loop = self.loop
        return loop.pending_timers(owner) if isinstance(loop, TimerTracing) else []

    def busy_threads(self, owner: object, wait: float = 0.0) -> list[Work]:
        threads = self.threads
        if not threads.busy:
            return []
        works = threads.owned_by(owner)
        return threads.wait_for(works, wait) if works and wait else works

    def open_task(self, context: Context, name: str) -> AsyncioScopeTask:
        if self.left_behind is not None:
            raise self.left_behind_error()
        if _loop_running():
            raise RuntimeError(
                "an event loop is already running in this thread: a test can't "
                "be run from inside async code (run it from sync code, or await "
                "what it tests directly)"
            )
        # the test's loop is the current loop in its sync setUp, as with
        # IsolatedAsyncioTestCase; set for every test, since a test may have
        # set another one (asyncio.run() sets its own, then none)
        asyncio.set_event_loop(self.loop)
        if self.clock is not None:
            # a test's change of the threshold (current_clock()) ends with it
            self.clock.autojump_threshold = self._threshold
        return AsyncioScopeTask(self, context, name)

    def close(self) -> None:
        loop = self.loop
        if self.left_behind is not None or loop.is_closed():
            return
        self.closing = True
        stuck: list[asyncio.Task[Any]] = []
        try:
            if _loop_running():
                # run from inside another loop (a misuse already reported):
                # don't run the loop to end its tasks; cancel them, go
                for task in asyncio.all_tasks(loop):
                    task.cancel()
            else:
                stuck = loop.run_until_complete(_end_everything(self))
        finally:
            self.threads.shutdown(wait=True)
            if stuck:
                self.leave_behind(f"{len(stuck)} task(s) ignored their cancellation")
            else:
                asyncio.set_event_loop(None)
                if self._wakeup is not None:
                    loop.remove_reader(self._wakeup[0])
                loop.close()
                self._release()
        if stuck:
            names = "\n".join(f"  {format_task(task)}" for task in stuck)
            raise RuntimeError(
                f"closing the {self.label or 'asyncio runner'}: these tasks had not "
                f"ended {GRACE:g} s after their cancellation, so the loop is left "
                f"behind, not closed:\n{names}"
            )


def _claim_wakeup(fd: int) -> int | None:
    """Make *fd* the wakeup fd for a call, unless one is set: the loop's own
    (for signal handlers a test added) or a trio run's wakes what it must.
    Return *fd* if it was set."""
    previous = signal.set_wakeup_fd(fd, warn_on_full_buffer=False)
    if previous == -1:
        return fd
    signal.set_wakeup_fd(previous, warn_on_full_buffer=False)
    return None


def _release_wakeup(fd: int) -> None:
    """After the call: unset *fd*, unless the call set another one (a signal
    handler the test added in it), which stays."""
    current = signal.set_wakeup_fd(-1)
    if current != fd:
        signal.set_wakeup_fd(current, warn_on_full_buffer=False)


def _cancel_in_loop(call: Call) -> None:
    if not call.finished:
        note_where(call)
        call.task.cancel_in_loop(call)


def format_task(task: asyncio.Task[Any]) -> str:
    where = format_await_chain(task.get_coro()).strip().splitlines()
    return f"{task.get_name()!r}" + (f", at {where[-2].strip()}" if where else "")


def format_loop_error(context: dict[str, Any]) -> str:
    """What asyncio's default handler would log, as text for a test report."""
    lines = [str(context.get("message") or "unhandled error in the event loop")]
    for key in ("task", "future", "handle"):
        if key in context:
            lines.append(f"{key}: {context[key]!r}")
    exc = context.get("exception")
    if isinstance(exc, BaseException):
        lines.append(
            "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        )
    return "\n".join(lines)


async def _end_everything(runner: AsyncioRunner) -> list[asyncio.Task[Any]]:
    """Cancel every other task and wait up to GRACE for them, then finalise the
    async generators, for up to GRACE and GRACE again once cancelled (in one run
    of the loop: each run costs a function-scoped test); return the tasks that
    did not end."""
    loop = runner.loop
    me = asyncio.current_task()
    tasks = [task for task in asyncio.all_tasks(loop) if task is not me]
    if tasks:
        stuck = await _cancel_and_wait(runner, tasks)
        if stuck:
            return stuck
    # real seconds: on a virtual clock, an idle wait would jump past the grace
    # of a generator whose finally block waits for I/O
    finalising = loop.create_task(loop.shutdown_asyncgens())
    if await _wait_real(runner, [finalising], GRACE):
        finalising.cancel()
        if await _wait_real(runner, [finalising], GRACE):
            return [finalising]  # a generator deaf to its cancellation
    return []
