"""A test that does not end when its time limit cancels it, or leaves a thread
running: the run goes on.

Each suite runs under ``python -m unittest`` in a child process (a trio run left
behind keeps its thread from starting another one): the child must end in
seconds, the stuck test fail with where it is stuck, and what comes after it get
what the documentation promises (on asyncio, a fresh runner for later classes;
on trio, an error naming the stuck test, since trio allows one run per thread).
"""

from __future__ import annotations

import re
import time
import unittest
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import ClassVar

from ._support import Outcome, run_unittest, write_suite

#: how long a child may take, at most, for a suite of a few stuck tests (each
#: costs its limit plus the grace period, about 1.5 s)
BOUND = 20.0

SUITE = {
    "test_stuck.py": """
        import asyncio
        import os
        import threading
        import time

        import anyio
        import anyio_unittest
        from anyio_unittest import AnyIOTestCase

        BACKEND = os.environ["BACKEND"]
        if BACKEND == "uvloop":
            BACKEND = ("asyncio", {"use_uvloop": True})
        SCOPE = os.environ["SCOPE"]
        KIND = os.environ["KIND"]


        async def deaf():
            while True:
                try:
                    await anyio.sleep(10)  # the deaf line
                except anyio.get_cancelled_exc_class():
                    pass


        async def shielded():
            with anyio.CancelScope(shield=True):
                await anyio.sleep_forever()  # the shielded line


        class A(AnyIOTestCase):
            anyio_backend = BACKEND
            loop_scope = SCOPE
            timeout = 0.5

            async def test_1_stuck(self):
                await (deaf() if KIND == "deaf" else shielded())

            async def test_2_same_class(self):
                await anyio.sleep(0)


        class B(AnyIOTestCase):
            anyio_backend = BACKEND
            loop_scope = SCOPE

            async def test_3_later_class(self):
                await anyio.sleep(0)
    """,
    "test_stuck_class_step.py": """
        import os

        import anyio
        from anyio_unittest import AnyIOTestCase

        BACKEND = os.environ["BACKEND"]


        class A(AnyIOTestCase):
            anyio_backend = BACKEND
            loop_scope = "class"
            class_timeout = 0.5

            @classmethod
            async def asyncSetUpClass(cls):
                with anyio.CancelScope(shield=True):
                    await anyio.sleep_forever()  # the class's stuck line

            async def test_1(self):
                pass


        class B(AnyIOTestCase):
            anyio_backend = BACKEND
            loop_scope = "class"

            async def test_2_later_class(self):
                await anyio.sleep(0)
    """,
    "test_threads.py": """
        import asyncio
        import os
        import time

        import anyio
        from anyio_unittest import AnyIOTestCase

        BACKEND = os.environ["BACKEND"]
        if BACKEND == "uvloop":
            BACKEND = ("asyncio", {"use_uvloop": True})


        class A(AnyIOTestCase):
            anyio_backend = BACKEND
            loop_scope = os.environ["SCOPE"]
            timeout = 1

            async def test_1_waits_on_a_thread(self):
                if BACKEND == "trio":
                    # anyio's default: the task waits for the thread to return
                    await anyio.to_thread.run_sync(time.sleep, 30)
                else:
                    loop = asyncio.get_running_loop()
                    await loop.run_in_executor(None, time.sleep, 30)

            async def test_2_next(self):
                await anyio.sleep(0)
    """,
}


@dataclass
class Child:
    outcome: Outcome
    elapsed: float

    def report(self, test: str) -> str:
        """What unittest printed for *test* ("FAIL: test_x ..." to the next)."""
        match = re.search(
            rf"^(?:FAIL|ERROR): {test} \(.*?(?=^=+$|^-+\nRan )",
            self.outcome.output,
            re.MULTILINE | re.DOTALL,
        )
        return match.group() if match else ""


def child(module: str, backend: str, scope: str, kind: str = "") -> Child:
    folder = write_suite(SUITE)
    env = {"BACKEND": backend, "SCOPE": scope, "KIND": kind}
    start = time.monotonic()
    outcome = run_unittest(folder, module, env=env, timeout=BOUND * 2)
    return Child(outcome, time.monotonic() - start)


RUNS = {
    f"{module}-{backend}-{scope}-{kind}": (module, backend, scope, kind)
    for module, backend, scope, kind in [
        *[
            ("test_stuck", backend, scope, "deaf")
            for backend in ("asyncio", "trio")
            for scope in ("function", "class", "module")
        ],
        ("test_stuck", "asyncio", "class", "shielded"),
        ("test_stuck", "uvloop", "module", "shielded"),
        ("test_stuck", "trio", "class", "shielded"),
        ("test_stuck_class_step", "asyncio", "class", ""),
        ("test_stuck_class_step", "trio", "class", ""),
        *[
            ("test_threads", backend, scope, "")
            for backend in ("asyncio", "uvloop", "trio")
            for scope in ("function", "class")
        ],
    ]
}


class TestStuck(unittest.TestCase):
    children: ClassVar[dict[str, Child | BaseException]]

    @classmethod
    def setUpClass(cls) -> None:
        def one(args: tuple[str, str, str, str]) -> Child | BaseException:
            try:
                return child(*args)
            except BaseException as exc:  # reported by the test that reads it
                return exc

        with ThreadPoolExecutor(4) as pool:
            cls.children = dict(zip(RUNS, pool.map(one, RUNS.values()), strict=True))

    def get(self, module: str, backend: str, scope: str, kind: str = "") -> Child:
        found = self.children[f"{module}-{backend}-{scope}-{kind}"]
        if isinstance(found, BaseException):
            raise found
        self.assertLess(found.elapsed, BOUND, found.outcome.output)
        return found

    def assert_stuck(self, found: Child, test: str, line: str) -> None:
        """*test* failed as stuck, naming where."""
        report = found.report(test)
        self.assertIn("timed out", report, found.outcome.output)
        self.assertIn("had not ended 1 s after its cancellation", report)
        self.assertIn("Its runner is left behind", report)
        self.assertIn(line, report)

    def test_a_test_deaf_to_its_cancellation(self) -> None:
        for backend in ("asyncio", "trio"):
            for scope in ("function", "class", "module"):
                with self.subTest(backend=backend, scope=scope):
                    found = self.get("test_stuck", backend, scope, "deaf")
                    self.assert_stuck(found, "test_1_stuck", "# the deaf line")
                    self.assert_what_follows(found, backend, scope)

    def test_a_test_in_a_shielded_wait(self) -> None:
        for backend, scope in [
            ("asyncio", "class"),
            ("uvloop", "module"),
            ("trio", "class"),
        ]:
            with self.subTest(backend=backend, scope=scope):
                found = self.get("test_stuck", backend, scope, "shielded")
                self.assert_stuck(found, "test_1_stuck", "# the shielded line")
                self.assert_what_follows(found, backend, scope)

    def assert_what_follows(self, found: Child, backend: str, scope: str) -> None:
        output = found.outcome.output
        same = found.report("test_2_same_class")
        later = found.report("test_3_later_class")
        if backend == "trio":
            # one trio run per thread, and this one can't end: what needs one
            # fails at once, naming the stuck test
            self.assertIn("RunnerLeftBehind", same, output)
            self.assertIn("test_stuck.A.test_1_stuck did not end", same)
            if scope == "function":
                self.assertIn("trio allows one run per thread", same)
            # so does a later class, in its setUpClass or in its test
            self.assertRegex(
                output,
                r"ERROR: (setUpClass|test_3_later_class) .*\n-+\n.*trio allows "
                r"one run per thread",
            )
            self.assertEqual(found.outcome.count("failures"), 1, output)
            return
        self.assertEqual(later, "", output)  # a later class runs normally
        if scope == "function":
            self.assertEqual(same, "", output)  # so does the next test
            self.assertEqual(found.outcome.counts, {"ran": 3, "failures": 1})
        else:
            self.assertIn("RunnerLeftBehind", same, output)
            self.assertIn(
                "was left behind (test test_stuck.A.test_1_stuck did not end",
                same,
            )
            self.assertEqual(
                found.outcome.counts, {"ran": 3, "failures": 1, "errors": 1}
            )

    def test_a_class_step_deaf_to_its_cancellation(self) -> None:
        for backend in ("asyncio", "trio"):
            with self.subTest(backend=backend):
                found = self.get("test_stuck_class_step", backend, "class")
                output = found.outcome.output
                self.assertIn("exceeded class_timeout = 0.5 seconds", output)
                self.assertIn("had not ended 1 s after its cancellation", output)
                self.assertIn("# the class's stuck line", output)
                later = found.report("test_2_later_class")
                if backend == "trio":
                    self.assertIn("trio allows one run per thread", output)
                else:
                    self.assertEqual(later, "", output)
                    self.assertIn("Ran 1 test", output)

    def test_a_thread_the_test_waits_on(self) -> None:
        for backend in ("asyncio", "uvloop", "trio"):
            for scope in ("function", "class"):
                with self.subTest(backend=backend, scope=scope):
                    # the child ends in seconds, though the thread sleeps 30
                    found = self.get("test_threads", backend, scope)
                    report = found.report("test_1_waits_on_a_thread")
                    output = found.outcome.output
                    self.assertIn("timed out", report, output)
                    if backend == "trio":
                        # the task waits for the thread: stuck, and the thread
                        # it waits on is shown
                        self.assertIn("had not ended 1 s after", report)
                        self.assertIn("The other threads:", report)
                        self.assertIn("time.sleep", report)
                    else:
                        # the wait is cancelled; the thread goes on, reported
                        # as a leftover of the test, and the next test runs
                        self.assertIn("left 1 worker thread(s) running", output)
                        self.assertIn("running time.sleep(30)", output)
                        self.assertEqual(found.report("test_2_next"), "", output)


if __name__ == "__main__":
    unittest.main()
