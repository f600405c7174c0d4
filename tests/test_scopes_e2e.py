"""Module and session scopes end to end: a written suite run by real runners.

The suite below has three modules. ``test_a_hooks`` uses ``loop_scope =
"module"`` with async module hooks, module cleanups and a module context, on
asyncio, trio and asyncio with other options, plus two classes whose narrower
scope can't honour its module hooks. ``test_b_session`` and ``test_c_session``
share session runners, with a function-scoped class in between and a trio
class asking for a ``MockClock`` while the session's trio run is open. Every
hook logs what it sees, and ``Backend.open_runner`` is wrapped to log every
runner opened and closed; each test below checks one part of that log, for
``python -m unittest`` and for pytest (with the package's plugin, as installed).
"""

from __future__ import annotations

import os
import re
import unittest
from collections import Counter
from typing import ClassVar

from tests._support import (
    ROOT,
    Outcome,
    entry_point_folder,
    run,
    run_pytest,
    run_unittest,
    write_suite,
)

LOG = '''
"""Log hook events and runners opened/closed, one line each, to $SCOPES_LOG."""
import contextvars
import itertools
import os

import sniffio

from anyio_unittest import _backends

var = contextvars.ContextVar("var", default="-")
_loops = []


def log(*words):
    with open(os.environ["SCOPES_LOG"], "a") as f:
        f.write(" ".join(map(str, words)) + "\\n")


def lib():
    return sniffio.current_async_library()


def loop():
    """L<n>: the loop or trio run this code runs on, numbered as first seen."""
    if lib() == "trio":
        import trio

        current = trio.lowlevel.current_root_task()
    else:
        import asyncio

        current = asyncio.get_running_loop()
    for number, known in enumerate(_loops, 1):
        if known is current:
            return f"L{number}"
    _loops.append(current)  # kept alive: ids are never reused
    return f"L{len(_loops)}"


def where():
    return f"var={var.get()} {loop()}"


if not hasattr(_backends.Backend.open_runner, "logged"):
    _numbers = itertools.count(1)
    _open_runner = _backends.Backend.open_runner

    def open_runner(self, owner):
        runner = _open_runner(self, owner)
        number = f"R{next(_numbers)}"
        log("open", number, owner.replace(" ", "_"))
        close = runner.close

        def logged_close():
            log("close", number)
            close()

        runner.close = logged_close
        return runner

    open_runner.logged = True
    _backends.Backend.open_runner = open_runner
'''

TEST_A_HOOKS = """
import anyio

from _log import lib, log, var, where
from anyio_unittest import AnyIOTestCase, addAsyncModuleCleanup, enterAsyncModuleContext


class Resource:
    def __init__(self, name):
        self.name = name

    async def __aenter__(self):
        await anyio.sleep(0)
        log("enter", self.name, lib(), where())
        return self

    async def __aexit__(self, *exc_info):
        await anyio.sleep(0)
        log("exit", self.name, lib(), where())


async def cleanup(name):
    await anyio.sleep(0)
    log("cleanup", name, lib(), where())


def setUpModule():
    log("setUpModule")


def tearDownModule():
    log("tearDownModule")


async def asyncSetUpModule():
    log("asyncSetUpModule", lib(), where())
    var.set("module")
    await enterAsyncModuleContext(Resource("module-cm"))
    addAsyncModuleCleanup(cleanup, "module-cleanup")


async def asyncTearDownModule():
    await anyio.sleep(0)
    log("asyncTearDownModule", lib(), where())


class First(AnyIOTestCase):
    anyio_backends = ["asyncio", "trio"]
    loop_scope = "module"

    @classmethod
    async def asyncSetUpClass(cls):
        log("asyncSetUpClass", cls.__name__, where())
        var.set(cls.__name__)
        addAsyncModuleCleanup(cleanup, "from-" + cls.__name__)

    async def test_a(self):
        log("test", self.id().split(".", 1)[1], where())
        var.set("test_a")

    async def test_b(self):
        log("test", self.id().split(".", 1)[1], where())


class Narrow(AnyIOTestCase):
    loop_scope = "class"

    async def test_x(self):
        log("test", self.id().split(".", 1)[1], where())


class NarrowPerTest(AnyIOTestCase):
    async def test_x(self):
        log("test", self.id().split(".", 1)[1], where())


class Second(AnyIOTestCase):
    anyio_backends = ["asyncio", "trio"]
    loop_scope = "module"

    @classmethod
    async def asyncSetUpClass(cls):
        log("asyncSetUpClass", cls.__name__, where())
        var.set(cls.__name__)
        addAsyncModuleCleanup(cleanup, "from-" + cls.__name__)

    async def test_c(self):
        log("test", self.id().split(".", 1)[1], where())


class Third(AnyIOTestCase):
    anyio_backend = ("asyncio", {"debug": True})
    loop_scope = "module"

    async def test_d(self):
        log("test", self.id().split(".", 1)[1], where())
"""

TEST_B_SESSION = """
from _log import log, var, where
from anyio_unittest import AnyIOTestCase


class Session(AnyIOTestCase):
    anyio_backends = ["asyncio", "trio"]
    loop_scope = "session"

    @classmethod
    async def asyncSetUpClass(cls):
        log("asyncSetUpClass", cls.__name__, where())
        var.set(cls.__name__)

    async def test_1(self):
        log("test", self.id().split(".", 1)[1], where())
        var.set("test_1")

    async def test_2(self):
        log("test", self.id().split(".", 1)[1], where())


class Solo(AnyIOTestCase):
    anyio_backends = ["asyncio", "trio"]

    async def test_1(self):
        log("test", self.id().split(".", 1)[1], where())

    async def test_2(self):
        log("test", self.id().split(".", 1)[1], where())
"""

TEST_C_SESSION = """
import trio.testing

from _log import log, var, where
from anyio_unittest import AnyIOTestCase


class Clocked(AnyIOTestCase):
    anyio_backend = ("trio", {"clock": trio.testing.MockClock()})
    loop_scope = "class"

    async def test_x(self):
        log("test", self.id().split(".", 1)[1], where())


class SessionTwo(AnyIOTestCase):
    anyio_backends = ["asyncio", "trio"]
    loop_scope = "session"

    @classmethod
    async def asyncSetUpClass(cls):
        log("asyncSetUpClass", cls.__name__, where())

    async def test_1(self):
        log("test", self.id().split(".", 1)[1], where())
"""

TEST_D_BROKEN = """
from _log import lib, log, where
from anyio_unittest import AnyIOTestCase, addAsyncModuleCleanup


async def cleanup(name):
    log("cleanup", name, lib(), where())


async def asyncSetUpModule():
    log("asyncSetUpModule", lib(), where())
    addAsyncModuleCleanup(cleanup, "before-the-error")
    raise OSError("no database")


class Broken1(AnyIOTestCase):
    loop_scope = "module"

    async def test_x(self):
        log("test", self.id().split(".", 1)[1], where())


class Broken2(AnyIOTestCase):
    loop_scope = "module"

    async def test_y(self):
        log("test", self.id().split(".", 1)[1], where())
"""

ALONE = '''
"""Run one test of a module-scoped class with a bare TestCase.run()."""
import unittest

import test_a_hooks

result = unittest.TestResult()
test_a_hooks.First_trio("test_a").run(result)
test_a_hooks.First_trio("test_b").run(result)
print("RESULT", result.testsRun, len(result.errors), len(result.failures))
for test, text in result.errors + result.failures:
    print(text)
'''

SUITE = {
    "_log.py": LOG,
    "test_a_hooks.py": TEST_A_HOOKS,
    "test_b_session.py": TEST_B_SESSION,
    "test_c_session.py": TEST_C_SESSION,
    "test_d_broken.py": TEST_D_BROKEN,
    "alone.py": ALONE,
}

#: a module's sync and async hooks, per backend runner, in order
MODULE_A = {
    "asyncio": [
        "open R1 module_runner_of_test_a_hooks_(asyncio)",
        "asyncSetUpModule asyncio var=- L1",
        "enter module-cm asyncio var=module L1",
        "asyncSetUpClass First_asyncio var=module L1",
        "test First_asyncio.test_a var=First_asyncio L1",
        "test First_asyncio.test_b var=First_asyncio L1",
        "asyncSetUpClass Second_asyncio var=module L1",
        "test Second_asyncio.test_c var=Second_asyncio L1",
        "tearDownModule",
        "asyncTearDownModule asyncio var=module L1",
        # one LIFO stack: what the classes added, then what asyncSetUpModule did
        "cleanup from-Second_asyncio asyncio var=module L1",
        "cleanup from-First_asyncio asyncio var=module L1",
        "cleanup module-cleanup asyncio var=module L1",
        "exit module-cm asyncio var=module L1",
        "close R1",
    ],
    "trio": [
        "open R2 module_runner_of_test_a_hooks_(trio)",
        "asyncSetUpModule trio var=- L2",
        "enter module-cm trio var=module L2",
        "asyncSetUpClass First_trio var=module L2",
        "test First_trio.test_a var=First_trio L2",
        "test First_trio.test_b var=First_trio L2",
        "asyncSetUpClass Second_trio var=module L2",
        "test Second_trio.test_c var=Second_trio L2",
        "tearDownModule",
        "asyncTearDownModule trio var=module L2",
        "cleanup from-Second_trio trio var=module L2",
        "cleanup from-First_trio trio var=module L2",
        "cleanup module-cleanup trio var=module L2",
        "exit module-cm trio var=module L2",
        "close R2",
    ],
    # other options, another runner: the module hooks run once on each
    "debug": [
        "open R3 module_runner_of_test_a_hooks_(asyncio_debug)",
        "asyncSetUpModule asyncio var=- L3",
        "enter module-cm asyncio var=module L3",
        "test Third.test_d var=module L3",
        "tearDownModule",
        "asyncTearDownModule asyncio var=module L3",
        "cleanup module-cleanup asyncio var=module L3",
        "exit module-cm asyncio var=module L3",
        "close R3",
    ],
}

#: session runners: R4 (asyncio) and R5 (trio); function scope in between
SESSION = [
    "open R4 session_runner_(asyncio)_of_test_b_session.Session_asyncio",
    "asyncSetUpClass Session_asyncio var=- L4",
    "test Session_asyncio.test_1 var=Session_asyncio L4",
    "test Session_asyncio.test_2 var=Session_asyncio L4",  # not test_1's
    "open R5 session_runner_(trio)_of_test_b_session.Session_trio",
    "asyncSetUpClass Session_trio var=- L5",
    "test Session_trio.test_1 var=Session_trio L5",
    "test Session_trio.test_2 var=Session_trio L5",
    "open R6 test_test_b_session.Solo_asyncio.test_1",
    "test Solo_asyncio.test_1 var=- L6",
    "close R6",
    "open R7 test_test_b_session.Solo_asyncio.test_2",
    "test Solo_asyncio.test_2 var=- L7",
    "close R7",
    # trio allows one run per thread: while the session's is open, a
    # function-scoped trio test runs inside it (in a task and context of its own)
    "open R8 test_test_b_session.Solo_trio.test_1",
    "test Solo_trio.test_1 var=- L5",
    "close R8",
    "open R9 test_test_b_session.Solo_trio.test_2",
    "test Solo_trio.test_2 var=- L5",
    "close R9",
    # another module: the same session runners, and nothing of Session's context
    "asyncSetUpClass SessionTwo_asyncio var=- L4",
    "test SessionTwo_asyncio.test_1 var=- L4",
    "asyncSetUpClass SessionTwo_trio var=- L5",
    "test SessionTwo_trio.test_1 var=- L5",
]


#: text that means something was left open or broken at the end
BAD_OUTPUT = (
    "ResourceWarning",
    "nclosed",
    "Task was destroyed",
    "Exception ignored",
    "was never awaited",
    "INTERNALERROR",
)


class Run:
    def __init__(self, outcome: Outcome, log: list[str]) -> None:
        self.outcome = outcome
        self.log = log

    def __repr__(self) -> str:
        return (
            f"<Run rc={self.outcome.returncode}>\n"
            + "\n".join(self.log)
            + "\n--- output ---\n"
            + self.outcome.output[-4000:]
        )


class TestModuleAndSessionScopes(unittest.TestCase):
    runs: ClassVar[dict[str, Run]]

    @classmethod
    def setUpClass(cls) -> None:
        env = {
            "PYTHONDEVMODE": "1",
            "PYTHONPATH": os.pathsep.join(
                [
                    str(ROOT),
                    str(entry_point_folder()),
                    *filter(None, [os.environ.get("PYTHONPATH")]),
                ]
            ),
        }
        cls.runs = {}
        jobs = {
            "unittest": lambda folder, env: run_unittest(folder, env=env),
            "pytest": lambda folder, env: run_pytest(
                folder, "-p", "no:asyncio", "-p", "no:hypothesispytest", env=env
            ),
            "alone": lambda folder, env: run(["alone.py"], folder, env),
        }
        for name, job in jobs.items():
            folder = write_suite(SUITE)
            log = folder / "scopes.log"
            outcome = job(folder, {**env, "SCOPES_LOG": str(log)})
            lines = log.read_text().splitlines() if log.exists() else []
            cls.runs[name] = Run(outcome, lines)

    def each_runner(self) -> list[tuple[str, Run]]:
        return [(name, self.runs[name]) for name in ("unittest", "pytest")]

    def test_counts_and_clean_output(self) -> None:
        expected = {
            # test_d_broken: one setUpModule error under unittest; under
            # pytest, an error at the set-up of each of its two tests
            "unittest": {"ran": 17, "errors": 4},
            "pytest": {"passed": 17, "error": 5},
        }
        for name, run_ in self.each_runner():
            with self.subTest(runner=name):
                self.assertEqual(run_.outcome.counts, expected[name], run_)
                for bad in BAD_OUTPUT:
                    self.assertNotIn(bad, run_.outcome.output, run_)

    def test_module_scope_hooks_and_sharing(self) -> None:
        for name, run_ in self.each_runner():
            self.assertEqual(run_.log[:1], ["setUpModule"], run_)
            for kind, expected in MODULE_A.items():
                with self.subTest(runner=name, backend=kind):
                    runner = expected[0].split()[1]
                    loop = expected[1].split()[-1]
                    mine = [
                        line
                        for line in run_.log
                        if line.endswith(f" {loop}")
                        or line.split()[:2] in (["open", runner], ["close", runner])
                        or line == "tearDownModule"
                    ]
                    self.assertEqual(mine, expected, run_)
                    # closed at the module's end, before the next module starts
                    self.assertLess(
                        run_.log.index(f"close {runner}"),
                        run_.log.index(SESSION[0]),
                        run_,
                    )

    def test_session_scope_sharing_and_layered_context(self) -> None:
        for name, run_ in self.each_runner():
            with self.subTest(runner=name):
                mine = [
                    line
                    for line in run_.log
                    if re.search(r" L[4-7]$", line)
                    or re.match(r"(open|close) R[4-9]\b", line)
                ]
                self.assertEqual(mine[:-2], SESSION, run_)
                # the session runners close once, at the very end
                self.assertEqual(sorted(mine[-2:]), ["close R4", "close R5"], run_)
                self.assertEqual(run_.log[-2:], mine[-2:], run_)

    def test_narrower_scope_under_module_hooks_is_an_error(self) -> None:
        for name, run_ in self.each_runner():
            with self.subTest(runner=name):
                output = run_.outcome.output
                for cls, scope in (
                    ("Narrow", "'class'"),
                    ("NarrowPerTest", "'function'"),
                ):
                    self.assertRegex(
                        output,
                        rf"ConfigurationError: test_a_hooks defines asyncSetUpModule"
                        rf"[^\n]*{cls} has loop_scope = {scope}",
                        run_,
                    )
                self.assertFalse([line for line in run_.log if "Narrow" in line], run_)

    def test_trio_options_conflict_with_the_open_session_run(self) -> None:
        for name, run_ in self.each_runner():
            with self.subTest(runner=name):
                match = re.search(r"RunnerConflictError: ([^\n]*)", run_.outcome.output)
                self.assertIsNotNone(match, run_)
                assert match is not None
                message = match.group(1)
                for needle in (
                    "test_c_session.Clocked",
                    "MockClock",
                    "session runner (trio) of test_b_session.Session_trio",
                ):
                    self.assertIn(needle, message)
                self.assertNotIn(
                    "Attempted to call run() from inside a run()", run_.outcome.output
                )
                self.assertFalse([line for line in run_.log if "Clocked" in line], run_)

    def test_error_in_async_setup_module(self) -> None:
        for name, run_ in self.each_runner():
            with self.subTest(runner=name):
                # L6 and L7 were Solo_asyncio's loops: this is the eighth
                mine = [line for line in run_.log if re.search(r"\bR10\b| L8$", line)]
                self.assertEqual(
                    mine,
                    [
                        "open R10 module_runner_of_test_d_broken_(asyncio)",
                        "asyncSetUpModule asyncio var=- L8",
                        # no test ran; the module's cleanups did, then it closed
                        "cleanup before-the-error asyncio var=- L8",
                        "close R10",
                    ],
                    run_,
                )
                output = run_.outcome.output
                # the module's set-up fails, as unittest reports a failing
                # setUpModule: its classes don't run
                if name == "unittest":
                    self.assertRegex(
                        output,
                        r"ERROR: setUpModule \(test_d_broken\)\n-+\n"
                        r"(.*\n)*OSError: no database\n",
                    )
                    self.assertNotIn("test_d_broken.Broken", output)
                else:
                    for test in ("Broken1::test_x", "Broken2::test_y"):
                        self.assertIn(
                            f"ERROR test_d_broken.py::{test} - OSError: no database",
                            output,
                        )
                self.assertNotIn("ConfigurationError: asyncSetUpModule", output)

    def test_every_runner_closed_exactly_once(self) -> None:
        for name, run_ in self.each_runner():
            with self.subTest(runner=name):
                opened = [x.split()[1] for x in run_.log if x.startswith("open ")]
                closed = Counter(
                    x.split()[1] for x in run_.log if x.startswith("close ")
                )
                self.assertEqual(opened, [f"R{n}" for n in range(1, 11)], run_)
                self.assertEqual(closed, Counter(opened), run_)

    def test_a_module_scoped_test_run_alone(self) -> None:
        run_ = self.runs["alone"]
        self.assertIn("RESULT 2 0 0", run_.outcome.output, run_)
        once = [
            "open R1 module_runner_of_test_a_hooks_(trio)",
            "asyncSetUpModule trio var=- L1",
            "enter module-cm trio var=module L1",
            "asyncSetUpClass First_trio var=module L1",
            "test First_trio.test_a var=First_trio L1",
            "asyncTearDownModule trio var=module L1",
            "cleanup from-First_trio trio var=module L1",
            "cleanup module-cleanup trio var=module L1",
            "exit module-cm trio var=module L1",
            "close R1",
        ]
        second = [
            line.replace("R1", "R2").replace("L1", "L2").replace(".test_a", ".test_b")
            for line in once
        ]
        self.assertEqual(run_.log, once + second, run_)


NESTED = {
    "test_nested.py": """
        import io
        import os
        import unittest

        import anyio
        import anyio_unittest
        from anyio_unittest import AnyIOTestCase


        async def asyncTearDownModule():
            print("MODULE TEARDOWN", flush=True)


        class Outer(AnyIOTestCase):
            anyio_backend = os.environ["BACKEND"]
            loop_scope = os.environ["SCOPE"]

            async def test_1_before(self):
                await anyio.sleep(0)

            def test_2_runs_a_nested_suite(self):
                class Inner(unittest.TestCase):
                    def test_inner(self):
                        pass

                loader = unittest.TestLoader()
                suite = loader.loadTestsFromTestCase(Inner)
                result = unittest.TextTestRunner(stream=io.StringIO()).run(suite)
                self.assertTrue(result.wasSuccessful())

            async def test_3_after(self):
                await anyio.sleep(0)


        class Later(AnyIOTestCase):
            anyio_backend = os.environ["BACKEND"]
            loop_scope = os.environ["SCOPE"]

            async def test_4_later_class(self):
                await anyio.sleep(0)
    """
}


class TestNestedRun(unittest.TestCase):
    """A unittest run inside a test (a test of a test runner, say) runs
    unittest's module cleanups as it ends: one list for the process, which
    holds the end of the outer module's runner too. That runner must go on."""

    def test_a_nested_run_leaves_the_module_runner_open(self) -> None:
        folder = write_suite(NESTED)
        for backend in ("asyncio", "trio"):
            for scope in ("module", "session"):
                with self.subTest(backend=backend, scope=scope):
                    env = {"BACKEND": backend, "SCOPE": scope}
                    outcome = run_unittest(folder, "test_nested", env=env)
                    self.assertEqual(outcome.counts, {"ran": 4}, outcome.output)
                    # the module still ends, once, after its last class
                    self.assertEqual(outcome.output.count("MODULE TEARDOWN"), 1)


class TestModuleSetUpThroughAStarImport(unittest.TestCase):
    """A module that star-imports another's module-scoped base class gets that
    module's setUpModule with it: it is replaced by one for this module."""

    def test_a_failing_async_set_up_module_is_this_module_s_error(self) -> None:
        folder = write_suite(
            {
                "helpers_base.py": """
                    from anyio_unittest import AnyIOTestCase


                    class SharedBase(AnyIOTestCase):
                        loop_scope = "module"
                """,
                "test_star.py": """
                    from helpers_base import *

                    from anyio_unittest import AnyIOTestCase


                    async def asyncSetUpModule():
                        raise RuntimeError("module set-up failed")


                    class A(AnyIOTestCase):
                        loop_scope = "module"

                        async def test_a(self):
                            pass
                """,
            }
        )
        outcome = run_unittest(folder, "test_star")
        self.assertIn("ERROR: setUpModule (test_star)", outcome.output, outcome)
        self.assertEqual(outcome.count("errors"), 1, outcome)
        self.assertEqual(outcome.count("ran"), 0, outcome)
