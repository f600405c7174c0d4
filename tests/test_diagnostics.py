"""What the package says when a test on a shared runner goes wrong, and what the
runners cost: a time-out shows the other tasks of the runner and who started
them; an object of another runner's loop is explained; ``ANYIO_UNITTEST_REPORT=1``
prints a report of the runners at the end of the run.
"""

from __future__ import annotations

import os
import re
import unittest
from pathlib import Path
from typing import Any, ClassVar, cast
from unittest import mock

import anyio

from anyio_unittest import AnyIOTestCase, ConfigurationError

from ._support import (
    ROOT,
    BackendTests,
    Outcome,
    problems,
    run_classes,
    run_pytest,
    run_unittest,
    texts_by_test,
    write_suite,
)

REPORT_ENV = "ANYIO_UNITTEST_REPORT"


async def serve(gate: anyio.Event) -> None:
    await gate.wait()  # the server's line


class ServerBody:
    """A server task started by asyncSetUpClass, never answering: the test
    waiting on it times out."""

    gate: ClassVar[anyio.Event]

    @classmethod
    async def asyncSetUpClass(cls) -> None:
        cls.gate = anyio.Event()
        server = await cls.enterAsyncClassContext(anyio.create_task_group())  # type: ignore[attr-defined]
        server.start_soon(serve, cls.gate)
        cls.addAsyncClassCleanup(cancel, server)  # type: ignore[attr-defined]

    async def test_waits_for_the_server(self) -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(anyio.sleep, 10)
            await self.gate.wait()


async def cancel(group: Any) -> None:
    group.cancel_scope.cancel()


class TimeOutTests(BackendTests):
    def test_a_time_out_shows_the_server_task_of_the_class_and_its_await_chain(
        self,
    ) -> None:
        cls = self.make(ServerBody, loop_scope="class", timeout=0.2)
        result = run_classes(cls)
        [problem] = problems(result)
        text = problem.text
        where = f"{cls.__module__}.{cls.__qualname__}"
        self.assertIn("timed out", text)
        others = text.split("The other tasks on its runner, at that moment:\n")[1]
        self.assertRegex(
            others,
            rf"Task '[^']*' \(started by asyncSetUpClass of {re.escape(where)}\):\n"
            rf"(    .*\n)*?.*\n      await gate.wait\(\)  # the server's line",
        )
        # the test's own task in its task group, marked as the test's, after
        # the class's
        test_id = f"{where}.test_waits_for_the_server"
        self.assertIn(f"(started by test {test_id})", others)
        self.assertLess(
            others.index("asyncSetUpClass of"), others.index("started by test")
        )

    def test_a_class_step_time_out_shows_the_tasks_it_started(self) -> None:
        class Body:
            @classmethod
            async def asyncSetUpClass(cls) -> None:
                gate = anyio.Event()
                server = await cls.enterAsyncClassContext(anyio.create_task_group())  # type: ignore[attr-defined]
                server.start_soon(serve, gate)
                cls.addAsyncClassCleanup(cancel, server)  # type: ignore[attr-defined]
                await gate.wait()

            async def test_never_runs(self) -> None:
                pass

        cls = self.make(Body, loop_scope="class", class_timeout=0.2)
        [problem] = problems(run_classes(cls))
        self.assertIn("exceeded class_timeout", problem.text)
        self.assertIn(
            f"(started by asyncSetUpClass of {cls.__module__}.{cls.__qualname__})",
            problem.text,
        )
        self.assertIn("await gate.wait()  # the server's line", problem.text)

    def test_the_other_tasks_shown_are_bounded(self) -> None:
        class Body:
            async def test_many(self) -> None:
                async with anyio.create_task_group() as tg:
                    for _ in range(15):
                        tg.start_soon(anyio.sleep, 10)
                    await anyio.sleep(10)

        result = run_classes(self.make(Body, loop_scope="class", timeout=0.2))
        [text] = texts_by_test(result).values()
        self.assertEqual(text.count("(started by test "), 10)
        self.assertIn("... and 5 more task(s)", text)


class TestTimeOutsAsyncio(TimeOutTests, unittest.TestCase):
    backend = "asyncio"


class TestTimeOutsTrio(TimeOutTests, unittest.TestCase):
    backend = "trio"


# -- objects of another runner ------------------------------------------------------


CROSS_LOOP = {
    "test_cross_asyncio.py": """
        import asyncio
        import os

        from anyio_unittest import AnyIOTestCase


        class A_Maker(AnyIOTestCase):
            loop_scope = os.environ["SCOPE"]

            @classmethod
            async def asyncSetUpClass(cls):
                # a lock binds itself to a loop the first time it must wait
                cls.lock = asyncio.Lock()
                await cls.lock.acquire()
                waiter = asyncio.ensure_future(cls.lock.acquire())
                await asyncio.sleep(0)
                cls.lock.release()
                await waiter
                cls.lock.release()

            async def test_makes_it(self):
                pass


        class B_User(AnyIOTestCase):
            loop_scope = os.environ["SCOPE"]

            async def test_uses_it(self):
                lock = A_Maker.lock
                async with lock:
                    waiter = asyncio.ensure_future(lock.acquire())
                    await asyncio.sleep(0)
                await waiter
                lock.release()
    """,
    "test_cross_trio.py": """
        import os

        import trio

        from anyio_unittest import AnyIOTestCase


        class A_Maker(AnyIOTestCase):
            anyio_backend = "trio"
            loop_scope = os.environ["SCOPE"]

            @classmethod
            async def asyncSetUpClass(cls):
                cls.token = trio.lowlevel.current_trio_token()

            async def test_makes_it(self):
                pass


        class B_User(AnyIOTestCase):
            anyio_backend = "trio"
            loop_scope = os.environ["SCOPE"]

            async def test_uses_it(self):
                A_Maker.token.run_sync_soon(lambda: None)
    """,
}


class CrossLoopTests:
    """An object bound to class A's runner in its asyncSetUpClass, used by
    class B (asyncio: a lock; trio's objects are bound to no run, but a run's
    token is: using that of an ended run raises ``trio.RunFinishedError``).
    In a process of its own: a runner that another test left open on this
    thread (a trio session runner, under pytest) would be shared."""

    backend: str
    folder: Path

    @classmethod
    def setUpClass(cls) -> None:
        cls.folder = write_suite(CROSS_LOOP)

    def run_it(self, scope: str) -> Outcome:
        return run_unittest(
            self.folder, f"test_cross_{self.backend}", env={"SCOPE": scope}
        )

    def test_the_error_names_both_runners_and_the_fix(self) -> None:
        outcome = self.run_it("class")
        tc = cast(unittest.TestCase, self)
        tc.assertEqual(outcome.count("errors"), 1, outcome)
        module = f"test_cross_{self.backend}"
        text = " ".join(outcome.output.split())
        tc.assertIn(
            f"this code ran on the class runner of {module}.B_User "
            f"({self.backend}, loop_scope = 'class')",
            text,
        )
        tc.assertIn(
            f"the class runner of {module}.A_Maker "
            f"({self.backend}, loop_scope = 'class', already closed)",
            text,
        )
        tc.assertIn("loop_scope = 'module' or 'session'", text)

    def test_sharing_the_runner_fixes_it(self) -> None:
        outcome = self.run_it("module")
        tc = cast(unittest.TestCase, self)
        tc.assertEqual(outcome.returncode, 0, outcome)
        tc.assertEqual(outcome.count("ran"), 2, outcome)


class TestCrossLoopAsyncio(CrossLoopTests, unittest.TestCase):
    backend = "asyncio"


class TestCrossLoopTrio(CrossLoopTests, unittest.TestCase):
    backend = "trio"


# -- the runner report --------------------------------------------------------------

THREE_SCOPES = {
    "test_three.py": """
        import anyio
        from anyio_unittest import AnyIOTestCase

        BACKENDS = ["asyncio", "trio"]


        class C(AnyIOTestCase):
            anyio_backends = BACKENDS
            loop_scope = "class"

            @classmethod
            async def asyncSetUpClass(cls):
                cls.group = await cls.enterAsyncClassContext(
                    anyio.create_task_group()
                )
                cls.addAsyncClassCleanup(cls.stop)

            @classmethod
            async def stop(cls):
                cls.group.cancel_scope.cancel()

            async def test_1(self):
                await anyio.sleep(0)

            async def test_2_leaks(self):
                self.group.start_soon(anyio.sleep, 10)


        class M(AnyIOTestCase):
            anyio_backends = BACKENDS
            loop_scope = "module"

            async def test_1(self):
                await anyio.sleep(0)


        class S(AnyIOTestCase):
            anyio_backends = BACKENDS
            loop_scope = "session"

            async def test_1(self):
                await anyio.sleep(0)


        class F(AnyIOTestCase):
            anyio_backends = BACKENDS
            loop_scope = "function"

            async def test_1(self):
                await anyio.sleep(0)

            async def test_2(self):
                await anyio.sleep(0)
    """
}

#: the runner's line of the report -> the start of the next line
EXPECTED = {
    "class runner of test_three.C_{b} [{b}, loop_scope = 'class']": "2 test(s), ",
    "module runner of test_three ({b}) [{b}, loop_scope = 'module']": "1 test(s), ",
    "session runner ({b}) of test_three.S_{b} [{b}, loop_scope = 'session']": (
        "1 test(s), "
    ),
    "function-scope runners of test_three.F_{b} [{b}, loop_scope = 'function', "
    "2 runners]": "2 test(s), ",
}


class ReportTests(unittest.TestCase):
    def assert_report(self, output: str) -> None:
        self.assertEqual(output.count("anyio_unittest runner report: "), 1, output)
        report = output.split("anyio_unittest runner report: ")[1]
        self.assertTrue(report.startswith("10 runner(s) opened, 12 test(s)"), report)
        lines = [line.strip() for line in report.splitlines()]
        for backend in ("asyncio", "trio"):
            for runner, details in EXPECTED.items():
                runner = runner.format(b=backend)
                self.assertIn(runner, lines, report)
                after = lines[lines.index(runner) + 1]
                self.assertTrue(after.startswith(details), after)
                self.assertRegex(after, r"opening \d+\.\d ms, closing \d+\.\d ms")
            runner = f"class runner of test_three.C_{backend} [{backend}, "
            index = next(i for i, line in enumerate(lines) if line.startswith(runner))
            self.assertIn("class/module steps ", lines[index + 1])
            self.assertEqual(lines[index + 2], "left: 1 leaked task(s) or timer(s)")

    def test_unittest_prints_the_report_of_a_run_with_every_scope(self) -> None:
        folder = write_suite(THREE_SCOPES)
        outcome = run_unittest(folder, "test_three", env={REPORT_ENV: "1"})
        self.assertEqual(outcome.count("ran"), 12, outcome.output)
        self.assertEqual(outcome.count("failures"), 2, outcome.output)  # the leaks
        self.assert_report(outcome.output)

    def test_pytest_prints_it_in_its_terminal_summary(self) -> None:
        folder = write_suite(THREE_SCOPES)
        outcome = run_pytest(
            folder,
            "test_three.py",
            *("-p", "no:asyncio", "-p", "no:hypothesispytest"),
            env={REPORT_ENV: "1"},
        )
        self.assertEqual(outcome.count("passed"), 10, outcome.output)
        self.assertEqual(outcome.count("failed"), 2, outcome.output)
        self.assertIn("anyio_unittest runners", outcome.output)
        self.assert_report(outcome.output)

    def test_pytest_xdist_prints_each_worker_s_report(self) -> None:
        # nobody sees a worker's output: each sends its report to the
        # controller, which prints them all in its terminal summary
        folder = write_suite(THREE_SCOPES)
        outcome = run_pytest(
            folder,
            "test_three.py",
            *("-n", "2", "-p", "no:asyncio", "-p", "no:hypothesispytest"),
            env={REPORT_ENV: "1"},
        )
        output = outcome.output
        self.assertEqual(outcome.count("passed"), 10, output)
        self.assertEqual(outcome.count("failed"), 2, output)
        self.assertEqual(output.count("anyio_unittest runners"), 1, output)
        found = re.findall(
            r"^xdist worker (gw\d): anyio_unittest runner report: \d+ runner\(s\) "
            r"opened, (\d+) test\(s\)",
            output,
            re.MULTILINE,
        )
        self.assertEqual(output.count("runner report: "), len(found), output)
        self.assertEqual(len({worker for worker, _ in found}), len(found), output)
        self.assertEqual(sum(int(tests) for _, tests in found), 12, output)

    def test_the_example_suite_and_no_report_unless_asked(self) -> None:
        folder = ROOT / "examples"
        args = ("discover", "-s", ".", "-t", ".")
        asked = run_unittest(folder, *args, env={REPORT_ENV: "1"})
        self.assertIn("OK", asked.output)
        for backend in ("asyncio", "trio"):
            self.assertIn(
                f"class runner of test_example.TestEchoServer_{backend} "
                f"[{backend}, loop_scope = 'class']\n    4 test(s), ",
                asked.output,
            )
        unasked = run_unittest(folder, *args, env={REPORT_ENV: "0"})
        self.assertIn("OK", unasked.output)
        self.assertNotIn("runner report", unasked.output)

    def test_a_bad_value_is_an_error_naming_the_variable(self) -> None:
        with (
            mock.patch.dict(os.environ, {REPORT_ENV: "yes"}),
            self.assertRaises(ConfigurationError) as caught,
        ):

            class Bad(AnyIOTestCase):
                pass

        self.assertIn(f"{REPORT_ENV}='yes': set it to 1", str(caught.exception))


if __name__ == "__main__":
    unittest.main()
