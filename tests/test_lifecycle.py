"""Drop-in behaviour of ``IsolatedAsyncioTestCase``: the per-test lifecycle.

Each behaviour is checked on asyncio and on trio. Where the stdlib class defines
the behaviour, the same test body is also run under ``IsolatedAsyncioTestCase``
and the two event lists are compared, so the expected lists below are the
stdlib's own and not our reading of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import gc
import pickle
import sys
import threading
import unittest
import warnings
from typing import Any, ClassVar

import anyio
import sniffio
import trio

from anyio_unittest import AnyIOTestCase

from ._support import BackendTests, assert_closed, current_loop, last_lines, run_cases

var = contextvars.ContextVar("var", default="unset")

#: IsolatedAsyncioTestCase has the semantics we match (on every Python) only from
#: 3.11: on 3.10 its setUp runs outside the test's context and a test's return
#: value is not checked, so there it is no reference.
STDLIB_REFERENCE = sys.version_info >= (3, 11)


# -- event order -----------------------------------------------------------


class OrderBody:
    events: ClassVar[list[str]]

    def setUp(self) -> None:
        self.events.append("setUp")
        self.addCleanup(self.events.append, "cleanup sync 1 (setUp)")

    async def asyncSetUp(self) -> None:
        self.events.append("asyncSetUp")
        self.addAsyncCleanup(self.async_cleanup, "cleanup async 2 (asyncSetUp)")
        self.addCleanup(self.events.append, "cleanup sync 3 (asyncSetUp)")

    async def async_cleanup(self, name: str) -> None:
        await anyio.sleep(0)
        self.events.append(name)

    async def test_it(self) -> None:
        self.events.append("test")
        self.addAsyncCleanup(self.async_cleanup, "cleanup async 4 (test)")

    async def asyncTearDown(self) -> None:
        self.events.append("asyncTearDown")
        self.addCleanup(self.events.append, "cleanup sync 5 (asyncTearDown)")

    def tearDown(self) -> None:
        self.events.append("tearDown")
        self.addAsyncCleanup(self.async_cleanup, "cleanup async 6 (tearDown)")


ORDER = [
    "setUp",
    "asyncSetUp",
    "test",
    "asyncTearDown",
    "tearDown",
    "cleanup async 6 (tearDown)",
    "cleanup sync 5 (asyncTearDown)",
    "cleanup async 4 (test)",
    "cleanup sync 3 (asyncSetUp)",
    "cleanup async 2 (asyncSetUp)",
    "cleanup sync 1 (setUp)",
]


class FailingSetUpBody(OrderBody):
    fail_in: ClassVar[str]

    def setUp(self) -> None:
        super().setUp()
        if self.fail_in == "setUp":
            raise RuntimeError("setUp failed")

    async def asyncSetUp(self) -> None:
        await super().asyncSetUp()
        if self.fail_in == "asyncSetUp":
            raise RuntimeError("asyncSetUp failed")


class OrderTests(BackendTests):
    def test_event_order(self) -> None:
        events: list[str] = []
        case = self.make(OrderBody, events=events)
        result = run_cases(case("test_it"))
        self.assertEqual(last_lines(result), [])
        self.assertEqual(events, ORDER)
        if STDLIB_REFERENCE:
            stdlib_events: list[str] = []
            stdlib_case = type(
                "S", (self.stdlib(OrderBody),), {"events": stdlib_events}
            )
            run_cases(stdlib_case("test_it"))
            self.assertEqual(stdlib_events, ORDER)

    def test_failing_setup_skips_teardown_but_runs_cleanups(self) -> None:
        expected = {
            "setUp": ["setUp", "cleanup sync 1 (setUp)"],
            "asyncSetUp": [
                "setUp",
                "asyncSetUp",
                "cleanup sync 3 (asyncSetUp)",
                "cleanup async 2 (asyncSetUp)",
                "cleanup sync 1 (setUp)",
            ],
        }
        for fail_in, order in expected.items():
            with self.subTest(fail_in=fail_in):
                events: list[str] = []
                attrs = {"events": events, "fail_in": fail_in}
                result = run_cases(self.make(FailingSetUpBody, **attrs)("test_it"))
                self.assertEqual(
                    last_lines(result),
                    [("error", "test_it", f"RuntimeError: {fail_in} failed")],
                )
                self.assertEqual(events, order)
                if STDLIB_REFERENCE:
                    stdlib_events: list[str] = []
                    stdlib_case = type(
                        "S",
                        (self.stdlib(FailingSetUpBody),),
                        {"events": stdlib_events, "fail_in": fail_in},
                    )
                    run_cases(stdlib_case("test_it"))
                    self.assertEqual(stdlib_events, order)

    def test_debug_runs_the_same_order_and_raises(self) -> None:
        events: list[str] = []
        self.make(OrderBody, events=events)("test_it").debug()
        self.assertEqual(events, ORDER)

        loops: list[object] = []

        class Failing(OrderBody):
            async def test_it(self) -> None:
                loops.append(current_loop())
                self.events.append("test")
                raise ValueError("from the test")

            async def async_cleanup(self, name: str) -> None:
                loops.append(current_loop())
                await super().async_cleanup(name)

        events.clear()
        case = self.make(Failing, events=events)("test_it")
        # assertRaises clears the frames of the traceback it caught: that must
        # not break the test's task, which doCleanups() uses below
        with self.assertRaisesRegex(ValueError, "from the test"):
            case.debug()
        # as TestCase.debug(): no teardown and no cleanups after an error; as
        # IsolatedAsyncioTestCase, doCleanups() then runs them on the same loop
        self.assertEqual(events, ["setUp", "asyncSetUp", "test"])
        self.assertTrue(case.doCleanups())
        self.assertEqual(
            events[3:],
            [
                "cleanup sync 3 (asyncSetUp)",
                "cleanup async 2 (asyncSetUp)",
                "cleanup sync 1 (setUp)",
            ],
        )
        self.assertEqual(len(loops), 2)
        self.assertIs(loops[0], loops[1])
        assert_closed(self, loops[0])
        # and the runner is gone: the next test on this thread gets a new one
        events.clear()
        self.make(OrderBody, events=events)("test_it").debug()
        self.assertEqual(events, ORDER)


class TestOrderAsyncio(OrderTests, unittest.TestCase):
    backend = "asyncio"


class TestOrderTrio(OrderTests, unittest.TestCase):
    backend = "trio"


# -- asyncSetUp, the test and asyncTearDown in one entry into the loop --------


class PhasesBody:
    """Records the phases, and what asyncSetUp schedules on the loop."""

    events: ClassVar[list[str]]
    #: entries into the loop so far (None: not counted)
    entries: ClassVar[list[int] | None] = None

    def setUp(self) -> None:
        self.entries_before = len(self.entries or ())

    async def asyncSetUp(self) -> None:
        self.events.append("asyncSetUp")
        loop = asyncio.get_running_loop()
        loop.call_soon(self.events.append, "callback scheduled by asyncSetUp")

    async def test_it(self) -> None:
        self.events.append("test")

    async def asyncTearDown(self) -> None:
        self.events.append("asyncTearDown")

    def tearDown(self) -> None:
        if self.entries is not None:
            entries = len(self.entries) - self.entries_before
            self.events.append(f"{entries} loop entries")


PHASES = [
    "asyncSetUp",
    "callback scheduled by asyncSetUp",
    "test",
    "asyncTearDown",
]


class OnePassTests(unittest.TestCase):
    def run_phases(self, **attrs: Any) -> list[str]:
        events: list[str] = []
        entries: list[int] = []

        class CountingLoop(asyncio.SelectorEventLoop):  # type: ignore[misc,unused-ignore]
            def run_forever(self) -> None:
                entries.append(1)
                super().run_forever()

        namespace = {
            "events": events,
            "entries": entries,
            "loop_factory": CountingLoop,
            "loop_scope": "class",
            **attrs,
        }
        case = type("Phases", (PhasesBody, AnyIOTestCase), namespace)
        result = run_cases(case("test_it"))
        self.assertEqual(last_lines(result), [])
        return events

    def test_the_async_phases_run_in_one_entry_into_the_loop(self) -> None:
        self.assertEqual(self.run_phases(), [*PHASES, "1 loop entries"])
        if STDLIB_REFERENCE:
            # what asyncSetUp scheduled runs before the test, as in the stdlib
            events: list[str] = []
            stdlib = type("S", (self.stdlib_phases(),), {"events": events})
            run_cases(stdlib("test_it"))
            self.assertEqual(events, PHASES)

    def stdlib_phases(self) -> type[unittest.IsolatedAsyncioTestCase]:
        return type("Phases", (PhasesBody, unittest.IsolatedAsyncioTestCase), {})

    def test_with_a_time_limit_each_phase_is_an_entry_of_its_own(self) -> None:
        # asyncSetUp + the test, and asyncTearDown, have budgets of their own
        self.assertEqual(self.run_phases(timeout=30), [*PHASES, "3 loop entries"])


# -- contextvars -------------------------------------------------------------


class ContextBody:
    seen: ClassVar[list[tuple[str, str]]]

    def record(self, where: str, value: str) -> None:
        self.seen.append((where, var.get()))
        var.set(value)

    def setUp(self) -> None:
        self.record("setUp", "setUp")
        self.addCleanup(self.record, "cleanup sync", "cleanup sync")
        self.addAsyncCleanup(self.async_record, "cleanup async", "cleanup async")

    async def async_record(self, where: str, value: str) -> None:
        self.record(where, value)

    async def asyncSetUp(self) -> None:
        self.record("asyncSetUp", "asyncSetUp")

    async def test_1(self) -> None:
        self.record("test_1", "test_1")

    def test_2(self) -> None:
        self.record("test_2", "test_2")

    async def asyncTearDown(self) -> None:
        self.record("asyncTearDown", "asyncTearDown")

    def tearDown(self) -> None:
        self.record("tearDown", "tearDown")


CONTEXT_FLOW = [
    ("setUp", "unset"),
    ("asyncSetUp", "setUp"),
    ("test_1", "asyncSetUp"),
    ("asyncTearDown", "test_1"),
    ("tearDown", "asyncTearDown"),
    ("cleanup async", "tearDown"),
    ("cleanup sync", "cleanup async"),
    # the next test starts from a fresh context
    ("setUp", "unset"),
    ("asyncSetUp", "setUp"),
    ("test_2", "asyncSetUp"),
    ("asyncTearDown", "test_2"),
    ("tearDown", "asyncTearDown"),
    ("cleanup async", "tearDown"),
    ("cleanup sync", "cleanup async"),
]


class ContextTests(BackendTests):
    def test_one_context_per_test(self) -> None:
        seen: list[tuple[str, str]] = []
        case = self.make(ContextBody, seen=seen)
        result = run_cases(case("test_1"), case("test_2"))
        self.assertEqual(last_lines(result), [])
        self.assertEqual(seen, CONTEXT_FLOW)
        self.assertEqual(var.get(), "unset")  # nor into the caller's context
        if STDLIB_REFERENCE:
            stdlib_seen: list[tuple[str, str]] = []
            stdlib_case = type("S", (self.stdlib(ContextBody),), {"seen": stdlib_seen})
            run_cases(stdlib_case("test_1"), stdlib_case("test_2"))
            self.assertEqual(stdlib_seen, CONTEXT_FLOW)


class TestContextAsyncio(ContextTests, unittest.TestCase):
    backend = "asyncio"


class TestContextTrio(ContextTests, unittest.TestCase):
    backend = "trio"


# -- enterAsyncContext ---------------------------------------------------------


class TaskGroupBody:
    events: ClassVar[list[str]]

    async def asyncSetUp(self) -> None:
        self.tg = await self.enterAsyncContext(anyio.create_task_group())
        self.started = anyio.Event()
        self.stop = anyio.Event()
        self.tg.start_soon(self.worker)
        self.events.append("asyncSetUp")

    async def worker(self) -> None:
        self.events.append("worker started")
        self.started.set()
        try:
            await self.stop.wait()
            self.events.append("worker stopped")
        finally:
            self.events.append(f"worker exits in {sniffio.current_async_library()}")

    async def test_uses_the_group(self) -> None:
        await self.started.wait()
        self.events.append("test")
        self.addAsyncCleanup(self.stop_worker)

    async def stop_worker(self) -> None:
        self.events.append("stop_worker")
        self.stop.set()

    async def asyncTearDown(self) -> None:
        self.events.append("asyncTearDown")


class EnterContextTests(BackendTests):
    def test_task_group_entered_in_async_setup_exited_by_cleanup(self) -> None:
        events: list[str] = []
        result = run_cases(
            self.make(TaskGroupBody, events=events)("test_uses_the_group")
        )
        self.assertEqual(last_lines(result), [])
        self.assertEqual(
            events,
            [
                "asyncSetUp",
                "worker started",
                "test",
                "asyncTearDown",
                # LIFO: the test's cleanup first, then the task group's exit,
                # which waits for the worker
                "stop_worker",
                "worker stopped",
                f"worker exits in {self.backend}",
            ],
        )

    def test_enter_async_context_returns_the_value_and_rejects_sync_cms(self) -> None:
        events: list[str] = []

        class CM:
            async def __aenter__(self) -> str:
                events.append("enter")
                return "value"

            async def __aexit__(self, *exc: object) -> None:
                events.append(f"exit {exc}")

        class Body:
            async def test_it(self) -> None:
                self.assertEqual(await self.enterAsyncContext(CM()), "value")
                with self.assertRaisesRegex(TypeError, "asynchronous context manager"):
                    await self.enterAsyncContext(contextlib.ExitStack())  # type: ignore[arg-type]
                events.append("test")

        result = run_cases(self.make(Body)("test_it"))
        self.assertEqual(last_lines(result), [])
        self.assertEqual(events, ["enter", "test", "exit (None, None, None)"])


class TestEnterContextAsyncio(EnterContextTests, unittest.TestCase):
    backend = "asyncio"


class TestEnterContextTrio(EnterContextTests, unittest.TestCase):
    backend = "trio"


# -- unittest features in async code -------------------------------------------


class FeaturesBody:
    async def test_skip(self) -> None:
        await anyio.sleep(0)
        self.skipTest("skipped from async code")

    @unittest.expectedFailure
    async def test_expected_failure(self) -> None:
        await anyio.sleep(0)
        self.assertEqual(1, 2)

    @unittest.expectedFailure
    async def test_unexpected_success(self) -> None:
        await anyio.sleep(0)

    async def test_subtests(self) -> None:
        for i in range(4):
            with self.subTest(i=i):
                await anyio.sleep(0)
                self.assertEqual(i % 2, 0)

    async def test_assert_raises(self) -> None:
        with self.assertRaises(ZeroDivisionError):
            await anyio.sleep(0)
            1 / 0  # noqa: B018
        with self.assertRaisesRegex(ValueError, "bad"):
            await anyio.sleep(0)
            raise ValueError("bad value")
        with self.assertRaises(KeyError):  # fails: nothing raised
            await anyio.sleep(0)


class SkipInSetUpBody:
    async def asyncSetUp(self) -> None:
        await anyio.sleep(0)
        self.skipTest("skipped from asyncSetUp")

    async def test_it(self) -> None:
        raise AssertionError("must not run")


class FeaturesTests(BackendTests):
    def test_skip_xfail_subtest_assert_raises(self) -> None:
        case = self.make(FeaturesBody)
        names = [
            "test_skip",
            "test_expected_failure",
            "test_unexpected_success",
            "test_subtests",
            "test_assert_raises",
        ]
        result = run_cases(*(case(name) for name in names))
        self.assertEqual(result.testsRun, 5)
        self.assertEqual(
            [(t._testMethodName, why) for t, why in result.skipped],
            [("test_skip", "skipped from async code")],
        )
        self.assertEqual(
            [t._testMethodName for t, _ in result.expectedFailures],
            ["test_expected_failure"],
        )
        self.assertEqual(
            [t._testMethodName for t in result.unexpectedSuccesses],
            ["test_unexpected_success"],
        )
        self.assertEqual(
            sorted(
                (str(dict(t.params)), t.test_case._testMethodName)
                for t, _ in result.failures[:2]
            ),  # type: ignore[attr-defined]
            [("{'i': 1}", "test_subtests"), ("{'i': 3}", "test_subtests")],
        )
        self.assertEqual(
            [line for _, _, line in last_lines(result)],
            ["AssertionError: 1 != 0"] * 2 + ["AssertionError: KeyError not raised"],
        )
        self.assertEqual(result.errors, [])

    def test_skip_from_async_setup(self) -> None:
        result = run_cases(self.make(SkipInSetUpBody)("test_it"))
        self.assertEqual(len(result.skipped), 1)
        self.assertEqual(result.skipped[0][1], "skipped from asyncSetUp")
        self.assertEqual(last_lines(result), [])


class TestFeaturesAsyncio(FeaturesTests, unittest.TestCase):
    backend = "asyncio"


class TestFeaturesTrio(FeaturesTests, unittest.TestCase):
    backend = "trio"


# -- what a test leaves behind ---------------------------------------------------


class LeftoversTests(BackendTests):
    def test_running_tasks_cancelled_and_async_generators_finalised(self) -> None:
        events: list[str] = []
        keep: list[Any] = []
        threads: list[threading.Thread] = []
        backend = self.backend

        async def forever(name: str) -> None:
            try:
                await anyio.sleep_forever()
            except BaseException as exc:
                events.append(f"{name} {type(exc).__name__}")
                raise

        async def agen() -> Any:
            try:
                yield 1
                yield 2
            finally:
                events.append(f"agen finalised in {sniffio.current_async_library()}")

        class Body:
            async def test_leaves_things(self) -> None:
                if backend == "asyncio":
                    loop = asyncio.get_running_loop()
                    keep.append(loop.create_task(forever("task")))
                    # a thread of the loop's default executor
                    threads.append(
                        await loop.run_in_executor(None, threading.current_thread)
                    )
                else:
                    trio.lowlevel.spawn_system_task(forever, "task")
                gen = agen()
                keep.append(gen)
                self.assertEqual(await gen.__anext__(), 1)
                await anyio.sleep(0)
                events.append("test done")

            def test_next(self) -> None:
                events.append("next test")

        case = self.make(Body)
        result = run_cases(case("test_leaves_things"), case("test_next"))
        self.assertEqual(last_lines(result), [])
        cancelled = "CancelledError" if backend == "asyncio" else "Cancelled"
        self.assertEqual(
            events,
            [
                "test done",
                f"task {cancelled}",
                f"agen finalised in {backend}",
                "next test",
            ],
        )
        # asyncio: the default executor was shut down with the loop
        self.assertEqual(len(threads), 1 if backend == "asyncio" else 0)
        for thread in threads:
            self.assertFalse(thread.is_alive())

    def test_each_test_has_its_own_loop(self) -> None:
        loops: list[object] = []  # kept alive, so ids can't be reused

        class Body:
            async def test_1(self) -> None:
                loops.append(current_loop())

            async def test_2(self) -> None:
                loops.append(current_loop())

        case = self.make(Body)
        result = run_cases(case("test_1"), case("test_2"))
        self.assertEqual(last_lines(result), [])
        self.assertEqual(len(loops), 2)
        self.assertIsNot(loops[0], loops[1])
        for loop in loops:
            assert_closed(self, loop)


class TestLeftoversAsyncio(LeftoversTests, unittest.TestCase):
    backend = "asyncio"

    def test_sync_setup_sees_the_tests_loop(self) -> None:
        # as IsolatedAsyncioTestCase (3.11.1+): the test's loop is the current
        # event loop during setUp, for code that calls asyncio.get_event_loop()
        seen: list[object] = []

        class Body:
            def setUp(self) -> None:
                seen.append(asyncio.get_event_loop())

            async def test_it(self) -> None:
                seen.append(asyncio.get_running_loop())

            def tearDown(self) -> None:
                seen.append(asyncio.get_event_loop())

        result = run_cases(self.make(Body)("test_it"))
        self.assertEqual(last_lines(result), [])
        self.assertEqual(len(seen), 3)
        self.assertIs(seen[0], seen[1])
        self.assertIs(seen[2], seen[1])


class TestLeftoversTrio(LeftoversTests, unittest.TestCase):
    backend = "trio"


# -- what a test method returns ------------------------------------------------------


class ReturnsTests(BackendTests):
    def test_sync_test_returning_a_coroutine_is_awaited(self) -> None:
        events: list[str] = []

        async def passes() -> None:
            await anyio.sleep(0)
            events.append(f"ran in {sniffio.current_async_library()}")

        async def fails() -> None:
            await anyio.sleep(0)
            events.append("failing one ran")
            raise AssertionError("the awaited coroutine failed")

        class Body:
            def test_passes(self) -> Any:
                return passes()

            def test_fails(self) -> Any:
                return fails()

        case = self.make(Body)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = run_cases(case("test_passes"), case("test_fails"))
        self.assertEqual(
            last_lines(result),
            [("failure", "test_fails", "AssertionError: the awaited coroutine failed")],
        )
        self.assertEqual(events, [f"ran in {self.backend}", "failing one ran"])
        self.assertEqual([str(w.message) for w in caught], [])

    def test_non_none_return_value_warns_like_the_stdlib(self) -> None:
        class Body:
            async def test_async(self) -> int:
                return 1

            def test_sync(self) -> int:
                return 2

            async def test_none(self) -> None:
                return None

        names = ["test_async", "test_sync", "test_none"]
        ours = self._warnings(self.make(Body), names)
        self.assertEqual(len(ours), 2)
        for category, message, filename in ours:
            self.assertIs(category, DeprecationWarning)
            self.assertIn(
                "It is deprecated to return a value that is not None", message
            )
            # attributed to the caller of run() (TestCase.__call__, as the suite
            # calls each test), as the stdlib does
            self.assertEqual(filename, unittest.case.__file__)
        if STDLIB_REFERENCE:
            stdlib = self._warnings(self.stdlib(Body), names)
            self.assertEqual(
                [(c, f) for c, _, f in stdlib], [(c, f) for c, _, f in ours]
            )

    def _warnings(self, case: type, names: list[str]) -> list[tuple[type, str, str]]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = run_cases(*(case(name) for name in names))
        self.assertEqual(last_lines(result), [])
        return [
            (w.category, str(w.message), w.filename)
            for w in caught
            if "return a value" in str(w.message)
        ]


class TestReturnsAsyncio(ReturnsTests, unittest.TestCase):
    backend = "asyncio"


class TestReturnsTrio(ReturnsTests, unittest.TestCase):
    backend = "trio"


# -- pickling ------------------------------------------------------------------------


class Picklable(AnyIOTestCase):
    """A module-level class, so its generated classes can be found by pickle."""

    anyio_backends = ["asyncio", "trio"]
    ran: ClassVar[list[str]] = []

    async def asyncSetUp(self) -> None:
        self.value = 1

    async def test_it(self) -> None:
        self.ran.append(sniffio.current_async_library())
        self.assertEqual(self.value, 1)


class TestPickle(unittest.TestCase):
    def test_instances_pickle_before_and_after_running(self) -> None:
        for backend, cls in sorted(Picklable.anyio_backend_classes.items()):
            with self.subTest(backend=backend):
                Picklable.ran.clear()
                case = cls("test_it")
                clone = pickle.loads(pickle.dumps(case))
                self.assertIs(type(clone), cls)
                result = run_cases(case)
                self.assertEqual(last_lines(result), [])
                clone = pickle.loads(pickle.dumps(case))
                result = run_cases(clone)  # an unpickled copy runs too
                self.assertEqual(last_lines(result), [])
                self.assertEqual(result.testsRun, 1)
                self.assertEqual(Picklable.ran, [backend, backend])
        gc.collect()
