"""Shared runners in one process: class scope, async class hooks, class of one.

Suites are built inside the tests and run from plain sync tests, on asyncio and
on trio. Module and session scopes, which outlive a suite, are checked end to
end in ``test_scopes_e2e.py``.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import signal
import unittest
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar
from unittest import mock

import anyio
import trio

from anyio_unittest import AnyIOTestCase, ConfigurationError
from anyio_unittest._backends import Backend

from ._support import (
    BackendTests,
    current_loop,
    last_lines,
    problems,
    run_cases,
    run_classes,
)

var = contextvars.ContextVar("var", default="-")


def is_closed(loop: object) -> bool:
    """Whether *loop* (from current_loop()) is closed or its trio run ended."""
    if isinstance(loop, asyncio.AbstractEventLoop):
        return loop.is_closed()
    try:  # trio allows one run per thread: a new one starts only if it ended
        trio.run(trio.sleep, 0)
    except RuntimeError:
        return False
    return True


@contextmanager
def counting_runners() -> Iterator[list[str]]:
    """Log every runner opened and closed, as "open <owner>" / "close <owner>"."""
    log: list[str] = []
    original = Backend.open_runner

    def open_runner(self: Backend, owner: str) -> Any:
        runner = original(self, owner)
        log.append(f"open {owner}")
        close = runner.close

        def logged_close() -> None:
            log.append(f"close {owner}")
            close()

        runner.close = logged_close  # type: ignore[method-assign]
        return runner

    with mock.patch.object(Backend, "open_runner", open_runner):
        yield log


# -- the current event loop ------------------------------------------------------


class TestCurrentEventLoop(unittest.TestCase):
    """asyncio: a test's loop is the current event loop in its sync setUp, on a
    shared runner too, whatever an earlier test did to the current loop."""

    def test_each_test_finds_its_loop_current(self) -> None:
        for spec in ("asyncio", ("asyncio", {"use_uvloop": True})):
            with self.subTest(backend=spec):
                self.check(spec)

    def check(self, spec: object) -> None:
        seen: list[tuple[str, object, object]] = []

        class Shared(AnyIOTestCase):
            anyio_backend = spec  # type: ignore[assignment]
            loop_scope = "class"

            def setUp(self) -> None:
                self.current = asyncio.get_event_loop()

            async def asyncSetUp(self) -> None:
                running = asyncio.get_running_loop()
                seen.append((self._testMethodName, self.current, running))

            @classmethod
            def tearDownClass(cls) -> None:
                asyncio.set_event_loop_policy(None)

            def test_1_runs_asyncio_run(self) -> None:
                async def main() -> None:
                    pass

                asyncio.run(main())  # a CLI entry point: no loop after it

            async def test_2(self) -> None:
                pass

            def test_3_sets_no_loop(self) -> None:
                asyncio.set_event_loop(None)

            async def test_4(self) -> None:
                pass

            def test_5_sets_another_loop(self) -> None:
                other = asyncio.new_event_loop()
                self.addCleanup(other.close)
                asyncio.set_event_loop(other)

            async def test_6(self) -> None:
                pass

            def test_7_sets_a_new_policy(self) -> None:
                asyncio.set_event_loop_policy(asyncio.DefaultEventLoopPolicy())

            async def test_8(self) -> None:
                pass

        result = run_cases(*unittest.defaultTestLoader.loadTestsFromTestCase(Shared))
        self.assertEqual(last_lines(result), [])
        self.assertEqual(len(seen), 8)  # asyncSetUp runs for sync tests too
        for name, current, running in seen:
            self.assertIs(current, running, name)


# -- class scope: one runner, the class hooks in order ---------------------------


class ClassScopeTests(BackendTests):
    def make_class(self, events: list[str], loops: list[object]) -> type[AnyIOTestCase]:
        class Shared(AnyIOTestCase):
            anyio_backend = self.backend
            loop_scope = "class"

            @classmethod
            def setUpClass(cls) -> None:
                events.append("setUpClass")
                cls.addClassCleanup(events.append, "class cleanup sync 1")
                super().setUpClass()

            @classmethod
            async def asyncSetUpClass(cls) -> None:
                events.append(f"asyncSetUpClass var={var.get()}")
                loops.append(current_loop())
                var.set("class")
                cls.addAsyncClassCleanup(cls.async_cleanup, "class cleanup async 2")
                cls.addClassCleanup(events.append, "class cleanup sync 3")
                cls.resource = await cls.enterAsyncClassContext(Resource(events))

            @classmethod
            async def async_cleanup(cls, name: str) -> None:
                await anyio.sleep(0)
                events.append(f"{name} var={var.get()}")
                loops.append(current_loop())

            async def asyncSetUp(self) -> None:
                events.append(f"asyncSetUp var={var.get()}")

            async def test_1(self) -> None:
                loops.append(current_loop())
                self.assertTrue(self.resource.entered)
                events.append(f"test_1 var={var.get()}")
                var.set("test_1")

            async def test_2(self) -> None:
                loops.append(current_loop())
                events.append(f"test_2 var={var.get()}")
                var.set("test_2")

            @classmethod
            async def asyncTearDownClass(cls) -> None:
                events.append(f"asyncTearDownClass var={var.get()}")
                loops.append(current_loop())

            @classmethod
            def tearDownClass(cls) -> None:
                events.append("tearDownClass")
                cls.addAsyncClassCleanup(cls.async_cleanup, "class cleanup async 4")
                super().tearDownClass()

        return Shared

    def test_one_runner_and_the_class_hooks_in_order(self) -> None:
        events: list[str] = []
        loops: list[object] = []
        cls = self.make_class(events, loops)
        with counting_runners() as runners:
            result = run_cases(cls("test_1"), cls("test_2"))
        self.assertEqual(last_lines(result), [])
        self.assertEqual(
            events,
            [
                "setUpClass",
                "asyncSetUpClass var=-",
                "enter resource",
                "asyncSetUp var=class",
                "test_1 var=class",
                "asyncSetUp var=class",  # not test_1's value
                "test_2 var=class",
                "asyncTearDownClass var=class",
                "tearDownClass",
                # one LIFO stack of sync and async class cleanups
                "class cleanup async 4 var=class",
                "exit resource",
                "class cleanup sync 3",
                "class cleanup async 2 var=class",
                "class cleanup sync 1",
            ],
        )
        self.assertEqual(len(loops), 6)
        for loop in loops:
            self.assertIs(loop, loops[0])
        self.assertTrue(is_closed(loops[0]))
        self.assertEqual(var.get(), "-")
        self.assertEqual(len(runners), 2)
        self.assertTrue(runners[0].startswith("open class runner of "))
        self.assertEqual(runners[1], "close" + runners[0][len("open") :])

    def test_two_classes_two_runners_and_no_context_between_them(self) -> None:
        seen: list[tuple[str, str, object]] = []

        def make(name: str) -> type[AnyIOTestCase]:
            class Cls(AnyIOTestCase):
                anyio_backend = self.backend
                loop_scope = "class"

                @classmethod
                async def asyncSetUpClass(cls) -> None:
                    seen.append((name, var.get(), current_loop()))
                    var.set(name)

                async def test_it(self) -> None:
                    seen.append((name, var.get(), current_loop()))

            Cls.__qualname__ = Cls.__name__ = name
            return Cls

        first, second = make("First"), make("Second")
        with counting_runners() as runners:
            result = run_cases(first("test_it"), second("test_it"))
        self.assertEqual(last_lines(result), [])
        self.assertEqual(
            [(n, v) for n, v, _ in seen],
            [("First", "-"), ("First", "First"), ("Second", "-"), ("Second", "Second")],
        )
        self.assertIs(seen[0][2], seen[1][2])
        self.assertIs(seen[2][2], seen[3][2])
        self.assertIsNot(seen[0][2], seen[2][2])
        self.assertEqual([r.split()[0] for r in runners], ["open", "close"] * 2)

    def test_function_scope_opens_a_runner_per_test(self) -> None:
        class PerTest(AnyIOTestCase):
            anyio_backend = self.backend

            async def test_1(self) -> None:
                pass

            async def test_2(self) -> None:
                pass

        with counting_runners() as runners:
            result = run_cases(PerTest("test_1"), PerTest("test_2"))
        self.assertEqual(last_lines(result), [])
        self.assertEqual([r.split()[0] for r in runners], ["open", "close"] * 2)
        self.assertTrue(runners[0].endswith("PerTest.test_1"), runners)
        self.assertTrue(runners[2].endswith("PerTest.test_2"), runners)

    def test_class_hooks_of_a_mixin(self) -> None:
        events: list[str] = []
        loops: list[object] = []

        class Mixin:
            @classmethod
            def setUpClass(cls) -> None:
                events.append("mixin setUpClass")
                super().setUpClass()  # type: ignore[misc]
                events.append("mixin setUpClass end")

            @classmethod
            def tearDownClass(cls) -> None:
                events.append("mixin tearDownClass")
                super().tearDownClass()  # type: ignore[misc]

        class WithMixin(Mixin, AnyIOTestCase):
            anyio_backend = self.backend
            loop_scope = "class"

            @classmethod
            async def asyncSetUpClass(cls) -> None:
                events.append("asyncSetUpClass")

            async def test_1(self) -> None:
                loops.append(current_loop())

            async def test_2(self) -> None:
                loops.append(current_loop())

            @classmethod
            async def asyncTearDownClass(cls) -> None:
                events.append("asyncTearDownClass")

        result = run_cases(WithMixin("test_1"), WithMixin("test_2"))
        self.assertEqual(last_lines(result), [])
        self.assertEqual(
            events,
            [
                "mixin setUpClass",
                "mixin setUpClass end",
                "asyncSetUpClass",
                "asyncTearDownClass",
                "mixin tearDownClass",
            ],
        )
        self.assertIs(loops[0], loops[1])

    def test_task_group_entered_in_async_setup_class(self) -> None:
        events: list[str] = []

        class Server(AnyIOTestCase):
            anyio_backend = self.backend
            loop_scope = "class"

            @classmethod
            async def asyncSetUpClass(cls) -> None:
                tg = await cls.enterAsyncClassContext(anyio.create_task_group())
                cls.send, receive = anyio.create_memory_object_stream[str](10)
                cls.addAsyncClassCleanup(cls.stop)
                tg.start_soon(cls.serve, receive)

            @classmethod
            async def serve(cls, receive: Any) -> None:
                async with receive:
                    async for item in receive:
                        events.append(f"served {item}")
                events.append("server done")

            @classmethod
            async def stop(cls) -> None:
                events.append("stop")
                await cls.send.aclose()

            async def test_1(self) -> None:
                await self.send.send("one")
                await anyio.sleep(0.01)

            async def test_2(self) -> None:
                await self.send.send("two")
                await anyio.sleep(0.01)

        result = run_cases(Server("test_1"), Server("test_2"))
        self.assertEqual(last_lines(result), [])
        self.assertEqual(events, ["served one", "served two", "stop", "server done"])


class Resource:
    def __init__(self, events: list[str]) -> None:
        self.events = events
        self.entered = False

    async def __aenter__(self) -> Resource:
        await anyio.sleep(0)
        self.entered = True
        self.events.append("enter resource")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await anyio.sleep(0)
        self.events.append("exit resource")


class TestClassScopeAsyncio(ClassScopeTests, unittest.TestCase):
    backend = "asyncio"


class TestClassScopeTrio(ClassScopeTests, unittest.TestCase):
    backend = "trio"


# -- errors in the class hooks ---------------------------------------------------


class ClassErrorTests(BackendTests):
    def make_broken(
        self, events: list[str], loops: list[object], fail_in: str
    ) -> type[AnyIOTestCase]:
        class Broken(AnyIOTestCase):
            anyio_backend = self.backend
            loop_scope = "class"

            @classmethod
            async def asyncSetUpClass(cls) -> None:
                loops.append(current_loop())
                cls.addAsyncClassCleanup(cls.cleanup, "async cleanup")
                cls.addClassCleanup(events.append, "sync cleanup")
                events.append("asyncSetUpClass")
                if fail_in == "asyncSetUpClass":
                    raise OSError("no server")

            @classmethod
            async def cleanup(cls, name: str) -> None:
                events.append(name)
                if fail_in == "cleanup":
                    raise OSError("cleanup failed")

            async def test_1(self) -> None:
                events.append("test_1")

            async def test_2(self) -> None:
                events.append("test_2")

            @classmethod
            async def asyncTearDownClass(cls) -> None:
                events.append("asyncTearDownClass")
                if fail_in == "asyncTearDownClass":
                    raise OSError("teardown failed")

            @classmethod
            def tearDownClass(cls) -> None:
                events.append("tearDownClass")
                super().tearDownClass()

        return Broken

    def make_next(self, events: list[str]) -> type[AnyIOTestCase]:
        class Next(AnyIOTestCase):
            anyio_backend = self.backend
            loop_scope = "class"

            @classmethod
            async def asyncSetUpClass(cls) -> None:
                events.append("Next.asyncSetUpClass")

            async def test_1(self) -> None:
                events.append("Next.test_1")

        return Next

    def run_broken(
        self, fail_in: str
    ) -> tuple[unittest.TestResult, list[str], list[object], list[str]]:
        events: list[str] = []
        loops: list[object] = []
        broken = self.make_broken(events, loops, fail_in)
        following = self.make_next(events)
        with counting_runners() as runners:
            result = run_cases(broken("test_1"), broken("test_2"), following("test_1"))
        return result, events, loops, runners

    def test_error_in_async_setup_class(self) -> None:
        result, events, loops, runners = self.run_broken("asyncSetUpClass")
        self.assertEqual(len(result.errors), 1)
        holder, text = result.errors[0]
        self.assertRegex(str(holder), r"^setUpClass \(.*Broken\)$")
        self.assertEqual(text.strip().splitlines()[-1], "OSError: no server")
        self.assertEqual(result.failures, [])
        self.assertEqual(
            events,
            [
                "asyncSetUpClass",
                # no test, no class teardown; the cleanups run
                "sync cleanup",
                "async cleanup",
                "Next.asyncSetUpClass",
                "Next.test_1",
            ],
        )
        self.assertEqual(result.testsRun, 1)  # Next.test_1 only
        self.assertTrue(is_closed(loops[0]))
        self.assertEqual([r.split()[0] for r in runners], ["open", "close"] * 2)

    def test_error_in_async_teardown_class(self) -> None:
        result, events, loops, runners = self.run_broken("asyncTearDownClass")
        self.assertEqual(len(result.errors), 1)
        holder, text = result.errors[0]
        self.assertRegex(str(holder), r"^tearDownClass \(.*Broken\)$")
        self.assertEqual(text.strip().splitlines()[-1], "OSError: teardown failed")
        self.assertEqual(
            events,
            [
                "asyncSetUpClass",
                "test_1",
                "test_2",
                "asyncTearDownClass",
                # as an error in tearDownClass: the rest of it is skipped
                "sync cleanup",
                "async cleanup",
                "Next.asyncSetUpClass",
                "Next.test_1",
            ],
        )
        self.assertTrue(is_closed(loops[0]))
        self.assertEqual([r.split()[0] for r in runners], ["open", "close"] * 2)

    def test_error_in_async_class_cleanup(self) -> None:
        result, events, loops, runners = self.run_broken("cleanup")
        self.assertEqual(len(result.errors), 1)
        holder, text = result.errors[0]
        self.assertRegex(str(holder), r"^tearDownClass \(.*Broken\)$")
        self.assertEqual(text.strip().splitlines()[-1], "OSError: cleanup failed")
        self.assertEqual(
            events[-4:],
            ["sync cleanup", "async cleanup", "Next.asyncSetUpClass", "Next.test_1"],
        )
        self.assertTrue(is_closed(loops[0]))
        self.assertEqual([r.split()[0] for r in runners], ["open", "close"] * 2)

    def test_keyboard_interrupt_closes_the_class_runner(self) -> None:
        loops: list[object] = []

        class Interrupted(AnyIOTestCase):
            anyio_backend = self.backend
            loop_scope = "class"

            async def test_1(self) -> None:
                loops.append(current_loop())
                raise KeyboardInterrupt

        with counting_runners() as runners, self.assertRaises(KeyboardInterrupt):
            run_cases(Interrupted("test_1"))
        self.assertTrue(is_closed(loops[0]))
        self.assertEqual([r.split()[0] for r in runners], ["open", "close"])


class TestClassErrorsAsyncio(ClassErrorTests, unittest.TestCase):
    backend = "asyncio"


class TestClassErrorsTrio(ClassErrorTests, unittest.TestCase):
    backend = "trio"


# -- a class of one ----------------------------------------------------------------


class ClassOfOneTests(BackendTests):
    def make_alone(self, events: list[str], loops: list[object]) -> type[AnyIOTestCase]:
        class Alone(AnyIOTestCase):
            anyio_backend = self.backend
            loop_scope = "class"

            @classmethod
            async def asyncSetUpClass(cls) -> None:
                events.append("asyncSetUpClass")
                loops.append(current_loop())
                var.set("class")
                cls.addAsyncClassCleanup(cls.cleanup)

            @classmethod
            async def cleanup(cls) -> None:
                events.append("async class cleanup")

            async def test_x(self) -> None:
                events.append(f"test_x var={var.get()}")
                loops.append(current_loop())

            @classmethod
            async def asyncTearDownClass(cls) -> None:
                events.append("asyncTearDownClass")

        return Alone

    EXPECTED: ClassVar[list[str]] = [
        "asyncSetUpClass",
        "test_x var=class",
        "asyncTearDownClass",
        "async class cleanup",
    ]

    def test_run_without_class_setup(self) -> None:
        events: list[str] = []
        loops: list[object] = []
        cls = self.make_alone(events, loops)
        result = unittest.TestResult()
        with counting_runners() as runners:
            cls("test_x").run(result)
            cls("test_x").run(result)  # and again: set up and torn down again
        self.assertEqual(last_lines(result), [])
        self.assertEqual(result.testsRun, 2)
        self.assertEqual(events, self.EXPECTED * 2)
        self.assertIs(loops[0], loops[1])
        self.assertTrue(is_closed(loops[0]))
        self.assertTrue(is_closed(loops[2]))
        self.assertEqual([r.split()[0] for r in runners], ["open", "close"] * 2)

    def test_debug_without_class_setup(self) -> None:
        events: list[str] = []
        loops: list[object] = []
        self.make_alone(events, loops)("test_x").debug()
        self.assertEqual(events, self.EXPECTED)
        self.assertIs(loops[0], loops[1])
        self.assertTrue(is_closed(loops[0]))

    def test_class_setup_error_is_reported_for_the_test(self) -> None:
        events: list[str] = []

        class AloneBroken(AnyIOTestCase):
            anyio_backend = self.backend
            loop_scope = "class"

            @classmethod
            async def asyncSetUpClass(cls) -> None:
                cls.addClassCleanup(events.append, "class cleanup")
                raise OSError("no server")

            async def test_x(self) -> None:
                events.append("test_x")

        result = unittest.TestResult()
        AloneBroken("test_x").run(result)
        self.assertEqual(
            [(name, line) for _, name, line in last_lines(result)],
            [("test_x", "OSError: no server")],
        )
        self.assertEqual(events, ["class cleanup"])


class TestClassOfOneAsyncio(ClassOfOneTests, unittest.TestCase):
    backend = "asyncio"


class TestClassOfOneTrio(ClassOfOneTests, unittest.TestCase):
    backend = "trio"


# -- configuration errors, when the class is defined ----------------------------------


class TestConfigurationErrors(unittest.TestCase):
    def test_async_class_hooks_need_a_wider_scope(self) -> None:
        for hook in ("asyncSetUpClass", "asyncTearDownClass"):
            with self.subTest(hook=hook):

                async def fn(cls: Any) -> None:
                    pass

                with self.assertRaises(ConfigurationError) as cm:
                    type(
                        "PerTest",
                        (AnyIOTestCase,),
                        {hook: classmethod(fn), "test_x": lambda self: None},
                    )
                message = str(cm.exception)
                for needle in ("PerTest", hook, "loop_scope", "'class'"):
                    self.assertIn(needle, message)

    def test_async_class_cleanup_needs_a_wider_scope(self) -> None:
        class PerTest(AnyIOTestCase):
            def test_x(self) -> None:
                pass

        with self.assertRaises(ConfigurationError) as cm:
            PerTest.addAsyncClassCleanup(anyio.sleep, 0)
        for needle in ("PerTest", "addAsyncClassCleanup", "loop_scope"):
            self.assertIn(needle, str(cm.exception))

    def test_unknown_loop_scope(self) -> None:
        with self.assertRaises(ConfigurationError) as cm:
            type("Typo", (AnyIOTestCase,), {"loop_scope": "modul"})
        for needle in ("Typo", "loop_scope", "'modul'", "'module'"):
            self.assertIn(needle, str(cm.exception))


class TestSignalHandlersOnASharedLoop(BackendTests, unittest.TestCase):
    """A signal handler a class hook adds to its asyncio loop still fires in
    the class's tests: the wakeup fd the package sets while it drives a call
    (so that Ctrl-C wakes the loop) never replaces the loop's own."""

    backend = "asyncio"

    def test_a_handler_added_in_async_set_up_class(self) -> None:
        class Body:
            loop_scope = "class"

            @classmethod
            async def asyncSetUpClass(cls) -> None:
                cls.got = asyncio.Event()
                asyncio.get_running_loop().add_signal_handler(
                    signal.SIGUSR1, cls.got.set
                )

            @classmethod
            async def asyncTearDownClass(cls) -> None:
                asyncio.get_running_loop().remove_signal_handler(signal.SIGUSR1)

            async def test_signal(self) -> None:
                os.kill(os.getpid(), signal.SIGUSR1)
                await asyncio.wait_for(self.got.wait(), 2)  # type: ignore[attr-defined]

        result = run_classes(self.make(Body))
        self.assertEqual(problems(result), [])
        self.assertEqual(result.testsRun, 1)
