"""What the scope registry needs from a backend, and what both drivers share.

A *runner* is one event loop (asyncio) or one trio run, kept open on the calling
thread. A *scope task* is one long-lived task on a runner, bound to one
``contextvars.Context``, that runs the calls it is given one after another. Every
async hook of a test (``asyncSetUp``, the test, ``asyncTearDown``, async cleanups)
runs in the same scope task, so a cancel scope or task group entered in
``asyncSetUp`` can be exited in a cleanup; the same holds for the class and
module hooks, each in a scope task of their own.

Drivers know nothing about unittest.
"""

from __future__ import annotations

import itertools
import os
import sys
import traceback
from collections.abc import Awaitable, Callable
from contextvars import Context, ContextVar
from types import TracebackType
from typing import Any, Protocol

import sniffio

# our frames are hidden from reported tracebacks: unittest's flag, and pytest's
__unittest = True
__tracebackhide__ = True

AsyncFn = Callable[..., Awaitable[Any]]


class Call:
    """One call handed to a scope task, and its outcome."""

    # class-level defaults: a call sets only what differs (one per test phase,
    # so its construction is on the hot path)
    value: Any = None
    error: BaseException | None = None
    finished = False
    interrupted = False
    soft = False
    timed_out = False
    timeout: float | None = None
    where = ""
    #: the backend's cancel scope, where it has one
    scope: Any = None

    def __init__(self, fn: AsyncFn, args: tuple[Any, ...]) -> None:
        self.fn = fn
        self.args = args

    def outcome(self) -> Any:
        """Return the value, or raise what the call raised (dropping our reference)."""
        if self.interrupted:
            self.error = None
            if self.soft:
                raise Interrupted(
                    "interrupted by Ctrl-C; the run stops after this test"
                )
            raise FirstInterrupt
        if self.timed_out:
            self.error = None
            assert self.timeout is not None
            raise CallTimeout(self.timeout, self.where)
        error = self.error
        if error is not None:
            self.error = None
            hide_own_frames(error)
            try:
                raise error
            finally:
                del error
        return self.value


#: set in each scope task's context to a marker of it: tasks started from there
#: inherit it, which is how a task is traced back to the test that started it
OWNER: ContextVar[object] = ContextVar("anyio_unittest.owner")


class ScopeTask(Protocol):
    def leaked_tasks(self, everything: bool = False) -> list[Any]:
        """Tasks started from this scope task's context that are still pending.

        :param everything: every pending task of the runner but the scope tasks
        """

    def cancel_tasks(self, tasks: list[Any]) -> list[BaseException]:
        """Cancel *tasks* and wait for them; return what they raised instead.

        Backends that cannot cancel a single task from outside (trio) return
        at once, cancelling nothing.
        """

    def call(self, fn: AsyncFn, /, *args: Any, timeout: float | None = None) -> Any:
        """Run ``await fn(*args)`` in this task and return or raise its outcome.

        :param timeout: seconds after which the call is cancelled and
            :exc:`TimeoutError` raised (``None``: no limit)
        """

    def close(self) -> None:
        """End the task; whatever it started and did not finish is cancelled."""


class Runner(Protocol):
    backend: str
    #: whether ScopeTask.cancel_tasks can cancel single tasks
    can_cancel_tasks: bool

    #: what the backend raises into cancelled code
    cancelled_exc_class: type[BaseException]

    async def pause(self) -> None:
        """Between two phases run in one call: what the backend would do between
        two calls (asyncio: the callbacks made ready run once; a pending
        ``cancel()`` is raised here, as at any ``await``)."""

    def take_errors(self) -> list[str]:
        """Errors the loop swallowed (logged only) since the last call, formatted."""

    def open_task(self, context: Context) -> ScopeTask:
        """Start a scope task whose calls all run in *context*."""

    def close(self) -> None:
        """Cancel what still runs, finalise async generators, close the loop."""


def raise_keyboard_interrupt() -> None:
    """Queued on a runner's host loop by a second Ctrl-C (see ``_sigint``)."""
    raise KeyboardInterrupt


class RunnerConflictError(RuntimeError):
    """A runner was asked for that cannot coexist with one already open."""


class FirstInterrupt(KeyboardInterrupt):
    """The first Ctrl-C, raised by our handler: the test it hit still gets its
    teardown before the run stops (a plain ``KeyboardInterrupt`` does not)."""


class Interrupted(Exception):
    """A call cancelled by a Ctrl-C that a handler of the runner's turned into a
    graceful stop (``python -m unittest -c``): the test errors, the run stops."""


class CallTimeout(TimeoutError):
    """A call was cancelled because its time limit passed."""

    def __init__(self, timeout: float, where: str) -> None:
        super().__init__(f"timed out after {timeout:g} seconds")
        self.timeout = timeout
        #: the formatted stack of the call where the cancellation reached it
        self.where = where


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


def waiting_at(exc: BaseException) -> str:
    """Where a cancelled call was waiting: its traceback, without our frames."""
    frames = [
        f
        for f in traceback.extract_tb(exc.__traceback__)
        if not f.filename.startswith(_PACKAGE_DIR)
    ]
    return "".join(traceback.format_list(frames))


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


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
