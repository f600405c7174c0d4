"""The trio driver: a trio run in guest mode, hosted by the calling thread.

This is more complicated than ``trio.run`` because the run has to outlive every
call into it: unittest calls ``setUp``, the test and ``tearDown`` one after
another from sync code, and a class-scoped run must survive between tests. So
the run is started with ``trio.lowlevel.start_guest_run`` and the *host loop* is
simply a ``queue.SimpleQueue`` of callbacks that this thread pumps, and only
while it waits for a call to finish. Between calls nothing is pumped and the run
is frozen, as an asyncio loop is between ``run_until_complete`` calls.

Handing a call to the run must not cost a thread hop. ``TrioToken.run_sync_soon``
would wake trio's I/O thread, which then hands the next tick back to us (~30 µs a
call). Instead, the task that finished the last call (the run's main task before
the first call) stays runnable, looping on ``checkpoint()``, and so the next tick
is always in our queue when the host stops pumping. The next call only sets a
field and resumes pumping: if it is for that same task, it runs in the very next
tick; otherwise that task performs the request (spawning or waking the target)
and parks. It only ever spins while the host is not pumping, so a test waiting on
I/O or a timer never meets a busy loop.

Scope tasks are system tasks because only ``spawn_system_task`` takes the
context to run in (``Nursery.start_soon`` copies the caller's). They catch every
exception of the calls they run, so a failing test can never crash the run.

trio allows one run per thread, guest runs included. A second runner asked for on
this thread with the same options is a *view* on the run already open (its scope
tasks are its own, trio's run-level state is shared); with other options it is a
:class:`RunnerConflictError`. The run ends when its last view is closed.
"""

from __future__ import annotations

import math
import queue
import threading
from collections.abc import Callable
from contextvars import Context
from functools import partial
from typing import Any

import outcome
import trio

from . import _sigint
from ._driver import (
    OWNER,
    AsyncFn,
    Call,
    RunnerConflictError,
    detach,
    library_mismatch,
    raise_keyboard_interrupt,
    waiting_at,
)

# our frames are hidden from reported tracebacks: unittest's flag, and pytest's
__unittest = True
__tracebackhide__ = True

#: options passed to the trio run (the host-loop arguments are ours)
OPTIONS = frozenset(
    {
        "clock",
        "instruments",
        "restrict_keyboard_interrupt_to_checkpoints",
        "strict_exception_groups",
    }
)

_STOP = object()
_UNCHECKED = object()


class _Spawns(trio.abc.Instrument):
    """The tasks spawned and not yet exited, numbered in spawn order.

    A test's leftovers are then the live tasks spawned after it started: no walk
    over the task tree, and nothing at all to look at when there are none.
    """

    def __init__(self) -> None:
        self.count = 0
        self.alive: dict[trio.lowlevel.Task, int] = {}

    def task_spawned(self, task: trio.lowlevel.Task) -> None:
        self.count += 1
        self.alive[task] = self.count

    def task_exited(self, task: trio.lowlevel.Task) -> None:
        self.alive.pop(task, None)


class _Run:
    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        self.owners: list[str] = []
        self._queue: queue.SimpleQueue[Callable[[], object]] = queue.SimpleQueue()
        self._request: Any = None
        self._closing: list[TrioScopeTask] = []
        self.live: set[TrioScopeTask] = set()
        #: the trio tasks of the scope tasks, which are never leaks
        self.scope_tasks: set[trio.lowlevel.Task] = set()
        self.root: trio.lowlevel.Task | None = None
        self.spawns = _Spawns()
        #: library_mismatch(), looked at by the first scope task
        self.mismatch: Any = _UNCHECKED
        self._main_wakeup: trio.Event | None = None
        self._stopping = False
        self._driving = False
        self._token: trio.lowlevel.TrioToken | None = None
        self.result: outcome.Outcome[None] | None = None
        #: for a second Ctrl-C: KeyboardInterrupt raised by the pump on the host
        self._abort = partial(self._queue.put, raise_keyboard_interrupt)
        _sigint.router.acquire()
        try:
            trio.lowlevel.start_guest_run(
                self._dispatch,
                run_sync_soon_threadsafe=self._queue.put,
                run_sync_soon_not_threadsafe=self._queue.put,
                done_callback=self._on_done,
                **options,
            )
            self._pump(lambda: self._token is not None)
        except BaseException:
            _sigint.router.release()
            raise

    @property
    def alive(self) -> bool:
        return self.result is None

    def _on_done(self, result: outcome.Outcome[None]) -> None:
        self.result = result

    def _pump(self, until: Callable[[], bool]) -> None:
        get = self._queue.get
        while not until():
            if self.result is not None:
                raise RuntimeError("the trio run ended while a call was in progress")
            get()()

    async def _dispatch(self) -> None:
        self.root = trio.lowlevel.current_root_task()
        trio.lowlevel.add_instrument(self.spawns)
        self._main_wakeup = trio.Event()
        self._token = trio.lowlevel.current_trio_token()
        while await self.wait_next(None) is not _STOP:
            pass

    async def wait_next(self, task: TrioScopeTask | None) -> Any:
        """Park *task* (``None``: the main task) until it has a call to run.

        Returns the call, or ``None`` when the task has been closed (for the main
        task: ``_STOP`` when the run must end).
        """
        while True:
            if task is not None and task.next is not None:
                call, task.next = task.next, None
                self._request = None  # it was our own wake-up
                return call
            if task is not None and task.ended:
                # ended by another task's request while we were spinning (two
                # spin when a cancelled task group of the user's woke us from
                # our parking): spinning on, we would keep the run from ending
                return None
            request = self._request
            if request is None:
                await trio.lowlevel.checkpoint()
                continue
            self._request = None
            while self._closing:
                self._closing.pop().end()
            if request is _STOP:
                for left in list(self.live):
                    left.end()
                self._stopping = True
                if task is None:
                    return _STOP
                assert self._main_wakeup is not None
                self._main_wakeup.set()
            else:
                request()
            if task is not None and task.ended:
                return None
            wakeup = trio.Event()
            if task is None:
                self._main_wakeup = wakeup
            else:
                task.wakeup = wakeup
            await wakeup.wait()
            if task is None:
                if self._stopping:
                    return _STOP
            elif task.ended:
                return None

    def drive(self, request: Callable[[], object], call: Call) -> Any:
        if self._driving:
            # called from code this run is running (a test run from inside a
            # test): its next tick can't come before this one returns, so
            # pumping would wait forever (found by tests/test_misuse.py)
            raise RuntimeError(
                "anyio_unittest can't drive its trio run from code running in "
                "that run (a test or hook run from inside another test?)"
            )
        self._request = request
        router = _sigint.router
        router.interrupt_current = partial(self._interrupt, call)
        router.abort_current = self._abort
        self._driving = True
        try:
            self._pump(lambda: call.finished)
        finally:
            self._driving = False
            router.interrupt_current = None
            router.abort_current = None
        if router.abandoned:
            raise KeyboardInterrupt  # a second Ctrl-C as the call ended
        return call.outcome()

    def _interrupt(self, call: Call, hard: bool) -> None:
        call.interrupted = True
        call.soft = not hard
        assert self._token is not None
        self._token.run_sync_soon(self._cancel_call, call)

    @staticmethod
    def _cancel_call(call: Call) -> None:
        if call.scope is not None:
            call.scope.cancel()

    def close_task(self, task: TrioScopeTask) -> None:
        self._closing.append(task)

    def stop(self) -> None:
        if self.result is None and _sigint.router.abandoned:
            # A second Ctrl-C: end now. The run may be in a shielded await that
            # no request reaches until it returns; trio's I/O thread is a
            # daemon, so the run left behind does not keep the process alive.
            _sigint.router.release()
            return
        if self.result is None:
            self._request = _STOP
            try:
                self._pump(lambda: self.result is not None)
            finally:
                _sigint.router.release()
        assert self.result is not None
        self.result.unwrap()


class TrioScopeTask:
    def __init__(self, run: _Run, context: Context) -> None:
        self._run = run
        self._context = context
        self._started = False
        self._closed = False
        #: the call handed to this task, and its wake-up while it is parked
        self.next: Call | None = None
        self.wakeup: trio.Event | None = None
        self.ended = False
        self._spawned_before = run.spawns.count
        # a plain marker, not self, so that no reference cycle keeps us alive
        self._marker = object()
        context.run(OWNER.set, self._marker)

    def leaked_tasks(self, everything: bool = False) -> list[Any]:
        # trio's nurseries end every task a test opens itself; what can outlive
        # the test is a task it started into a longer-lived nursery (it carries
        # the test's context) or a system task it spawned
        if everything:
            return []  # the run may be shared: nothing here is ours to end
        run = self._run
        root, ours, start = run.root, run.scope_tasks, self._spawned_before
        return [
            task
            for task, number in run.spawns.alive.items()
            if number > start
            and task not in ours
            and (
                task.context.get(OWNER, None) is self._marker
                or (
                    task.parent_nursery is not None
                    and task.parent_nursery.parent_task is root
                )
            )
        ]

    def cancel_tasks(self, tasks: list[Any]) -> list[BaseException]:
        return []  # trio cancels through nurseries only: tasks end with theirs

    async def _main(self, call: Call | None) -> None:
        # One cancel scope for the task's whole life, not one per call: a task
        # group entered by asyncSetUp and exited by a cleanup lives inside it,
        # and trio (rightly) refuses to exit a scope around a still-open one.
        # So a time limit is this scope's deadline, and once it has passed the
        # rest of the task's code runs cancelled, as trio code expects.
        run = self._run
        me = trio.lowlevel.current_task()
        run.scope_tasks.add(me)
        if run.mismatch is _UNCHECKED:
            run.mismatch = library_mismatch("trio")
        mismatch = run.mismatch
        reported = False
        with trio.CancelScope() as scope:
            while call is not None:
                call.scope = scope
                if call.interrupted:
                    # Ctrl-C came after the host handed the call over but before
                    # the scope was known here: _cancel_call found nothing to cancel
                    scope.cancel()
                if call.timeout is not None and not scope.cancel_called:
                    scope.deadline = trio.current_time() + call.timeout
                try:
                    if mismatch is not None:
                        raise RuntimeError(mismatch)
                    call.value = await call.fn(*call.args)
                except (
                    BaseException
                ) as exc:  # reported on the host, as unittest expects
                    call.error = detach(exc)
                if scope.cancel_called:
                    if not reported:
                        reported = True
                        if not call.interrupted:
                            call.timed_out = True
                            if call.error is not None:
                                call.where = waiting_at(call.error)
                    elif isinstance(call.error, trio.Cancelled):
                        call.error = None  # the cancellation was reported already
                elif call.timeout is not None:
                    scope.deadline = math.inf
                call.scope = None
                call.finished = True
                try:
                    call = await run.wait_next(self)
                except trio.Cancelled:
                    # a cancelled task group of the user's, still open in this
                    # task, must not take this loop down: its exit is a later
                    # call. Shield only then: a cancel scope costs ~5 µs a call.
                    with trio.CancelScope(shield=True):
                        call = await run.wait_next(self)
        run.scope_tasks.discard(me)

    def wake(self) -> None:
        if self.wakeup is not None:
            self.wakeup.set()

    def end(self) -> None:
        self.ended = True
        self._run.live.discard(self)
        self.wake()

    def call(self, fn: AsyncFn, /, *args: Any, timeout: float | None = None) -> Any:
        if self._closed:
            raise RuntimeError("this scope task has ended")
        call = Call(fn, args)
        call.timeout = timeout
        request: Callable[[], object]
        if self._started:
            self.next = call
            request = self.wake
        else:
            self._started = True
            self._run.live.add(self)
            request = partial(
                trio.lowlevel.spawn_system_task,
                self._main,
                call,
                context=self._context,
                name="anyio_unittest scope task",
            )
        return self._run.drive(request, call)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self._started and self._run.alive:
                # handled with the next request: no tick is needed now
                self._run.close_task(self)


_local = threading.local()


class TrioRunner:
    """One owner's view of the trio run open on this thread."""

    backend = "trio"

    def __init__(self, options: dict[str, Any], owner: str) -> None:
        run: _Run | None = getattr(_local, "run", None)
        if run is not None and not run.alive:
            run = None
        if run is None:
            run = _local.run = _Run(options)
        elif run.options != options:
            raise RunnerConflictError(
                f"{owner} asks for a trio run with options {options!r}, but trio "
                f"allows one run per thread and the one open (for "
                f"{', '.join(run.owners)}) has options {run.options!r}; give both "
                f"the same trio options, or run them in separate processes"
            )
        run.owners.append(owner)
        self._run = run
        self._owner = owner
        self._closed = False

    #: trio cancels through nurseries: a single task can't be cancelled
    can_cancel_tasks = False
    cancelled_exc_class: type[BaseException] = trio.Cancelled

    async def pause(self) -> None:
        # Nothing: between two calls of a trio run, no task is promised to run
        # first (the next tick runs the test's task among the others, in an
        # order trio randomises), and a tick costs what a call does.
        return

    def take_errors(self) -> list[str]:
        return []  # trio never swallows an error: it fails the task or the run

    def open_task(self, context: Context) -> TrioScopeTask:
        return TrioScopeTask(self._run, context)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        run = self._run
        run.owners.remove(self._owner)
        if not run.owners:
            if getattr(_local, "run", None) is run:
                _local.run = None
            run.stop()
