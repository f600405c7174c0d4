"""Worker threads of asyncio runners: the default executor the package sets.

``loop.run_in_executor(None, ...)`` and ``asyncio.to_thread()`` run their
functions in the loop's default executor. asyncio's own is a
``ThreadPoolExecutor``, whose threads the interpreter joins at exit and whose
shutdown, when a runner closes, waits for every running function: a test that
left ``time.sleep(20)`` running in a thread would hold its runner's close for
20 s, and a function that never returns would hold the process for ever.

This pool is the same, except that its threads are daemons and its shutdown
waits only a bound; and since it knows what each thread runs and for which test
(the owner marker in the submitting task's context), a thread a test left
running is reported with that test, like a task it left running.
"""

from __future__ import annotations

import itertools
import os
import queue
import sys
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import Any, NamedTuple, TypeVar

from typing_extensions import ParamSpec

from ._driver import GRACE, OWNER
from ._frames import PACKAGE_DIR

# our frames are hidden from reported tracebacks: unittest's flag, and pytest's
__unittest = True
__tracebackhide__ = True

T = TypeVar("T")
P = ParamSpec("P")

_numbers = itertools.count(1)
#: as ThreadPoolExecutor's default
_POOL_MAX = min(32, (os.cpu_count() or 1) + 4)


class Work(NamedTuple):
    """What a busy thread runs, and for whom."""

    thread: threading.Thread
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    owner: object


class WorkerThreads(ThreadPoolExecutor):
    # A ThreadPoolExecutor only in name, which asyncio insists on (3.11+): none
    # of its machinery is used, its two public methods are ours.

    def __init__(self) -> None:
        # no super().__init__(): a pool of the base's (with a cpu_count() call)
        # that nothing would use, made for every runner
        self._pool_max = _POOL_MAX
        self._pool_queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._pool_threads: list[threading.Thread] = []
        self._pool_idle = threading.Semaphore(0)
        self._pool_lock = threading.Lock()
        self._pool_shut_down = False
        #: what each busy thread runs
        self.busy: dict[threading.Thread, Work] = {}

    def submit(
        self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> Future[T]:
        with self._pool_lock:
            if self._pool_shut_down:
                raise RuntimeError("cannot schedule new futures after shutdown")
            future: Future[T] = Future()
            self._pool_queue.put((future, fn, args, kwargs, OWNER.get(None)))
            if (
                not self._pool_idle.acquire(timeout=0)
                and len(self._pool_threads) < self._pool_max
            ):
                thread = threading.Thread(
                    target=self._work,
                    name=f"anyio_unittest worker {next(_numbers)}",
                    daemon=True,
                )
                thread.start()
                self._pool_threads.append(thread)
            return future

    def _work(self) -> None:
        me = threading.current_thread()
        get = self._pool_queue.get
        while True:
            item = get()
            if item is None:
                self._pool_queue.put(None)  # for the next thread
                return
            future, fn, args, kwargs, owner = item
            del item
            if future.set_running_or_notify_cancel():
                self.busy[me] = Work(me, fn, args, owner)
                # no longer busy before the outcome is set: setting it wakes the
                # loop, which may end the test (and look for busy threads) while
                # this thread still runs the future's callbacks
                try:
                    result = fn(*args, **kwargs)
                except BaseException as exc:
                    del self.busy[me]
                    future.set_exception(exc)
                    del exc
                else:
                    del self.busy[me]
                    future.set_result(result)
                    del result
            del future, fn, args, kwargs
            self._pool_idle.release()

    def owned_by(self, owner: object) -> list[Work]:
        """What the threads busy for *owner* run."""
        return [work for work in list(self.busy.values()) if work.owner is owner]

    def wait_for(self, works: list[Work], seconds: float) -> list[Work]:
        """Wait up to *seconds* for these threads to finish their work; return
        those still busy with it."""
        deadline = time.monotonic() + seconds
        left = works
        while left and time.monotonic() < deadline:
            time.sleep(0.005)
            left = [work for work in left if self.busy.get(work.thread) is work]
        return left

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop the threads once their work is done; wait for them only a bound
        (see ``_driver.GRACE``), then leave them: they are daemons."""
        if not self._pool_threads:  # the common case: nothing ever ran here
            self._pool_shut_down = True
            return
        with self._pool_lock:
            self._pool_shut_down = True
            if cancel_futures:
                while True:
                    try:
                        item = self._pool_queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is not None:
                        item[0].cancel()
            self._pool_queue.put(None)
        if wait:
            deadline = time.monotonic() + GRACE
            for thread in self._pool_threads:
                thread.join(max(deadline - time.monotonic(), 0))


def describe_work(work: Work) -> str:
    """A busy thread's name, what it runs and the line it is at."""
    fn: Any = work.fn
    args = work.args
    if isinstance(fn, partial) and not args:
        # asyncio.to_thread(f, ...) submits partial(context.run, f, ...)
        fn, args = fn.func, fn.args
        if getattr(fn, "__name__", "") == "run" and args:
            fn, args = args[0], args[1:]
    name = getattr(fn, "__qualname__", None) or repr(fn)
    module = getattr(fn, "__module__", None)
    if module and module != "builtins":
        name = f"{module}.{name}"
    shown = ", ".join(repr(arg)[:40] for arg in args[:3])
    # the frames below our worker's own: none while it runs a C function
    frame = sys._current_frames().get(work.thread.ident or 0)
    stack = traceback.extract_stack(frame) if frame is not None else []
    ours = [
        i for i, entry in enumerate(stack) if entry.filename.startswith(PACKAGE_DIR)
    ]
    inner = stack[ours[-1] + 1 :] if ours else []
    where = f", at {inner[-1].filename}:{inner[-1].lineno}" if inner else ""
    return f"{work.thread.name!r} running {name}({shown}){where}"
