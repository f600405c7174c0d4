"""The trio driver: a trio run in guest mode, hosted by the calling thread.

This is more complicated than ``trio.run`` because the run has to outlive every
call into it: unittest calls ``setUp``, the test and ``tearDown`` one after
another from sync code, and a class-scoped run must survive between tests. So
the run is started with ``trio.lowlevel.start_guest_run`` and the *host loop* is
simply a ``queue.SimpleQueue`` of callbacks that this thread pumps, and only
while it waits for a call to finish. Between calls nothing is pumped and the run
is frozen, as an asyncio loop is between ``run_until_complete`` calls.

Handing a call to the run must not cost a thread hop. ``TrioToken.run_sync_soon``
would wake trio's I/O thread, which then hands the next tick back to us: a
thread hop at every call. Instead, the task that finished the last call (the
run's main task before the first call) stays runnable, looping on
``checkpoint()``, and so the next tick is always in our queue when the host stops
pumping. The next call only sets a field and resumes pumping: if it is for that
same task, it runs in the very next tick; otherwise that task performs the
request (spawning or waking the target) and parks. It only ever spins while the
host is not pumping, so a test waiting on I/O or a timer never meets a busy loop.

Scope tasks are system tasks because only ``spawn_system_task`` takes the
context to run in (``Nursery.start_soon`` copies the caller's). They catch every
exception of the calls they run, so a failing test can never crash the run.

trio allows one run per thread, guest runs included. A second runner asked for on
this thread with the same options is a *view* on the run already open (its scope
tasks are its own, trio's run-level state is shared); with other options it is a
:class:`RunnerConflictError`. The run ends when its last view is closed.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable
from contextvars import Context
from functools import partial
from typing import Any

import outcome
import trio
import trio.testing

from . import _sigint
from ._driver import (
    _LEFT_BEHIND,
    GRACE,
    OWNER,
    Call,
    Owner,
    Runner,
    ScopeTask,
    note_where,
)
from ._exceptions import RunnerConflictError, RunnerLeftBehind
from ._frames import detach

# our frames are hidden from reported tracebacks: unittest's flag, and pytest's
__unittest = True
__tracebackhide__ = True

_STOP = object()


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
    def __init__(self, options: dict[str, Any], threshold: float | None) -> None:
        self.options = options
        #: clock = "autojump": the MockClock's threshold for each test (None: real)
        self.threshold = threshold
        self.clock: trio.testing.MockClock | None = None
        if threshold is not None:
            self.clock = trio.testing.MockClock(autojump_threshold=threshold)
            options = {**options, "clock": self.clock}
        self.owners: list[str] = []
        self.views: list[TrioRunner] = []
        self.queue: queue.SimpleQueue[Callable[[], object]] = queue.SimpleQueue()
        self.request: Any = None
        self._closing: list[TrioScopeTask] = []
        self.live: set[TrioScopeTask] = set()
        #: the trio tasks of the scope tasks, which are never leaks
        self.scope_tasks: set[trio.lowlevel.Task] = set()
        self.root: trio.lowlevel.Task | None = None
        self.main: trio.lowlevel.Task | None = None
        self.spawns = _Spawns()
        self._main_wakeup: trio.Event | None = None
        self._stopping = False
        #: the host is pumping: a call handed over now comes from inside the run
        self.driving = False
        self._token: trio.lowlevel.TrioToken | None = None
        self.result: outcome.Outcome[None] | None = None
        #: why the run was left behind (None: it is usable), and whose it was
        self.left_behind: str | None = None
        self.left_by_ctrl_c = False
        self.left_by: list[str] = []
        _sigint.router.acquire()
        try:
            trio.lowlevel.start_guest_run(
                self._dispatch,
                run_sync_soon_threadsafe=self.queue.put,
                run_sync_soon_not_threadsafe=self.queue.put,
                done_callback=self._on_done,
                **options,
            )
            self.pump(lambda: self._token is not None)
        except BaseException:
            _sigint.router.release()
            raise

    @property
    def alive(self) -> bool:
        return self.result is None

    def _on_done(self, result: outcome.Outcome[None]) -> None:
        self.result = result

    def pump(self, until: Callable[[], bool], timeout: float | None = None) -> bool:
        """Run the host loop until *until()* is true, or for *timeout* seconds;
        return whether *until()* became true."""
        get = self.queue.get
        if timeout is None:
            while not until():
                if self.result is not None:
                    raise RuntimeError(
                        "the trio run ended while a call was in progress"
                    )
                get()()
            return True
        deadline = time.monotonic() + timeout
        while not until():
            if self.result is not None:
                raise RuntimeError("the trio run ended while a call was in progress")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                callback = get(timeout=remaining)
            except queue.Empty:
                return False
            callback()
        return True

    async def _dispatch(self) -> None:
        self.root = trio.lowlevel.current_root_task()
        self.main = trio.lowlevel.current_task()
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
                self.request = None  # it was our own wake-up
                return call
            if task is not None and task.ended:
                # ended by another task's request while we were spinning (two
                # spin when a cancelled task group of the user's woke us from
                # our parking): spinning on, we would keep the run from ending
                return None
            request = self.request
            if request is None:
                await trio.lowlevel.checkpoint()
                continue
            self.request = None
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

    def cancel(self, call: Call) -> None:
        assert self._token is not None
        self._token.run_sync_soon(_cancel_in_run, call)

    def close_task(self, task: TrioScopeTask) -> None:
        self._closing.append(task)

    def leave_behind(self, reason: str, ctrl_c: bool = False) -> None:
        if self.left_behind is None:
            self.left_behind = reason
            self.left_by_ctrl_c = ctrl_c
            self.left_by = list(self.owners)
            for view in self.views:  # each owner's view of the run
                view.left_behind = reason
                view.left_by_ctrl_c = ctrl_c
            _LEFT_BEHIND.append(self)
            _sigint.router.release()

    def stop(self) -> None:
        if self.left_behind is not None:
            return
        if self.result is None:
            self.request = _STOP
            try:
                ended = self.pump(lambda: self.result is not None, GRACE)
            except BaseException:
                _sigint.router.release()
                raise
            if not ended:
                self.leave_behind("it did not end when closed")
                raise RuntimeError(
                    f"closing the trio run: a task ignored its cancellation for "
                    f"{GRACE:g} s, so the run is left behind, not ended"
                )
            _sigint.router.release()
        assert self.result is not None
        self.result.unwrap()


def _cancel_in_run(call: Call) -> None:
    if not call.finished:
        note_where(call)
        call.task.cancel_in_loop(call)


_TRIO_DIR = os.path.dirname(os.path.abspath(trio.__file__)) + os.sep


def _is_trios(coro: Any) -> bool:
    """Whether a task runs trio's own code (a system task of the run)."""
    code = getattr(coro, "cr_code", None)
    return code is not None and code.co_filename.startswith(_TRIO_DIR)


class TrioScopeTask(ScopeTask):
    runner: TrioRunner

    def __init__(self, runner: TrioRunner, context: Context, name: str) -> None:
        super().__init__(runner, context, name)
        self._run = runner.run
        self._started = False
        self._closed = False
        self._trio_task: trio.lowlevel.Task | None = None
        #: the call running, and the cancel scope of the task's whole life
        self._current: Call | None = None
        self._scope: trio.CancelScope | None = None
        #: the call handed to this task, and its wake-up while it is parked
        self.next: Call | None = None
        self.wakeup: trio.Event | None = None
        self.ended = False
        self._spawned_before = self._run.spawns.count

    def coroutine(self) -> Any:
        return None if self._trio_task is None else self._trio_task.coro

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
                task.context.get(OWNER, None) is self.marker
                or (
                    task.parent_nursery is not None
                    and task.parent_nursery.parent_task is root
                )
            )
        ]

    def cancel_tasks(self, tasks: list[Any]) -> list[Any]:
        return []  # trio cancels through nurseries only: tasks end with theirs

    def _hand_over(self, call: Call) -> None:
        run = self._run
        if self._closed:
            call.discard()
            raise RuntimeError("this scope task has ended")
        if run.driving:
            # called from code this run is running (a test run from inside a
            # test): its next tick can't come before this one returns, so
            # pumping would wait forever
            call.discard()
            raise RuntimeError(
                "anyio_unittest can't drive its trio run from code running in "
                "that run (a test or hook run from inside another test?)"
            )
        if self._started:
            self.next = call
            run.request = self.wake
        else:
            self._started = True
            run.live.add(self)
            run.request = partial(
                trio.lowlevel.spawn_system_task,
                self._main,
                call,
                context=self.context,
                name="anyio_unittest scope task",
            )

    async def _main(self, call: Call | None) -> None:
        # One cancel scope for the task's whole life, not one per call: a task
        # group entered by asyncSetUp and exited by a cleanup lives inside it,
        # and trio (rightly) refuses to exit a scope around a still-open one.
        # So once a call has been cancelled (its time limit, Ctrl-C), the rest
        # of the task's code runs cancelled, as trio code expects.
        run = self._run
        me = self._trio_task = trio.lowlevel.current_task()
        run.scope_tasks.add(me)
        mismatch = self.runner.library_mismatch()
        clock = run.clock
        if clock is not None and clock.autojump_threshold != run.threshold:
            # a test's change (current_clock()) ends with it; set from inside
            # the run, where MockClock tells the run of it
            clock.autojump_threshold = run.threshold  # type: ignore[assignment]
        with trio.CancelScope() as scope:
            self._scope = scope
            while call is not None:
                self._current = call
                if call.cancelled is not None:
                    # Ctrl-C came after the host handed the call over but before
                    # the scope was known here: _cancel_in_run found nothing
                    scope.cancel()
                cancelled_before = scope.cancel_called
                try:
                    if mismatch is not None:
                        raise RuntimeError(mismatch)
                    call.value = await call.fn(*call.args)
                except GeneratorExit:
                    raise  # the coroutine is being closed: no more awaiting here
                except BaseException as exc:  # reported on the host
                    call.error = detach(exc)
                self._current = None
                if isinstance(call.error, trio.Cancelled) and (
                    call.cancelled is not None or cancelled_before
                ):
                    # our own cancellation (the driver says why), or the one an
                    # earlier call was reported for already
                    call.error = None
                if call.limit is not None:
                    call.ended = time.monotonic()
                call.finished = True
                try:
                    call = await run.wait_next(self)
                except trio.Cancelled:
                    # a cancelled scope (ours, or a task group of the user's still
                    # open in this task) must not take this loop down: its exit
                    # is a later call. Shield only then: it costs every call.
                    with trio.CancelScope(shield=True):
                        call = await run.wait_next(self)
        run.scope_tasks.discard(me)

    def cancel_in_loop(self, call: Call) -> None:
        if self._current is call and self._scope is not None:
            self._scope.cancel()
        # else: not started yet, and _main cancels it as it starts

    async def pause(self) -> None:
        # Nothing: between two calls of a trio run, no task is promised to run
        # first (the next tick runs the test's task among the others, in an
        # order trio randomises), and a tick costs what a call does.
        return

    def wake(self) -> None:
        if self.wakeup is not None:
            self.wakeup.set()

    def end(self) -> None:
        self.ended = True
        self._run.live.discard(self)
        self.wake()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self._started and self._run.alive:
                # handled with the next request: no tick is needed now
                self._run.close_task(self)


_local = threading.local()


def _settings(options: dict[str, Any], threshold: float | None) -> str:
    if threshold is None:
        return f"options {options!r}"
    return (
        f"options {options!r} and clock = 'autojump' "
        f"(autojump_threshold = {threshold:g})"
    )


class TrioRunner(Runner):
    """One owner's view of the trio run open on this thread."""

    backend = "trio"
    #: trio cancels through nurseries: a single task can't be cancelled
    can_cancel_tasks = False
    cancelled_exc_class: type[BaseException] = trio.Cancelled

    def __init__(
        self,
        options: dict[str, Any],
        owner: str,
        autojump_threshold: float | None = None,
    ) -> None:
        self.label = owner
        run: _Run | None = getattr(_local, "run", None)
        if run is not None and run.left_behind is not None:
            raise RunnerLeftBehind(
                f"{owner} needs a trio run, but trio allows one run per thread "
                f"and this thread's run (of {', '.join(run.left_by)}) was left "
                f"behind ({run.left_behind}): no trio run can start on this thread "
                f"any more; fix or isolate that test (a process of its own, e.g. "
                f"pytest-xdist)"
            )
        if run is not None and not run.alive:
            run = None
        if run is None:
            run = _local.run = _Run(options, autojump_threshold)
        elif run.options != options or run.threshold != autojump_threshold:
            clocks = run.threshold is not None or autojump_threshold is not None
            raise RunnerConflictError(
                f"{owner} asks for a trio run with "
                f"{_settings(options, autojump_threshold)}, but trio allows one "
                f"run per thread and the one open (for "
                f"{', '.join(run.owners)}) has "
                f"{_settings(run.options, run.threshold)}; give both the same "
                f"trio options{' and clock' if clocks else ''}, or run them in "
                f"separate processes"
            )
        run.owners.append(owner)
        run.views.append(self)
        self.run = run
        self._closed = False

    def leave_behind(self, reason: str, ctrl_c: bool = False) -> None:
        self.run.leave_behind(reason, ctrl_c)

    def _step(self, call: Call, timeout: float | None) -> None:
        run = self.run
        run.driving = True
        try:
            run.pump(lambda: call.finished, timeout)
        finally:
            run.driving = False

    def _cancel(self, call: Call, threadsafe: bool) -> None:
        self.run.cancel(call)

    def _post_on_host(self, fn: Callable[[], object]) -> None:
        self.run.queue.put(fn)

    def _release(self) -> None:
        pass  # the run releases what it holds

    def other_tasks(self, task: ScopeTask) -> list[tuple[str, Any, Owner | None]]:
        # the task tree, walked from the root: trio's own tasks (the root, its
        # system tasks, our dispatcher) and the scope tasks are not shown, the
        # tasks in their nurseries are
        run = self.run
        if run.root is None:
            return []
        skip = {run.root, run.main, *run.scope_tasks}
        exclude = task._trio_task if isinstance(task, TrioScopeTask) else None
        found = []
        stack = [run.root]
        while stack:
            t = stack.pop()
            stack.extend(
                child for nursery in t.child_nurseries for child in nursery.child_tasks
            )
            if t in skip or t is exclude or _is_trios(t.coro):
                continue
            found.append((t.name, t.coro, t.context.get(OWNER, None)))
        return found

    def take_errors(self) -> list[str]:
        return []  # trio never swallows an error: it fails the task or the run

    def busy_threads(self, owner: object, wait: float = 0.0) -> list[Any]:
        return []  # trio's worker threads are its own (daemons): not tracked

    def open_task(self, context: Context, name: str) -> TrioScopeTask:
        if self.left_behind is not None:
            raise self.left_behind_error()
        return TrioScopeTask(self, context, name)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        run = self.run
        run.owners.remove(self.label)
        run.views.remove(self)
        if not run.owners:
            if getattr(_local, "run", None) is run and run.left_behind is None:
                _local.run = None
            run.stop()
