"""Ctrl-C for real: ``python -m unittest`` in a subprocess gets SIGINT at chosen
points, on asyncio and trio, with and without ``-c`` (``--catch``).

Each child prints a marker line when it reaches the point where it is to be
interrupted; the signal is sent only once that line has been read, never after
a blind sleep. Then the child must end within a second, and what it printed
tells which teardown steps ran and how the run stopped. The scenarios run
concurrently (each is mostly interpreter start-up) in ``setUpClass``; each test
checks one of them.
"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time
import unittest
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from ._support import PACKAGE_DIR, _env, write_suite

#: how long the child may take to end after the (last) signal
BOUND = 1.0
#: how long setUp sleeps under -c, where unittest's handler lets sync code finish
CATCH_SYNC_SLEEP = 0.3
#: how long a child may take to reach its marker (start-up on a busy machine)
START_UP = 30.0
#: children run at once: no more than the cores, or the time a signalled child
#: takes to end includes waiting for one (measured on 2 cores: with 4 at once,
#: up to 0.9 s against BOUND; with 2, up to 0.6 s, in the same total time)
AT_ONCE = min(
    4,
    len(os.sched_getaffinity(0))
    if hasattr(os, "sched_getaffinity")
    else (os.cpu_count() or 1),
)

SUITE = {
    "test_interrupt.py": """
        import os
        import time

        import anyio

        from anyio_unittest import AnyIOTestCase

        PHASE = os.environ["PHASE"]
        SCOPE = os.environ["SCOPE"]


        def mark(text):
            print(text, flush=True)


        class TestInterrupt(AnyIOTestCase):
            anyio_backend = os.environ["BACKEND"]
            loop_scope = SCOPE

            if SCOPE == "class":

                @classmethod
                async def asyncSetUpClass(cls):
                    async def class_cleanup():
                        mark("CLASS CLEANUP RAN")

                    cls.addAsyncClassCleanup(class_cleanup)
                    if PHASE == "asyncSetUpClass":
                        mark("WAITING")
                        await anyio.sleep(30)

            def setUp(self):
                self.addAsyncCleanup(self.cleanup)
                if PHASE == "setUp":
                    mark("WAITING")
                    # under -c a Ctrl-C in sync code lets it finish, as unittest
                    # does; without -c it raises at once
                    time.sleep(float(os.environ["SYNC_SLEEP"]))

            async def cleanup(self):
                mark("CLEANUP RAN")
                await anyio.sleep(0)
                mark("CLEANUP AWAITED")

            async def test_1(self):
                if PHASE in ("test", "second"):
                    mark("WAITING")
                    await anyio.sleep(30)

            async def asyncTearDown(self):
                mark("TEARDOWN RAN")
                if PHASE == "asyncTearDown":
                    mark("WAITING")
                    await anyio.sleep(30)
                if PHASE == "second":
                    with anyio.CancelScope(shield=True):
                        mark("WAITING AGAIN")
                        await anyio.sleep(30)

            async def test_2(self):
                mark("TEST 2 RAN")
    """
}


@dataclass
class Scenario:
    phase: str
    backend: str
    catch: bool
    scope: str = "class"

    @property
    def name(self) -> str:
        catch = "_catch" if self.catch else ""
        return f"{self.phase}_{self.scope}_{self.backend}{catch}"


@dataclass
class Ended:
    returncode: int
    stdout: list[str]
    stderr: str
    #: seconds from the last signal to the end of the process
    elapsed: float
    #: the markers read before each signal was sent
    before_signal: list[str]


def read_until(proc: subprocess.Popen[bytes], marker: str, buffer: bytearray) -> None:
    """Read the child's stdout into *buffer* until a line equal to *marker*."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + START_UP
    while marker.encode() not in buffer.splitlines():
        remaining = deadline - time.monotonic()
        ready, _, _ = select.select([fd], [], [], max(remaining, 0))
        if not ready:
            raise AssertionError(
                f"no {marker!r} within {START_UP} s: {bytes(buffer)!r}"
            )
        chunk = os.read(fd, 4096)
        if not chunk:
            raise AssertionError(f"ended before {marker!r}: {bytes(buffer)!r}")
        buffer += chunk


def interrupt(folder: Path, scenario: Scenario) -> Ended:
    args = [sys.executable, "-W", "error", "-m", "unittest", "-v"]
    if scenario.catch:
        args.append("-c")
    env = {
        "PHASE": scenario.phase,
        "BACKEND": scenario.backend,
        "SCOPE": scenario.scope,
        "SYNC_SLEEP": str(CATCH_SYNC_SLEEP) if scenario.catch else "30",
    }
    markers = (
        ["WAITING", "WAITING AGAIN"] if scenario.phase == "second" else ["WAITING"]
    )
    return send_signals([*args, "test_interrupt"], folder, env, markers)


def send_signals(
    args: list[str], folder: Path, env: dict[str, str], markers: list[str]
) -> Ended:
    """Run *args* in *folder*; send SIGINT as each of *markers* is printed."""
    proc = subprocess.Popen(
        args,
        cwd=folder,
        env=_env({**env, "PYTHONUNBUFFERED": "1"}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    buffer = bytearray()
    try:
        for marker in markers:
            read_until(proc, marker, buffer)
            sent = time.monotonic()
            proc.send_signal(signal.SIGINT)
        before = buffer.decode().splitlines()
        try:
            stdout, stderr = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(
                f"still running 10 s after the signal; stdout: {before} "
                f"{exc.stdout!r}\nstderr: {(exc.stderr or b'').decode()}"
            ) from None
        elapsed = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return Ended(
        proc.returncode,
        before + [line for line in stdout.decode().splitlines() if line],
        stderr.decode(),
        elapsed,
        before,
    )


SCENARIOS = [
    Scenario(phase, backend, catch, scope)
    for phase, scope in [
        ("test", "function"),
        ("test", "class"),
        ("setUp", "class"),
        ("asyncSetUpClass", "class"),
        ("asyncTearDown", "class"),
        ("second", "class"),
    ]
    for backend in ("asyncio", "trio")
    for catch in (False, True)
]


class TestCtrlC(unittest.TestCase):
    ended: ClassVar[dict[str, Ended | BaseException]]

    @classmethod
    def setUpClass(cls) -> None:
        folder = write_suite(SUITE)

        def one(scenario: Scenario) -> Ended | BaseException:
            try:
                return interrupt(folder, scenario)
            except BaseException as exc:  # reported by the test that reads it
                return exc

        with ThreadPoolExecutor(AT_ONCE) as pool:
            cls.ended = dict(
                zip(
                    [s.name for s in SCENARIOS],
                    pool.map(one, SCENARIOS),
                    strict=True,
                )
            )

    def outcome(self, name: str) -> Ended:
        ended = self.ended[name]
        if isinstance(ended, BaseException):
            raise ended
        return ended

    def check(
        self,
        phase: str,
        *,
        scope: str = "class",
        ran: list[str],
        not_ran: list[str],
        catch_ran: list[str] | None = None,
    ) -> None:
        """Both backends, without and with -c: ended within BOUND, ran the
        markers *ran* (after the signal, in this order) and none of *not_ran*."""
        for backend in ("asyncio", "trio"):
            for catch in (False, True):
                name = Scenario(phase, backend, catch, scope).name
                with self.subTest(name):
                    ended = self.outcome(name)
                    report = f"stdout: {ended.stdout}\nstderr: {ended.stderr}"
                    self.assertLess(ended.elapsed, BOUND, report)
                    after = ended.stdout[len(ended.before_signal) :]
                    expected = ran + (catch_ran or []) if catch else ran
                    if backend == "asyncio" and "CLEANUP RAN" in expected:
                        # trio runs the rest of an interrupted test's async code
                        # cancelled (documented): a cleanup's first await ends it
                        index = expected.index("CLEANUP RAN") + 1
                        expected = [
                            *expected[:index],
                            "CLEANUP AWAITED",
                            *expected[index:],
                        ]
                    self.assertEqual(
                        [line for line in after if line in ALL_MARKERS],
                        expected,
                        report,
                    )
                    for marker in not_ran:
                        self.assertNotIn(marker, ended.stdout, report)
                    if catch:
                        self.assert_graceful_stop(ended, report)
                    else:
                        self.assert_keyboard_interrupt(ended, report)

    def assert_graceful_stop(self, ended: Ended, report: str) -> None:
        """-c: the interrupted test (or class) errors, the run stops with a summary."""
        ran = re.search(r"\nRan ([01]) tests? in ", ended.stderr)
        if ran is None:
            self.fail(f"no 'Ran N tests' summary\n{report}")
        # from 3.12, when no test ran (an interrupted asyncSetUpClass), unittest
        # exits with 5 ("no tests") before it looks at the errors: its
        # TestProgram.runTests checks testsRun == 0 first
        no_test_ran = ran.group(1) == "0" and sys.version_info >= (3, 12)
        self.assertEqual(ended.returncode, 5 if no_test_ran else 1, report)
        self.assertIn("\nFAILED (errors=1)", ended.stderr, report)
        self.assertIn("Interrupted: interrupted by Ctrl-C", ended.stderr, report)
        self.assertNotIn("KeyboardInterrupt", ended.stderr, report)
        self.assertNotIn(PACKAGE_DIR, ended.stderr, report)

    def assert_keyboard_interrupt(
        self, ended: Ended, report: str, last_line: bool = True
    ) -> None:
        """Without -c: KeyboardInterrupt ends the process, as Python's own does."""
        self.assertEqual(ended.returncode, -signal.SIGINT, report)
        if last_line:
            last = ended.stderr.strip().splitlines()[-1]
            self.assertEqual(last, "KeyboardInterrupt", report)
        else:
            self.assertIn("\nKeyboardInterrupt\n", ended.stderr, report)
        self.assertNotIn("\nRan ", ended.stderr, report)
        self.assertNotIn("FirstInterrupt", ended.stderr, report)

    def test_while_awaiting_in_a_test(self) -> None:
        for scope in ("function", "class"):
            self.check(
                "test",
                scope=scope,
                ran=["TEARDOWN RAN", "CLEANUP RAN"],
                catch_ran=["CLASS CLEANUP RAN"] if scope == "class" else [],
                not_ran=["TEST 2 RAN"],
            )

    def test_while_awaiting_in_async_teardown(self) -> None:
        self.check(
            "asyncTearDown",
            ran=["CLEANUP RAN"],
            catch_ran=["CLASS CLEANUP RAN"],
            not_ran=["TEST 2 RAN"],
        )

    def test_while_awaiting_in_async_setup_class(self) -> None:
        # the class's teardown is its cleanups: they run, with and without -c
        self.check(
            "asyncSetUpClass",
            ran=["CLASS CLEANUP RAN"],
            not_ran=["TEARDOWN RAN", "TEST 2 RAN"],
        )

    def test_during_sync_setup(self) -> None:
        # without -c, KeyboardInterrupt is raised in time.sleep(): setUp fails,
        # so (as unittest does) no teardown, but the cleanups run
        for backend in ("asyncio", "trio"):
            name = Scenario("setUp", backend, False).name
            with self.subTest(name):
                ended = self.outcome(name)
                report = f"stdout: {ended.stdout}\nstderr: {ended.stderr}"
                self.assertLess(ended.elapsed, BOUND, report)
                after = ended.stdout[len(ended.before_signal) :]
                self.assertEqual(after, ["CLEANUP RAN", "CLEANUP AWAITED"], report)
                self.assert_keyboard_interrupt(ended, report)

    def test_during_sync_setup_with_catch(self) -> None:
        # with -c, as unittest's own handler: the sync code finishes, the run
        # stops after this test with a summary, and the next test never runs
        for backend in ("asyncio", "trio"):
            name = Scenario("setUp", backend, True).name
            with self.subTest(name):
                ended = self.outcome(name)
                report = f"stdout: {ended.stdout}\nstderr: {ended.stderr}"
                # the bound is for what follows the sleep the test lets finish
                self.assertLess(ended.elapsed, CATCH_SYNC_SLEEP + BOUND, report)
                after = ended.stdout[len(ended.before_signal) :]
                self.assertEqual(
                    after,
                    [
                        "TEARDOWN RAN",
                        "CLEANUP RAN",
                        "CLEANUP AWAITED",
                        "CLASS CLEANUP RAN",
                    ],
                    report,
                )
                self.assertEqual(ended.returncode, 0, report)
                self.assertIn("\nRan 1 test in ", ended.stderr, report)
                self.assertIn("\nOK", ended.stderr, report)

    def test_a_second_ctrl_c_ends_the_run_at_once(self) -> None:
        # the first one interrupts the test, the second one a teardown that
        # would sleep for 30 s (shielded from cancellation)
        for backend in ("asyncio", "trio"):
            for catch in (False, True):
                name = Scenario("second", backend, catch).name
                with self.subTest(name):
                    ended = self.outcome(name)
                    report = f"stdout: {ended.stdout}\nstderr: {ended.stderr}"
                    self.assertEqual(
                        ended.before_signal[-2:], ["TEARDOWN RAN", "WAITING AGAIN"]
                    )
                    self.assertLess(ended.elapsed, BOUND, report)
                    after = ended.stdout[len(ended.before_signal) :]
                    self.assertEqual(after, [], report)
                    # a trio run left in a shielded await is abandoned, and
                    # Python may report its coroutines as it exits
                    self.assert_keyboard_interrupt(
                        ended, report, last_line=backend == "asyncio"
                    )


INSIDE = {
    "test_inside.py": """
        import os
        import signal
        import threading
        import time

        import anyio

        from anyio_unittest import AnyIOTestCase


        def mark(text):
            print(text, flush=True)


        class TestInside(AnyIOTestCase):
            anyio_backend = os.environ["BACKEND"]

            async def test_second(self):
                with anyio.CancelScope(shield=True):
                    signal.raise_signal(signal.SIGINT)  # cancels the call
                    try:
                        signal.raise_signal(signal.SIGINT)  # the second
                    except KeyboardInterrupt:
                        mark("RAISED INSIDE THE TEST")
                        raise
                    mark("NOT RAISED INSIDE THE TEST")
                    await anyio.sleep(10)
                    mark("SLEPT THROUGH IT")

            async def test_third(self):
                signal.raise_signal(signal.SIGINT)
                signal.raise_signal(signal.SIGINT)
                third = threading.Timer(
                    0.2,
                    signal.pthread_kill,
                    (threading.main_thread().ident, signal.SIGINT),
                )
                third.start()
                try:
                    time.sleep(10)  # holds the thread: the loop can't raise
                except KeyboardInterrupt:
                    mark("THE THIRD ONE, IN PLACE")
                    raise
    """
}


class SecondCtrlCInsideAsyncCode(unittest.TestCase):
    """The race behind a rare hang of the "second" scenarios, made certain: the
    second Ctrl-C arrives while the test's own code runs (it raises the signal
    itself). The KeyboardInterrupt must come out of the runner on the host, not
    out of the test's code, which could catch it (or, in trio, crash the run
    while the host waits on). In a child process: a trio run left behind by a
    Ctrl-C keeps its thread from starting another one."""

    def run_inside(self, test: str, backend: str) -> tuple[list[str], str]:
        folder = write_suite(INSIDE)
        start = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-W", "error", "-m", "unittest", f"test_inside.{test}"],
            cwd=folder,
            env=_env({"BACKEND": backend, "PYTHONUNBUFFERED": "1"}),
            capture_output=True,
            text=True,
            timeout=60,
        )
        report = f"stdout: {proc.stdout}\nstderr: {proc.stderr}"
        self.assertLess(time.monotonic() - start, 8.0, report)
        self.assertEqual(proc.returncode, -signal.SIGINT, report)
        self.assertIn("KeyboardInterrupt", proc.stderr, report)
        return proc.stdout.split(), report

    def test_the_second_is_raised_on_the_host_not_in_the_test(self) -> None:
        for backend in ("asyncio", "trio"):
            with self.subTest(backend=backend):
                out, report = self.run_inside("TestInside.test_second", backend)
                self.assertEqual(" ".join(out), "NOT RAISED INSIDE THE TEST", report)

    def test_a_third_one_raises_in_code_that_holds_the_thread(self) -> None:
        # the loop can't run while a test blocks it, so the second Ctrl-C's
        # KeyboardInterrupt waits; a third one is raised where the code is
        for backend in ("asyncio", "trio"):
            with self.subTest(backend=backend):
                out, report = self.run_inside("TestInside.test_third", backend)
                self.assertEqual(" ".join(out), "THE THIRD ONE, IN PLACE", report)


OTHERS = {
    "test_due_module.py": """
        import os

        import anyio
        import anyio_unittest
        from anyio_unittest import AnyIOTestCase


        def mark(text):
            print(text, flush=True)


        async def asyncSetUpModule():
            anyio_unittest.addAsyncModuleCleanup(module_cleanup)


        async def asyncTearDownModule():
            mark("MODULE TEARDOWN")


        async def module_cleanup():
            mark("MODULE CLEANUP")


        class TestDue(AnyIOTestCase):
            anyio_backend = os.environ["BACKEND"]
            loop_scope = "module"

            async def test_1(self):
                mark("WAITING")
                await anyio.sleep(30)

            async def asyncTearDown(self):
                with anyio.CancelScope(shield=True):
                    mark("WAITING AGAIN")
                    await anyio.sleep_forever()
    """,
    "test_due_class.py": """
        import contextlib
        import os

        import anyio
        from anyio_unittest import AnyIOTestCase


        def mark(text):
            print(text, flush=True)


        @contextlib.asynccontextmanager
        async def resource():
            yield
            mark("CLASS CONTEXT EXITED")


        class TestDue(AnyIOTestCase):
            anyio_backend = os.environ["BACKEND"]
            loop_scope = "class"

            @classmethod
            async def asyncSetUpClass(cls):
                await cls.enterAsyncClassContext(resource())

            async def test_1(self):
                mark("WAITING")
                await anyio.sleep(30)

            async def asyncTearDown(self):
                with anyio.CancelScope(shield=True):
                    mark("WAITING AGAIN")
                    await anyio.sleep_forever()
    """,
    "test_deaf.py": """
        import os

        import anyio
        from anyio_unittest import AnyIOTestCase


        class TestDeaf(AnyIOTestCase):
            anyio_backend = os.environ["BACKEND"]
            loop_scope = os.environ["SCOPE"]

            async def test_1(self):
                print("WAITING", flush=True)
                seen = False
                while True:
                    try:
                        await anyio.sleep(10)
                    except anyio.get_cancelled_exc_class():
                        if not seen:
                            seen = True
                            print("CANCEL SEEN", flush=True)
    """,
    "test_receiver.py": """
        import os
        import signal

        import anyio
        from anyio_unittest import AnyIOTestCase


        def mark(text):
            print(text, flush=True)


        class TestReceiver(AnyIOTestCase):
            anyio_backend = os.environ["BACKEND"]
            loop_scope = "class"

            async def test_1_opens_a_receiver(self):
                with anyio.open_signal_receiver(signal.SIGINT):
                    await anyio.sleep(0)

            async def test_2_waits(self):
                self.addAsyncCleanup(self.cleanup)
                mark("WAITING")
                await anyio.sleep(30)

            async def asyncTearDown(self):
                mark("TEARDOWN RAN")

            async def cleanup(self):
                mark("CLEANUP RAN")
    """,
    "test_elsewhere.py": """
        import os
        import signal
        import threading

        import anyio
        from anyio_unittest import AnyIOTestCase


        def mark(text):
            print(text, flush=True)


        class TestElsewhere(AnyIOTestCase):
            anyio_backend = os.environ["BACKEND"]
            loop_scope = os.environ["SCOPE"]

            def setUp(self):
                # The main thread blocks SIGINT, so the signal lands in another
                # thread and never interrupts the main thread's wait in the
                # loop: as when it lands just before that wait begins.
                idle = threading.Event()
                threading.Thread(target=idle.wait, daemon=True).start()
                self.addCleanup(idle.set)
                signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
                self.addCleanup(
                    signal.pthread_sigmask, signal.SIG_UNBLOCK, {signal.SIGINT}
                )

            async def test_1(self):
                mark("WAITING")
                await anyio.sleep(30)

            async def asyncTearDown(self):
                mark("TEARDOWN RAN")
    """,
    "test_shield.py": """
        import os

        import anyio
        from anyio_unittest import AnyIOTestCase


        def mark(text):
            print(text, flush=True)


        class TestShield(AnyIOTestCase):
            anyio_backend = os.environ["BACKEND"]

            async def test_1(self):
                with anyio.CancelScope(shield=True):
                    mark("WAITING")
                    await anyio.sleep(0.5)
                    mark("SHIELD HELD")
                await anyio.sleep(30)
                mark("NOT CANCELLED")

            async def asyncTearDown(self):
                mark("TEARDOWN RAN")
    """,
}

UNITTEST = [sys.executable, "-W", "error", "-m", "unittest", "-v"]
PYTEST = [
    sys.executable,
    *["-W", "error", "-m", "pytest", "-q", "-s"],
    *["-p", "no:cacheprovider", "-p", "no:asyncio", "-p", "no:hypothesispytest"],
]


def _others() -> dict[str, tuple[list[str], dict[str, str], list[str]]]:
    """Each scenario of OTHERS: (command, environment, markers to signal at)."""
    runs: dict[str, tuple[list[str], dict[str, str], list[str]]] = {}
    for backend in ("asyncio", "trio"):
        env = {"BACKEND": backend}
        second = ["WAITING", "WAITING AGAIN"]
        for catch in ("", "-c"):
            command = [*UNITTEST, *filter(None, [catch])]
            runs[f"due module {backend} {catch}"] = (
                [*command, "test_due_module"],
                env,
                second,
            )
            runs[f"receiver {backend} {catch}"] = (
                [*command, "test_receiver"],
                env,
                ["WAITING"],
            )
        runs[f"due class pytest {backend}"] = (
            [*PYTEST, "test_due_class.py"],
            env,
            second,
        )
        for scope in ("function", "class"):
            runs[f"deaf {backend} {scope}"] = (
                [*UNITTEST, "test_deaf"],
                {**env, "SCOPE": scope},
                ["WAITING", "CANCEL SEEN"],
            )
        runs[f"shield {backend}"] = ([*UNITTEST, "test_shield"], env, ["WAITING"])
        for scope in ("function", "class"):
            runs[f"elsewhere {backend} {scope}"] = (
                [*UNITTEST, "test_elsewhere"],
                {**env, "SCOPE": scope},
                ["WAITING"],
            )
    return runs


class OtherCtrlCTests(unittest.TestCase):
    """Ctrl-C meets async work still due at class or module level, a test deaf
    to its cancellation, a test's own SIGINT receiver, and a shielded scope."""

    ended: ClassVar[dict[str, Ended | BaseException]]

    @classmethod
    def setUpClass(cls) -> None:
        folder = write_suite(OTHERS)
        runs = _others()

        def one(name: str) -> Ended | BaseException:
            try:
                return send_signals(*runs[name][:1], folder, *runs[name][1:])
            except BaseException as exc:  # reported by the test that reads it
                return exc

        with ThreadPoolExecutor(AT_ONCE) as pool:
            cls.ended = dict(zip(runs, pool.map(one, runs), strict=True))

    def outcome(self, name: str, bound: float = BOUND) -> tuple[Ended, str]:
        ended = self.ended[name]
        if isinstance(ended, BaseException):
            raise ended
        report = f"stdout: {ended.stdout}\nstderr: {ended.stderr}"
        self.assertLess(ended.elapsed, bound, report)
        return ended, report

    def test_a_second_ctrl_c_with_module_teardown_still_due(self) -> None:
        # the runner is left behind: its module teardown is skipped, not waited
        # for, and the run ends with the KeyboardInterrupt
        for backend in ("asyncio", "trio"):
            for catch in ("", "-c"):
                with self.subTest(backend=backend, catch=catch):
                    ended, report = self.outcome(f"due module {backend} {catch}")
                    self.assertEqual(ended.returncode, -signal.SIGINT, report)
                    after = ended.stdout[len(ended.before_signal) :]
                    self.assertEqual(after, [], report)
                    self.assertIn("\nKeyboardInterrupt\n", ended.stderr, report)

    def test_a_second_ctrl_c_under_pytest_keeps_its_summary(self) -> None:
        for backend in ("asyncio", "trio"):
            with self.subTest(backend=backend):
                # pytest's own way out (teardown, summary) takes its time
                ended, report = self.outcome(f"due class pytest {backend}", 5.0)
                self.assertEqual(ended.returncode, 2, report)  # interrupted
                self.assertRegex(ended.stdout[-1], r" in [\d.]+s", report)
                self.assertIn("KeyboardInterrupt", "\n".join(ended.stdout), report)
                self.assertNotIn("Traceback", ended.stderr, report)

    def test_two_ctrl_c_end_a_test_deaf_to_its_cancellation(self) -> None:
        for backend in ("asyncio", "trio"):
            for scope in ("function", "class"):
                with self.subTest(backend=backend, scope=scope):
                    ended, report = self.outcome(f"deaf {backend} {scope}")
                    self.assertEqual(ended.returncode, -signal.SIGINT, report)
                    self.assertNotIn("Exception ignored", ended.stderr, report)
                    self.assertNotIn("RuntimeError", ended.stderr, report)

    def test_a_receiver_of_the_test_s_own_does_not_take_ctrl_c_away(self) -> None:
        # asyncio puts Python's default handler back as the receiver closes:
        # the next test's Ctrl-C must still get its teardown and cleanups
        for backend in ("asyncio", "trio"):
            for catch in ("", "-c"):
                with self.subTest(backend=backend, catch=catch):
                    ended, report = self.outcome(f"receiver {backend} {catch}")
                    after = ended.stdout[len(ended.before_signal) :]
                    self.assertEqual(after, ["TEARDOWN RAN", "CLEANUP RAN"], report)
                    if catch:
                        self.assertIn("\nFAILED (errors=1)", ended.stderr, report)
                        self.assertIn("Interrupted: interrupted", ended.stderr)
                        self.assertNotIn("KeyboardInterrupt", ended.stderr, report)
                    else:
                        self.assertEqual(ended.returncode, -signal.SIGINT, report)

    def test_ctrl_c_wakes_the_loop_when_it_lands_outside_its_wait(self) -> None:
        # the Python-level handler runs only once the main thread's wait ends:
        # the C-level handler must wake it (a wakeup fd), or the Ctrl-C waits
        # for the test's 30 s sleep
        for backend in ("asyncio", "trio"):
            for scope in ("function", "class"):
                with self.subTest(backend=backend, scope=scope):
                    ended, report = self.outcome(f"elsewhere {backend} {scope}")
                    after = ended.stdout[len(ended.before_signal) :]
                    self.assertEqual(after, ["TEARDOWN RAN"], report)
                    self.assertEqual(ended.returncode, -signal.SIGINT, report)

    def test_the_first_ctrl_c_honours_a_shielded_scope(self) -> None:
        for backend in ("asyncio", "trio"):
            with self.subTest(backend=backend):
                ended, report = self.outcome(f"shield {backend}")
                after = ended.stdout[len(ended.before_signal) :]
                self.assertEqual(after, ["SHIELD HELD", "TEARDOWN RAN"], report)
                self.assertEqual(ended.returncode, -signal.SIGINT, report)


ALL_MARKERS = {
    "TEARDOWN RAN",
    "CLEANUP RAN",
    "CLEANUP AWAITED",
    "CLASS CLEANUP RAN",
    "TEST 2 RAN",
}


if __name__ == "__main__":
    unittest.main()
