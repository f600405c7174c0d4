"""``AnyIOTestCase``: unittest's hook points and the public API.

Like ``unittest.IsolatedAsyncioTestCase`` this overrides the hook points
``TestCase.run`` offers (``run``, ``debug``, ``_callSetUp``, ``_callTestMethod``,
``_callTearDown``, ``_callCleanup``, and ``doCleanups``), so results, skips,
expected failures and subtests stay unittest's own; each delegates to the
test's :class:`~anyio_unittest._testrun.TestRun`, made by ``run()`` or
``debug()`` and dropped after it. The class hooks (``setUpClass``,
``tearDownClass``) are wrapped by the metaclass (``_meta``) and run the class
scope's steps (``_scopes``).
"""

from __future__ import annotations

import unittest
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, ClassVar, Literal, TypeVar

from typing_extensions import ParamSpec

from ._backends import BackendSpec
from ._examples import execute_example
from ._exceptions import ConfigurationError
from ._guards import TIMEOUT_ATTR, timeout_value
from ._meta import AnyIOTestCaseMeta, ClassConfig
from ._scopes import current_module_scope, registry
from ._testrun import TestRun, debug_test, do_cleanups, run_test

# our frames are hidden from reported tracebacks: unittest's flag, and pytest's
__unittest = True
__tracebackhide__ = True

T = TypeVar("T")
P = ParamSpec("P")
LoopScope = Literal["function", "class", "module", "session"]
LeakedTasks = Literal["fail", "warn", "cancel", "ignore"]
LoopErrorsPolicy = Literal["fail", "warn", "log"]
Clock = Literal["real", "autojump"]


def timeout(seconds: float | None) -> Callable[[Callable[P, T]], Callable[P, T]]:
    """Set the time limit of one test method, overriding the class's ``timeout``.

    :param seconds: the limit in seconds, or ``None`` for no limit

    .. code-block:: python

        @anyio_unittest.timeout(30)
        async def test_slow_handshake(self): ...
    """
    value = timeout_value(seconds, "anyio_unittest.timeout(...)")

    def decorate(fn: Callable[P, T]) -> Callable[P, T]:
        setattr(fn, TIMEOUT_ATTR, value)
        return fn

    return decorate


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
    #: what to do with tasks, threads and timers a test leaves running
    leaked_tasks: ClassVar[LeakedTasks] = "fail"
    #: what an error the event loop reports during a test (a callback that
    #: raised, "Task exception was never retrieved", "Unclosed client session",
    #: a leftover task raising as it is cancelled) does to that test: ``"fail"``
    #: it (the default, for reports with and without an exception alike: a
    #: message-only report such as an unclosed session is as much a bug of the
    #: test's code), ``"warn"`` (:exc:`LoopErrorWarning`) or ``"log"`` (only
    #: logged, as ``IsolatedAsyncioTestCase`` does). Every error is logged as
    #: asyncio logs it, whatever the policy (``assertLogs("asyncio")`` sees
    #: it), and a handler the test sets on the loop itself wins for that test.
    loop_errors: ClassVar[LoopErrorsPolicy] = "fail"
    #: ``"autojump"``: virtual time, which jumps to the next timer whenever
    #: nothing else can run (see :func:`current_clock`); time limits stay real
    clock: ClassVar[Clock] = "real"
    #: with ``clock = "autojump"``: seconds of real idleness (no I/O, no thread
    #: finishing) before time jumps; 0 jumps at once
    autojump_threshold: ClassVar[float] = 0.0
    #: the loop factory of ``IsolatedAsyncioTestCase`` (Python 3.13), for asyncio
    loop_factory: ClassVar[Callable[[], Any] | None] = None
    #: for a class with ``anyio_backends``: the generated classes, by backend id
    anyio_backend_classes: ClassVar[Mapping[str, type[AnyIOTestCase]]] = {}

    #: what the package read of the class when it was defined (see _meta)
    _anyio_unittest_config: ClassVar[ClassConfig]
    #: the test being run (between run() or debug() and their end)
    _anyio_unittest_run: TestRun = None  # type: ignore[assignment]

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
        cls.addClassCleanup(registry.class_cleanup, cls, func, args, kwargs)

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

    # -- unittest's hook points ----------------------------------------------

    def run(
        self, result: unittest.TestResult | None = None
    ) -> unittest.TestResult | None:
        return run_test(self, result, super().run)

    def debug(self) -> None:
        debug_test(self, super().debug)

    def doCleanups(self) -> Any:
        return do_cleanups(self, super().doCleanups)

    def _callSetUp(self) -> None:
        self._anyio_unittest_run.set_up()

    def _callTestMethod(self, method: Callable[[], object]) -> None:
        self._anyio_unittest_run.test(method)

    def _callTearDown(self) -> None:
        self._anyio_unittest_run.tear_down()

    def _callCleanup(
        self, function: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> None:
        self._anyio_unittest_run.cleanup(function, args, kwargs)


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
