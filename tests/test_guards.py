"""Guard rails for shared runners: time limits, leaked tasks, swallowed errors.

Each behaviour is checked on asyncio and on trio by running small suites of
``AnyIOTestCase`` classes, defined inside the tests, from plain sync tests. A
suite with a test that leaks a task, one that hangs and a callback that raises
runs end to end under ``python -m unittest`` and pytest: it ends in bounded time
with each problem reported against its test.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import os
import sys
import threading
import time
import types
import unittest
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, ClassVar
from unittest import mock

import anyio
import trio
from anyio.abc import SocketAttribute, TaskGroup

import anyio_unittest
from anyio_unittest import AnyIOTestCase, LeakedTaskWarning
from anyio_unittest._threads import WorkerThreads

from ._support import (
    PACKAGE_DIR,
    BackendTests,
    Outcome,
    outcomes_by_test,
    run_classes,
    run_pytest,
    run_unittest,
    unittest_id,
    write_suite,
)

THIS_FILE = os.path.abspath(__file__)
TIMEOUT_ENV = "ANYIO_UNITTEST_TIMEOUT"


def line_of(function: Any, text: str) -> int:
    """The line number of the first line of *function* that contains *text*."""
    lines, first = inspect.getsourcelines(function)
    for offset, line in enumerate(lines):
        if text in line:
            return first + offset
    raise AssertionError(f"{text!r} not in {function.__qualname__}")


@contextmanager
def timeout_env(value: str | None) -> Iterator[None]:
    """Set (or, with None, unset) ANYIO_UNITTEST_TIMEOUT for what runs inside."""
    with mock.patch.dict(os.environ):
        os.environ.pop(TIMEOUT_ENV, None)
        if value is not None:
            os.environ[TIMEOUT_ENV] = value
        yield


def run_with_env_timeout(
    *classes: type[unittest.TestCase], env_timeout: str | None = None
) -> unittest.TestResult:
    """:func:`run_classes` with ANYIO_UNITTEST_TIMEOUT unset, or set to
    *env_timeout*."""
    with timeout_env(env_timeout):
        return run_classes(*classes)


# -- time limits -----------------------------------------------------------------


class HangingBody:
    events: ClassVar[list[str]]

    async def test_a_hangs(self) -> None:
        await anyio.sleep(30)  # the hanging line

    async def test_b_runs_next(self) -> None:
        await anyio.sleep(0)
        self.events.append("next test ran")


class HangingClassSetUpBody:
    loop_scope = "class"
    class_timeout = 0.1

    @classmethod
    async def asyncSetUpClass(cls) -> None:
        await anyio.sleep(30)  # the hanging class setup

    async def test_never_runs(self) -> None:
        raise AssertionError("its class setup timed out")


class NextClassBody:
    loop_scope = "class"
    events: ClassVar[list[str]]

    @classmethod
    async def asyncSetUpClass(cls) -> None:
        await anyio.sleep(0)
        cls.events.append("next class set up")

    async def test_it(self) -> None:
        await anyio.sleep(0)
        self.events.append("next class test ran")


class TimeoutTests(BackendTests):
    def test_a_hung_test_fails_naming_itself_the_limit_and_where_it_waited(
        self,
    ) -> None:
        for scope in ("function", "class"):
            with self.subTest(loop_scope=scope):
                events: list[str] = []
                case = self.make(
                    HangingBody, loop_scope=scope, timeout=0.1, events=events
                )
                start = time.monotonic()
                result = run_with_env_timeout(case)
                self.assertLess(time.monotonic() - start, 3)
                found = outcomes_by_test(result)
                self.assertEqual(list(found), ["test_a_hangs"])
                text = found["test_a_hangs"]
                self.assertTrue(text.startswith("failure: "), text)
                self.assertIn(f"{case.__qualname__}.test_a_hangs timed out", text)
                self.assertIn("limit of 0.1 seconds", text)
                line = line_of(HangingBody.test_a_hangs, "# the hanging line")
                self.assertIn(f'File "{THIS_FILE}", line {line}, in test_a_hangs', text)
                self.assertIn("await anyio.sleep(30)", text)
                self.assertNotIn(PACKAGE_DIR, text)
                # the runner (shared or not) is usable by the next test
                self.assertEqual(events, ["next test ran"])
                self.assertEqual(result.testsRun, 2)

    def test_the_decorator_overrides_the_class_limit(self) -> None:
        events: list[str] = []

        class Body:
            timeout = 0.05

            @anyio_unittest.timeout(5)
            async def test_longer(self) -> None:
                await anyio.sleep(0.15)
                events.append("longer")

            @anyio_unittest.timeout(None)
            async def test_unlimited(self) -> None:
                await anyio.sleep(0.15)
                events.append("unlimited")

            async def test_class_limit(self) -> None:
                await anyio.sleep(0.15)
                events.append("class limit")

        class Shorter:
            timeout = 30

            @anyio_unittest.timeout(0.05)
            async def test_shorter(self) -> None:
                await anyio.sleep(30)

        start = time.monotonic()
        result = run_with_env_timeout(self.make(Body), self.make(Shorter))
        self.assertLess(time.monotonic() - start, 3)
        found = outcomes_by_test(result)
        self.assertEqual(sorted(found), ["test_class_limit", "test_shorter"])
        self.assertIn("limit of 0.05 seconds", found["test_class_limit"])
        self.assertIn("limit of 0.05 seconds", found["test_shorter"])
        self.assertEqual(sorted(events), ["longer", "unlimited"])

    def test_the_environment_overrides_the_class_and_the_decorator_wins(
        self,
    ) -> None:
        class Long:
            timeout = 30

            async def test_hangs(self) -> None:
                await anyio.sleep(30)

        class Short:
            timeout = 0.05

            async def test_sleeps(self) -> None:
                await anyio.sleep(0.15)

        class Decorated:
            @anyio_unittest.timeout(0.05)
            async def test_decorated(self) -> None:
                await anyio.sleep(30)

        start = time.monotonic()
        shortened = run_with_env_timeout(self.make(Long), env_timeout="0.05")
        lengthened = run_with_env_timeout(self.make(Short), env_timeout="5")
        decorated = run_with_env_timeout(self.make(Decorated), env_timeout="30")
        self.assertLess(time.monotonic() - start, 3)
        self.assertEqual(list(outcomes_by_test(shortened)), ["test_hangs"])
        self.assertIn(
            "limit of 0.05 seconds", outcomes_by_test(shortened)["test_hangs"]
        )
        self.assertEqual(outcomes_by_test(lengthened), {})
        self.assertEqual(lengthened.testsRun, 1)
        self.assertEqual(list(outcomes_by_test(decorated)), ["test_decorated"])

    def test_async_setup_and_test_share_one_budget_teardown_gets_its_own(
        self,
    ) -> None:
        events: list[str] = []

        class Body:
            timeout = 0.2

            async def asyncSetUp(self) -> None:
                if self._testMethodName == "test_shares_the_budget":
                    await anyio.sleep(0.12)

            async def test_shares_the_budget(self) -> None:
                await anyio.sleep(0.12)  # 0.24 s with asyncSetUp: over the limit

            async def test_own_budgets(self) -> None:
                # 0.36 s in all, but no step over the limit
                self.addAsyncCleanup(self.slow_cleanup)
                await anyio.sleep(0.12)

            async def slow_cleanup(self) -> None:
                await anyio.sleep(0.12)
                events.append("cleanup finished")

            async def asyncTearDown(self) -> None:
                if self._testMethodName == "test_own_budgets":
                    await anyio.sleep(0.12)
                    events.append("teardown finished")

        result = run_with_env_timeout(self.make(Body))
        found = outcomes_by_test(result)
        self.assertEqual(list(found), ["test_shares_the_budget"])
        self.assertIn(
            "test exceeded the limit of 0.2 seconds (shared by asyncSetUp and the "
            "test)",
            found["test_shares_the_budget"],
        )
        self.assertEqual(events, ["teardown finished", "cleanup finished"])

    def test_after_a_timeout_teardown_and_cleanups_are_still_called(self) -> None:
        events: list[str] = []

        class Body:
            loop_scope = "class"
            timeout = 0.05

            async def asyncSetUp(self) -> None:
                self.addAsyncCleanup(self.cleanup)

            async def cleanup(self) -> None:
                events.append("cleanup called")
                await anyio.sleep(0)
                events.append("cleanup finished")

            async def test_hangs(self) -> None:
                await anyio.sleep(30)

            async def asyncTearDown(self) -> None:
                events.append("teardown called")
                await anyio.sleep(0)
                events.append("teardown finished")

            def tearDown(self) -> None:
                events.append("tearDown")

        result = run_with_env_timeout(self.make(Body))
        self.assertEqual(list(outcomes_by_test(result)), ["test_hangs"])
        if self.backend == "asyncio":
            # asyncio cancels the timed-out phase once
            expected = [
                "teardown called",
                "teardown finished",
                "tearDown",
                "cleanup called",
                "cleanup finished",
            ]
        else:
            # trio: the rest of the test's async code runs cancelled (documented)
            expected = ["teardown called", "tearDown", "cleanup called"]
        self.assertEqual(events, expected)

    def test_class_timeout_makes_a_hung_class_setup_a_class_error(self) -> None:
        events: list[str] = []
        hung = self.make(HangingClassSetUpBody)
        following = self.make(NextClassBody, events=events)
        start = time.monotonic()
        result = run_with_env_timeout(hung, following)
        self.assertLess(time.monotonic() - start, 3)
        found = outcomes_by_test(result)
        key = f"setUpClass ({__name__}.HangingClassSetUpBody)"
        self.assertEqual(list(found), [key])
        text = found[key]
        self.assertIn("TimeoutError", text)
        self.assertIn("exceeded class_timeout = 0.1 seconds", text)
        line = line_of(
            HangingClassSetUpBody.asyncSetUpClass, "# the hanging class setup"
        )
        self.assertIn(f'File "{THIS_FILE}", line {line}, in asyncSetUpClass', text)
        # the next class gets a working runner
        self.assertEqual(events, ["next class set up", "next class test ran"])
        self.assertEqual(result.testsRun, 1)

    def test_no_limit_under_a_debugger(self) -> None:
        class Body:
            timeout = 0.03
            class_timeout = 0.03
            loop_scope = "class"

            @classmethod
            async def asyncSetUpClass(cls) -> None:
                await anyio.sleep(0.1)

            async def test_slow(self) -> None:
                await anyio.sleep(0.1)

        case = self.make(Body)
        # what _under_debugger() looks for: PyCharm's and VS Code's debugger
        with mock.patch.dict(sys.modules, {"pydevd": types.ModuleType("pydevd")}):
            result = run_with_env_timeout(case)
        self.assertEqual(outcomes_by_test(result), {})
        self.assertEqual(result.testsRun, 1)
        # and without one, the same class fails: the limits were real
        self.assertEqual(
            len(outcomes_by_test(run_with_env_timeout(self.make(Body)))), 1
        )

    def test_a_swallowed_or_converted_cancellation_is_still_a_timeout(
        self,
    ) -> None:
        class Body:
            timeout = 0.1

            async def test_swallows(self) -> None:
                try:
                    await anyio.sleep(30)
                except anyio.get_cancelled_exc_class():
                    pass  # and returns: it still took longer than its limit

            async def test_converts(self) -> None:
                try:
                    await anyio.sleep(30)
                except anyio.get_cancelled_exc_class():
                    raise ConnectionError("the peer went away") from None

        for scope in ("function", "class"):
            with self.subTest(loop_scope=scope):
                found = outcomes_by_test(
                    run_with_env_timeout(self.make(Body, loop_scope=scope))
                )
                self.assertEqual(sorted(found), ["test_converts", "test_swallows"])
                for text in found.values():
                    self.assertTrue(text.startswith("failure: "), text)
                    self.assertIn("timed out: test exceeded the limit of 0.1", text)
                # what the code made of the cancellation is shown as the cause
                self.assertIn(
                    "ConnectionError: the peer went away\n\nThe above exception "
                    "was the direct cause of the following exception:",
                    found["test_converts"],
                )

    def test_a_shielded_scope_is_honoured_then_the_limit_applies(self) -> None:
        events: list[str] = []

        class Body:
            timeout = 0.1

            async def test_shielded(self) -> None:
                with anyio.CancelScope(shield=True):
                    await anyio.sleep(0.3)  # the shield outlasts the limit
                    events.append("shield held")
                await anyio.sleep(30)  # cancelled at once
                events.append("not cancelled")

            async def asyncTearDown(self) -> None:
                events.append("teardown")

        start = time.monotonic()
        found = outcomes_by_test(run_with_env_timeout(self.make(Body)))
        self.assertLess(time.monotonic() - start, 3)
        self.assertEqual(list(found), ["test_shielded"])
        self.assertIn("timed out", found["test_shielded"])
        self.assertEqual(events, ["shield held", "teardown"])


class TestTimeoutsAsyncio(TimeoutTests, unittest.TestCase):
    backend = "asyncio"


class TestTimeoutsTrio(TimeoutTests, unittest.TestCase):
    backend = "trio"


# -- leaked tasks ----------------------------------------------------------------


async def _cancel_group(group: TaskGroup) -> None:
    group.cancel_scope.cancel()


class LeakBody:
    """A class whose asyncSetUpClass owns a task group with a task of its own;
    test_a starts a task into that group and leaves it running."""

    loop_scope = "class"
    events: ClassVar[list[str]]
    group: ClassVar[TaskGroup]

    @classmethod
    async def asyncSetUpClass(cls) -> None:
        cls.group = await cls.enterAsyncClassContext(anyio.create_task_group())
        # registered after the group is entered, so it runs before it exits
        cls.addAsyncClassCleanup(_cancel_group, cls.group)
        cls.group.start_soon(cls.class_task, name="class-owned task")

    @classmethod
    async def class_task(cls) -> None:
        cls.events.append("class task started")
        await anyio.sleep_forever()

    async def test_a_leaks(self) -> None:
        self.group.start_soon(self.leaky, name="leaky task")
        await anyio.sleep(0.01)  # it starts and waits

    async def leaky(self) -> None:
        try:
            await anyio.sleep_forever()  # where the leaked task waits
        finally:
            self.events.append("leaked task ended")

    async def test_b_next(self) -> None:
        await anyio.sleep(0)
        self.events.append("next test ran")


class LeakTests(BackendTests):
    def run_leak(
        self, **attrs: Any
    ) -> tuple[unittest.TestResult, list[str], list[warnings.WarningMessage]]:
        events: list[str] = []
        case = self.make(LeakBody, events=events, **attrs)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = run_with_env_timeout(case)
        self.assertEqual(result.testsRun, 2)
        return result, events, caught

    def test_fail_is_the_default_and_names_the_task_and_where_it_waits(self) -> None:
        self.assertEqual(AnyIOTestCase.leaked_tasks, "fail")
        result, events, caught = self.run_leak()
        found = outcomes_by_test(result)
        self.assertEqual(list(found), ["test_a_leaks"])
        text = found["test_a_leaks"]
        self.assertTrue(text.startswith("failure: "), text)
        self.assertIn("test_a_leaks left 1 task(s) running", text)
        self.assertIn("'leaky task' running LeakBody.leaky()", text)
        line = line_of(LeakBody.leaky, "# where the leaked task waits")
        self.assertIn(f"{THIS_FILE}:{line}", text)
        # a task of asyncSetUpClass's group is the class's, never a leak
        self.assertNotIn("class-owned", text)
        self.assertEqual(caught, [])
        if self.backend == "asyncio":
            # cancelled before the next test can meet it
            self.assertEqual(
                events,
                ["class task started", "leaked task ended", "next test ran"],
            )
        else:
            # trio cancels through nurseries only: it goes on until its group ends
            self.assertEqual(
                events,
                ["class task started", "next test ran", "leaked task ended"],
            )

    def test_debug_fails_a_test_that_leaks_too(self) -> None:
        events: list[str] = []
        case = self.make(LeakBody, events=events)
        with self.assertRaises(case.failureException) as caught:
            case("test_a_leaks").debug()
        self.assertIn("test_a_leaks left 1 task(s) running", str(caught.exception))
        self.assertIn("'leaky task'", str(caught.exception))
        case("test_b_next").debug()  # nothing left behind: no error
        self.assertIn("next test ran", events)

    def test_warn_gives_a_leaked_task_warning(self) -> None:
        result, events, caught = self.run_leak(leaked_tasks="warn")
        self.assertEqual(outcomes_by_test(result), {})
        self.assertEqual(
            [w.category for w in caught], [LeakedTaskWarning], [str(w) for w in caught]
        )
        self.assertTrue(issubclass(LeakedTaskWarning, ResourceWarning))
        message = str(caught[0].message)
        self.assertIn("test_a_leaks left 1 task(s) running", message)
        self.assertIn("'leaky task'", message)
        self.assertIn("leaked task ended", events)

    def test_cancel_ends_the_task_silently(self) -> None:
        result, events, caught = self.run_leak(leaked_tasks="cancel")
        self.assertEqual(outcomes_by_test(result), {})
        if self.backend == "asyncio":
            self.assertEqual(caught, [])
            self.assertEqual(
                events,
                ["class task started", "leaked task ended", "next test ran"],
            )
        else:
            # a trio task can't be cancelled on its own (documented): "cancel"
            # can't be honoured, so it warns instead of staying silent
            self.assertEqual(len(caught), 1)
            self.assertIs(caught[0].category, anyio_unittest.LeakedTaskWarning)
            self.assertIn("through their nursery", str(caught[0].message))
            self.assertEqual(
                events,
                ["class task started", "next test ran", "leaked task ended"],
            )

    def test_ignore_leaves_the_task_running(self) -> None:
        result, events, caught = self.run_leak(leaked_tasks="ignore")
        self.assertEqual(outcomes_by_test(result), {})
        self.assertEqual(caught, [])
        self.assertEqual(
            events, ["class task started", "next test ran", "leaked task ended"]
        )

    def test_a_task_of_the_class_group_is_not_a_leak(self) -> None:
        events: list[str] = []

        class Body(LeakBody):
            async def test_a_leaks(self) -> None:
                await anyio.sleep(0.01)
                # the class's task is running while this test ends
                self.assertEqual(self.events, ["class task started"])

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = run_with_env_timeout(self.make(Body, events=events))
        self.assertEqual(outcomes_by_test(result), {})
        self.assertEqual(caught, [])
        self.assertEqual(result.testsRun, 2)

    def test_a_server_of_the_class_is_not_blamed_on_the_test_that_connects(
        self,
    ) -> None:
        handlers: list[str] = []

        class Body:
            loop_scope = "class"
            port: ClassVar[int]

            @classmethod
            async def asyncSetUpClass(cls) -> None:
                listener = await cls.enterAsyncClassContext(
                    await anyio.create_tcp_listener(local_host="127.0.0.1")
                )
                cls.port = listener.extra(SocketAttribute.local_port)
                group = await cls.enterAsyncClassContext(anyio.create_task_group())
                cls.addAsyncClassCleanup(_cancel_group, group)
                group.start_soon(listener.serve, cls.handle)

            @classmethod
            async def handle(cls, stream: Any) -> None:
                async with stream:
                    await stream.send((await stream.receive()).upper())
                    handlers.append("replied")
                    await anyio.sleep_forever()  # a kept-alive connection

            async def test_a_connects(self) -> None:
                async with await anyio.connect_tcp("127.0.0.1", self.port) as client:
                    await client.send(b"hello")
                    self.assertEqual(await client.receive(), b"HELLO")

            async def test_b_connects_again(self) -> None:
                # the handler of test_a's connection is still running
                self.assertEqual(handlers, ["replied"])
                await self.test_a_connects()

        result = run_with_env_timeout(self.make(Body))
        self.assertEqual(outcomes_by_test(result), {})
        self.assertEqual(result.testsRun, 2)
        self.assertEqual(handlers, ["replied", "replied"])

    def test_an_error_in_a_task_of_the_class_group_is_reported_not_lost(
        self,
    ) -> None:
        events: list[str] = []

        class Body(LeakBody):
            async def test_a_leaks(self) -> None:
                self.group.start_soon(self.fails)
                await anyio.sleep(0.01)

            async def fails(self) -> None:
                raise KeyError("a task of the class group failed")

        start = time.monotonic()
        result = run_with_env_timeout(self.make(Body, events=events))
        self.assertLess(time.monotonic() - start, 3)
        found = outcomes_by_test(result)
        key = f"tearDownClass ({__name__}.Body)"
        self.assertEqual(list(found), [key])
        self.assertIn("KeyError: 'a task of the class group failed'", found[key])
        self.assertIn("next test ran", events)

    def test_a_long_list_of_leaked_tasks_is_cut_short(self) -> None:
        class Body(LeakBody):
            async def test_a_leaks(self) -> None:
                for number in range(100):
                    self.group.start_soon(self.leaky, name=f"leaky task {number}")
                await anyio.sleep(0.01)

        result = run_with_env_timeout(self.make(Body, events=[]))
        text = outcomes_by_test(result)["test_a_leaks"]
        self.assertIn("left 100 task(s) running", text)
        self.assertEqual(text.count("running LeakBody.leaky()"), 20)
        self.assertIn("... and 80 more", text)


class TestLeaksAsyncio(LeakTests, unittest.TestCase):
    backend = "asyncio"

    def test_a_bare_asyncio_task_is_a_leak(self) -> None:
        events: list[str] = []

        class Body(LeakBody):
            async def test_a_leaks(self) -> None:
                self.task = asyncio.create_task(self.leaky(), name="bare task")
                await asyncio.sleep(0)

        result = run_with_env_timeout(self.make(Body, events=events))
        found = outcomes_by_test(result)
        self.assertEqual(list(found), ["test_a_leaks"])
        self.assertIn("'bare task' running LeakBody.leaky()", found["test_a_leaks"])
        self.assertEqual(
            events, ["class task started", "leaked task ended", "next test ran"]
        )


class TestLeakedThreadsAsyncio(BackendTests, unittest.TestCase):
    """asyncio runs ``run_in_executor(None, ...)`` and ``asyncio.to_thread`` in
    the runner's default executor: a thread a test leaves running there is one
    of its leftovers. (trio's worker threads are trio's own; see test_stuck.)"""

    backend = "asyncio"

    def run_body(self, **attrs: Any) -> tuple[dict[str, str], list[str], float]:
        events: list[str] = []
        release = threading.Event()

        class Body:
            async def test_a_leaves_a_thread(self) -> None:
                loop = asyncio.get_running_loop()
                loop.run_in_executor(None, release.wait)  # never awaited

            async def test_b_next(self) -> None:
                await asyncio.to_thread(events.append, "next test ran")

        start = time.monotonic()
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                found = outcomes_by_test(run_with_env_timeout(self.make(Body, **attrs)))
        finally:
            release.set()
        events += [str(w.message) for w in caught]
        return found, events, time.monotonic() - start

    def test_a_thread_left_running_fails_the_test(self) -> None:
        for scope in ("function", "class"):
            with self.subTest(loop_scope=scope):
                found, events, elapsed = self.run_body(loop_scope=scope)
                self.assertEqual(list(found), ["test_a_leaves_a_thread"])
                text = found["test_a_leaves_a_thread"]
                self.assertIn("left 1 worker thread(s) running", text)
                self.assertIn("'anyio_unittest worker", text)
                self.assertIn("running threading.Event.wait()", text)
                self.assertEqual(events, ["next test ran"])
                # function scope waits for it as long as a runner's close would
                self.assertLess(elapsed, 5)

    def test_a_thread_is_no_longer_busy_once_its_outcome_is_set(self) -> None:
        # setting the outcome wakes the loop, which may end the test and look
        # for busy threads while this thread still runs the future's callbacks
        threads = WorkerThreads()
        self.addCleanup(threads.shutdown)
        busy_when_done: list[int] = []
        done = threading.Event()
        gate = threading.Event()

        def on_done(_: object) -> None:
            busy_when_done.append(len(threads.busy))
            done.set()

        future = threads.submit(gate.wait)
        future.add_done_callback(on_done)  # run by the worker, as it sets it
        gate.set()
        self.assertTrue(done.wait(5))
        self.assertEqual(busy_when_done, [0])

    def test_ignore_and_warn(self) -> None:
        found, events, _ = self.run_body(loop_scope="class", leaked_tasks="ignore")
        self.assertEqual((found, events), ({}, ["next test ran"]))
        found, events, _ = self.run_body(loop_scope="class", leaked_tasks="warn")
        self.assertEqual(found, {})
        self.assertEqual(events[0], "next test ran")
        self.assertIn("left 1 worker thread(s) running", events[1])


class TestLeaksTrio(LeakTests, unittest.TestCase):
    backend = "trio"

    def test_a_system_task_is_a_leak(self) -> None:
        # what trio's structured concurrency does not prevent: a task spawned
        # into the run's system nursery outlives the test that spawned it
        events: list[str] = []

        class Body(LeakBody):
            async def test_a_leaks(self) -> None:
                trio.lowlevel.spawn_system_task(self.leaky, name="system task")
                await trio.sleep(0)

        result = run_with_env_timeout(self.make(Body, events=events))
        found = outcomes_by_test(result)
        self.assertEqual(list(found), ["test_a_leaks"])
        self.assertIn("'system task' running LeakBody.leaky()", found["test_a_leaks"])
        self.assertEqual(
            events, ["class task started", "next test ran", "leaked task ended"]
        )


# -- errors the event loop only logs (asyncio) ----------------------------------


def raise_in_callback() -> None:
    raise ValueError("boom in a callback")


async def fail_unawaited() -> None:
    raise KeyError("never retrieved")


class SwallowedBody:
    events: ClassVar[list[str]]

    async def test_a_callback_raises(self) -> None:
        asyncio.get_running_loop().call_soon(raise_in_callback)
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    async def test_b_task_exception_never_retrieved(self) -> None:
        task = asyncio.get_running_loop().create_task(fail_unawaited())
        while not task.done():
            await asyncio.sleep(0)
        del task  # the last reference: the loop's handler hears of it now
        gc.collect()

    async def test_c_passes(self) -> None:
        await asyncio.sleep(0)
        self.events.append("passing test ran")


class TestSwallowedErrorsAsyncio(BackendTests, unittest.TestCase):
    """asyncio only hands these to the loop's exception handler; trio never
    swallows an error (it fails the task group, and so the test)."""

    backend = "asyncio"

    def test_errors_the_loop_swallows_fail_the_test_that_caused_them(self) -> None:
        for scope in ("function", "class"):
            with self.subTest(loop_scope=scope):
                events: list[str] = []
                result = run_with_env_timeout(
                    self.make(SwallowedBody, loop_scope=scope, events=events)
                )
                found = outcomes_by_test(result)
                self.assertEqual(
                    sorted(found),
                    ["test_a_callback_raises", "test_b_task_exception_never_retrieved"],
                )
                callback = found["test_a_callback_raises"]
                self.assertTrue(callback.startswith("failure: "), callback)
                self.assertIn(
                    "the event loop reported these errors during the test", callback
                )
                self.assertIn("set loop_errors = 'log' on SwallowedBody", callback)
                self.assertIn("ValueError: boom in a callback", callback)
                line = line_of(raise_in_callback, "raise ValueError")
                self.assertIn(f'File "{THIS_FILE}", line {line}', callback)
                self.assertNotIn("never retrieved", callback)
                task = found["test_b_task_exception_never_retrieved"]
                self.assertIn("Task exception was never retrieved", task)
                self.assertIn("KeyError: 'never retrieved'", task)
                self.assertNotIn("boom", task)
                self.assertEqual(events, ["passing test ran"])
                self.assertEqual(result.testsRun, 3)

    def test_an_error_outside_any_test_is_reported_at_the_class_end(self) -> None:
        events: list[str] = []

        class Body:
            loop_scope = "class"
            kept: ClassVar[list[asyncio.Task[None]]] = []

            @classmethod
            async def asyncSetUpClass(cls) -> None:
                asyncio.get_running_loop().call_soon(raise_in_callback)
                await asyncio.sleep(0)
                await asyncio.sleep(0)

            async def test_a_keeps_a_failed_task(self) -> None:
                task = asyncio.get_running_loop().create_task(fail_unawaited())
                while not task.done():
                    await asyncio.sleep(0)
                self.kept.append(task)  # alive after the test: not its error

            async def test_b(self) -> None:
                await asyncio.sleep(0)
                events.append("test_b ran")

            @classmethod
            def tearDownClass(cls) -> None:
                # between the last test and the runner's end
                cls.kept.clear()
                gc.collect()
                events.append("tearDownClass")

        result = run_with_env_timeout(self.make(Body))
        found = outcomes_by_test(result)
        key = f"tearDownClass ({__name__}.Body)"
        self.assertEqual(list(found), [key])
        text = found[key]
        self.assertIn("reported these errors outside any test", text)
        self.assertIn("ValueError: boom in a callback", text)
        self.assertIn("KeyError: 'never retrieved'", text)
        self.assertEqual(text.count("ValueError: boom"), 1)
        self.assertEqual(events, ["test_b ran", "tearDownClass"])
        self.assertEqual(result.testsRun, 2)


class LoopErrorPolicyTests(BackendTests, unittest.TestCase):
    """``loop_errors``: every error the loop reports is logged, as asyncio logs
    it; the policy says what it does to the test besides."""

    backend = "asyncio"

    class Body:
        loop_scope = "class"

        async def test_a_reports_an_error(self) -> None:
            with self.assertLogs("asyncio", "ERROR") as logs:  # type: ignore[attr-defined]
                asyncio.get_running_loop().call_exception_handler(
                    {"message": "Unclosed client session"}
                )
            self.logged = logs.output

        async def test_b_sets_a_handler_of_its_own(self) -> None:
            seen: list[str] = []
            loop = asyncio.get_running_loop()
            loop.set_exception_handler(lambda loop, context: seen.append("mine"))
            loop.call_exception_handler({"message": "to the test's handler"})
            self.assertEqual(seen, ["mine"])  # type: ignore[attr-defined]

        async def test_c_after_it(self) -> None:
            # the runner's handler is back for the next test
            asyncio.get_running_loop().call_exception_handler({"message": "third"})

    def run_policy(
        self, env: str | None = None, **attrs: Any
    ) -> tuple[dict[str, str], list[str]]:
        case = self.make(self.Body, **attrs)
        with mock.patch.dict(os.environ):
            os.environ.pop("ANYIO_UNITTEST_LOOP_ERRORS", None)
            if env is not None:
                os.environ["ANYIO_UNITTEST_LOOP_ERRORS"] = env
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                result = run_classes(case)
        self.assertEqual(result.testsRun, 3)
        return outcomes_by_test(result), [str(w.message) for w in caught]

    class Raises:
        async def test_leaves_a_task_that_raises_when_cancelled(self) -> None:
            async def stubborn() -> None:
                try:
                    await asyncio.sleep(30)
                except asyncio.CancelledError:
                    raise ValueError("raised while being cancelled") from None

            asyncio.get_running_loop().create_task(stubborn())
            await asyncio.sleep(0)

    def test_a_leftover_task_raising_as_it_is_cancelled_is_a_loop_error(self) -> None:
        # as asyncio.Runner reports it (through the loop's exception handler),
        # so that loop_errors = "log" gives the stdlib's outcome
        for policy in ("fail", "log"):
            with (
                self.subTest(policy=policy),
                mock.patch.dict(os.environ),
                self.assertLogs("asyncio", "ERROR") as logs,
            ):
                os.environ.pop("ANYIO_UNITTEST_LOOP_ERRORS", None)
                result = run_classes(self.make(self.Raises, loop_errors=policy))
                found = outcomes_by_test(result)
                self.assertIn("raised while being cancelled", "\n".join(logs.output))
                if policy == "log":
                    self.assertEqual(found, {})
                else:
                    text = found["test_leaves_a_task_that_raises_when_cancelled"]
                    self.assertIn("ValueError: raised while being cancelled", text)
                    self.assertIn("set loop_errors = 'log' on Raises", text)

    def test_fail_is_the_default(self) -> None:
        self.assertEqual(AnyIOTestCase.loop_errors, "fail")
        found, warned = self.run_policy()
        self.assertEqual(sorted(found), ["test_a_reports_an_error", "test_c_after_it"])
        text = found["test_a_reports_an_error"]
        self.assertTrue(text.startswith("failure: "), text)
        self.assertIn("Unclosed client session", text)
        self.assertIn("set loop_errors = 'log' on Body", text)
        self.assertIn("third", found["test_c_after_it"])
        self.assertEqual(warned, [])

    def test_warn(self) -> None:
        found, warned = self.run_policy(loop_errors="warn")
        self.assertEqual(found, {})
        self.assertEqual(len(warned), 2)
        self.assertIn("Unclosed client session", warned[0])

    def test_log_is_the_stdlib_s_behaviour(self) -> None:
        found, warned = self.run_policy(loop_errors="log")
        self.assertEqual((found, warned), ({}, []))

    def test_the_environment_sets_it_for_a_run(self) -> None:
        found, _ = self.run_policy(env="log", loop_errors="fail")
        self.assertEqual(found, {})
        with (
            mock.patch.dict(os.environ, {"ANYIO_UNITTEST_LOOP_ERRORS": "never"}),
            self.assertRaises(anyio_unittest.ConfigurationError) as caught,
        ):
            self.make(self.Body)
        self.assertIn("ANYIO_UNITTEST_LOOP_ERRORS='never'", str(caught.exception))

    def test_an_error_outside_any_test_follows_the_policy(self) -> None:
        class Body:
            loop_scope = "class"

            @classmethod
            async def asyncSetUpClass(cls) -> None:
                asyncio.get_running_loop().call_soon(raise_in_callback)
                await asyncio.sleep(0)

            async def test_it(self) -> None:
                pass

        for policy, expected in [("fail", 1), ("log", 0)]:
            with self.subTest(policy=policy):
                result = run_classes(self.make(Body, loop_errors=policy))
                self.assertEqual(len(outcomes_by_test(result)), expected)


class TimerBody:
    loop_scope = "class"
    fired: ClassVar[list[str]]

    async def test_a_leaves_a_timer(self) -> None:
        asyncio.get_running_loop().call_later(0.05, self.fired.append, "fired")

    async def test_b_waits_past_it(self) -> None:
        await asyncio.sleep(0.1)

    async def test_c_sleeps_and_waits_for(self) -> None:
        # timers of asyncio's own primitives end with them: not leftovers
        await asyncio.sleep(0.001)
        await asyncio.wait_for(asyncio.sleep(0.001), 1)


class TestLeftTimers(BackendTests, unittest.TestCase):
    """A timer a test leaves on a shared asyncio loop is found at its end (a
    fresh loop per test would drop it); the next test is never hit by it."""

    backend = "asyncio"

    def test_a_timer_left_is_reported_in_the_test_that_left_it(self) -> None:
        for spec in ("asyncio", ("asyncio", {"use_uvloop": True})):
            for scope in ("class", "module"):
                with self.subTest(backend=spec, scope=scope):
                    fired: list[str] = []
                    case = self.make(
                        TimerBody, anyio_backend=spec, loop_scope=scope, fired=fired
                    )
                    found = outcomes_by_test(run_classes(case))
                    self.assertEqual(list(found), ["test_a_leaves_a_timer"])
                    text = found["test_a_leaves_a_timer"]
                    self.assertIn("left 1 timer(s) scheduled", text)
                    self.assertIn("list.append", text)
                    line = line_of(TimerBody.test_a_leaves_a_timer, "call_later")
                    self.assertIn(f"scheduled at {THIS_FILE}:{line}", text)
                    self.assertEqual(fired, [])  # cancelled: the next test is safe

    def test_ignore_lets_it_fire(self) -> None:
        fired: list[str] = []
        case = self.make(TimerBody, leaked_tasks="ignore", fired=fired)
        self.assertEqual(outcomes_by_test(run_classes(case)), {})
        self.assertEqual(fired, ["fired"])


# -- a leak, a hang and a swallowed error in one suite, end to end ---------------

GUARDED_SUITE = {
    "test_guarded.py": """
        import asyncio

        import anyio

        from anyio_unittest import AnyIOTestCase


        async def cancel(group):
            group.cancel_scope.cancel()


        class TestGuarded(AnyIOTestCase):
            anyio_backends = ["asyncio", "trio"]
            loop_scope = "class"
            timeout = 0.2

            @classmethod
            async def asyncSetUpClass(cls):
                cls.group = await cls.enterAsyncClassContext(anyio.create_task_group())
                cls.addAsyncClassCleanup(cancel, cls.group)

            async def test_1_leaks(self):
                self.group.start_soon(anyio.sleep_forever, name="forgotten")
                await anyio.sleep(0)

            async def test_2_passes(self):
                await anyio.sleep(0)

            async def test_3_hangs(self):
                await anyio.Event().wait()

            async def test_4_passes(self):
                await anyio.sleep(0)


        def boom():
            raise ValueError("boom in a callback")


        class TestCallback(AnyIOTestCase):
            loop_scope = "class"
            timeout = 0.2

            async def test_1_callback_raises(self):
                asyncio.get_running_loop().call_soon(boom)
                await asyncio.sleep(0)

            async def test_2_passes(self):
                await asyncio.sleep(0)
    """
}


class TestGuardsEndToEnd(unittest.TestCase):
    """A suite with a test that leaks a task, one that hangs and a callback that
    raises ends in bounded time with each problem reported against its test."""

    EXPECTED: ClassVar[dict[str, str]] = {
        "TestGuarded_asyncio.test_1_leaks": "left 1 task(s) running",
        "TestGuarded_asyncio.test_3_hangs": "timed out",
        "TestGuarded_trio.test_1_leaks": "left 1 task(s) running",
        "TestGuarded_trio.test_3_hangs": "timed out",
        "TestCallback.test_1_callback_raises": "ValueError: boom in a callback",
    }

    def test_under_unittest_and_pytest(self) -> None:
        folder = write_suite(GUARDED_SUITE)

        def timed(run: Any, *args: str) -> tuple[Outcome, float]:
            start = time.monotonic()
            outcome = run(folder, *args)
            return outcome, time.monotonic() - start

        # both at once: each is mostly interpreter start-up
        with ThreadPoolExecutor(2) as pool:
            unittest_run = pool.submit(timed, run_unittest, "-v")
            pytest_run = pool.submit(
                timed, run_pytest, "-p", "no:asyncio", "-p", "no:hypothesispytest"
            )
            (by_unittest, unittest_time), (by_pytest, pytest_time) = (
                unittest_run.result(),
                pytest_run.result(),
            )

        with self.subTest(runner="unittest"):
            output = by_unittest.output
            self.assertLess(unittest_time, 10, output)
            self.assertEqual(by_unittest.count("ran"), 10, output)
            self.assertEqual(by_unittest.count("failures"), 5, output)
            self.assertEqual(by_unittest.count("errors"), 0, output)
            failed = {}
            for block in output.split("=" * 70)[1:]:
                header = block.strip().splitlines()[0]
                self.assertTrue(header.startswith("FAIL: "), header)
                test_id = unittest_id(header.removeprefix("FAIL: "))
                failed[test_id.partition(".")[2]] = block
            self.assert_reported(failed)
            self.assertNotIn(PACKAGE_DIR, output)

        with self.subTest(runner="pytest"):
            output = by_pytest.output
            self.assertLess(pytest_time, 10, output)
            self.assertEqual(by_pytest.count("failed"), 5, output)
            self.assertEqual(by_pytest.count("passed"), 5, output)
            self.assertEqual(by_pytest.count("error"), 0, output)
            failed = {}
            for section in output.split("\n___")[1:]:
                title = section.strip(" _").splitlines()[0].strip(" _")
                failed[title] = section
            self.assert_reported(failed)

    def assert_reported(self, failed: dict[str, str]) -> None:
        self.assertEqual(sorted(failed), sorted(self.EXPECTED))
        for test, text in self.EXPECTED.items():
            self.assertIn(text, failed[test])


if __name__ == "__main__":
    unittest.main()
