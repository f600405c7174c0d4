"""Virtual time: ``clock = "autojump"`` on asyncio and trio.

Time jumps to the next timer whenever nothing else can run, so sleeps, time-outs
and retries take no real time; real I/O and worker threads still deliver (the
threshold); ``current_clock()`` gives manual control; time limits stay real;
the guard rails and Hypothesis work under it. The clock is part of a runner's
identity: the end-to-end tests run a suite of several scopes under unittest and
pytest.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import threading
import time
import unittest
from collections.abc import AsyncIterator, Callable
from typing import ClassVar

import anyio
import anyio.abc
import sniffio
from hypothesis import given, settings
from hypothesis import strategies as st

import anyio_unittest
from anyio_unittest import AnyIOTestCase, ConfigurationError, current_clock

from ._support import (
    BackendTests,
    outcomes_by_test,
    problems,
    run_classes,
    run_pytest,
    run_unittest,
    write_suite,
)

#: 1 + 2 + 4 + ... + 512 seconds
BACKOFF = sum(2**n for n in range(10))


async def retry_with_backoff(attempts: list[float]) -> None:
    """A client that retries ten times, doubling its delay each time."""
    delay = 1.0
    for _ in range(10):
        attempts.append(anyio.current_time())
        await anyio.sleep(delay)
        delay *= 2


class BackoffBody:
    clock = "autojump"
    elapsed: ClassVar[list[float]]

    async def test_backoff(self) -> None:
        attempts: list[float] = []
        start = anyio.current_time()
        await retry_with_backoff(attempts)
        self.elapsed.append(anyio.current_time() - start)
        self.assertEqual([a - start for a in attempts], [2**n - 1.0 for n in range(10)])


def generator_left_open(function: Callable[[], AsyncIterator[int]]) -> type:
    """A class-scoped virtual-time body whose test leaves an async generator of
    *function* open, for the runner's close to finalise."""

    class Body:
        clock = "autojump"
        loop_scope = "class"
        kept: ClassVar[list[object]] = []

        async def test_leaves_a_generator_open(self) -> None:
            generator = function()
            await generator.__anext__()
            self.kept.append(generator)

    return Body


class ClockTests(BackendTests):
    def test_backoff_takes_no_real_time(self) -> None:
        for scope in ("function", "class"):
            with self.subTest(scope=scope):
                elapsed: list[float] = []
                case = self.make(BackoffBody, loop_scope=scope, elapsed=elapsed)
                started = time.monotonic()
                result = run_classes(case)
                real = time.monotonic() - started
                self.assertEqual(problems(result), [])
                self.assertEqual(elapsed, [BACKOFF])
                self.assertLess(real, 0.5)

    def test_real_clock_by_default(self) -> None:
        class Body:
            async def test_sleep(self) -> None:
                start = time.monotonic()
                await anyio.sleep(0.05)
                self.assertGreaterEqual(time.monotonic() - start, 0.04)
                with self.assertRaisesRegex(RuntimeError, "keeps real time"):
                    current_clock()

        self.assertEqual(problems(run_classes(self.make(Body))), [])

    def test_an_hour_of_virtual_time_under_a_real_time_limit(self) -> None:
        class Body:
            clock = "autojump"
            timeout = 2

            async def test_hour(self) -> None:
                with anyio.fail_after(3601):
                    await anyio.sleep(3600)
                self.assertEqual(anyio.current_time(), 3600)

            async def test_a_year(self) -> None:
                # in one jump: the limit's alarm is no timer of the loop's
                await anyio.sleep(365 * 86400)

        self.assertEqual(problems(run_classes(self.make(Body))), [])

    def test_a_deadlock_fails_at_the_real_time_limit(self) -> None:
        class Body:
            clock = "autojump"
            timeout = 0.3

            async def test_deadlock(self) -> None:
                await anyio.Event().wait()

            async def test_spins(self) -> None:
                while True:  # virtual time flies; the limit is real
                    await anyio.sleep(1)

        started = time.monotonic()
        found = outcomes_by_test(run_classes(self.make(Body)))
        self.assertLess(time.monotonic() - started, 2.5)
        self.assertEqual(sorted(found), ["test_deadlock", "test_spins"])
        for text in found.values():
            self.assertIn("exceeded the limit of 0.3 seconds", text)
        self.assertIn("in test_deadlock", found["test_deadlock"])

    def test_loopback_echo_with_the_default_threshold(self) -> None:
        class Body:
            clock = "autojump"

            async def test_echo(self) -> None:
                async def serve(stream: anyio.abc.SocketStream) -> None:
                    async with stream:
                        await stream.send(await stream.receive())

                with anyio.fail_after(5):
                    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
                    port = listener.extra(anyio.abc.SocketAttribute.local_port)
                    async with listener, anyio.create_task_group() as group:
                        group.start_soon(listener.serve, serve)
                        async with await anyio.connect_tcp("127.0.0.1", port) as c:
                            await c.send(b"ping")
                            self.assertEqual(await c.receive(), b"ping")
                        group.cancel_scope.cancel()

        self.assertEqual(problems(run_classes(self.make(Body))), [])

    def test_a_worker_thread_within_the_threshold(self) -> None:
        class Body:
            clock = "autojump"
            elapsed: ClassVar[list[float]]

            async def test_thread(self) -> None:
                start = anyio.current_time()
                with anyio.fail_after(10):
                    await anyio.to_thread.run_sync(time.sleep, 0.01)
                self.elapsed.append(anyio.current_time() - start)

        elapsed: list[float] = []
        passes = self.make(Body, autojump_threshold=0.05, elapsed=elapsed)
        self.assertEqual(problems(run_classes(passes)), [])
        self.assertEqual(elapsed, [0])
        # without the threshold, time jumps to the fail_after's deadline while
        # the thread runs (which the thread doesn't notice): the trade-off
        elapsed.clear()
        self.assertEqual(problems(run_classes(self.make(Body, elapsed=elapsed))), [])
        self.assertEqual(elapsed, [10])

    def test_current_clock_jumps_and_its_threshold(self) -> None:
        class Body:
            clock = "autojump"
            loop_scope = "class"
            autojump_threshold = 0.01

            async def test_1_jump(self) -> None:
                clock = current_clock()
                start = anyio.current_time()
                woke: list[float] = []

                sleeping = anyio.Event()

                async def sleeper() -> None:
                    sleeping.set()
                    await anyio.sleep(5)
                    woke.append(anyio.current_time() - start)

                async with anyio.create_task_group() as group:
                    group.start_soon(sleeper)
                    await sleeping.wait()
                    clock.autojump_threshold = 30  # no autojump from here
                    clock.jump(5)
                    self.assertEqual(anyio.current_time() - start, 5)
                self.assertEqual(woke, [5])
                with self.assertRaises(ValueError):
                    clock.jump(-1)

            async def test_2_threshold_is_the_class_s_again(self) -> None:
                self.assertEqual(current_clock().autojump_threshold, 0.01)

        self.assertEqual(problems(run_classes(self.make(Body))), [])

    def test_time_never_goes_back_on_a_shared_runner(self) -> None:
        class Body:
            clock = "autojump"
            loop_scope = "class"
            seen: ClassVar[list[float]] = []

            @classmethod
            async def asyncSetUpClass(cls) -> None:
                await anyio.sleep(10)

            async def test_1(self) -> None:
                self.seen.append(anyio.current_time())
                await anyio.sleep(100)

            async def test_2(self) -> None:
                self.seen.append(anyio.current_time())

        case = self.make(Body)
        self.assertEqual(problems(run_classes(case)), [])
        self.assertEqual(case.seen, [10, 110])  # type: ignore[attr-defined]

    def test_hypothesis_examples(self) -> None:
        class Body:
            clock = "autojump"
            loop_scope = "class"

            @settings(database=None, deadline=None, max_examples=20)
            @given(st.integers(min_value=1, max_value=10**6))
            async def test_sleeps(self, seconds: int) -> None:
                start = anyio.current_time()
                await anyio.sleep(seconds)
                self.assertEqual(anyio.current_time() - start, seconds)

        started = time.monotonic()
        self.assertEqual(problems(run_classes(self.make(Body))), [])
        self.assertLess(time.monotonic() - started, 2)

    def test_debug(self) -> None:
        class Body:
            clock = "autojump"

            async def test_sleep(self) -> None:
                await anyio.sleep(3600)
                self.assertEqual(anyio.current_time(), 3600)

        started = time.monotonic()
        self.make(Body)("test_sleep").debug()
        self.assertLess(time.monotonic() - started, 1)

    def test_a_task_left_sleeping_is_reported(self) -> None:
        class Body:
            clock = "autojump"
            loop_scope = "class"

            @classmethod
            async def asyncSetUpClass(cls) -> None:
                cls.group = await cls.enterAsyncClassContext(  # type: ignore[attr-defined]
                    anyio.create_task_group()
                )
                cls.addAsyncClassCleanup(cls.cancel)  # type: ignore[attr-defined]

            @classmethod
            async def cancel(cls) -> None:
                cls.group.cancel_scope.cancel()  # type: ignore[attr-defined]

            async def test_leaks(self) -> None:
                self.group.start_soon(anyio.sleep, 1000, name="sleeper")  # type: ignore[attr-defined]
                await anyio.sleep(1)

        found = outcomes_by_test(run_classes(self.make(Body)))
        self.assertEqual(list(found), ["test_leaks"])
        self.assertIn("left 1 task(s) running", found["test_leaks"])
        self.assertIn("sleeper", found["test_leaks"])

    def test_current_clock_outside_async_code(self) -> None:
        with self.assertRaisesRegex(RuntimeError, "from a test's async code"):
            current_clock()


class TestClockAsyncio(ClockTests, unittest.TestCase):
    backend = "asyncio"

    def test_asyncio_primitives_follow_it(self) -> None:
        class Body:
            clock = "autojump"

            async def test_primitives(self) -> None:
                loop = asyncio.get_running_loop()
                fired: list[float] = []
                loop.call_later(30, lambda: fired.append(loop.time()))
                loop.call_at(loop.time() + 40, lambda: fired.append(loop.time()))
                with self.assertRaises(asyncio.TimeoutError):  # 3.10: not builtin
                    await asyncio.wait_for(asyncio.sleep(100), 50)
                self.assertEqual(fired, [30, 40])
                self.assertEqual(loop.time(), 50)
                if hasattr(asyncio, "timeout"):  # 3.11+
                    with self.assertRaises(TimeoutError):
                        async with asyncio.timeout(7):
                            await asyncio.sleep(10)
                    self.assertEqual(loop.time(), 57)

        self.assertEqual(problems(run_classes(self.make(Body))), [])

    def test_the_real_time_limit_fires_while_io_stays_ready(self) -> None:
        class Body:
            clock = "autojump"
            timeout = 0.3

            async def test_io_always_ready(self) -> None:
                loop = asyncio.get_running_loop()
                reader, writer = os.pipe()
                os.write(writer, b"x")  # never drained: always readable
                loop.add_reader(reader, lambda: None)
                self.addCleanup(os.close, reader)  # type: ignore[attr-defined]
                self.addCleanup(os.close, writer)  # type: ignore[attr-defined]
                self.addCleanup(loop.remove_reader, reader)  # type: ignore[attr-defined]
                loop.call_later(3600, lambda: None)  # so the loop has a timeout
                await asyncio.Event().wait()

        started = time.monotonic()
        found = outcomes_by_test(run_classes(self.make(Body)))
        self.assertLess(time.monotonic() - started, 2.5)
        text = found["test_io_always_ready"]
        self.assertIn("exceeded the limit of 0.3 seconds", text)

    def test_a_leftover_deaf_to_cancellation_is_given_up_in_real_time(self) -> None:
        # a task that keeps the loop busy never lets the clock jump: the grace
        # period its cancellation gets must be real seconds, or it never ends
        async def deaf() -> None:
            while True:  # deaf to its cancellation
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.sleep(0)

        class Body:
            clock = "autojump"
            leaked_tasks = "cancel"

            async def test_leaves_it(self) -> None:
                asyncio.get_running_loop().create_task(deaf())
                await asyncio.sleep(0)

        started = time.monotonic()
        found = outcomes_by_test(run_classes(self.make(Body, loop_scope="class")))
        self.assertLess(time.monotonic() - started, 5)
        self.assertIn("had not ended 1 s after", found["test_leaves_it"])

    def test_a_generator_finalised_at_close_gets_real_seconds(self) -> None:
        # the runner's close finalises the async generators left open; one whose
        # finally block waits for I/O leaves the loop idle, and a virtual grace
        # period would be jumped past at once
        finished: list[str] = []

        async def stream() -> AsyncIterator[int]:
            try:
                yield 1
            finally:
                reader, writer = socket.socketpair()
                reader.setblocking(False)
                sender = threading.Timer(0.2, writer.send, [b"x"])
                sender.start()
                try:
                    await asyncio.get_running_loop().sock_recv(reader, 1)
                    finished.append("finally")
                finally:
                    sender.cancel()
                    sender.join()
                    reader.close()
                    writer.close()

        Body = generator_left_open(stream)
        self.assertEqual(problems(run_classes(self.make(Body))), [])
        self.assertEqual(finished, ["finally"])

    def test_a_generator_deaf_to_its_cancellation_leaves_the_loop_behind(
        self,
    ) -> None:
        # as a leftover task deaf to its cancellation does: reported, in real
        # seconds, and the loop is not closed under it
        async def deaf() -> AsyncIterator[int]:
            try:
                yield 1
            finally:
                while True:
                    with contextlib.suppress(asyncio.CancelledError):
                        await asyncio.sleep(3600)

        Body = generator_left_open(deaf)
        started = time.monotonic()
        found = problems(run_classes(self.make(Body)))
        self.assertLess(time.monotonic() - started, 5)
        self.assertEqual(len(found), 1, found)
        self.assertIn("had not ended 1 s after their cancellation", found[0].text)
        self.assertIn("shutdown_asyncgens", found[0].text)

    def test_a_jump_onto_a_timer_runs_it_at_any_time(self) -> None:
        # past 2**24 s a float can't hold time() + asyncio's clock resolution
        class Body:
            clock = "autojump"
            timeout = 1

            async def test_jumps(self) -> None:
                loop = asyncio.get_running_loop()
                current_clock().jump(10**9)
                fired = asyncio.Event()
                loop.call_at(loop.time() + 5, fired.set)
                current_clock().jump(5)
                await fired.wait()
                await asyncio.sleep(365 * 86400)

        self.assertEqual(problems(run_classes(self.make(Body))), [])

    def test_no_jump_while_a_worker_thread_of_the_loop_runs(self) -> None:
        # asyncio.to_thread and getaddrinfo (run_in_executor) wake the loop when
        # done: even with no threshold, time waits for them
        class Body:
            clock = "autojump"

            async def test_to_thread(self) -> None:
                loop = asyncio.get_running_loop()
                await asyncio.wait_for(asyncio.to_thread(time.sleep, 0.05), 10)
                await asyncio.wait_for(loop.getaddrinfo("localhost", 80), 10)
                self.assertEqual(loop.time(), 0)

        self.assertEqual(problems(run_classes(self.make(Body))), [])

    def test_only_the_runner_s_own_loop_keeps_virtual_time(self) -> None:
        # by public means: a loop class of the package's, no patching of time
        # or of asyncio, so any other loop and the time module stay real
        class Body:
            clock = "autojump"

            async def test_sleep(self) -> None:
                real = time.monotonic()
                await asyncio.sleep(1000)
                self.assertLess(time.monotonic() - real, 1)
                other = asyncio.new_event_loop()
                try:
                    self.assertAlmostEqual(other.time(), time.monotonic(), delta=1)
                finally:
                    other.close()

        self.assertEqual(problems(run_classes(self.make(Body))), [])

    def test_a_callback_s_error_after_a_jump_is_reported(self) -> None:
        class Body:
            clock = "autojump"
            loop_scope = "class"

            async def test_1_error(self) -> None:
                def boom() -> None:
                    raise ValueError("boom")

                asyncio.get_running_loop().call_later(60, boom)
                await asyncio.sleep(61)

            async def test_2_timer_left(self) -> None:
                asyncio.get_running_loop().call_later(600, print)

        found = outcomes_by_test(run_classes(self.make(Body)))
        self.assertEqual(sorted(found), ["test_1_error", "test_2_timer_left"])
        self.assertIn("ValueError: boom", found["test_1_error"])
        self.assertIn("due in 600 s", found["test_2_timer_left"])


class TestClockTrio(ClockTests, unittest.TestCase):
    backend = "trio"

    def test_the_clock_is_trio_s_mock_clock(self) -> None:
        import trio
        import trio.testing

        class Body:
            clock = "autojump"
            autojump_threshold = 0.25

            async def test_clock(self) -> None:
                clock = current_clock()
                self.assertIsInstance(clock, trio.testing.MockClock)
                self.assertIs(clock, trio.lowlevel.current_clock())
                self.assertEqual(clock.autojump_threshold, 0.25)
                self.assertEqual(sniffio.current_async_library(), "trio")

        self.assertEqual(problems(run_classes(self.make(Body))), [])


# -- configuration errors, at class definition -----------------------------------


def factory() -> asyncio.AbstractEventLoop:
    return asyncio.new_event_loop()


class TestClockConfiguration(unittest.TestCase):
    def define(self, **attrs: object) -> type:
        namespace = {"__module__": __name__, "__qualname__": "Virtual", **attrs}
        return type("Virtual", (AnyIOTestCase,), namespace)

    def assertRefused(self, *needles: str, **attrs: object) -> None:
        with self.assertRaises(ConfigurationError) as caught:
            self.define(**attrs)
        message = str(caught.exception)
        for needle in (f"{__name__}.Virtual", *needles):
            self.assertIn(needle, message)

    def test_bad_values(self) -> None:
        self.assertRefused("clock = 'virtual'", "'autojump'", clock="virtual")
        for bad in (-1, float("nan"), "0.1", True):
            with self.subTest(bad=bad):
                self.assertRefused(
                    "autojump_threshold",
                    ">= 0",
                    clock="autojump",
                    autojump_threshold=bad,
                )
        self.assertRefused(
            "autojump_threshold = 0.1 has no effect with clock = 'real'",
            autojump_threshold=0.1,
        )

    def test_loops_whose_clock_cant_be_replaced(self) -> None:
        self.assertRefused(
            "clock = 'autojump'",
            "backend asyncio_uvloop",
            "use_uvloop",
            clock="autojump",
            anyio_backend=("asyncio", {"use_uvloop": True}),
        )
        self.assertRefused(
            "clock = 'autojump'",
            "backend asyncio",
            "loop_factory",
            clock="autojump",
            loop_factory=factory,
        )
        # said for the class that declares the backends, not a generated one
        self.assertRefused(
            "backend asyncio_loop_factory_factory",
            "loop_factory",
            clock="autojump",
            anyio_backends=["trio", ("asyncio", {"loop_factory": factory})],
        )

    def test_with_trio_s_clock_option(self) -> None:
        import trio.testing

        self.assertRefused(
            "clock = 'autojump'",
            "backend trio_clock_MockClock",
            "option 'clock'",
            clock="autojump",
            anyio_backend=("trio", {"clock": trio.testing.MockClock()}),
        )

    def test_generated_classes_get_it(self) -> None:
        async def test_it(self: object) -> None:
            pass

        cls = self.define(
            clock="autojump", anyio_backends=["asyncio", "trio"], test_it=test_it
        )
        generated = cls.anyio_backend_classes  # type: ignore[attr-defined]
        self.assertEqual(sorted(generated), ["asyncio", "trio"])
        for case in generated.values():
            self.assertEqual(case.clock, "autojump")

    def test_exported(self) -> None:
        self.assertIs(anyio_unittest.current_clock, current_clock)
        self.assertEqual(current_clock.__module__, "anyio_unittest")


# -- end to end: scopes, under unittest and pytest ---------------------------------

SCOPES_SUITE = {
    "test_a_backoff.py": """
        import time

        import anyio

        from anyio_unittest import AnyIOTestCase


        class Backoff(AnyIOTestCase):
            anyio_backends = ["asyncio", "trio"]
            clock = "autojump"
            loop_scope = "function"
            timeout = 2

            async def test_backoff(self):
                start, real = anyio.current_time(), time.monotonic()
                delay = 1
                for _ in range(10):
                    await anyio.sleep(delay)
                    delay *= 2
                print(
                    f"\\nBACKOFF {type(self).__name__} "
                    f"virtual={anyio.current_time() - start:g} "
                    f"real={time.monotonic() - real:.4f}"
                )


        class BackoffClass(Backoff):
            loop_scope = "class"
    """,
    "test_b_module.py": """
        import anyio

        from anyio_unittest import AnyIOTestCase


        def runner_id():
            import asyncio
            import sniffio

            if sniffio.current_async_library() == "asyncio":
                return id(asyncio.get_running_loop())
            import trio

            return id(trio.lowlevel.current_root_task())


        class First(AnyIOTestCase):
            clock = "autojump"
            loop_scope = "module"

            async def test_first(self):
                await anyio.sleep(100)
                print(f"\\nFIRST {anyio.current_time():g} {runner_id()}")


        class Second(AnyIOTestCase):
            clock = "autojump"
            loop_scope = "module"

            async def test_second(self):
                # the same runner: its clock went on from where First left it
                print(f"\\nSECOND {anyio.current_time():g} {runner_id()}")


        class Real(AnyIOTestCase):
            loop_scope = "module"

            async def test_real(self):
                print(f"\\nREAL {runner_id()}")
    """,
    "test_c_trio.py": """
        import anyio

        from anyio_unittest import AnyIOTestCase


        class TrioVirtual(AnyIOTestCase):
            anyio_backend = "trio"
            clock = "autojump"
            loop_scope = "module"

            async def test_virtual(self):
                await anyio.sleep(10)


        class TrioReal(AnyIOTestCase):
            anyio_backend = "trio"
            loop_scope = "module"

            async def test_real(self):
                pass
    """,
}


class TestScopesEndToEnd(unittest.TestCase):
    """One suite under ``python -m unittest`` and pytest: the back-off in
    function and class scope on both backends; on asyncio classes with other
    clocks get runners of their own; on trio they are a clear error."""

    folder = write_suite(SCOPES_SUITE)

    def check(self, output: str) -> None:
        lines = [line.split() for line in output.splitlines()]
        backoffs = {words[1]: words[2:] for words in lines if words[:1] == ["BACKOFF"]}
        self.assertEqual(
            sorted(backoffs),
            [
                "BackoffClass_asyncio",
                "BackoffClass_trio",
                "Backoff_asyncio",
                "Backoff_trio",
            ],
            output,
        )
        for virtual, real in backoffs.values():
            self.assertEqual(virtual, f"virtual={BACKOFF}")
            self.assertLess(float(real.partition("=")[2]), 0.5)
        seen = {
            words[0]: words[1:]
            for words in lines
            if words[:1] in (["FIRST"], ["SECOND"], ["REAL"])
        }
        self.assertEqual(seen["FIRST"][0], "100")
        self.assertEqual(seen["SECOND"][0], "100")
        self.assertEqual(seen["FIRST"][1], seen["SECOND"][1])  # one runner
        self.assertNotEqual(seen["REAL"][0], seen["FIRST"][1])  # its own
        # trio: one run per thread, so the second class can't have its clock
        conflict = re.search(r"RunnerConflictError: ([^\n]*)", output)
        assert conflict is not None, output
        for needle in (
            # which one asks depends on the order the runner runs classes in
            "test_c_trio.TrioVirtual",
            "test_c_trio.TrioReal",
            "the open run was opened for",
            "clock = 'autojump' (autojump_threshold = 0)",
            "give both the same trio options and clock",
        ):
            self.assertIn(needle, conflict.group(1))

    def test_unittest(self) -> None:
        outcome = run_unittest(self.folder, "-v")
        self.check(outcome.output)
        self.assertEqual(outcome.count("ran"), 8, outcome.output)
        self.assertEqual(outcome.count("errors"), 1, outcome.output)

    def test_pytest(self) -> None:
        outcome = run_pytest(self.folder, "-s", "-p", "no:asyncio")
        self.check(outcome.output)
        self.assertEqual(outcome.count("passed"), 8, outcome.output)
        self.assertEqual(outcome.count("error"), 1, outcome.output)
