"""The other ways to run an async test from unittest: the benchmark's peer rows
(what users would otherwise pick) and reference rows (the bare mechanism, no
library code: the least any design pays that enters a loop kept open once per
test). Each class's docstring is its row's label; ``bridged`` is every test."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import unittest
from collections.abc import Callable, Coroutine, Iterator
from queue import SimpleQueue
from typing import Any

import trio
from anyio._core._eventloop import get_async_backend

AsyncFn = Callable[[], Coroutine[Any, Any, None]]


class Bridge(unittest.TestCase):
    """Each test enters its loop once, through ``drive()``, with ``entry``: the
    test's body, or in ``-hooks`` rows set-up, body and tear-down together."""

    async def body(self) -> None:
        pass

    asyncSetUp = asyncTearDown = entry = body

    async def pause(self) -> None:
        await asyncio.sleep(0)

    async def phases(self) -> None:
        await self.asyncSetUp()
        await self.pause()
        await self.body()
        await self.pause()
        await self.asyncTearDown()

    def drive(self, fn: AsyncFn) -> None:
        raise NotImplementedError

    def bridged(self) -> None:  # every test method of a Bridge row
        self.drive(self.entry)


class LoopPerClass(Bridge):
    """one loop per class, run_until_complete per test"""

    loop: asyncio.AbstractEventLoop

    @classmethod
    def setUpClass(cls) -> None:
        cls.loop = asyncio.new_event_loop()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.loop.close()

    def drive(self, fn: AsyncFn) -> None:
        self.loop.run_until_complete(fn())


class AnyioRunnerPerClass(Bridge):
    """anyio TestRunner entered per class, run_test per test"""

    backend = "asyncio"
    runner: Any

    @classmethod
    def setUpClass(cls) -> None:
        cls.runner = get_async_backend(cls.backend).create_test_runner({})
        cls.runner.__enter__()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.runner.__exit__(None, None, None)

    def drive(self, fn: AsyncFn) -> None:
        self.runner.run_test(fn, {})


class AnyioRunnerPerTest(Bridge):
    """anyio TestRunner made per test (its plugin's default)"""

    backend = "asyncio"

    def drive(self, fn: AsyncFn) -> None:
        with get_async_backend(self.backend).create_test_runner({}) as runner:
            runner.run_test(fn, {})


async def _then_stop(loop: asyncio.AbstractEventLoop, coro: Any) -> None:
    try:
        await coro
    finally:
        loop.stop()


class AsyncioTaskPerTest(LoopPerClass):
    """bare loop: a task per test stops run_forever()"""

    def drive(self, fn: AsyncFn) -> None:
        task = self.loop.create_task(_then_stop(self.loop, fn()))
        self.loop.run_forever()
        task.result()


class AsyncioSharedTask(LoopPerClass):
    """bare loop: one long-lived task runs every test"""

    inbox: asyncio.Future[Any]
    server: asyncio.Task[None]

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        cls.inbox = cls.loop.create_future()
        cls.server = cls.loop.create_task(cls.serve())

    @classmethod
    async def serve(cls) -> None:
        while (coro := await cls.inbox) is not None:
            cls.inbox = cls.loop.create_future()
            await _then_stop(cls.loop, coro)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.inbox.set_result(None)
        cls.loop.run_until_complete(cls.server)
        super().tearDownClass()

    def drive(self, fn: AsyncFn) -> None:
        self.inbox.set_result(fn())
        self.loop.run_forever()


class TrioSharedTask(Bridge):
    """bare guest run: one long-lived task runs every test

    A trio guest run hosted by a queue on this thread; its task stays runnable
    between tests, so a test costs one trio tick (two if it spawns a task)."""

    spawn = False
    queue: SimpleQueue[Callable[[], object]]
    todo: Any
    busy: bool
    outcome: Any

    @classmethod
    def setUpClass(cls) -> None:
        cls.queue, cls.todo, cls.busy, cls.outcome = SimpleQueue(), None, True, None
        trio.lowlevel.start_guest_run(
            cls.serve,
            run_sync_soon_threadsafe=cls.queue.put,
            run_sync_soon_not_threadsafe=cls.queue.put,
            done_callback=cls.done,
        )
        cls.pump()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.todo, cls.busy = "stop", True
        cls.pump()
        cls.outcome.unwrap()

    @classmethod
    def pump(cls) -> None:
        while cls.busy:
            cls.queue.get()()

    @classmethod
    def done(cls, outcome: Any) -> None:
        cls.outcome, cls.busy = outcome, False

    @classmethod
    async def serve(cls) -> None:
        cls.busy = False
        while (coro := cls.todo) != "stop":
            if coro is not None:
                cls.todo = None
                if cls.spawn:
                    trio.lowlevel.spawn_system_task(cls.run_one, coro)
                else:
                    await cls.run_one(coro)
            await trio.lowlevel.checkpoint()

    @classmethod
    async def run_one(cls, coro: Any) -> None:
        try:
            await coro
        finally:
            cls.busy = False

    async def pause(self) -> None:
        pass  # trio orders nothing between calls

    def drive(self, fn: AsyncFn) -> None:
        cls = type(self)
        cls.todo, cls.busy = fn(), True
        cls.pump()


class TrioTaskPerTest(TrioSharedTask):
    """bare guest run: a (system) task per test"""

    spawn = True


# ``isolated-nodebug``: the stdlib forces ``asyncio.Runner(debug=True)`` and offers
# no public switch; overriding ``_setupAsyncioRunner`` would rely on a private
# method. So the row gives IsolatedAsyncioTestCase a loop whose ``set_debug()``
# keeps debug mode off: through ``loop_factory`` on Python 3.13+, before that
# through an event loop policy installed only while the row runs (3.11's
# ``asyncio.Runner`` and 3.10's ``asyncio.new_event_loop()`` ask the policy).


class NoDebugLoop(asyncio.SelectorEventLoop):
    """asyncio's default loop (on POSIX), whose debug mode stays off."""

    def set_debug(self, enabled: bool) -> None:
        super().set_debug(False)


class NoDebugIsolatedAsyncioTestCase(unittest.IsolatedAsyncioTestCase):
    """IsolatedAsyncioTestCase, debug mode off"""

    loop_factory = NoDebugLoop  # read by Python 3.13+


@contextlib.contextmanager
def no_debug_loops(enabled: bool = True) -> Iterator[None]:
    """Before 3.13, a policy making every new loop a NoDebugLoop, for a while."""
    if not enabled or sys.version_info >= (3, 13):
        yield
        return

    class NoDebugPolicy(asyncio.DefaultEventLoopPolicy):
        def new_event_loop(self) -> asyncio.AbstractEventLoop:
            return NoDebugLoop()

    previous = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(NoDebugPolicy())
    try:
        yield
    finally:
        asyncio.set_event_loop_policy(previous)
