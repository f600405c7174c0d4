"""``AnyIOTestCase``: unittest's hook points, the async hooks and the cleanups.

Like ``unittest.IsolatedAsyncioTestCase`` this overrides exactly the hook points
``TestCase.run`` offers (``run``, ``debug``, ``_callSetUp``, ``_callTestMethod``,
``_callTearDown``, ``_callCleanup``), so results, skips, expected failures and
subtests stay unittest's own. What differs is where the async code runs: in one
scope task per test on a runner chosen by ``loop_scope`` (see ``_scopes``).
"""

from __future__ import annotations

import bdb
import contextlib
import contextvars
import inspect
import sys
import traceback
import unittest
import warnings
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from contextvars import Context
from types import CoroutineType
from typing import Any, ClassVar, Literal, NoReturn, TypeVar

from typing_extensions import ParamSpec

from ._backends import Backend, BackendSpec
from ._driver import (
    GRACE,
    TASKS_SHOWN,
    Runner,
    ScopeTask,
    describe_task,
    hide_own_frames,
)
from ._examples import execute_example
from ._exceptions import (
    CallStuck,
    CallTimeout,
    ConfigurationError,
    FirstInterrupt,
    Interrupted,
)
from ._meta import (
    PARAMETRISED_ATTR,
    AnyIOTestCaseMeta,
    env_timeout,
)
from ._scopes import Scope, await_object, await_result, current_module_scope, registry
from ._threads import describe_work

# our frames are hidden from reported tracebacks: unittest's flag, and pytest's
__unittest = True
__tracebackhide__ = True

T = TypeVar("T")
P = ParamSpec("P")
LoopScope = Literal["function", "class", "module", "session"]
LeakedTasks = Literal["fail", "warn", "cancel", "ignore"]

TIMEOUT_ATTR = "__anyio_unittest_timeout__"
DEFAULT_TIMEOUT_ATTR = "_anyio_unittest_default_timeout"
_UNSET: Any = object()


def timeout(seconds: float | None) -> Callable[[Callable[P, T]], Callable[P, T]]:
    """Set the time limit of one test method, overriding the class's ``timeout``.

    :param seconds: the limit in seconds, or ``None`` for no limit

    .. code-block:: python

        @anyio_unittest.timeout(30)
        async def test_slow_handshake(self): ...
    """
    from ._meta import timeout_value

    value = timeout_value(seconds, "anyio_unittest.timeout(...)")

    def decorate(fn: Callable[P, T]) -> Callable[P, T]:
        setattr(fn, TIMEOUT_ATTR, value)
        return fn

    return decorate


def _under_debugger() -> bool:
    trace = sys.gettrace()
    return "pydevd" in sys.modules or isinstance(
        getattr(trace, "__self__", None), bdb.Bdb
    )


class AnyIOTestCase(unittest.TestCase, metaclass=AnyIOTestCaseMeta):
    """A ``unittest.TestCase`` whose ``async def`` tests run on asyncio or trio.

    A drop-in for ``unittest.IsolatedAsyncioTestCase``: the same hooks in the same
    order, plus async class hooks, a choice of backend and a choice of how long an
    event loop lives (``loop_scope``).
    """

    #: the backend: ``"asyncio"`` (default), ``"trio"`` or ``(name, options)``
    anyio_backend: ClassVar[BackendSpec] = "asyncio"
    #: several backends: one generated class per entry (``<Class>_<id>``)
    anyio_backends: ClassVar[Sequence[BackendSpec] | None] = None
    #: how long a runner lives: a test, a class, a module or the whole run
    loop_scope: ClassVar[LoopScope] = "function"
    #: seconds for asyncSetUp + the test, and again for each async teardown step
    timeout: ClassVar[float | None] = None
    #: seconds for each class-level async step: asyncSetUpClass, asyncTearDownClass,
    #: each async class cleanup, and asyncSetUpModule when this class triggers it
    class_timeout: ClassVar[float | None] = None
    #: what to do with tasks a test leaves running on a shared runner
    leaked_tasks: ClassVar[LeakedTasks] = "fail"
    #: the loop factory of ``IsolatedAsyncioTestCase`` (Python 3.13), for asyncio
    loop_factory: ClassVar[Callable[[], Any] | None] = None
    #: for a class with ``anyio_backends``: the generated classes, by backend id
    anyio_backend_classes: ClassVar[Mapping[str, type[AnyIOTestCase]]] = {}

    _anyio_unittest_backend: ClassVar[Backend | None]
    _anyio_unittest_hooks: ClassVar[frozenset[str]]
    _anyio_unittest_task: ScopeTask | None = None
    _anyio_unittest_runner: Runner | None = None
    _anyio_unittest_stop = False
    #: after a failing debug(): the runner doCleanups() closes (_UNSET: none)
    _anyio_unittest_debug_owned: Any = _UNSET
    _anyio_unittest_context: Context | None = None
    _anyio_unittest_deadline: float | None = None
    _anyio_unittest_timeout: float | None = None
    _anyio_unittest_hypothesis = False
    #: this test's async phases run in one entry into the loop
    _anyio_unittest_merged = False
    _anyio_unittest_set_up_failed = False
    _anyio_unittest_tear_down_error: BaseException | None = None
    _anyio_unittest_interrupted_phases = False
    #: a call of this test did not end after its time limit: runner left behind
    _anyio_unittest_stuck = False
    #: errors the loop swallowed, taken by _anyio_unittest_end_pending
    _anyio_unittest_swallowed: Sequence[str] = ()

    # -- async hooks ---------------------------------------------------------

    async def asyncSetUp(self) -> None:
        """Run after ``setUp``, in the test's task and context."""

    async def asyncTearDown(self) -> None:
        """Run before ``tearDown``, in the test's task and context."""

    @classmethod
    async def asyncSetUpClass(cls) -> None:
        """Run after ``setUpClass`` on the class's runner (not for ``"function"``)."""

    @classmethod
    async def asyncTearDownClass(cls) -> None:
        """Run before ``tearDownClass`` on the class's runner."""

    def addAsyncCleanup(
        self, func: Callable[P, Awaitable[object]], /, *args: P.args, **kwargs: P.kwargs
    ) -> None:
        """Register an async cleanup; it shares ``addCleanup``'s LIFO stack."""
        self.addCleanup(func, *args, **kwargs)

    async def enterAsyncContext(self, cm: AbstractAsyncContextManager[T]) -> T:
        """Enter *cm* and register its exit as an async cleanup; return its value."""
        enter, exit_ = _async_cm_methods(cm)
        result: T = await enter(cm)
        self.addAsyncCleanup(exit_, cm, None, None, None)
        return result

    @classmethod
    def addAsyncClassCleanup(
        cls, func: Callable[P, Awaitable[object]], /, *args: P.args, **kwargs: P.kwargs
    ) -> None:
        """Register an async class cleanup, run on the class's runner.

        It shares ``addClassCleanup``'s LIFO stack.
        """
        if cls.loop_scope == "function":
            raise ConfigurationError(
                f"{cls.__qualname__}.addAsyncClassCleanup needs a runner that "
                f"outlives one test; set loop_scope = 'class' (or 'module' / "
                f"'session')"
            )
        cls.addClassCleanup(cls._anyio_unittest_class_cleanup, func, args, kwargs)

    @classmethod
    async def enterAsyncClassContext(cls, cm: AbstractAsyncContextManager[T]) -> T:
        """Enter *cm* on the class's runner; exit it as an async class cleanup."""
        enter, exit_ = _async_cm_methods(cm)
        result: T = await enter(cm)
        cls.addAsyncClassCleanup(exit_, cm, None, None, None)
        return result

    #: Hypothesis calls this for each example (``@given`` on an ``async def``
    #: test): see ``_examples``; defined there so that its frame is not ours
    execute_example = execute_example

    # -- class scope ---------------------------------------------------------

    @classmethod
    def setUpClass(cls) -> None:
        outermost = cls.setUpClass.__func__ is AnyIOTestCase.setUpClass.__func__  # type: ignore[attr-defined]
        if outermost:
            cls._anyio_unittest_before_class_setup()
        super().setUpClass()
        if outermost:
            cls._anyio_unittest_after_class_setup()

    @classmethod
    def tearDownClass(cls) -> None:
        if cls.tearDownClass.__func__ is AnyIOTestCase.tearDownClass.__func__:  # type: ignore[attr-defined]
            cls._anyio_unittest_before_class_teardown()
        super().tearDownClass()

    @classmethod
    def _anyio_unittest_before_class_setup(cls) -> None:
        cls._anyio_unittest_check_runnable()
        if cls.loop_scope != "function":
            # first on the class cleanup stack, so the runner closes last
            cls.addClassCleanup(registry.close_class, cls)

    @classmethod
    def _anyio_unittest_after_class_setup(cls) -> None:
        if cls.loop_scope == "function":
            cls._anyio_unittest_check_module_hooks()
            return
        backend = cls._anyio_unittest_backend
        assert backend is not None
        if cls.loop_scope == "class":
            cls._anyio_unittest_check_module_hooks()
        try:
            registry.open_class(
                cls, backend, cls.loop_scope, cls._anyio_unittest_class_limit()
            )
        except FirstInterrupt:  # in asyncSetUpModule
            cls._anyio_unittest_stop_run()
        if "asyncSetUpClass" in cls._anyio_unittest_hooks:
            cls._anyio_unittest_class_call(cls.asyncSetUpClass)

    @classmethod
    def _anyio_unittest_before_class_teardown(cls) -> None:
        if (
            cls in registry.classes
            and "asyncTearDownClass" in cls._anyio_unittest_hooks
        ):
            cls._anyio_unittest_class_call(cls.asyncTearDownClass)

    @classmethod
    def _anyio_unittest_class_call(
        cls,
        fn: Callable[..., Any],
        /,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        scope = registry.classes.get(cls)
        if scope is None:
            raise RuntimeError(
                f"{cls.__qualname__}: class-level async code can only run between "
                f"setUpClass and the class cleanups"
            )
        limit = cls._anyio_unittest_class_limit()
        try:
            if kwargs:
                return scope.call(await_result, fn, *args, timeout=limit, **kwargs)
            return scope.call(fn, *args, timeout=limit)
        except FirstInterrupt:
            cls._anyio_unittest_stop_run()

    @classmethod
    def _anyio_unittest_stop_run(cls) -> NoReturn:
        """A first Ctrl-C in class-level async code: stop the run as a plain
        Ctrl-C does, but after the class's teardown. unittest runs no class
        cleanups when a class hook raises ``KeyboardInterrupt``, so run them here
        (a second Ctrl-C still raises at once), then close every runner."""
        try:
            cls.doClassCleanups()
            _close_all_on_interrupt()
        except Exception as exc:
            raise KeyboardInterrupt from exc
        # from None: a plain Ctrl-C, not one "during handling of" the first
        raise KeyboardInterrupt from None

    @classmethod
    def _anyio_unittest_class_cleanup(
        cls, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        cls._anyio_unittest_class_call(await_result, func, *args, **kwargs)

    @classmethod
    def _anyio_unittest_class_limit(cls) -> float | None:
        if _under_debugger():
            return None
        from ._meta import timeout_value

        return timeout_value(cls.class_timeout, "class_timeout")

    @classmethod
    def _anyio_unittest_check_runnable(cls) -> None:
        if cls.__dict__.get(PARAMETRISED_ATTR):
            raise ConfigurationError(
                f"{cls.__qualname__} declares anyio_backends, so its tests run in "
                f"the generated classes "
                f"({', '.join(sorted(cls.anyio_backend_classes)) or 'none selected'}); "
                f"run those, e.g. {cls.__qualname__}_asyncio"
            )

    @classmethod
    def _anyio_unittest_check_module_hooks(cls) -> None:
        module = sys.modules.get(cls.__module__)
        for name in ("asyncSetUpModule", "asyncTearDownModule"):
            if getattr(module, name, None) is not None:
                raise ConfigurationError(
                    f"{cls.__module__} defines {name}, which runs on a module or "
                    f"session runner, but {cls.__qualname__} has loop_scope = "
                    f"{cls.loop_scope!r}, so it would never run for this class; "
                    f"set loop_scope = 'module' (or 'session') on it"
                )

    # -- one test ------------------------------------------------------------

    def _anyio_unittest_open(self, merge: bool = True) -> Runner | None:
        """Open this test's task; returns the runner if the test owns it.

        :param merge: whether the async phases may run in one entry into the
            loop (not under ``debug()``, which stops at the first error)
        """
        cls = type(self)
        cls._anyio_unittest_check_runnable()
        backend = cls._anyio_unittest_backend
        assert backend is not None
        owned: Runner | None = None
        if cls.loop_scope == "function":
            runner = owned = backend.open_runner(f"test {self.id()}")
            context = contextvars.copy_context()
        else:
            scope: Scope = registry.classes[cls]
            runner = scope.runner
            context = scope.context.copy()
            stray = runner.take_errors()
            if stray:  # swallowed between tests: reported at the class's end
                scope.stray_errors.extend(stray)
        self._anyio_unittest_runner = runner
        limit, self._anyio_unittest_hypothesis, mergeable = (
            self._anyio_unittest_method_info()
        )
        if limit is not None and _under_debugger():
            limit = None
        self._anyio_unittest_timeout = limit
        hooks = cls._anyio_unittest_hooks
        # one entry into the loop for asyncSetUp, the test and asyncTearDown
        # (nothing of the user's runs between them): not with a time limit,
        # which has two budgets to keep apart
        self._anyio_unittest_merged = (
            merge
            and mergeable
            and limit is None
            and ("asyncSetUp" in hooks or "asyncTearDown" in hooks)
        )
        self._anyio_unittest_set_up_failed = False
        self._anyio_unittest_stuck = False
        self._anyio_unittest_tear_down_error = None
        self._anyio_unittest_interrupted_phases = False
        self._anyio_unittest_deadline = None
        self._anyio_unittest_context = context
        try:
            self._anyio_unittest_task = runner.open_task(context, f"test {self.id()}")
        except BaseException:
            if owned is not None:
                owned.close()
            raise
        return owned

    def _anyio_unittest_end_pending(self) -> bool:
        """Whether the end-of-test check has anything to report. Looked at
        outside unittest's machinery: reporting through it (a cleanup) costs
        every test ~3 µs, so only a test with something to report pays it."""
        task = self._anyio_unittest_task
        runner = self._anyio_unittest_runner
        if task is None or runner is None or runner.left_behind is not None:
            return False
        errors = runner.take_errors()
        if errors:
            self._anyio_unittest_swallowed = errors
            return True
        cls = type(self)
        if cls.loop_scope == "function":
            return True  # its leftovers are cancelled in the test, whatever the policy
        return cls.leaked_tasks != "ignore" and bool(
            task.leaked_tasks() or runner.busy_threads(task.marker)
        )

    def _anyio_unittest_check_end(self) -> None:
        """Fail the test for tasks it left running and errors the loop swallowed."""
        task = self._anyio_unittest_task
        runner = self._anyio_unittest_runner
        if task is None or runner is None:
            return
        if runner.left_behind is not None:
            return
        cls = type(self)
        problems = []
        if cls.loop_scope == "function":
            # the runner closes with the test: end its tasks now, inside the test,
            # so that what they raise is reported here; give its threads the
            # time a runner's close gives them
            problems += _ended(*task.cancel_tasks(task.leaked_tasks(everything=True)))
            threads = runner.busy_threads(task.marker, GRACE)
        else:
            threads = runner.busy_threads(task.marker)
            leaked = task.leaked_tasks()
            if leaked and cls.leaked_tasks != "ignore":
                problems += self._anyio_unittest_leaks(task, runner, leaked)
        if threads and cls.leaked_tasks != "ignore":
            problems += self._anyio_unittest_threads(threads)
        errors = [*self._anyio_unittest_swallowed, *runner.take_errors()]
        self._anyio_unittest_swallowed = ()
        if errors:
            problems.append(
                "the event loop swallowed these errors during the test:\n\n"
                + "\n".join(errors)
            )
        if problems:
            raise self.failureException("\n\n".join(problems))

    def _anyio_unittest_leaks(
        self, task: ScopeTask, runner: Runner, leaked: list[Any]
    ) -> list[str]:
        policy = type(self).leaked_tasks
        names = "\n".join(
            "  "
            + describe_task(
                t.get_name() if hasattr(t, "get_name") else t.name,
                t.get_coro() if hasattr(t, "get_coro") else t.coro,
            )
            for t in leaked[:TASKS_SHOWN]
        )
        if len(leaked) > TASKS_SHOWN:
            names += f"\n  ... and {len(leaked) - TASKS_SHOWN} more"
        cancelled = runner.can_cancel_tasks
        raised = _ended(*task.cancel_tasks(leaked)) if cancelled else []
        fate = (
            "they were cancelled"
            if cancelled
            else "trio can only cancel them through their nursery, so they go on"
        )
        text = (
            f"{self.id()} left {len(leaked)} task(s) running ({fate}; set "
            f"leaked_tasks = 'ignore' on {type(self).__qualname__} if they are "
            f"meant to outlive the test, or start them in asyncSetUpClass):\n{names}"
        )
        if policy == "fail":
            return [text, *raised]
        if policy == "warn" or not cancelled:
            # "cancel" can't be honoured on trio: say so rather than stay silent
            warnings.warn(LeakedTaskWarning(text), stacklevel=1)
        return raised

    def _anyio_unittest_threads(self, threads: list[Any]) -> list[str]:
        names = "\n".join(f"  {describe_work(work)}" for work in threads)
        text = (
            f"{self.id()} left {len(threads)} worker thread(s) running (a thread "
            f"can't be cancelled: it goes on, and the process won't wait for it "
            f"at exit; set leaked_tasks = 'ignore' on {type(self).__qualname__} "
            f"if that is meant, or await what runs there):\n{names}"
        )
        if type(self).leaked_tasks == "fail":
            return [text]
        warnings.warn(LeakedTaskWarning(text), stacklevel=1)
        return []

    def _anyio_unittest_close(self, owned: Runner | None) -> None:
        task = self._anyio_unittest_task
        self._anyio_unittest_task = None
        self._anyio_unittest_context = None
        self._anyio_unittest_runner = None
        try:
            if task is not None:
                task.close()
        finally:
            if owned is not None:
                owned.close()

    def run(
        self, result: unittest.TestResult | None = None
    ) -> unittest.TestResult | None:
        cls = type(self)
        if cls.loop_scope != "function" and cls not in registry.classes:
            return self._anyio_unittest_run_alone(result)
        return self._anyio_unittest_run(result)

    def _anyio_unittest_run(
        self, result: unittest.TestResult | None
    ) -> unittest.TestResult | None:
        if type(self).loop_scope == "function" and (
            getattr(type(self), "__unittest_skip__", False)
            or getattr(
                getattr(self, self._testMethodName, None), "__unittest_skip__", False
            )
        ):
            # reported as skipped: no runner needed (on a shared one, the test's
            # task costs nothing until it runs something)
            return super().run(result)
        try:
            owned = self._anyio_unittest_open()
        except Exception:
            # no runner for this test (a conflicting trio run, a loop factory
            # that failed...): an error of this test, and the run goes on
            self._anyio_unittest_close(None)
            return self._anyio_unittest_report_error(result)
        self._anyio_unittest_stop = False
        try:
            outcome = super().run(result)
        except KeyboardInterrupt:
            with contextlib.suppress(Exception):
                self._anyio_unittest_close(owned)
            _close_all_on_interrupt(result)
            raise
        except BaseException:
            self._anyio_unittest_close(owned)
            raise
        try:
            self._anyio_unittest_close(owned)
        except Exception:
            # closing the test's own runner failed after its outcome was
            # reported (a task deaf to its cancellation): an error of it too
            if not isinstance(outcome, unittest.TestResult):
                raise
            outcome.addError(self, sys.exc_info())
        if self._anyio_unittest_stop:
            # a first Ctrl-C: the test has had its teardown; now stop the run
            _close_all_on_interrupt(result)
            raise KeyboardInterrupt
        return outcome

    def _anyio_unittest_report_error(
        self, result: unittest.TestResult | None
    ) -> unittest.TestResult:
        exc_info = sys.exc_info()
        stop_run = result is None
        if result is None:
            result = self.defaultTestResult()
            result.startTestRun()
        result.startTest(self)
        try:
            result.addError(self, exc_info)
        finally:
            result.stopTest(self)
            if stop_run:
                result.stopTestRun()
        return result

    def _anyio_unittest_run_alone(
        self, result: unittest.TestResult | None
    ) -> unittest.TestResult | None:
        # run without class setup (unittest-parallel --level test, an IDE, a bare
        # TestCase.run()): set the class (and module) scope up for this test
        # alone, as a class of one, and tear it down after it
        cls = type(self)
        if result is None:
            result = self.defaultTestResult()
        if getattr(cls, "__unittest_skip__", False):
            return super().run(result)
        fresh_module = cls.loop_scope in ("module", "session") and not any(
            key[0] == cls.__module__ for key in registry.modules
        )
        try:
            cls.setUpClass()
        except Exception:
            result.addError(self, sys.exc_info())
            self._anyio_unittest_class_cleanups(result)
            return result
        try:
            self._anyio_unittest_run(result)
        finally:
            try:
                cls.tearDownClass()
            except Exception:
                result.addError(self, sys.exc_info())
            self._anyio_unittest_class_cleanups(result)
            if fresh_module:
                try:
                    registry.end_module(cls.__module__)
                except Exception:
                    result.addError(self, sys.exc_info())
        return result

    def _anyio_unittest_class_cleanups(self, result: unittest.TestResult) -> None:
        cls = type(self)
        cls.doClassCleanups()
        errors: list[Any] = cls.tearDown_exceptions  # type: ignore[attr-defined]
        while errors:
            result.addError(self, errors.pop(0))

    def debug(self) -> None:
        cls = type(self)
        alone = cls.loop_scope != "function" and cls not in registry.classes
        if alone:
            cls.setUpClass()
        try:
            owned = self._anyio_unittest_open(merge=False)
            try:
                super().debug()
                self._anyio_unittest_check_end()
            except BaseException:
                if self._cleanups and not alone:  # type: ignore[attr-defined]
                    # as IsolatedAsyncioTestCase: the caller may still call
                    # doCleanups(), which runs them in this test's task and
                    # loop; it closes them after
                    self._anyio_unittest_debug_owned = owned
                    owned = None
                raise
            finally:
                if self._anyio_unittest_debug_owned is _UNSET:
                    self._anyio_unittest_close(owned)
        finally:
            if alone:
                try:
                    cls.tearDownClass()
                finally:
                    cls.doClassCleanups()

    def doCleanups(self) -> Any:
        owned = self._anyio_unittest_debug_owned
        try:
            ok = super().doCleanups()
            if self._anyio_unittest_end_pending():
                # after every cleanup, which may end what the test left running;
                # as a cleanup of its own, so unittest reports what it raises
                self.addCleanup(self._anyio_unittest_check_end)
                ok = super().doCleanups()
            return ok
        finally:
            if owned is not _UNSET:
                self._anyio_unittest_debug_owned = _UNSET
                self._anyio_unittest_close(owned)

    # -- unittest's hook points ----------------------------------------------

    def _anyio_unittest_method_info(self) -> tuple[float | None, bool, bool]:
        """This test's time limit (its decorator, else the environment, else the
        class), whether Hypothesis drives it, and whether its async phases may
        run in one entry into the loop (see _anyio_unittest_phases)."""
        cls = type(self)
        name = self._testMethodName
        method = self.__dict__.get(name) or getattr(cls, name, None)
        limit = getattr(method, TIMEOUT_ATTR, _UNSET)
        if limit is _UNSET:
            limit = cls.__dict__.get(DEFAULT_TIMEOUT_ATTR, _UNSET)
            if limit is _UNSET:
                # the environment's limit, else the class's: once per class
                limit = env_timeout()
                if limit is None:
                    limit = cls.timeout
                setattr(cls, DEFAULT_TIMEOUT_ATTR, limit)
        hypothesis = bool(getattr(method, "is_hypothesis_test", False))
        code = getattr(getattr(method, "__func__", method), "__code__", None)
        mergeable = (
            # a plain async def: calling it runs none of the user's code
            code is not None
            and bool(code.co_flags & inspect.CO_COROUTINE)
            and not hypothesis
            # unittest records subtests differently while it expects a failure
            and not getattr(method, "__unittest_expecting_failure__", False)
            and not getattr(cls, "__unittest_expecting_failure__", False)
        )
        return limit, hypothesis, mergeable

    def _anyio_unittest_call(
        self, phase: str, fn: Callable[..., Any], /, *args: Any
    ) -> Any:
        task = self._anyio_unittest_task
        if task is None:
            raise RuntimeError(
                f"{self.id()}: async code can only run while the test runs"
            )
        if task.runner.left_behind is not None and self._anyio_unittest_stuck:
            # this test left its runner behind, as its failure says: nothing of
            # it runs any more (a coroutine handed over is closed unawaited)
            for arg in args:
                _close(arg)
            return None
        limit = self._anyio_unittest_timeout
        if limit is None:
            return task.call(fn, *args)
        if phase in ("asyncSetUp", "test"):
            # asyncSetUp and the test share one budget
            import time

            now = time.monotonic()
            if phase == "asyncSetUp" or self._anyio_unittest_deadline is None:
                self._anyio_unittest_deadline = now + limit
            remaining = max(self._anyio_unittest_deadline - now, 0.0)
        else:
            remaining = limit
        try:
            return task.call(fn, *args, timeout=remaining)
        except CallTimeout as exc:
            shared = " (shared by asyncSetUp and the test)" if phase == "test" else ""
            if isinstance(exc, CallStuck):
                self._anyio_unittest_stuck = True
            raise self.failureException(
                f"{self.id()} timed out: {phase} exceeded the limit of {limit:g} "
                f"seconds{shared}{exc.details()}"
            ) from exc.__cause__

    # A first Ctrl-C (FirstInterrupt) in any hook becomes an error of the test, so
    # that unittest goes on with its teardown and cleanups; run() then stops the
    # run with KeyboardInterrupt. A plain KeyboardInterrupt propagates at once.

    def _anyio_unittest_interrupted(self) -> Interrupted:
        self._anyio_unittest_stop = True
        return Interrupted(
            "interrupted by Ctrl-C: teardown and cleanups run, then the run stops"
        )

    async def _anyio_unittest_phases(self, test: Awaitable[Any]) -> Any:
        """asyncSetUp, the test and asyncTearDown in one entry into the loop.

        Each phase's outcome is kept apart, so that unittest still reports it
        as its own: an asyncSetUp error raises here (from the test's part;
        _callTearDown then does nothing, as unittest runs no tearDown after a
        failed setUp), an asyncTearDown error is kept for _callTearDown. Between
        phases, the tasks made ready run once, as they would between two calls.
        """
        hooks = self._anyio_unittest_hooks
        task = self._anyio_unittest_task
        assert task is not None
        if "asyncSetUp" in hooks:
            try:
                await self.asyncSetUp()
            except BaseException:
                self._anyio_unittest_set_up_failed = True
                _close(test)
                raise
        error: BaseException | None = None
        value = None
        try:
            if "asyncSetUp" in hooks:
                await task.pause()
            value = await test
        except BaseException as exc:
            error = exc
        _close(test)  # not started, if the pause raised
        if "asyncTearDown" in hooks and not isinstance(error, KeyboardInterrupt):
            # (unittest runs no tearDown after a KeyboardInterrupt: the run stops)
            try:
                await task.pause()
                await self.asyncTearDown()
            except BaseException as exc:
                self._anyio_unittest_tear_down_error = exc
        if error is not None:
            try:
                raise error
            finally:
                del error
        return value

    def _anyio_unittest_merged_tear_down(self) -> None:
        error = self._anyio_unittest_tear_down_error
        self._anyio_unittest_tear_down_error = None
        if error is None:
            return
        runner = self._anyio_unittest_runner
        if (
            self._anyio_unittest_interrupted_phases
            and runner is not None
            and isinstance(error, runner.cancelled_exc_class)
        ):
            return  # the Ctrl-C reported as the test's error reached it too
        try:
            hide_own_frames(error)
            raise error
        finally:
            del error

    def _callSetUp(self) -> None:
        context = self._anyio_unittest_context
        assert context is not None
        hooks = self._anyio_unittest_hooks
        try:
            if "setUp" in hooks:
                context.run(self.setUp)
            if "asyncSetUp" in hooks and not self._anyio_unittest_merged:
                self._anyio_unittest_call("asyncSetUp", self.asyncSetUp)
        except FirstInterrupt:
            raise self._anyio_unittest_interrupted() from None

    def _callTestMethod(self, method: Callable[[], object]) -> None:
        try:
            self._anyio_unittest_test_method(method)
        except FirstInterrupt:
            raise self._anyio_unittest_interrupted() from None

    def _anyio_unittest_test_method(self, method: Callable[[], object]) -> None:
        context = self._anyio_unittest_context
        assert context is not None
        # Hypothesis's wrapper drives the runner for each example (through
        # execute_example): not inside context.run(), as the scope task runs in
        # that very context and a Context can't be entered twice
        hypothesis = self._anyio_unittest_hypothesis
        result = method() if hypothesis else context.run(method)
        if self._anyio_unittest_merged:
            try:
                result = self._anyio_unittest_call(
                    "test", self._anyio_unittest_phases, result
                )
            except (FirstInterrupt, Interrupted):
                self._anyio_unittest_interrupted_phases = True
                raise
        elif inspect_awaitable(result):
            # an async def test, or a sync one returning an awaitable (a sync
            # decorator around an async test): await it, never let it pass unrun
            result = self._anyio_unittest_call("test", await_object, result)
        if result is not None:
            warnings.warn(
                f"It is deprecated to return a value that is not None from a "
                f"test case ({method})",
                DeprecationWarning,
                stacklevel=_caller_of_run(),
            )

    def _callTearDown(self) -> None:
        context = self._anyio_unittest_context
        assert context is not None
        if self._anyio_unittest_set_up_failed:
            return  # asyncSetUp failed (merged phases): no tearDown, as unittest
        try:
            hooks = self._anyio_unittest_hooks
            if self._anyio_unittest_merged:
                self._anyio_unittest_merged_tear_down()
            elif "asyncTearDown" in hooks:
                self._anyio_unittest_call("asyncTearDown", self.asyncTearDown)
            if "tearDown" in hooks:
                context.run(self.tearDown)
        except FirstInterrupt:
            raise self._anyio_unittest_interrupted() from None

    def _callCleanup(
        self, function: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> None:
        if getattr(function, "__func__", None) is _CHECK_END:
            # not inside context.run(): it drives the loop, whose scope task runs
            # in that very context, and a Context can't be entered twice
            function()
            return
        context = self._anyio_unittest_context
        assert context is not None
        try:
            result = context.run(function, *args, **kwargs)
            if inspect_awaitable(result):
                self._anyio_unittest_call("cleanup", await_object, result)
        except FirstInterrupt:
            raise self._anyio_unittest_interrupted() from None


def _close_all_on_interrupt(result: object = None) -> None:
    """Close every runner as the run stops for Ctrl-C. Not when pytest drives
    the test (*result* is its item): it still tears its class fixtures down
    (``tearDownClass``, class cleanups) and ends the session, where the plugin
    closes them; closed now, those would fail (found by tests/test_matrix.py).
    A unittest run inside a pytest test is not pytest's to tear down."""
    pytest = sys.modules.get("pytest")
    if result is None:
        driven_by_pytest = registry.pytest_ends_modules
    else:
        driven_by_pytest = pytest is not None and isinstance(result, pytest.Item)
    if not driven_by_pytest:
        # the Ctrl-C is what must reach the user: a runner that a second Ctrl-C
        # hit in its own machinery (trio: TrioInternalError) must not replace it
        with contextlib.suppress(Exception):
            registry.close_all()


def _caller_of_run() -> int:
    """The ``stacklevel`` (seen from ``_callTestMethod``) of the caller of
    ``run()`` or ``debug()``, where the stdlib's return-value warning points."""
    codes = (AnyIOTestCase.run.__code__, AnyIOTestCase.debug.__code__)
    frame = sys._getframe(1)
    level = 1
    while frame is not None and frame.f_code not in codes:
        frame, level = frame.f_back, level + 1  # type: ignore[assignment]
    return level + 1 if frame is not None else 2


_CHECK_END = AnyIOTestCase._anyio_unittest_check_end


class LeakedTaskWarning(ResourceWarning):
    """A test left tasks running on a shared runner (``leaked_tasks = "warn"``)."""


def _ended(raised: list[BaseException], stuck: list[Any]) -> list[str]:
    """What cancelling a test's leftover tasks found: what they raised, and
    those that ignored their cancellation."""
    problems = [
        "a leftover task raised, while it was being cancelled:\n"
        + "".join(traceback.format_exception(type(e), e, e.__traceback__))
        for e in raised
    ]
    if stuck:
        names = "\n".join(
            f"  {describe_task(t.get_name(), t.get_coro())}" for t in stuck
        )
        problems.append(
            f"{len(stuck)} leftover task(s) had not ended {GRACE:g} s after their "
            f"cancellation, so their runner is left behind:\n{names}"
        )
    return problems


def _close(coro: object) -> None:
    """Close a coroutine that may never have been started (no warning then)."""
    if type(coro) is CoroutineType:
        coro.close()


def inspect_awaitable(value: object) -> bool:
    # the exact type first: isinstance() against the Coroutine ABC costs ~1 µs
    return type(value) is CoroutineType or (
        value is not None and hasattr(value, "__await__")
    )


def _async_cm_methods(
    cm: AbstractAsyncContextManager[T],
) -> tuple[Callable[[Any], Awaitable[T]], Callable[..., Awaitable[Any]]]:
    cls = type(cm)
    try:
        enter = cls.__aenter__
        exit_ = cls.__aexit__
    except AttributeError:
        raise TypeError(
            f"'{cls.__module__}.{cls.__qualname__}' object does not support the "
            f"asynchronous context manager protocol"
        ) from None
    return enter, exit_


def addAsyncModuleCleanup(
    func: Callable[P, Awaitable[object]], /, *args: P.args, **kwargs: P.kwargs
) -> None:
    """Register an async cleanup for the current module runner.

    Call it from ``asyncSetUpModule``, or from a hook of a class with
    ``loop_scope = "module"`` or ``"session"``; it runs at the module's end, after
    ``asyncTearDownModule``, on the module's runner, last-in first-out.
    """
    scope = current_module_scope.get(None)
    if scope is None:
        raise RuntimeError(
            "addAsyncModuleCleanup() can only be called from asyncSetUpModule or "
            "from the hooks and tests of a class with loop_scope = 'module' or "
            "'session'"
        )
    scope.add_cleanup(func, args, kwargs)


async def enterAsyncModuleContext(cm: AbstractAsyncContextManager[T]) -> T:
    """Enter *cm* on the module runner and exit it at the module's end.

    Call it from ``asyncSetUpModule``: the context is exited in the same task, so
    a task group or cancel scope entered here stays valid.
    """
    enter, exit_ = _async_cm_methods(cm)
    if current_module_scope.get(None) is None:
        addAsyncModuleCleanup(exit_, cm, None, None, None)  # raises the error
    result: T = await enter(cm)
    addAsyncModuleCleanup(exit_, cm, None, None, None)
    return result
