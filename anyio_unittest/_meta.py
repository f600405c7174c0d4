"""Class creation: validation of the class attributes and backend parametrisation.

Everything a user can get wrong in a class statement is checked here, when the
class is defined, so that a typo fails at import with the class, the attribute
and the fix named, and never as a puzzling error in the middle of a run.
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
import unittest
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._backends import (
    BACKENDS_ENV,
    Backend,
    env_backend_filter,
    env_default_backend,
    parse_spec,
    selected,
)
from ._clock import clock_conflict, clock_setting
from ._exceptions import ConfigurationError, FirstInterrupt
from ._guards import GUARDS, TIME_LIMITS, policy, under_debugger
from ._report import report_wanted

if TYPE_CHECKING:
    from collections.abc import Mapping

from ._scopes import registry
from ._sigint import stop_run

# our frames are hidden from reported tracebacks: unittest's flag, and pytest's
__unittest = True
__tracebackhide__ = True

LOOP_SCOPES = ("function", "class", "module", "session")

#: the one piece of the package's state on a test class (see ClassConfig)
CONFIG_ATTR = "_anyio_unittest_config"

_SYNC_ONLY = ("setUp", "tearDown", "setUpClass", "tearDownClass")
_ASYNC_METHODS = ("asyncSetUp", "asyncTearDown")
_ASYNC_CLASS_HOOKS = ("asyncSetUpClass", "asyncTearDownClass")
_SYNC_TWIN = {"asyncSetUp": "setUp", "asyncTearDown": "tearDown"}


def _is_async(fn: object) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn)


def _fail(cls: type, message: str) -> ConfigurationError:
    return ConfigurationError(f"{cls.__module__}.{cls.__qualname__}: {message}")


class MethodInfo:
    """What the package needs to know of one test method, worked out once."""

    __slots__ = ("hypothesis", "limit", "mergeable")

    def __init__(self, limit: float | None, hypothesis: bool, mergeable: bool):
        #: its time limit (see TimeLimits.test_limit)
        self.limit = limit
        #: Hypothesis drives it (``@given``)
        self.hypothesis = hypothesis
        #: its async phases may run in one entry into the loop
        self.mergeable = mergeable


class ClassConfig:
    """What the package reads of a test class, worked out when it is defined."""

    __slots__ = (
        "backend",
        "cls",
        "generated",
        "hooks",
        "loop_scope",
        "methods",
        "name",
        "parametrised",
        "policies",
        "skip_set",
    )

    def __init__(self, cls: type, hooks: frozenset[str]) -> None:
        self.cls = cls
        #: its qualified name, as messages name it
        self.name = cls.__qualname__
        self.loop_scope: str = getattr(cls, "loop_scope", "function")
        #: the hooks the class defines (the base class's are never called)
        self.hooks = hooks
        #: its backend (None for a class with anyio_backends)
        self.backend: Backend | None = None
        #: it declares anyio_backends: its tests run in the generated classes
        self.parametrised = False
        #: it is one of those generated classes
        self.generated = False
        #: the package marked it skipped (uvloop missing, a backend filtered out)
        self.skip_set = False
        self.policies: dict[str, str] = {}
        #: each test method's MethodInfo, by name, once worked out
        self.methods: dict[str, MethodInfo] = {}

    def policy(self, name: str) -> str:
        """A policy (``leaked_tasks``, ``loop_errors``): the environment's for
        the whole run, else the class's; read once per class."""
        value = self.policies.get(name)
        if value is None:
            value = self.policies[name] = policy(self.cls, name)
        return value

    def method(self, case: Any) -> MethodInfo:
        """The MethodInfo of *case*'s test method: worked out at its first run
        (the time limit of the environment read then), unless a debugger is
        attached (no limit then) or the instance has a method of its own."""
        name = case._testMethodName
        info = self.methods.get(name)
        if info is None or under_debugger():
            info = self._method(case, name)
            if name not in case.__dict__ and not under_debugger():
                self.methods[name] = info
        return info

    def _method(self, case: Any, name: str) -> MethodInfo:
        cls = self.cls
        method = case.__dict__.get(name) or getattr(cls, name, None)
        limit = TIME_LIMITS.test_limit(cls, method)
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
        return MethodInfo(limit, hypothesis, mergeable)

    def check_runnable(self) -> None:
        if self.parametrised:
            classes: Mapping[str, type] = getattr(self.cls, "anyio_backend_classes", {})
            raise ConfigurationError(
                f"{self.name} declares anyio_backends, so its tests run in "
                f"the generated classes "
                f"({', '.join(sorted(classes)) or 'none selected'}); "
                f"run those, e.g. {self.name}_asyncio"
            )

    def check_module_hooks(self) -> None:
        module = sys.modules.get(self.cls.__module__)
        for hook in ("asyncSetUpModule", "asyncTearDownModule"):
            if getattr(module, hook, None) is not None:
                raise ConfigurationError(
                    f"{self.cls.__module__} defines {hook}, which runs on a module "
                    f"or session runner, but {self.name} has loop_scope = "
                    f"{self.loop_scope!r}, so it would never run for this class; "
                    f"set loop_scope = 'module' (or 'session') on it"
                )


#: marks the setUpModule the package puts in a test module (its module's name)
MODULE_HOOK_ATTR = "_anyio_unittest_module_hook"


def _install_module_hook(cls: type, config: ClassConfig) -> None:
    """Give the module of a module- or session-scoped class a ``setUpModule``
    (wrapping one it already has) that opens the module's scope and runs
    ``asyncSetUpModule`` there (see ``_set_up_module``): so a failing one is
    unittest's own "setUpModule" error, and the module's classes don't run.
    A ``setUpModule`` the module defines after the class replaces it: the
    scopes then open with the module's first class, and a failing
    ``asyncSetUpModule`` is that class's error."""
    if config.loop_scope not in ("module", "session") or "<locals>" in (
        cls.__qualname__
    ):
        return
    module = sys.modules.get(cls.__module__)
    if module is None:
        return
    name = module.__name__
    existing = module.__dict__.get("setUpModule")
    hook_of = getattr(existing, MODULE_HOOK_ATTR, None)
    if hook_of == name:
        return
    if hook_of is not None:
        existing = None  # another module's, brought in by a star import

    def setUpModule() -> None:
        if existing is not None:
            existing()
        _set_up_module(name)

    setattr(setUpModule, MODULE_HOOK_ATTR, name)
    module.setUpModule = setUpModule  # type: ignore[attr-defined]


def _set_up_module(name: str) -> None:
    """Open the scope the module's classes run under, if the module has an
    asyncSetUpModule and its classes all run on one runner. With several
    (backends, scopes), which of them a run needs is not known here (``-k``,
    ``--failfast``, a class per process): each opens with the first class that
    runs on it, whose set-up then reports a failing asyncSetUpModule."""
    module = sys.modules[name]
    if getattr(module, "asyncSetUpModule", None) is None:
        return
    first: dict[tuple[Any, str], tuple[type, ClassConfig]] = {}
    for obj in list(vars(module).values()):
        config = getattr(obj, "__dict__", {}).get(CONFIG_ATTR)
        if (
            not isinstance(config, ClassConfig)
            or config.backend is None
            or config.loop_scope not in ("module", "session")
            or obj.__module__ != name
            or getattr(obj, "__unittest_skip__", False)
        ):
            continue
        first.setdefault((config.backend, config.loop_scope), (obj, config))
    if len(first) == 1:
        [(cls, config)] = first.values()
        try:
            registry.open_module(cls, config, f"{name}.{config.name}")
        except FirstInterrupt:
            stop_run(registry.close_all_on_interrupt)


def config_of(cls: type) -> ClassConfig:
    config: ClassConfig = cls.__dict__[CONFIG_ATTR]
    return config


_MISSING: Any = object()


def _definition(cls: type, namespace: dict[str, Any], name: str) -> tuple[Any, str]:
    """What *cls* gets for *name* that no check has seen yet, and from where.

    Its own definition, or a plain mixin's (``class T(Mixin, AnyIOTestCase)``);
    a definition from a class of ours was checked when that class was defined.
    """
    if name in namespace:
        return namespace[name], ""
    for klass in cls.__mro__[1:]:
        if name in klass.__dict__:
            if isinstance(klass, AnyIOTestCaseMeta):
                break
            return klass.__dict__[name], f" (inherited from {klass.__qualname__})"
    return _MISSING, ""


#: IsolatedAsyncioTestCase's private runner hooks, which the package never
#: calls, and what does their job here
_STDLIB_RUNNER_HOOKS = {
    "_setupAsyncioRunner": (
        "the event loop is the runner's: give the class a loop_factory, or "
        "anyio_backend = ('asyncio', {...}) options; set things up in "
        "asyncSetUpClass or asyncSetUp"
    ),
    "_callAsync": "wrap the test or hook itself, or use asyncSetUp/asyncTearDown",
    "_callMaybeAsync": (
        "wrap the test or hook itself, or use asyncSetUp/asyncTearDown"
    ),
}


def _check_methods(cls: type, namespace: dict[str, Any]) -> None:
    for name, instead in _STDLIB_RUNNER_HOOKS.items():
        value, origin = _definition(cls, namespace, name)
        if value is not _MISSING:
            raise _fail(
                cls,
                f"{name}{origin} overrides a private hook of "
                f"IsolatedAsyncioTestCase, which AnyIOTestCase never calls (it "
                f"would be silently ignored); {instead}",
            )
    for name in _SYNC_ONLY:
        value, origin = _definition(cls, namespace, name)
        fn = getattr(value, "__func__", value)
        if value is not _MISSING and _is_async(fn):
            hint = (
                f"rename it async{name[0].upper()}{name[1:]}"
                if name.endswith("Class") or name in ("setUp", "tearDown")
                else "make it a plain def"
            )
            raise _fail(cls, f"{name}{origin} must be a plain (sync) method; {hint}")
    for name in _ASYNC_METHODS:
        value, origin = _definition(cls, namespace, name)
        if value is not _MISSING and not _is_async(value):
            raise _fail(
                cls,
                f"{name}{origin} must be defined with 'async def' (sync code goes "
                f"in {_SYNC_TWIN[name]})",
            )
    for name in _ASYNC_CLASS_HOOKS:
        value, origin = _definition(cls, namespace, name)
        if value is _MISSING:
            continue
        if not isinstance(value, classmethod):
            raise _fail(
                cls,
                f"{name}{origin} must be a classmethod: decorate it with @classmethod",
            )
        if not _is_async(value.__func__):
            raise _fail(cls, f"{name}{origin} must be defined with 'async def'")


def _declares(cls: type, root: type) -> tuple[type, str] | None:
    """The nearest class (below *root*) that sets anyio_backend(s), and which."""
    for klass in cls.__mro__:
        if klass is root or not issubclass(klass, root):
            continue
        own = klass.__dict__
        if "anyio_backend" in own and "anyio_backends" in own:
            raise _fail(
                klass,
                "set either anyio_backend (one backend) or anyio_backends "
                "(one generated class per backend), not both",
            )
        if "anyio_backends" in own:
            return klass, "anyio_backends"
        if "anyio_backend" in own:
            return klass, "anyio_backend"
    return None


def _parse_backends(cls: type, value: object) -> list[Backend]:
    where = f"{cls.__module__}.{cls.__qualname__}.anyio_backends"
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise ConfigurationError(
            f"{where} = {value!r}: give a list of backends, e.g. "
            f"['asyncio', 'trio'] (for one backend set anyio_backend)"
        )
    if not value:
        raise ConfigurationError(
            f"{where} is empty: list at least one backend, or remove it"
        )
    backends = [parse_spec(spec, where) for spec in value]
    seen: dict[str, Backend] = {}
    for backend in backends:
        if backend.id in seen and backend == seen[backend.id]:
            raise ConfigurationError(
                f"{where} lists {backend!r} twice (as {backend.id}); remove one"
            )
        if backend.id in seen:
            raise ConfigurationError(
                f"{where}: {seen[backend.id]!r} and {backend!r} would both generate "
                f"{cls.__name__}_{backend.id}; keep one, or declare the other in "
                f"a subclass"
            )
        seen[backend.id] = backend
    return backends


def has_tests(cls: type) -> bool:
    loader = unittest.TestLoader()
    prefix = loader.testMethodPrefix
    return any(
        name.startswith(prefix) and callable(getattr(cls, name, None))
        for name in type.__dir__(cls)
    )


def configure(cls: type, root: type, namespace: dict[str, Any]) -> None:
    """Validate *cls* and give it its backend, or generate one class per backend."""
    loop_scope = getattr(cls, "loop_scope", "function")
    if loop_scope not in LOOP_SCOPES:
        raise _fail(
            cls,
            f"loop_scope = {loop_scope!r} is not a scope; use one of "
            f"{', '.join(map(repr, LOOP_SCOPES))}",
        )
    for guard in GUARDS:
        guard.check(cls, f"{cls.__module__}.{cls.__qualname__}")
    if loop_scope == "function":
        for name in _ASYNC_CLASS_HOOKS:
            if getattr(cls, name).__func__ is not getattr(root, name).__func__:
                raise _fail(
                    cls,
                    f"{name} needs a runner that outlives one test, but "
                    f"loop_scope is 'function'; set loop_scope = 'class' (or "
                    f"'module' / 'session')",
                )
    loop_factory = getattr(cls, "loop_factory", None)
    if loop_factory is not None and not callable(loop_factory):
        raise _fail(cls, f"loop_factory = {loop_factory!r} must be a callable or None")
    threshold = clock_setting(cls, f"{cls.__module__}.{cls.__qualname__}")

    inherited = cls.__dict__.get(CONFIG_ATTR) or getattr(cls, CONFIG_ATTR, None)
    config = ClassConfig(
        cls,
        frozenset(
            name
            # hooks left as the base class has them are not called at all
            for name in ("setUp", "tearDown", *_ASYNC_METHODS, *_ASYNC_CLASS_HOOKS)
            if getattr(getattr(cls, name), "__func__", getattr(cls, name))
            is not getattr(getattr(root, name), "__func__", getattr(root, name))
        ),
    )
    setattr(cls, CONFIG_ATTR, config)

    declared = _declares(cls, root)
    keep = env_backend_filter()
    default = env_default_backend()  # validated even where a class doesn't use it
    report_wanted()  # a bad ANYIO_UNITTEST_REPORT fails where the first class is
    if declared is not None and declared[1] == "anyio_backends":
        backends = _parse_backends(declared[0], declared[0].__dict__["anyio_backends"])
        others = sorted({b.name for b in backends} - {"asyncio"})
        if loop_factory is not None and others:
            # said here, naming this class, not later for a generated one
            raise _fail(
                cls,
                f"loop_factory is an asyncio setting but anyio_backends also "
                f"lists {', '.join(map(repr, others))}; remove loop_factory, or "
                f"give it per backend: ('asyncio', {{'loop_factory': ...}})",
            )
        trio_ids = sorted(
            b.id for b in backends if b.name == "trio" and selected(b, keep)
        )
        if loop_scope in ("module", "session") and len(trio_ids) > 1:
            # trio allows one run per thread: the second generated class would
            # only fail with RunnerConflictError while the first's run is open
            raise _fail(
                cls,
                f"loop_scope = {loop_scope!r} keeps a trio run open for the whole "
                f"{loop_scope}, and trio allows one run per thread, so trio "
                f"backends with different options ({', '.join(trio_ids)}) can't "
                f"both run; set loop_scope = 'class', or keep one of them per "
                f"run with {BACKENDS_ENV}",
            )
        if threshold is not None:
            for backend in backends:
                options = backend.options
                if backend.name == "asyncio" and loop_factory is not None:
                    options = {**options, "loop_factory": loop_factory}
                conflict = clock_conflict(backend.name, options)
                if conflict is not None:
                    raise _fail(cls, f"backend {backend.id}: {conflict}")
        config.parametrised = True
        cls.__test__ = False  # type: ignore[attr-defined]  # pytest: collect the generated classes
        _set_skip(config, inherited, None)
        generated = {}
        if has_tests(cls):
            for backend in backends:
                if selected(backend, keep):
                    generated[backend.id] = _generate(cls, backend, declared[0])
        cls.anyio_backend_classes = generated  # type: ignore[attr-defined]
        return

    cls.anyio_backend_classes = {}  # type: ignore[attr-defined]  # not its parent's
    if "__test__" not in namespace:  # a user's own __test__ = False stands
        cls.__test__ = True  # type: ignore[attr-defined]
    if declared is not None:
        where = f"{declared[0].__module__}.{declared[0].__qualname__}.anyio_backend"
        backend = parse_spec(declared[0].__dict__["anyio_backend"], where)
    else:
        backend = default or Backend("asyncio", {})
    if loop_factory is not None:
        if backend.name != "asyncio":
            raise _fail(
                cls,
                f"loop_factory is an asyncio setting but the backend is "
                f"{backend.name!r}; remove loop_factory or use the asyncio backend",
            )
        if "loop_factory" not in backend.options:
            backend = parse_spec(
                (backend.name, {**backend.options, "loop_factory": loop_factory}),
                f"{cls.__qualname__}.loop_factory",
            )
    if threshold is not None:
        conflict = clock_conflict(backend.name, backend.options)
        if conflict is not None:
            raise _fail(cls, f"backend {backend.id}: {conflict}")
        backend = backend.with_clock(threshold)
    config.backend = backend
    _install_module_hook(cls, config)
    reason = backend.unavailable_reason()
    if reason is None and not selected(backend, keep):
        reason = (
            f"{BACKENDS_ENV}={os.environ.get(BACKENDS_ENV)!r} excludes the "
            f"{backend.id} backend"
        )
    _set_skip(config, inherited, reason)


def _set_skip(
    config: ClassConfig, inherited: ClassConfig | None, reason: str | None
) -> None:
    cls = config.cls
    if reason is not None:
        cls.__unittest_skip__ = True  # type: ignore[attr-defined]
        cls.__unittest_skip_why__ = reason  # type: ignore[attr-defined]
        config.skip_set = True
    elif inherited is not None and inherited.skip_set:
        # inherited from a class we skipped: this one can run
        cls.__unittest_skip__ = False  # type: ignore[attr-defined]


def _own_copy(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def test(self: Any, *args: Any, **kwargs: Any) -> Any:
        return method(self, *args, **kwargs)

    return test


def _generate(cls: type, backend: Backend, declaring: type) -> type:
    name = f"{cls.__name__}_{backend.id}"
    qualname = cls.__qualname__.rpartition(".")[0]
    qualname = f"{qualname}.{name}" if qualname else name
    spec: Any = (backend.name, backend.options) if backend.options else backend.name
    namespace: dict[str, Any] = {
        "anyio_backend": spec,
        "__module__": cls.__module__,
        "__qualname__": qualname,
        "__doc__": cls.__doc__,
    }
    prefix = unittest.TestLoader.testMethodPrefix
    for attr in type.__dir__(cls):
        method: Any = getattr(cls, attr, None)
        if attr.startswith(prefix) and getattr(method, "is_hypothesis_test", False):
            # Hypothesis fails a @given method run on instances of several
            # classes ("differing executors") unless the class attribute is not
            # the @given function itself: give each generated class its own
            namespace[attr] = _own_copy(method)
    generated = type(cls)(name, (cls,), namespace)
    module = sys.modules.get(cls.__module__)
    if module is not None and "<locals>" not in qualname and "." not in qualname:
        existing = getattr(module, name, None)
        if existing is not None and not (
            isinstance(existing, AnyIOTestCaseMeta) and config_of(existing).generated
        ):
            raise _fail(
                cls,
                f"the class generated for backend {backend.id} would be named "
                f"{name}, but the module already has {name}; rename one of them",
            )
        setattr(module, name, generated)
    config_of(generated).generated = True
    return generated


def _wrap_setup(cls: type, original: object) -> classmethod[Any, [], None]:
    if not isinstance(original, classmethod):
        raise _fail(
            cls, "setUpClass must be a classmethod: decorate it with @classmethod"
        )
    user = original.__func__

    def setUpClass(klass: Any) -> None:
        # the outermost setUpClass of the class being set up: the user's own,
        # and its super() calls reach wrappers that do nothing more
        outermost = klass.setUpClass.__func__ is setUpClass
        if outermost:
            registry.before_class_set_up(klass, config_of(klass))
        user(klass)
        if outermost:
            registry.after_class_set_up(klass, config_of(klass))

    functools.update_wrapper(setUpClass, user)
    return classmethod(setUpClass)


def _wrap_teardown(cls: type, original: object) -> classmethod[Any, [], None]:
    if not isinstance(original, classmethod):
        raise _fail(
            cls, "tearDownClass must be a classmethod: decorate it with @classmethod"
        )
    user = original.__func__

    def tearDownClass(klass: Any) -> None:
        if klass.tearDownClass.__func__ is tearDownClass:
            registry.before_class_tear_down(klass, config_of(klass))
        user(klass)

    functools.update_wrapper(tearDownClass, user)
    return classmethod(tearDownClass)


class AnyIOTestCaseMeta(type):
    """Validates each test class when it is defined and expands ``anyio_backends``.

    A class that sets ``anyio_backends`` gets one subclass per backend, named
    ``<Class>_<backend id>`` and put in its module beside it; the class itself
    then shows no tests to unittest or pytest.
    """

    _root: type | None = None

    def __init__(
        cls, name: str, bases: tuple[type, ...], namespace: dict[str, Any], **kw: Any
    ) -> None:
        super().__init__(name, bases, namespace, **kw)
        root = AnyIOTestCaseMeta._root
        if root is None:  # AnyIOTestCase itself: unittest's class hooks, wrapped
            AnyIOTestCaseMeta._root = cls
            for name, wrap in (
                ("setUpClass", _wrap_setup),
                ("tearDownClass", _wrap_teardown),
            ):
                setattr(cls, name, wrap(cls, unittest.TestCase.__dict__[name]))
            return
        _check_methods(cls, namespace)
        # wrap first: configure() generates subclasses, which must inherit them;
        # a mixin's setUpClass (class T(Mixin, AnyIOTestCase)) is wrapped too, or
        # its super() call would reach ours as an inner call and open no runner
        setup, _ = _definition(cls, namespace, "setUpClass")
        if setup is not _MISSING:
            setattr(cls, "setUpClass", _wrap_setup(cls, setup))  # noqa: B010
        teardown, _ = _definition(cls, namespace, "tearDownClass")
        if teardown is not _MISSING:
            setattr(cls, "tearDownClass", _wrap_teardown(cls, teardown))  # noqa: B010
        configure(cls, root, namespace)

    def __dir__(cls) -> list[str]:
        names = type.__dir__(cls)
        config = cls.__dict__.get(CONFIG_ATTR)
        if config is not None and config.parametrised:
            # unittest's and pytest's loaders list test methods with dir()
            prefix = unittest.TestLoader.testMethodPrefix
            names = [n for n in names if not n.startswith(prefix)]
        return list(names)
