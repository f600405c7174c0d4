"""One test, one object: everything ``AnyIOTestCase``'s hook points do for a test.

A :class:`TestRun` is made when ``run()`` or ``debug()`` starts a test and
dropped after it. It gets the test's runner, context and scope task from the
test's scope, applies the guard rails before and after the test, keeps the
test's time budget, and carries out the test's phases through its *plan*: each
async phase a call of its own, or ``asyncSetUp``, the test and ``asyncTearDown``
in one entry into the loop when nothing of the user's sits between them.
"""

from __future__ import annotations

import contextlib
import sys
import time
import unittest
import warnings
from collections.abc import Awaitable, Callable
from types import CoroutineType
from typing import TYPE_CHECKING, Any, NoReturn

from ._exceptions import CallStuck, CallTimeout, FirstInterrupt, Interrupted
from ._frames import hide_own_frames
from ._guards import AFTER, BEFORE, LEFT_RUNNING
from ._report import close_runner, explain_cross_loop, timing
from ._scopes import await_object, registry
from ._sigint import as_test_error

if TYPE_CHECKING:
    from ._meta import ClassConfig, MethodInfo

# our frames are hidden from reported tracebacks: unittest's flag, and pytest's
__unittest = True
__tracebackhide__ = True


class TestRun:
    """A test on its scope, each async phase a call of its own (the plan that
    always works; :class:`MergedRun` is the fast one)."""

    __slots__ = (
        "case",
        "config",
        "context",
        "deadline",
        "findings",
        "function_scope",
        "keep_open",
        "limit",
        "method",
        "owns_runner",
        "phases_interrupted",
        "runner",
        "set_up_failed",
        "states",
        "stop",
        "stuck",
        "task",
        "tear_down_error",
    )

    def __init__(
        self, case: unittest.TestCase, config: ClassConfig, method: MethodInfo
    ) -> None:
        self.case = case
        self.config = config
        self.method = method
        self.function_scope = config.loop_scope == "function"
        #: the limit of its async phases
        self.limit = method.limit
        self.deadline: float | None = None
        #: a call of it did not end after its limit: its runner is left behind
        self.stuck = False
        #: a first Ctrl-C hit it: the run stops after it
        self.stop = False
        #: after a failing debug(): doCleanups() closes it
        self.keep_open = False
        self.findings: list[Any] = []
        self.set_up_failed = False
        self.tear_down_error: BaseException | None = None
        self.phases_interrupted = False
        #: what the guard rails that look before the test keep for it
        self.states = {guard: guard.start(self) for guard in BEFORE} if BEFORE else {}
        name = f"test {case.id()}"
        self.runner, self.context, self.owns_runner = registry.open_test(
            type(case), config, name
        )
        try:
            self.task = self.runner.open_task(self.context, name)
        except BaseException:
            if self.owns_runner:
                close_runner(self.runner)
            raise
        record = self.runner.record
        if record is not None:
            record.tests += 1

    def close(self) -> None:
        try:
            self.task.close()
        finally:
            if self.owns_runner:
                close_runner(self.runner)

    # -- calls into the runner ---------------------------------------------------

    def call(self, phase: str, fn: Callable[..., Any], /, *args: Any) -> Any:
        """Run ``await fn(*args)`` as *phase* of the test, within its budget."""
        if self.stuck:
            # this test left its runner behind, as its failure says: nothing of
            # it runs any more (a coroutine handed over is closed unawaited)
            for arg in args:
                close_unstarted(arg)
            return None
        limit = self.limit
        remaining = None
        if limit is None:
            pass
        elif phase in ("asyncSetUp", "test"):
            # asyncSetUp and the test share one budget
            now = time.monotonic()
            if phase == "asyncSetUp" or self.deadline is None:
                self.deadline = now + limit
            remaining = max(self.deadline - now, 0.0)
        else:
            remaining = limit
        stop = timing(self.runner.record, hooks=False)
        try:
            return self.task.call(fn, *args, timeout=remaining)
        except CallTimeout as exc:
            assert limit is not None
            self.stuck = isinstance(exc, CallStuck)
            shared = " (shared by asyncSetUp and the test)" if phase == "test" else ""
            raise self.case.failureException(
                f"{self.case.id()} timed out: {phase} exceeded the limit of "
                f"{limit:g} seconds{shared}{exc.details()}"
            ) from exc.__cause__
        except Exception as exc:
            explain_cross_loop(exc, self.runner.record)
            raise
        finally:
            stop()

    # -- unittest's hook points --------------------------------------------------
    #
    # Each turns a first Ctrl-C (FirstInterrupt) into an error of the test, with
    # interrupted() (a try costs nothing until it catches; a with would cost
    # every hook of every test).

    def interrupted(self) -> NoReturn:
        self.stop = True
        raise as_test_error()

    def set_up(self) -> None:
        try:
            hooks = self.config.hooks
            if "setUp" in hooks:
                self.context.run(self.case.setUp)
            if "asyncSetUp" in hooks:
                self.call("asyncSetUp", self.case.asyncSetUp)  # type: ignore[attr-defined]
        except FirstInterrupt:
            self.interrupted()

    def test(self, method: Callable[[], object]) -> None:
        try:
            result = self.run_test_method(method)
        except FirstInterrupt:
            self.interrupted()
        if result is not None:
            warnings.warn(
                f"It is deprecated to return a value that is not None from a "
                f"test case ({method})",
                DeprecationWarning,
                stacklevel=_caller_of_run(),
            )

    def run_test_method(self, method: Callable[[], object]) -> object:
        # Hypothesis's wrapper drives the runner for each example (through
        # execute_example): not inside context.run(), as the scope task runs in
        # that very context and a Context can't be entered twice
        result = method() if self.method.hypothesis else self.context.run(method)
        if awaitable(result):
            # an async def test, or a sync one returning an awaitable (a sync
            # decorator around an async test): await it, never let it pass unrun
            result = self.call("test", await_object, result)
        return result

    def tear_down(self) -> None:
        try:
            hooks = self.config.hooks
            if "asyncTearDown" in hooks:
                self.call("asyncTearDown", self.case.asyncTearDown)  # type: ignore[attr-defined]
            if "tearDown" in hooks:
                self.context.run(self.case.tearDown)
        except FirstInterrupt:
            self.interrupted()

    def cleanup(self, function: Callable[..., Any], args: Any, kwargs: Any) -> None:
        if function == self.end_check:
            # not inside the test's context: it drives the loop, whose scope
            # task runs in that very context, which can't be entered twice
            self.end_check()
            return
        try:
            result = self.context.run(function, *args, **kwargs)
            if awaitable(result):
                self.call("cleanup", await_object, result)
        except FirstInterrupt:
            self.interrupted()

    # -- the guard rails' look after the test ----------------------------------------

    def end_pending(self) -> bool:
        """Whether a guard rail has something to report. Looked at outside
        unittest's machinery: reporting through it (a cleanup) costs every
        test, so only a test with something to report pays it."""
        if self.runner.left_behind is not None:
            return False
        self.findings = findings = [guard.pending(self) for guard in AFTER]
        return any(findings)

    def end_check(self) -> None:
        """Fail the test for what the guard rails found."""
        problems = []
        for guard, found in zip(AFTER, self.findings, strict=True):
            if not found:
                # reporting an earlier guard's finding may have made some (a
                # task cancelled there raised into the loop's handler)
                found = guard.pending(self)
            if found:
                problems += guard.report(self, found)
        self.findings = []
        if problems:
            raise self.case.failureException("\n\n".join(problems))

    # -- Hypothesis ------------------------------------------------------------------

    def example(self, function: Callable[[], object]) -> object:
        """Run one example of an ``@given`` test, in a scope task of its own
        whose context is a fresh copy of the test's, checked like a test."""
        example = self.context.copy()
        result = example.run(function)
        if not awaitable(result):
            return result
        task = self.runner.open_task(example, f"an example of {self.case.id()}")
        try:
            value = task.call(await_object, result, timeout=self.limit)
            problems = LEFT_RUNNING.check_example(self, task)
            if problems:
                raise self.case.failureException("\n\n".join(problems))
            return value
        finally:
            task.close()


class MergedRun(TestRun):
    """``asyncSetUp``, the test and ``asyncTearDown`` in one call, made from the
    test's hook point, when no code of the user's sits between them. Each phase
    still reports as its own part of the test: an asyncSetUp error is raised
    from there (and then, as unittest does after a failed setUp, the tear-down
    hook point does nothing), an asyncTearDown error is kept for the tear-down
    hook point."""

    __slots__ = ()

    def set_up(self) -> None:
        if "setUp" in self.config.hooks:
            try:
                self.context.run(self.case.setUp)
            except FirstInterrupt:
                self.interrupted()

    def run_test_method(self, method: Callable[[], object]) -> object:
        # a plain async def: calling it runs none of the user's code
        try:
            return self.call("test", _phases, self, self.context.run(method))
        except (FirstInterrupt, Interrupted):
            self.phases_interrupted = True
            raise

    def tear_down(self) -> None:
        if self.set_up_failed:
            return  # no tearDown after a failed setUp, as unittest
        error, self.tear_down_error = self.tear_down_error, None
        if error is not None and not (
            self.phases_interrupted
            and isinstance(error, self.runner.cancelled_exc_class)
        ):
            # (the Ctrl-C reported as the test's error reached it too)
            hide_own_frames(error)
            try:
                raise error
            finally:
                del error
        if "tearDown" in self.config.hooks:
            try:
                self.context.run(self.case.tearDown)
            except FirstInterrupt:
                self.interrupted()


def open_run(case: unittest.TestCase, merge: bool) -> TestRun:
    """The test's :class:`TestRun`, its scope task open (and, in function scope,
    its runner): the merged plan if it may.

    :param merge: whether the async phases may run in one entry into the loop
        (not under ``debug()``, which stops at the first error)
    """
    config: ClassConfig = type(case)._anyio_unittest_config  # type: ignore[attr-defined]
    if config.parametrised:
        config.check_runnable()
    method = config.method(case)
    # one entry into the loop for asyncSetUp, the test and asyncTearDown: not
    # with a time limit, which has two budgets to keep apart
    merged = (
        merge
        and method.mergeable
        and ("asyncSetUp" in config.hooks or "asyncTearDown" in config.hooks)
        and method.limit is None
    )
    return (MergedRun if merged else TestRun)(case, config, method)


async def _phases(run: TestRun, test: Awaitable[Any]) -> Any:
    """The merged phases, in the scope task. Between them the tasks made ready
    run once, as they would between two calls."""
    hooks = run.config.hooks
    case: Any = run.case
    task = run.task
    if "asyncSetUp" in hooks:
        try:
            await case.asyncSetUp()
        except BaseException:
            run.set_up_failed = True
            close_unstarted(test)
            raise
    error: BaseException | None = None
    value = None
    try:
        if "asyncSetUp" in hooks:
            await task.pause()
        value = await test
    except BaseException as exc:
        error = exc
    close_unstarted(test)  # not started, if the pause raised
    if "asyncTearDown" in hooks and not isinstance(error, KeyboardInterrupt):
        # (unittest runs no tearDown after a KeyboardInterrupt: the run stops)
        try:
            await task.pause()
            await case.asyncTearDown()
        except BaseException as exc:
            run.tear_down_error = exc
    if error is not None:
        try:
            raise error
        finally:
            del error
    return value


# -- run() and debug() ----------------------------------------------------------------


def run_test(
    case: unittest.TestCase,
    result: unittest.TestResult | None,
    run: Callable[[unittest.TestResult | None], unittest.TestResult | None],
) -> unittest.TestResult | None:
    """``AnyIOTestCase.run``, with unittest's own as *run*."""
    cls = type(case)
    config: ClassConfig = cls._anyio_unittest_config  # type: ignore[attr-defined]
    if config.loop_scope != "function" and cls not in registry.classes:
        return _run_alone(case, result, run)
    if config.loop_scope == "function" and (
        getattr(cls, "__unittest_skip__", False)
        or getattr(
            getattr(case, case._testMethodName, None), "__unittest_skip__", False
        )
    ):
        # reported as skipped: no runner needed (on a shared one, the test's
        # task costs nothing until it runs something)
        return run(result)
    try:
        test = open_run(case, merge=True)
    except Exception:
        # no runner for this test (a conflicting trio run, a loop factory
        # that failed...): an error of this test, and the run goes on
        return _report_error(case, result)
    case._anyio_unittest_run = test  # type: ignore[attr-defined]
    try:
        outcome = run(result)
    except KeyboardInterrupt:
        with contextlib.suppress(Exception):
            _close(case, test)
        registry.close_all_on_interrupt(result)
        raise
    except BaseException:
        _close(case, test)
        raise
    try:
        _close(case, test)
    except Exception:
        # closing the test's own runner failed after its outcome was
        # reported (a task deaf to its cancellation): an error of it too
        if not isinstance(outcome, unittest.TestResult):
            raise
        outcome.addError(case, sys.exc_info())
    if test.stop:
        # a first Ctrl-C: the test has had its teardown; now stop the run
        registry.close_all_on_interrupt(result)
        raise KeyboardInterrupt
    return outcome


def debug_test(case: unittest.TestCase, debug: Callable[[], None]) -> None:
    """``AnyIOTestCase.debug``, with unittest's own as *debug*."""
    cls = type(case)
    config: ClassConfig = cls._anyio_unittest_config  # type: ignore[attr-defined]
    alone = config.loop_scope != "function" and cls not in registry.classes
    if alone:
        cls.setUpClass()
    try:
        test = open_run(case, merge=False)
        case._anyio_unittest_run = test  # type: ignore[attr-defined]
        try:
            debug()
            if test.end_pending():
                test.end_check()
        except BaseException:
            if case._cleanups and not alone:  # type: ignore[attr-defined]
                # as IsolatedAsyncioTestCase: the caller may still call
                # doCleanups(), which runs them in this test's task and loop;
                # it closes them after
                test.keep_open = True
            raise
        finally:
            if not test.keep_open:
                _close(case, test)
    finally:
        if alone:
            try:
                cls.tearDownClass()
            finally:
                cls.doClassCleanups()


def do_cleanups(case: unittest.TestCase, do: Callable[[], object]) -> object:
    """``AnyIOTestCase.doCleanups``, with unittest's own as *do*: then the
    guard rails' look, as a cleanup of its own so unittest reports it."""
    test: TestRun | None = getattr(case, "_anyio_unittest_run", None)
    try:
        ok = do()
        if test is not None and test.end_pending():
            case.addCleanup(test.end_check)
            ok = do()
        return ok
    finally:
        if test is not None and test.keep_open:
            test.keep_open = False
            _close(case, test)


def _close(case: unittest.TestCase, test: TestRun) -> None:
    case._anyio_unittest_run = None  # type: ignore[attr-defined]
    test.close()


def _run_alone(
    case: unittest.TestCase,
    result: unittest.TestResult | None,
    run: Callable[[unittest.TestResult | None], unittest.TestResult | None],
) -> unittest.TestResult | None:
    # run without class setup (unittest-parallel --level test, an IDE, a bare
    # TestCase.run()): set the class (and module) scope up for this test
    # alone, as a class of one, and tear it down after it
    cls = type(case)
    if result is None:
        result = case.defaultTestResult()
    if getattr(cls, "__unittest_skip__", False):
        return run(result)
    fresh_module = registry.fresh_module(
        cls.__module__,
        cls._anyio_unittest_config.loop_scope,  # type: ignore[attr-defined]
    )
    try:
        cls.setUpClass()
    except Exception:
        result.addError(case, sys.exc_info())
        _class_cleanups(case, result)
        return result
    try:
        run_test(case, result, run)
    finally:
        try:
            cls.tearDownClass()
        except Exception:
            result.addError(case, sys.exc_info())
        _class_cleanups(case, result)
        if fresh_module:
            try:
                registry.end_module(cls.__module__)
            except Exception:
                result.addError(case, sys.exc_info())
    return result


def _class_cleanups(case: unittest.TestCase, result: unittest.TestResult) -> None:
    cls = type(case)
    cls.doClassCleanups()
    errors: list[Any] = cls.tearDown_exceptions  # type: ignore[attr-defined]
    while errors:
        result.addError(case, errors.pop(0))


def _report_error(
    case: unittest.TestCase, result: unittest.TestResult | None
) -> unittest.TestResult:
    exc_info = sys.exc_info()
    stop_run = result is None
    if result is None:
        result = case.defaultTestResult()
        result.startTestRun()
    result.startTest(case)
    try:
        result.addError(case, exc_info)
    finally:
        result.stopTest(case)
        if stop_run:
            result.stopTestRun()
    return result


def _caller_of_run() -> int:
    """The ``stacklevel`` (seen from ``TestRun.test``) of the caller of
    ``AnyIOTestCase.run()`` or ``.debug()``, where the stdlib's return-value
    warning points."""
    frame = sys._getframe(1)
    level = 1
    while frame is not None and not (
        frame.f_code.co_name in ("run", "debug")
        and frame.f_globals.get("__name__") == _CASE
    ):
        frame, level = frame.f_back, level + 1  # type: ignore[assignment]
    return level + 1 if frame is not None else 2


_CASE = __name__.rpartition(".")[0] + "._case"


def close_unstarted(coro: object) -> None:
    """Close a coroutine that may never have been started (no warning then)."""
    if type(coro) is CoroutineType:
        coro.close()


def awaitable(value: object) -> bool:
    # the exact type first: isinstance() against the Coroutine ABC costs more
    return type(value) is CoroutineType or (
        value is not None and hasattr(value, "__await__")
    )
