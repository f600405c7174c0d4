"""The registry of shared runners, and every way they are closed.

A :class:`Scope` is one level of sharing (a session, a module or a class): a
``contextvars.Context``, a runner (its own, or borrowed from the level above)
and a scope task for its async hooks, opened on first use. Contexts are layered:
a module's context is a copy of the session's, a class's a copy of its module's,
a test's a copy of its class's, so what a level sets is seen below it and never
beside it.

Where runners end:

* class scope: in the class's first-registered class cleanup, so after
  ``tearDownClass`` and every other class cleanup, and also when class setup
  fails (unittest and pytest both run class cleanups then);
* module scope: at the module's end, through ``unittest.addModuleCleanup`` under
  unittest, through the pytest plugin under pytest (pytest ignores module
  cleanups);
* session scope: at pytest's session end, or at interpreter exit;
* all of them on ``KeyboardInterrupt`` and at interpreter exit, whatever is left.
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import inspect
import sys
import threading
import traceback
import unittest
import warnings
from collections.abc import Awaitable, Callable
from contextvars import Context, ContextVar
from typing import TYPE_CHECKING, Any, NoReturn

from ._backends import Backend
from ._driver import Runner, ScopeTask
from ._exceptions import (
    CallTimeout,
    ConfigurationError,
    FirstInterrupt,
    LoopErrors,
    LoopErrorWarning,
    RunnerConflictError,
    ScopeCancelled,
)
from ._guards import TIME_LIMITS
from ._report import (
    close_runner,
    explain_cross_loop,
    note_findings,
    open_runner,
    print_report,
    timing,
)
from ._sigint import stop_run

if TYPE_CHECKING:
    from ._meta import ClassConfig

# our frames are hidden from reported tracebacks: unittest's flag, and pytest's
__unittest = True
__tracebackhide__ = True


async def await_result(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """Call *fn* and await what it returns if that is awaitable."""
    result = fn(*args, **kwargs)
    if inspect.isawaitable(result):
        result = await result
    return result


def await_object(awaitable: Awaitable[Any]) -> Awaitable[Any]:
    """For a scope task's ``await fn(*args)`` to await *awaitable* itself: no
    coroutine around it, whose frame each test would pay for."""
    return awaitable


class Scope:
    def __init__(
        self, label: str, runner: Runner, owns_runner: bool, context: Context
    ) -> None:
        self.label = label
        self.runner = runner
        self.owns_runner = owns_runner
        self.context = context
        #: whose hooks run in its scope task ("x.Y", a module's name)
        self.who = label
        self._task: ScopeTask | None = None
        #: errors the loop reported between tests, reported at this scope's end
        self.stray_errors: list[str] = []
        #: what they do then (the loop_errors policy of the class that opened it)
        self.loop_errors = "fail"

    def call(
        self, fn: Callable[..., Any], /, *args: Any, timeout: float | None = None
    ) -> Any:
        task = self._task
        if task is None:
            task = self._task = self.runner.open_task(self.context, self.label)
        # what a task started now is reported as started by
        hook = args[0] if fn is await_result and args else fn
        task.marker.doing = f"{getattr(hook, '__name__', hook)} of {self.who}"
        stop = timing(self.runner.record, hooks=True)
        try:
            return task.call(fn, *args, timeout=timeout)
        except CallTimeout as exc:
            raise TimeoutError(
                f"{self.label}: {_name(fn, args)} exceeded class_timeout = "
                f"{exc.timeout:g} seconds{exc.details()}"
            ) from exc.__cause__
        except (KeyboardInterrupt, SystemExit, GeneratorExit):
            raise
        except BaseException as exc:
            if isinstance(exc, Exception):
                explain_cross_loop(exc, self.runner.record)
                raise
            # a cancellation (asyncio's or trio's): unittest's class and module
            # fixtures catch Exception only, and must not end the run for it
            raise ScopeCancelled(
                f"{self.label}: {_name(fn, args)} was cancelled; typically a task "
                f"group it runs in (entered by asyncSetUpClass or "
                f"asyncSetUpModule) was cancelled because a task in it failed"
            ) from exc
        finally:
            stop()

    def close(self) -> None:
        task, self._task = self._task, None
        errors = self.stray_errors
        errors += self.runner.take_errors()
        try:
            if task is not None:
                task.close()
        finally:
            if self.owns_runner:
                close_runner(self.runner)
                errors += self.runner.take_errors()
        note_findings(self.runner.record, loop_errors=len(errors))
        if errors and self.loop_errors != "log":
            text = (
                f"the event loop of the {self.label} reported these errors outside "
                f"any test:\n\n" + "\n".join(errors)
            )
            if self.loop_errors == "fail":
                raise LoopErrors(text)
            warnings.warn(LoopErrorWarning(text), stacklevel=1)


def _name(fn: Callable[..., Any], args: tuple[Any, ...]) -> str:
    if fn is await_result and args:  # a cleanup: name the user's function
        fn = args[0]
    return str(getattr(fn, "__qualname__", fn))


class ModuleScope(Scope):
    """A module's share of a module or session runner, with its async hooks."""

    def __init__(
        self,
        module: str,
        backend: Backend,
        label: str,
        runner: Runner,
        owns_runner: bool,
        context: Context,
    ) -> None:
        super().__init__(label, runner, owns_runner, context)
        self.module = self.who = module
        self.backend = backend
        self.cleanups: list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]]
        self.cleanups = []
        self.set_up = False
        #: the class (or module hook: "") it was opened for, for messages
        self.opener = ""
        #: the class_timeout of the class that opened it, for each module step
        self.limit: float | None = None
        self.setup_error: BaseException | None = None

    def add_cleanup(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        self.cleanups.append((fn, args, kwargs))

    def end(self) -> None:
        """asyncTearDownModule, then the module cleanups (LIFO), then close."""
        errors: list[BaseException] = []
        module = sys.modules.get(self.module)
        teardown = getattr(module, "asyncTearDownModule", None)
        try:
            if self.set_up and teardown is not None:
                try:
                    self.call(teardown, timeout=self.limit)
                except Exception as exc:
                    errors.append(exc)
            while self.cleanups:
                fn, args, kwargs = self.cleanups.pop()
                try:
                    self.call(await_result, fn, *args, timeout=self.limit, **kwargs)
                except Exception as exc:
                    errors.append(exc)
        finally:
            self.close()
        if errors:
            raise errors[0]


#: the module scope the current code runs under (set in each module context)
current_module_scope: ContextVar[ModuleScope] = ContextVar(
    "anyio_unittest.module_scope"
)


class Registry:
    def __init__(self) -> None:
        self.sessions: list[tuple[Backend, Scope]] = []
        self.modules: dict[tuple[str, str, Backend], ModuleScope] = {}
        self.classes: dict[type, Scope] = {}
        #: set by the pytest plugin, which ends modules itself
        self.pytest_ends_modules = False
        self._modules_with_cleanup: set[str] = set()
        #: modules whose end a nested unittest run asked for too early
        self._deferred_ends: set[str] = set()
        #: module scopes whose runner was left behind, still to be ended
        self._retired: list[ModuleScope] = []
        _before_threads_are_joined(self._close_at_exit)

    # sessions ---------------------------------------------------------------

    def session(self, backend: Backend, opener: str = "") -> Scope:
        for index, (known, scope) in enumerate(self.sessions):
            if known == backend:
                if scope.runner.left_behind is None:
                    return scope
                # a test left it behind: the rest of the run gets a new one
                del self.sessions[index]
                break
        # the opener is named so that a RunnerConflictError can name it
        label = f"session runner ({backend.id})" + (f" of {opener}" if opener else "")
        runner = open_runner(backend, label, "session", "")
        scope = Scope(label, runner, True, contextvars.copy_context())
        self.sessions.append((backend, scope))
        return scope

    # modules ----------------------------------------------------------------

    def module(
        self,
        module: str,
        backend: Backend,
        loop_scope: str,
        limit: float | None,
        loop_errors: str = "fail",
        opener: str = "",
    ) -> ModuleScope:
        """The scope of *module* on *backend* (module or session scope): opened,
        and ``asyncSetUpModule`` run, on first use; the settings are those of
        the class (or the module hook) that opens it."""
        key = (module, loop_scope, backend)
        scope = self.modules.get(key)
        if scope is not None and scope.runner.left_behind is not None:
            # a test left its runner behind: later classes get a new one (its
            # module hooks run again there), and it is ended with the module
            self._retired.append(self.modules.pop(key))
            scope = None
        if scope is None:
            scope = self._open_module(
                module, backend, loop_scope, limit, loop_errors, opener
            )
        if scope.setup_error is not None:
            raise ConfigurationError(
                f"asyncSetUpModule of {module} failed for the {backend.id} "
                f"runner (reported with the module's first class)"
            ) from scope.setup_error
        return scope

    def _open_module(
        self,
        module: str,
        backend: Backend,
        loop_scope: str,
        limit: float | None,
        loop_errors: str,
        opener: str,
    ) -> ModuleScope:
        if loop_scope == "session":
            parent = self.session(backend, opener or module)
            runner, owns, context = parent.runner, False, parent.context.copy()
            label = f"{module} on the session runner ({backend.id})"
        else:
            label = f"module runner of {module} ({backend.id})"
            runner = self._open_module_runner(backend, label, opener, module)
            owns = True
            context = contextvars.copy_context()
        scope = ModuleScope(module, backend, label, runner, owns, context)
        scope.opener = opener
        scope.limit = limit
        scope.loop_errors = loop_errors
        context.run(current_module_scope.set, scope)
        self.modules[(module, loop_scope, backend)] = scope
        if not self.pytest_ends_modules and module not in self._modules_with_cleanup:
            self._modules_with_cleanup.add(module)
            unittest.addModuleCleanup(self.end_module, module)
        setup = getattr(sys.modules.get(module), "asyncSetUpModule", None)
        if setup is not None:
            try:
                scope.call(setup, timeout=limit)
            except BaseException as exc:
                scope.setup_error = exc
                raise
        scope.set_up = True
        return scope

    def _open_module_runner(
        self, backend: Backend, label: str, opener: str, module: str
    ) -> Runner:
        try:
            return open_runner(backend, label, "module", module)
        except RunnerConflictError as exc:
            # a module runner's label names only its module: name the classes
            users = [
                scope.opener
                for scope in self.modules.values()
                if scope.owns_runner and scope.backend.name == backend.name
            ]
            raise RunnerConflictError(
                f"{exc} (asked for by {opener or 'a module hook'}; the open run "
                f"was opened for {', '.join(filter(None, users)) or 'a module hook'})"
            ) from None

    def end_module(self, module: str) -> None:
        """End every module scope of *module*; raise the first error."""
        self._modules_with_cleanup.discard(module)
        if any(cls.__module__ == module for cls in self.classes):
            # A class of the module is still open, so the module has not ended:
            # a unittest run nested in one of its tests ran unittest's module
            # cleanups (one list for the whole process) as it ended. Registered
            # again when the module's last open class closes.
            self._deferred_ends.add(module)
            return
        scopes = [
            self.modules.pop(k) for k in [k for k in self.modules if k[0] == module]
        ]
        scopes += [scope for scope in self._retired if scope.module == module]
        self._retired = [scope for scope in self._retired if scope.module != module]
        errors: list[BaseException] = []
        for scope in scopes:
            try:
                scope.end()
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise errors[0]

    # tests ------------------------------------------------------------------

    def open_test(
        self, cls: type, config: ClassConfig, name: str
    ) -> tuple[Runner, Context, bool]:
        """What a test of *cls* (set up, if shared) runs on: its runner, a
        context of its own, and whether the runner is the test's own (in
        function scope, it is opened for the test and closed with it)."""
        if config.loop_scope == "function":
            assert config.backend is not None
            runner = open_runner(
                config.backend,
                name,
                "function",
                cls.__module__,
                f"{cls.__module__}.{cls.__qualname__}",
            )
            return runner, contextvars.copy_context(), True
        scope = self.classes[cls]
        stray = scope.runner.take_errors()
        if stray:  # swallowed between tests: reported at the class's end
            scope.stray_errors.extend(stray)
        return scope.runner, scope.context.copy(), False

    def fresh_module(self, module: str, loop_scope: str) -> bool:
        """Whether a test of a class of *module* run alone must also set the
        module up (and end it after)."""
        return loop_scope in ("module", "session") and not any(
            key[0] == module for key in self.modules
        )

    # classes ----------------------------------------------------------------

    def before_class_set_up(self, cls: type, config: ClassConfig) -> None:
        """Before the class's own ``setUpClass``."""
        config.check_runnable()
        if config.loop_scope != "function":
            # first on the class cleanup stack, so the runner closes last
            cls.addClassCleanup(self.close_class, cls)  # type: ignore[attr-defined]

    def after_class_set_up(self, cls: type, config: ClassConfig) -> None:
        """After the class's own ``setUpClass``: its runner, ``asyncSetUpClass``."""
        if config.loop_scope in ("function", "class"):
            config.check_module_hooks()
        if config.loop_scope == "function":
            return
        assert config.backend is not None
        try:
            self.open_class(cls, config)
        except FirstInterrupt:  # in asyncSetUpModule
            self._stop_run(cls)
        if "asyncSetUpClass" in config.hooks:
            self.class_call(cls, cls.asyncSetUpClass)  # type: ignore[attr-defined]

    def before_class_tear_down(self, cls: type, config: ClassConfig) -> None:
        """Before the class's own ``tearDownClass``: ``asyncTearDownClass``."""
        if cls in self.classes and "asyncTearDownClass" in config.hooks:
            self.class_call(cls, cls.asyncTearDownClass)  # type: ignore[attr-defined]

    def class_call(
        self, cls: type, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> Any:
        """Run ``await fn(*args, **kwargs)`` on the class's runner."""
        scope = self.classes.get(cls)
        if scope is None:
            raise RuntimeError(
                f"{cls.__qualname__}: class-level async code can only run between "
                f"setUpClass and the class cleanups"
            )
        limit = TIME_LIMITS.class_limit(cls)
        try:
            if kwargs:
                return scope.call(await_result, fn, *args, timeout=limit, **kwargs)
            return scope.call(fn, *args, timeout=limit)
        except FirstInterrupt:
            self._stop_run(cls)

    def class_cleanup(
        self,
        cls: type,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        """An async class cleanup (``addAsyncClassCleanup``)."""
        self.class_call(cls, await_result, fn, *args, **kwargs)

    def _stop_run(self, cls: type) -> NoReturn:
        stop_run(cls.doClassCleanups, self.close_all_on_interrupt)  # type: ignore[attr-defined]

    def open_class(self, cls: type, config: ClassConfig) -> Scope:
        label = f"{cls.__module__}.{cls.__qualname__}"
        backend = config.backend
        assert backend is not None
        if config.loop_scope == "class":
            runner = open_runner(
                backend, f"class runner of {label}", "class", cls.__module__
            )
            scope = Scope(label, runner, True, contextvars.copy_context())
        else:
            module = self.open_module(cls, config, label)
            scope = Scope(label, module.runner, False, module.context.copy())
        scope.loop_errors = config.policy("loop_errors")
        self.classes[cls] = scope
        return scope

    def open_module(self, cls: type, config: ClassConfig, opener: str) -> ModuleScope:
        """The module scope a class of a module or session scope runs under."""
        assert config.backend is not None
        return self.module(
            cls.__module__,
            config.backend,
            config.loop_scope,
            TIME_LIMITS.class_limit(cls),
            config.policy("loop_errors"),
            opener,
        )

    def close_class(self, cls: type) -> None:
        scope = self.classes.pop(cls, None)
        module = cls.__module__
        if module in self._deferred_ends and not any(
            other.__module__ == module for other in self.classes
        ):
            self._deferred_ends.discard(module)
            if module not in self._modules_with_cleanup:
                self._modules_with_cleanup.add(module)
                unittest.addModuleCleanup(self.end_module, module)
        if scope is not None:
            scope.close()

    # everything -------------------------------------------------------------

    def close_all_on_interrupt(self, result: object = None) -> None:
        """Close every runner as the run stops for Ctrl-C. Not when pytest
        drives the test (*result* is its item): it still tears its class
        fixtures down (``tearDownClass``, class cleanups) and ends the session,
        where the plugin closes them. A unittest run inside a pytest test is not
        pytest's to tear down."""
        pytest = sys.modules.get("pytest")
        if result is None:
            driven_by_pytest = self.pytest_ends_modules
        else:
            driven_by_pytest = pytest is not None and isinstance(result, pytest.Item)
        if not driven_by_pytest:
            # the Ctrl-C is what must reach the user: a runner that a second
            # Ctrl-C hit in its own machinery must not replace it
            with contextlib.suppress(Exception):
                self.close_all()

    def _close_at_exit(self) -> None:
        try:
            self.close_all()
        except Exception:
            # no test is left to report it: say it as the interpreter would,
            # with a word about whose it is
            print(
                "anyio_unittest: closing the runners still open at exit failed:",
                file=sys.stderr,
            )
            traceback.print_exc()
        print_report()  # unless pytest's terminal summary had it

    def close_all(self) -> None:
        """Close every scope still open: classes, modules, then sessions."""
        errors: list[BaseException] = []
        for cls in list(self.classes):
            try:
                self.close_class(cls)
            except Exception as exc:
                errors.append(exc)
        modules = {key[0] for key in self.modules}
        modules.update(scope.module for scope in self._retired)
        for module in modules:
            try:
                self.end_module(module)
            except Exception as exc:
                errors.append(exc)
        while self.sessions:
            _, scope = self.sessions.pop()
            try:
                scope.close()
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise errors[0]


def _before_threads_are_joined(fn: Callable[[], object]) -> None:
    """Have *fn* called at interpreter exit, before the interpreter waits for the
    threads that are not daemons.

    ``atexit`` handlers run only after that wait, and a session runner must
    close before it: the threads may be waiting on it (anyio's worker threads
    stop only when their task ends; a thread blocked in
    ``run_coroutine_threadsafe(...).result()`` or ``trio.from_thread.run``
    returns only when the runner runs or ends), and the process would never
    exit. ``threading._register_atexit`` is the standard library's own hook
    for exactly this (``concurrent.futures`` shuts its pools down with it);
    where a Python lacks it, ``atexit`` is the next best.
    """
    register = getattr(threading, "_register_atexit", None)
    if register is None:
        atexit.register(fn)
    else:
        register(fn)


registry = Registry()
