"""Frames in reports: where a task waits, what other threads do, and the
package's own frames kept out of tracebacks."""

from __future__ import annotations

import itertools
import os
import sys
import threading
import traceback
from collections.abc import Iterator
from types import FrameType, TracebackType
from typing import Any

# our frames are hidden from reported tracebacks: unittest's flag, and pytest's
__unittest = True
__tracebackhide__ = True


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


PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


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
        if not entry.filename.startswith(PACKAGE_DIR)
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
    for exc in related_exceptions(error):
        exc.__traceback__ = _without_own_frames(exc.__traceback__)


def related_exceptions(error: BaseException) -> Iterator[BaseException]:
    """*error*, the exceptions chained to it and those grouped in it, each once."""
    seen: set[int] = set()
    stack = [error]
    while stack:
        exc = stack.pop()
        if id(exc) in seen:
            continue
        seen.add(id(exc))
        yield exc
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


#: a time-out report shows at most this many other tasks, and the innermost
#: this many lines of each one's await chain (a screenful)
OTHER_TASKS_SHOWN = 10
_LINES_PER_TASK = 16


def format_tasks(tasks: list[tuple[str, Any, Any]], mine: object = None) -> str:
    """Each task's name, who started it and its await chain, bounded.

    :param tasks: (name, coroutine, owner marker or None) of each task
    :param mine: the owner marker of the code that timed out: the tasks of
        other owners come first (a server or a lock holder started by a class
        or module step is what a stuck test usually waits on), then its own,
        then those started outside any test or hook
    """
    tasks = sorted(tasks, key=lambda entry: (entry[2] is None, entry[2] is mine))
    parts = []
    for name, coro, owner in tasks[:OTHER_TASKS_SHOWN]:
        started = (
            owner.started()
            if owner is not None
            else "started outside any test or hook of this package"
        )
        lines = format_await_chain(coro).rstrip("\n").splitlines()
        if len(lines) > _LINES_PER_TASK:
            cut = len(lines) - _LINES_PER_TASK
            cut += cut % 2  # a frame is two lines: where, then the code
            lines = [f"  ... ({cut} lines left out)", *lines[cut:]]
        chain = "\n".join("  " + line for line in lines) or "    (no stack)"
        parts.append(f"  Task {name!r} ({started}):\n{chain}\n")
    if len(tasks) > OTHER_TASKS_SHOWN:
        parts.append(f"  ... and {len(tasks) - OTHER_TASKS_SHOWN} more task(s)\n")
    return "".join(parts)
