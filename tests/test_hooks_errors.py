"""Errors in every hook, reported as unittest reports them, on asyncio and trio.

Where ``IsolatedAsyncioTestCase`` defines the outcome, the same body is run
under it too and the two results are compared.
"""

from __future__ import annotations

import os
import signal
import sys
import unittest
from typing import Any, ClassVar

import anyio

from ._support import (
    PACKAGE_DIR,
    BackendTests,
    assert_closed,
    current_loop,
    last_lines,
    name_of,
    reported_texts,
    run_cases,
)

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup, ExceptionGroup

#: IsolatedAsyncioTestCase has the semantics we match (on every Python) only from
#: 3.11: on 3.10 it hangs on SystemExit and KeyboardInterrupt, so there it is no
#: reference.
STDLIB_REFERENCE = sys.version_info >= (3, 11)

THIS_FILE = os.path.abspath(__file__)


class RecordingResult(unittest.TestResult):
    """A TestResult that also keeps the exception objects it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.exc_infos: list[tuple[str, str, BaseException]] = []

    def addError(self, test: Any, err: Any) -> None:
        self.exc_infos.append(("error", name_of(test), err[1]))
        super().addError(test, err)

    def addFailure(self, test: Any, err: Any) -> None:
        self.exc_infos.append(("failure", name_of(test), err[1]))
        super().addFailure(test, err)

    def addSubTest(self, test: Any, subtest: Any, err: Any) -> None:
        if err is not None:
            kind = "failure" if issubclass(err[0], test.failureException) else "error"
            self.exc_infos.append((kind, name_of(test), err[1]))
        super().addSubTest(test, subtest, err)


def run_recording(*cases: unittest.TestCase) -> RecordingResult:
    """:func:`run_cases` into a :class:`RecordingResult`."""
    return run_cases(*cases, result=RecordingResult())


def assert_no_library_frames(
    test: unittest.TestCase, result: unittest.TestResult
) -> None:
    """Something was reported, and nothing of it shows the package's frames."""
    texts = reported_texts(result)
    test.assertTrue(texts)
    for text in texts:
        test.assertNotIn(PACKAGE_DIR, text)
        test.assertNotIn("/anyio_unittest/", text)


# -- an error in each hook -----------------------------------------------------


HOOKS = [
    "setUp",
    "asyncSetUp",
    "test",
    "asyncTearDown",
    "tearDown",
    "sync cleanup",
    "async cleanup",
]


class HookBody:
    events: ClassVar[list[str]]
    fail_in: ClassVar[frozenset[str]]
    error: ClassVar[type[Exception]]

    def step(self, name: str) -> None:
        self.events.append(name)
        if name in self.fail_in and self._testMethodName == "test_it":  # type: ignore[attr-defined]
            raise self.error(f"in {name}")

    def setUp(self) -> None:
        self.addCleanup(self.step, "sync cleanup")
        self.step("setUp")

    async def asyncSetUp(self) -> None:
        self.addAsyncCleanup(self.async_step, "async cleanup")
        await anyio.sleep(0)
        self.step("asyncSetUp")

    async def async_step(self, name: str) -> None:
        await anyio.sleep(0)
        self.step(name)

    async def test_it(self) -> None:
        await anyio.sleep(0)
        self.step("test")

    async def test_other(self) -> None:
        self.events.append("other test")

    async def asyncTearDown(self) -> None:
        await anyio.sleep(0)
        self.step("asyncTearDown")

    def tearDown(self) -> None:
        self.step("tearDown")


def expected_events(fail_in: frozenset[str]) -> list[str]:
    """test_it's events, then test_other's, which no error of test_it affects."""
    other = [
        "setUp",
        "asyncSetUp",
        "other test",
        "asyncTearDown",
        "tearDown",
        "async cleanup",
        "sync cleanup",
    ]
    if "setUp" in fail_in:
        return ["setUp", "sync cleanup", *other]
    if "asyncSetUp" in fail_in:
        return ["setUp", "asyncSetUp", "async cleanup", "sync cleanup", *other]
    if "asyncTearDown" in fail_in:
        # as IsolatedAsyncioTestCase: one teardown step, so tearDown is skipped
        return [
            "setUp",
            "asyncSetUp",
            "test",
            "asyncTearDown",
            "async cleanup",
            "sync cleanup",
            *other,
        ]
    return [
        "setUp",
        "asyncSetUp",
        "test",
        "asyncTearDown",
        "tearDown",
        "async cleanup",
        "sync cleanup",
        *other,
    ]


class HookErrorTests(BackendTests):
    def run_hooks(
        self, base: Any, fail_in: frozenset[str], error: type[Exception]
    ) -> tuple[RecordingResult, list[str]]:
        events: list[str] = []
        attrs = {"events": events, "fail_in": fail_in, "error": error}
        case = base(HookBody, **attrs)
        return run_recording(case("test_it"), case("test_other")), events

    def test_an_error_in_each_hook(self) -> None:
        for hook in HOOKS:
            for error, kind in ((RuntimeError, "error"), (AssertionError, "failure")):
                with self.subTest(hook=hook, error=error.__name__):
                    fail_in = frozenset([hook])
                    result, events = self.run_hooks(self.make, fail_in, error)
                    self.assertEqual(
                        last_lines(result),
                        [(kind, "test_it", f"{error.__name__}: in {hook}")],
                    )
                    self.assertEqual(result.testsRun, 2)
                    self.assertEqual(events, expected_events(fail_in))
                    assert_no_library_frames(self, result)
                    if STDLIB_REFERENCE:
                        stdlib, stdlib_events = self.run_hooks(
                            self.stdlib, fail_in, error
                        )
                        self.assertEqual(last_lines(result), last_lines(stdlib))
                        self.assertEqual(events, stdlib_events)

    def test_errors_in_several_hooks_are_all_reported_in_order(self) -> None:
        fail_in = frozenset(
            ["test", "asyncTearDown", "tearDown", "sync cleanup", "async cleanup"]
        )
        result, events = self.run_hooks(self.make, fail_in, RuntimeError)
        self.assertEqual(
            [line for _, _, line in last_lines(result)],
            [
                "RuntimeError: in test",
                "RuntimeError: in asyncTearDown",  # so tearDown did not run
                "RuntimeError: in async cleanup",
                "RuntimeError: in sync cleanup",
            ],
        )
        self.assertEqual(events, expected_events(fail_in))
        assert_no_library_frames(self, result)
        if STDLIB_REFERENCE:
            stdlib, stdlib_events = self.run_hooks(self.stdlib, fail_in, RuntimeError)
            self.assertEqual(last_lines(result), last_lines(stdlib))
            self.assertEqual(events, stdlib_events)


class TestHookErrorsAsyncio(HookErrorTests, unittest.TestCase):
    backend = "asyncio"


class TestHookErrorsTrio(HookErrorTests, unittest.TestCase):
    backend = "trio"


# -- SystemExit and KeyboardInterrupt ------------------------------------------------


class ExitBody:
    events: ClassVar[list[str]]
    raise_in: ClassVar[str]
    exc: ClassVar[type[BaseException]]

    async def asyncSetUp(self) -> None:
        self.events.append("asyncSetUp")
        self.addCleanup(self.events.append, "cleanup")
        if self.raise_in == "asyncSetUp" and self._testMethodName == "test_1":  # type: ignore[attr-defined]
            raise self.exc(3)

    async def test_1(self) -> None:
        self.events.append("test_1")
        self.loop = current_loop_or_none()
        if self.raise_in == "test":
            raise self.exc(3)

    async def test_2(self) -> None:
        self.events.append("test_2")

    async def asyncTearDown(self) -> None:
        self.events.append("asyncTearDown")


def current_loop_or_none() -> object:
    try:
        return current_loop()
    except Exception:
        return None


class ExitTests(BackendTests):
    def test_system_exit_is_an_error_of_that_test(self) -> None:
        for raise_in in ("asyncSetUp", "test"):
            with self.subTest(raise_in=raise_in):
                events: list[str] = []
                attrs = {"events": events, "raise_in": raise_in, "exc": SystemExit}
                case = self.make(ExitBody, **attrs)
                first = case("test_1")
                result = run_recording(first, case("test_2"))
                self.assertEqual(
                    last_lines(result), [("error", "test_1", "SystemExit: 3")]
                )
                self.assertEqual(result.testsRun, 2)
                assert_no_library_frames(self, result)
                first_events = {
                    "asyncSetUp": ["asyncSetUp", "cleanup"],
                    "test": ["asyncSetUp", "test_1", "asyncTearDown", "cleanup"],
                }[raise_in]
                self.assertEqual(
                    events,
                    [*first_events, "asyncSetUp", "test_2", "asyncTearDown", "cleanup"],
                )
                if STDLIB_REFERENCE:
                    stdlib_events: list[str] = []
                    stdlib_case = self.stdlib(
                        ExitBody,
                        events=stdlib_events,
                        raise_in=raise_in,
                        exc=SystemExit,
                    )
                    stdlib = run_recording(stdlib_case("test_1"), stdlib_case("test_2"))
                    self.assertEqual(last_lines(result), last_lines(stdlib))
                    self.assertEqual(events, stdlib_events)
                if raise_in == "test":
                    assert_closed(self, first.loop)  # type: ignore[attr-defined]

    def test_keyboard_interrupt_propagates_out_of_run(self) -> None:
        handler = signal.getsignal(signal.SIGINT)
        for raise_in in ("asyncSetUp", "test"):
            with self.subTest(raise_in=raise_in):
                events: list[str] = []
                attrs = {
                    "events": events,
                    "raise_in": raise_in,
                    "exc": KeyboardInterrupt,
                }
                case = self.make(ExitBody, **attrs)("test_1")
                result = unittest.TestResult()
                with self.assertRaises(KeyboardInterrupt):
                    case.run(result)
                self.assertEqual(result.testsRun, 1)
                self.assertEqual(last_lines(result), [])
                # no teardown and no cleanups: the run is being stopped
                self.assertEqual(
                    events,
                    {"asyncSetUp": ["asyncSetUp"], "test": ["asyncSetUp", "test_1"]}[
                        raise_in
                    ],
                )
                if STDLIB_REFERENCE:
                    stdlib_events: list[str] = []
                    stdlib_case = self.stdlib(
                        ExitBody,
                        events=stdlib_events,
                        raise_in=raise_in,
                        exc=KeyboardInterrupt,
                    )
                    with self.assertRaises(KeyboardInterrupt):
                        stdlib_case("test_1").run(unittest.TestResult())
                    self.assertEqual(events, stdlib_events)
                # the runner is closed and Ctrl-C handling is back to what it was
                if raise_in == "test":
                    assert_closed(self, case.loop)  # type: ignore[attr-defined]
                self.assertIs(signal.getsignal(signal.SIGINT), handler)
                # and the next test runs normally
                events.clear()
                again = self.make(
                    ExitBody, events=events, raise_in="", exc=KeyboardInterrupt
                )
                self.assertEqual(last_lines(run_recording(again("test_2"))), [])
                self.assertEqual(
                    events, ["asyncSetUp", "test_2", "asyncTearDown", "cleanup"]
                )


class TestExitAsyncio(ExitTests, unittest.TestCase):
    backend = "asyncio"


class TestExitTrio(ExitTests, unittest.TestCase):
    backend = "trio"


# -- exception groups and tracebacks -------------------------------------------------


async def fail_later(exc: Exception) -> None:
    with anyio.CancelScope(shield=True):  # so that every child gets to raise
        await anyio.sleep(0.01)
    raise exc


class GroupBody:
    async def test_group(self) -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(fail_later, ValueError("first child"))
            tg.start_soon(fail_later, KeyError("second child"))

    async def test_group_with_assertion(self) -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(fail_later, AssertionError("asserted in a child"))

    async def test_caught_group(self) -> None:
        with self.assertRaises(ExceptionGroup) as cm:
            async with anyio.create_task_group() as tg:
                tg.start_soon(fail_later, ValueError("handled"))
        self.assertEqual(len(cm.exception.exceptions), 1)


class GroupTests(BackendTests):
    def test_exception_groups_reach_the_report_intact(self) -> None:
        case = self.make(GroupBody)
        result = run_recording(
            case("test_group"),
            case("test_group_with_assertion"),
            case("test_caught_group"),
        )
        self.assertEqual(result.testsRun, 3)
        self.assertEqual(
            [(kind, name, type(exc)) for kind, name, exc in result.exc_infos],
            [
                ("error", "test_group", ExceptionGroup),
                ("error", "test_group_with_assertion", ExceptionGroup),
            ],
        )
        group = result.exc_infos[0][2]
        assert isinstance(group, BaseExceptionGroup)
        self.assertEqual(
            sorted(repr(e) for e in group.exceptions),
            sorted([repr(ValueError("first child")), repr(KeyError("second child"))]),
        )
        text = result.errors[0][1]
        for needle in ("ValueError: first child", "KeyError: 'second child'"):
            self.assertIn(needle, text)
        # each child's own traceback is shown, down to the line that raised it
        self.assertEqual(text.count(", in fail_later\n"), 2)
        assert_no_library_frames(self, result)


class TestGroupsAsyncio(GroupTests, unittest.TestCase):
    backend = "asyncio"


class TestGroupsTrio(GroupTests, unittest.TestCase):
    backend = "trio"


class FramesBody:
    """Failures whose tracebacks pass through the library on the way."""

    async def helper(self) -> None:
        await anyio.sleep(0)
        self.assertEqual(1, 2)

    async def test_failure_in_a_helper(self) -> None:
        await self.helper()

    async def test_error_in_aenter(self) -> None:
        await self.enterAsyncContext(BadEnter())

    async def test_error_in_aexit(self) -> None:
        await self.enterAsyncContext(BadExit())

    async def test_error_in_async_cleanup(self) -> None:
        self.addAsyncCleanup(bad_cleanup, "from the cleanup")

    async def test_error_in_subtest(self) -> None:
        for i in range(2):
            with self.subTest(i=i):
                await anyio.sleep(0)
                self.assertLess(i, 1)

    def test_sync_returning_failing_coroutine(self) -> Any:
        return bad_cleanup("from a returned coroutine")


class BadEnter:
    async def __aenter__(self) -> None:
        await anyio.sleep(0)
        raise OSError("cannot enter")

    async def __aexit__(self, *exc: object) -> None:
        raise AssertionError("not entered, so never exited")


class BadExit:
    async def __aenter__(self) -> None:
        await anyio.sleep(0)

    async def __aexit__(self, *exc: object) -> None:
        await anyio.sleep(0)
        raise OSError("cannot exit")


async def bad_cleanup(message: str) -> None:
    await anyio.sleep(0)
    raise LookupError(message)


FRAMES = {
    "test_failure_in_a_helper": "AssertionError: 1 != 2",
    "test_error_in_aenter": "OSError: cannot enter",
    "test_error_in_aexit": "OSError: cannot exit",
    "test_error_in_async_cleanup": "LookupError: from the cleanup",
    "test_error_in_subtest": "AssertionError: 1 not less than 1",
    "test_sync_returning_failing_coroutine": "LookupError: from a returned coroutine",
}


class FramesTests(BackendTests):
    def test_no_library_frame_in_any_reported_traceback(self) -> None:
        case = self.make(FramesBody)
        result = run_recording(*(case(name) for name in FRAMES))
        self.assertEqual(
            sorted((name, line) for _, name, line in last_lines(result)),
            sorted(FRAMES.items()),
        )
        assert_no_library_frames(self, result)
        for text in reported_texts(result):
            with self.subTest(text=text.strip().splitlines()[-1]):
                files = [
                    line.split('"')[1]
                    for line in text.splitlines()
                    if line.lstrip().startswith('File "')
                ]
                # the user's frames, ending at the line that raised
                self.assertTrue(files)
                self.assertEqual(files[-1], THIS_FILE)


class TestFramesAsyncio(FramesTests, unittest.TestCase):
    backend = "asyncio"


class TestFramesTrio(FramesTests, unittest.TestCase):
    backend = "trio"
