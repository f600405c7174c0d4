"""Hypothesis ``@given`` on ``async def`` test methods, on asyncio and trio.

Each example runs on the test's own runner, in a fresh copy of the test's
context; shrinking and failure reports are Hypothesis's own; the classes
generated for several backends don't trip Hypothesis's differing-executors
health check; and the package imports and runs without Hypothesis.
"""

from __future__ import annotations

import contextvars
import inspect
import os
import sys
import unittest
from typing import ClassVar

import anyio
import sniffio
from hypothesis import given, settings
from hypothesis import strategies as st

from anyio_unittest import AnyIOTestCase

from ._support import (
    PACKAGE_DIR,
    BackendTests,
    current_loop,
    reported_texts,
    run,
    run_classes,
)

THIS_FILE = os.path.abspath(__file__)

#: no example database (no files written), no per-example deadline
QUIET = settings(database=None, deadline=None, max_examples=10)

var: contextvars.ContextVar[str] = contextvars.ContextVar("var")


def examples_body(scope: str) -> type:
    """A fresh class each time: Hypothesis rightly fails a @given method that
    instances of several classes run (the differing-executors health check)."""

    class Body:
        """Records, for each example, what it sees; each example sets the var."""

        loop_scope = scope
        seen: ClassVar[list[tuple[str, bool, str]]]
        class_loop: ClassVar[object] = None

        if scope != "function":

            @classmethod
            async def asyncSetUpClass(cls) -> None:
                cls.class_loop = current_loop()

        async def asyncSetUp(self) -> None:
            var.set("set by asyncSetUp")
            self.loop = current_loop()

        @QUIET
        @given(st.integers())
        async def test_examples(self, n: int) -> None:
            await anyio.sleep(0)
            loop = current_loop()
            on_runner = loop is self.loop and loop is (self.class_loop or loop)
            self.seen.append((var.get(), on_runner, sniffio.current_async_library()))
            var.set(f"set by example {n}")

    return Body


def shrink_body() -> type:
    class Body:
        @settings(database=None, deadline=None, max_examples=200, derandomize=True)
        @given(st.integers(0, 10_000))
        async def test_shrinks(self, n: int) -> None:
            await anyio.sleep(0)
            assert n < 437  # the failing line

    return Body


class HypothesisTests(BackendTests):
    def test_each_example_runs_on_the_runner_in_a_fresh_copy_of_the_context(
        self,
    ) -> None:
        for scope in ("function", "class"):
            with self.subTest(loop_scope=scope):
                seen: list[tuple[str, bool, str]] = []
                case = self.make(examples_body(scope), seen=seen)
                result = run_classes(case)
                self.assertEqual(reported_texts(result), [])
                self.assertEqual(result.testsRun, 1)
                self.assertEqual(len(seen), 10)
                # never what an earlier example set; always what asyncSetUp set
                self.assertEqual(set(seen), {("set by asyncSetUp", True, self.backend)})

    def test_shrinking_reports_the_minimal_failing_example(self) -> None:
        body = shrink_body()
        result = run_classes(self.make(body))
        self.assertEqual(result.testsRun, 1)
        self.assertEqual(len(result.failures), 1, reported_texts(result))
        text = result.failures[0][1]
        self.assertRegex(text, r"(Falsifying example|Failing test case)")
        self.assertRegex(text, r"\bn=437\b")
        # the traceback shows the failing line, and none of this package's frames
        traceback_part = text.split("Falsifying example")[0].split("Failing test")[0]
        lines, first = inspect.getsourcelines(body.test_shrinks)
        line = first + next(i for i, s in enumerate(lines) if "# the failing line" in s)
        self.assertIn(f'File "{THIS_FILE}", line {line}, in test_shrinks', text)
        if sys.version_info < (3, 11):
            # 3.10 can't re-raise an edited traceback without the re-raising
            # frame (anyio_unittest/_examples.py, documented there): only that one
            example_frame = os.path.join(PACKAGE_DIR, "_examples.py")
            traceback_part = traceback_part.replace(example_frame, "")
        self.assertNotIn(PACKAGE_DIR, traceback_part)

    def test_a_task_an_example_leaves_running_fails_the_test(self) -> None:
        class Body:
            loop_scope = "class"

            @classmethod
            async def asyncSetUpClass(cls) -> None:
                cls.group = await cls.enterAsyncClassContext(anyio.create_task_group())
                cls.addAsyncClassCleanup(cancel, cls.group.cancel_scope)

            @settings(database=None, deadline=None, max_examples=3)
            @given(st.integers())
            async def test_leaks(self, n: int) -> None:
                self.group.start_soon(anyio.sleep, 10, name="leaked by an example")

        result = run_classes(self.make(Body))
        self.assertEqual(len(result.failures), 1, reported_texts(result))
        self.assertIn("'leaked by an example'", result.failures[0][1])


async def cancel(scope: anyio.CancelScope) -> None:
    scope.cancel()


class TestHypothesisAsyncio(HypothesisTests, unittest.TestCase):
    backend = "asyncio"


class TestHypothesisTrio(HypothesisTests, unittest.TestCase):
    backend = "trio"


class TestGeneratedClasses(unittest.TestCase):
    def test_no_differing_executors_health_check(self) -> None:
        # Hypothesis fails a @given method run from instances of two classes
        # when both classes hold that very method: each generated class must
        # hold a copy of its own
        seen: list[tuple[str, bool, str]] = []

        class Body(examples_body("class"), AnyIOTestCase):  # type: ignore[misc]
            anyio_backends = ["asyncio", "trio"]

        Body.seen = seen
        generated = Body.anyio_backend_classes
        self.assertEqual(sorted(generated), ["asyncio", "trio"])
        result = run_classes(*generated.values())
        self.assertEqual(reported_texts(result), [])
        self.assertEqual(result.testsRun, 2)
        self.assertEqual({library for _, _, library in seen}, {"asyncio", "trio"}, seen)
        self.assertEqual(len(seen), 20)


class TestOptional(unittest.TestCase):
    def test_the_package_works_without_hypothesis(self) -> None:
        code = (
            "import sys, unittest\n"
            "sys.modules['hypothesis'] = None  # import hypothesis fails\n"
            "import anyio_unittest\n"
            "class T(anyio_unittest.AnyIOTestCase):\n"
            "    anyio_backends = ['asyncio', 'trio']\n"
            "    async def test_it(self):\n"
            "        pass\n"
            "suite = unittest.TestSuite(\n"
            "    unittest.defaultTestLoader.loadTestsFromTestCase(c)\n"
            "    for c in T.anyio_backend_classes.values()\n"
            ")\n"
            "result = unittest.TextTestRunner().run(suite)\n"
            "assert sys.modules['hypothesis'] is None\n"
            "sys.exit(not result.wasSuccessful())\n"
        )
        outcome = run(["-c", code], cwd=os.path.dirname(THIS_FILE))
        self.assertEqual(outcome.returncode, 0, outcome.output)
        self.assertIn("Ran 2 tests", outcome.output)


if __name__ == "__main__":
    unittest.main()
