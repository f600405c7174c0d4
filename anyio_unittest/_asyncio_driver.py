"""The asyncio driver: one event loop kept open and driven from the calling thread.

Each scope task is an ``asyncio.Task`` created with the scope's context; the host
hands it a call by resolving the future it waits on, then runs the loop with
``run_forever()``, which the scope task stops as the call ends: about 7 µs a call
here, against ~12 µs for ``run_until_complete`` and ~50 µs for
``asyncio.Runner.run`` with its per-call SIGINT swap.

Python 3.10 has no ``context=`` for tasks: there the task runs in a copy of the
scope's context: what the host set in the scope's context (sync hooks run in it)
is copied in before each call, and what a call changes is copied back after it
(a variable *reset* to unset is the one thing that does not travel).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import sys
import traceback
import weakref
from collections.abc import Callable
from contextvars import Context
from functools import partial
from types import CoroutineType
from typing import Any

from . import _sigint
from ._driver import (
    OWNER,
    AsyncFn,
    Call,
    detach,
    library_mismatch,
    raise_keyboard_interrupt,
    waiting_at,
)

# our frames are hidden from reported tracebacks: unittest's flag, and pytest's
__unittest = True
__tracebackhide__ = True

_TASK_CONTEXT = sys.version_info >= (3, 11)

#: the option names ``anyio.run`` and anyio's pytest plugin accept for asyncio
OPTIONS = frozenset({"debug", "use_uvloop", "loop_factory"})


def _uvloop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    import uvloop

    return uvloop.new_event_loop


class AsyncioScopeTask:
    def __init__(self, runner: AsyncioRunner, context: Context) -> None:
        self._runner = runner
        self._context = context
        self._task: asyncio.Task[None] | None = None
        self._inbox: asyncio.Future[None] | None = None
        self._next: Call | None = None
        # a plain marker, not self: the context must not point back at us, or
        # every finished task would wait for the garbage collector
        self._marker = object()
        context.run(OWNER.set, self._marker)

    def leaked_tasks(self, everything: bool = False) -> list[Any]:
        if everything:
            candidates: Any = asyncio.all_tasks(self._runner.loop)
        else:
            candidates = self._runner.owned.get(self._marker, ())
        return [t for t in candidates if t is not self._task and not t.done()]

    def cancel_tasks(self, tasks: list[Any]) -> list[BaseException]:
        if not tasks:
            return []
        return self.call(_cancel_and_wait, tasks)  # type: ignore[no-any-return]

    async def _main(self, call: Call | None) -> None:
        runner = self._runner
        loop = runner.loop
        if runner.mismatch is _UNCHECKED:
            runner.mismatch = library_mismatch("asyncio")
        mismatch = runner.mismatch
        while call is not None:
            if not _TASK_CONTEXT:
                _copy_in(self._context)
            try:
                if mismatch is not None:
                    raise RuntimeError(mismatch)
                if call.interrupted:
                    # Ctrl-C came before the call started: its task.cancel() was
                    # absorbed by the wait for this call, so cancel it here (and
                    # close a coroutine handed over, never to be awaited now)
                    for arg in call.args:
                        if isinstance(arg, CoroutineType):
                            arg.close()
                    raise asyncio.CancelledError
                call.value = await call.fn(*call.args)
            except BaseException as exc:  # reported on the host, as unittest expects
                call.error = detach(exc)
                if call.timed_out:
                    call.where = waiting_at(exc)
            if call.timed_out or call.interrupted:
                # the cancellation was ours: leave no count that would confuse a
                # later asyncio.timeout() in this task
                task = asyncio.current_task()
                if task is not None and hasattr(task, "uncancel"):
                    task.uncancel()
            if not _TASK_CONTEXT:
                call.value = (call.value, contextvars.copy_context())
            call.finished = True
            # The host's run_forever() returns after the next iteration: the
            # callbacks the call's last step scheduled (call_soon, a task's
            # done callbacks) run first, so an error they raise is blamed on
            # this call's test and not on the next one. No future involved.
            loop.call_soon(loop.stop)
            call = await self._next_call()

    async def _next_call(self) -> Call | None:
        runner = self._runner
        while True:
            call = self._next
            if call is not None:
                self._next = None
                return None if call is _END else call
            inbox: asyncio.Future[None] = runner.loop.create_future()
            self._inbox = inbox
            try:
                await inbox
            except asyncio.CancelledError:
                # A cancelled cancel scope of the user's (anyio's, entered by
                # an earlier call in this task and still open) keeps cancelling
                # this task: that is for the calls, not for this wait. (It may
                # cancel the inbox too, which is why the call itself is handed
                # over in self._next.)
                if runner.closing:
                    raise
                task = asyncio.current_task()
                if task is not None and hasattr(task, "uncancel"):
                    task.uncancel()

    def _hand_over(self, call: Call) -> None:
        self._next = call
        inbox = self._inbox
        if inbox is not None and not inbox.done():
            inbox.set_result(None)

    def call(self, fn: AsyncFn, /, *args: Any, timeout: float | None = None) -> Any:
        runner = self._runner
        loop = runner.loop
        call = Call(fn, args)
        if self._task is None:
            # asyncio.Task directly, not loop.create_task(): our own task needs
            # no task factory (the owner-tracing one costs ~2 µs a task)
            coro = self._main(call)
            if _TASK_CONTEXT:
                self._task = asyncio.Task(coro, loop=loop, context=self._context)  # type: ignore[call-arg,unused-ignore]
            else:
                self._task = self._context.run(asyncio.Task, coro, loop=loop)
        elif self._task.done() or self._next is _END:
            raise RuntimeError("this scope task has ended")
        else:
            self._hand_over(call)
        task = self._task
        timer = None
        if timeout is not None:
            call.timeout = timeout
            timer = loop.call_later(timeout, self._time_out, call, task)
        router = _sigint.router
        router.interrupt_current = partial(self._interrupt, call, task)
        router.abort_current = runner.abort
        try:
            loop.run_forever()
            if not call.finished:
                raise RuntimeError(
                    "the event loop was stopped while a test was running on it "
                    "(loop.stop() called from the test?)"
                )
        except BaseException:
            # the loop itself failed (stopped or closed from the test, Ctrl-C in its
            # machinery): end this task so that nothing of the test lingers
            if not call.finished:
                self._abandon(task)
            raise
        finally:
            router.interrupt_current = None
            router.abort_current = None
            if timer is not None:
                timer.cancel()
        if router.abandoned:
            raise KeyboardInterrupt  # a second Ctrl-C as the call ended
        if not _TASK_CONTEXT:
            call.value, snapshot = call.value
            _copy_back(snapshot, self._context)
        if call.timed_out and not isinstance(call.error, asyncio.CancelledError):
            call.timed_out = False  # it ended some other way before the cancellation
        return call.outcome()

    def _time_out(self, call: Call, task: asyncio.Task[None]) -> None:
        if not call.finished:
            call.timed_out = True
            task.cancel()

    def _interrupt(self, call: Call, task: asyncio.Task[None], hard: bool) -> None:
        call.interrupted = True
        call.soft = not hard
        self._runner.loop.call_soon_threadsafe(task.cancel)

    def _abandon(self, task: asyncio.Task[None]) -> None:
        # End the task, not only the call: cancelled, the call ends, _main stops
        # the loop and (handed _END) returns. Left waiting for a next call, the
        # task would be destroyed pending, an error of the next test on this
        # runner (found by tests/test_misuse.py: loop.stop() in a test).
        self._next = _END
        task.cancel()
        loop = self._runner.loop
        if (
            not loop.is_closed()
            and not loop.is_running()
            and not _loop_running()
            and not _sigint.router.abandoned  # a second Ctrl-C: no waiting
        ):
            # best effort: the error that brought us here is the one to report
            guard = loop.call_later(1.0, loop.stop)  # a test deaf to cancellation
            with contextlib.suppress(BaseException):
                loop.run_forever()
            guard.cancel()
        self._task = None
        self._inbox = None

    def close(self) -> None:
        self._runner.owned.pop(self._marker, None)
        if self._task is not None and not self._task.done():
            # no loop iteration here: the task ends the next time the loop runs
            self._hand_over(_END)


async def _cancel_and_wait(tasks: list[asyncio.Task[Any]]) -> list[BaseException]:
    for task in tasks:
        task.cancel()
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    return [
        exc
        for exc in outcomes
        if isinstance(exc, BaseException)
        and not isinstance(exc, asyncio.CancelledError)
    ]


_END = Call(None, ())  # type: ignore[arg-type]  # handed over to end a scope task


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
_UNCHECKED = object()


_current_loop: asyncio.AbstractEventLoop | None = None


def _loop_running() -> bool:
    """Whether an event loop already runs on this thread (a test run from inside
    an async test): ours must then not be run at all. Python 3.13.0 would even
    mark the outer loop as stopped after refusing (python/cpython#130145).

    ``_get_running_loop`` is in ``asyncio.__all__`` (for event loops and their
    runners, as here): unlike ``get_running_loop`` it raises nothing when no
    loop runs, which is the case of every test (an exception costs ~1 µs).
    """
    return asyncio._get_running_loop() is not None


class AsyncioRunner:
    backend = "asyncio"

    def __init__(
        self,
        *,
        debug: bool | None = None,
        use_uvloop: bool = False,
        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    ) -> None:
        if loop_factory is None:
            loop_factory = _uvloop_factory() if use_uvloop else asyncio.new_event_loop
        self.loop = loop = loop_factory()
        if debug is not None:
            # None keeps asyncio's own default: PYTHONASYNCIODEBUG and -X dev
            loop.set_debug(debug)
        self._errors: list[str] = []
        self.closing = False
        #: for a second Ctrl-C: KeyboardInterrupt raised by the loop on the host
        self.abort: Callable[[], object] = partial(
            loop.call_soon_threadsafe, raise_keyboard_interrupt
        )
        #: library_mismatch(), looked at by the first scope task
        self.mismatch: Any = _UNCHECKED
        loop.set_exception_handler(self._record_error)
        #: before 3.12, tasks by the scope task they were started from (weakly:
        #: a finished task must be freed at once, or its "exception was never
        #: retrieved" would be logged after the test that caused it)
        self.owned: dict[object, weakref.WeakSet[Any]] = {}
        self._trace_owners()
        _sigint.router.acquire()

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

    can_cancel_tasks = True
    cancelled_exc_class: type[BaseException] = asyncio.CancelledError

    async def pause(self) -> None:
        await asyncio.sleep(0)

    def _record_error(
        self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]
    ) -> None:
        self._errors.append(format_loop_error(context))

    def take_errors(self) -> list[str]:
        errors, self._errors = self._errors, []
        return errors

    def open_task(self, context: Context) -> AsyncioScopeTask:
        global _current_loop
        if _loop_running():
            raise RuntimeError(
                "an event loop is already running in this thread: a test can't "
                "be run from inside async code (run it from sync code, or await "
                "what it tests directly)"
            )
        if _current_loop is not self.loop:
            # the test's loop is the current loop in its sync setUp, as with
            # IsolatedAsyncioTestCase; set only on change (~1 µs a call)
            asyncio.set_event_loop(self.loop)
            _current_loop = self.loop
        return AsyncioScopeTask(self, context)

    def close(self) -> None:
        loop = self.loop
        if loop.is_closed():
            return
        self.closing = True
        if _loop_running() or _sigint.router.abandoned:
            # run from inside another loop (a misuse already reported), or a
            # second Ctrl-C (the user wants out now: a shielded task would make
            # us wait): don't run the loop to end its tasks; cancel them, go
            for task in asyncio.all_tasks(loop):
                task.cancel()
            loop.close()
            _sigint.router.release()
            return
        try:
            _cancel_all_tasks(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
            shutdown = getattr(loop, "shutdown_default_executor", None)
            if shutdown is not None:
                loop.run_until_complete(shutdown())
        finally:
            global _current_loop
            asyncio.set_event_loop(None)
            _current_loop = None
            loop.close()
            _sigint.router.release()


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


def _cancel_all_tasks(loop: asyncio.AbstractEventLoop) -> None:
    tasks = asyncio.all_tasks(loop)
    if not tasks:
        return
    for task in tasks:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    for task in tasks:
        if task.cancelled():
            continue
        exc = task.exception()
        if exc is not None:
            loop.call_exception_handler(
                {
                    "message": "exception in a task cancelled when its runner closed",
                    "exception": exc,
                    "task": task,
                }
            )
