"""Bad configuration: every invalid class attribute, hook or environment variable.

Each mistake must fail when the class is defined, with a ConfigurationError whose
message names the class, the attribute and the fix (asserted on the text), never
later as a puzzling error in the middle of a run.
"""

from __future__ import annotations

import asyncio
import math
import os
import sys
import types
import unittest
from typing import Any
from unittest import mock

import trio
import trio.testing

from anyio_unittest import AnyIOTestCase, ConfigurationError, timeout

#: classes are defined in a module that is not imported, so generated classes are
#: registered nowhere and no loader can collect them
SCRATCH = "anyio_unittest_scratch_config"
NAME = "TestConfigured"


async def _trivial(self: Any) -> None:
    pass


def define(
    name: str = NAME, bases: tuple[type, ...] = (AnyIOTestCase,), **ns: Any
) -> Any:
    ns.setdefault("__module__", SCRATCH)
    ns.setdefault("test_trivial", _trivial)
    return type(name, bases, ns)


def clean_environ(case: unittest.TestCase) -> None:
    """Run *case* without the ANYIO_UNITTEST_* variables the caller may have set."""
    patcher = mock.patch.dict(os.environ)
    patcher.start()
    case.addCleanup(patcher.stop)
    for key in [k for k in os.environ if k.startswith("ANYIO_UNITTEST_")]:
        del os.environ[key]


async def _coro_fn(self_or_cls: Any) -> None:
    pass


def _sync_fn(self_or_cls: Any) -> None:
    pass


class _Instrument(trio.abc.Instrument):
    pass


_A_BACKEND = "a backend is 'asyncio', 'trio', or a (name, options) tuple"
_UNKNOWN = "use 'asyncio' or 'trio'"
_LIST = "give a list of backends, e.g. ['asyncio', 'trio']"
_SCOPES = "use one of 'function', 'class', 'module', 'session'"
_TIMEOUT = "a timeout is a positive number of seconds, or None for no limit"
_LEAKED = "use one of 'fail', 'warn', 'cancel', 'ignore'"

#: (attribute, bad value, fragments of the message besides class and attribute)
BAD_VALUES: list[tuple[str, object, tuple[str, ...]]] = [
    # anyio_backend: wrong types
    ("anyio_backend", 1, (_A_BACKEND,)),
    ("anyio_backend", None, (_A_BACKEND,)),
    ("anyio_backend", b"trio", (_A_BACKEND,)),
    ("anyio_backend", ["asyncio"], (_A_BACKEND,)),
    ("anyio_backend", ("asyncio",), (_A_BACKEND,)),
    ("anyio_backend", ("asyncio", {}, {}), (_A_BACKEND,)),
    ("anyio_backend", ("asyncio", [("debug", True)]), (_A_BACKEND,)),
    ("anyio_backend", (None, {}), (_A_BACKEND,)),
    # anyio_backend: unknown names
    ("anyio_backend", "curio", ("unknown backend 'curio'", _UNKNOWN)),
    ("anyio_backend", "Trio", ("unknown backend 'Trio'", _UNKNOWN)),
    ("anyio_backend", "", ("unknown backend ''", _UNKNOWN)),
    ("anyio_backend", "asyncio_uvloop", ("unknown backend 'asyncio_uvloop'",)),
    ("anyio_backend", ("curio", {}), ("unknown backend 'curio'", _UNKNOWN)),
    # anyio_backend: unknown options, options of the other backend
    (
        "anyio_backend",
        ("asyncio", {"bogus": 1}),
        (
            "'bogus' is not an option of the asyncio backend",
            "its options are debug, loop_factory, use_uvloop",
        ),
    ),
    ("anyio_backend", ("asyncio", {1: 2}), ("1 is not an option of the asyncio",)),
    (
        "anyio_backend",
        ("trio", {"debug": True}),
        (
            "'debug' is not an option of the trio backend",
            "its options are clock, instruments, "
            "restrict_keyboard_interrupt_to_checkpoints, strict_exception_groups",
        ),
    ),
    ("anyio_backend", ("trio", {"use_uvloop": True}), ("'use_uvloop' is not",)),
    (
        "anyio_backend",
        ("asyncio", {"clock": trio.testing.MockClock()}),
        ("'clock' is not an option of the asyncio backend",),
    ),
    # anyio_backend: bad option values
    (
        "anyio_backend",
        ("asyncio", {"debug": "yes"}),
        ("option 'debug' of the asyncio backend must be True, False or None",),
    ),
    ("anyio_backend", ("asyncio", {"use_uvloop": 1}), ("must be True or False",)),
    ("anyio_backend", ("asyncio", {"use_uvloop": None}), ("must be True or False",)),
    ("anyio_backend", ("asyncio", {"loop_factory": 3}), ("a callable or None",)),
    (
        "anyio_backend",
        ("trio", {"clock": 3}),
        ("must be a trio.abc.Clock such as trio.testing.MockClock()",),
    ),
    (
        "anyio_backend",
        ("trio", {"clock": trio.testing.MockClock}),
        ("trio.abc.Clock",),
    ),
    (
        "anyio_backend",
        ("trio", {"instruments": _Instrument()}),
        ("a list of trio.abc.Instrument",),
    ),
    (
        "anyio_backend",
        ("trio", {"instruments": [object()]}),
        ("a list of trio.abc.Instrument",),
    ),
    (
        "anyio_backend",
        ("trio", {"strict_exception_groups": "no"}),
        ("'strict_exception_groups' of the trio backend must be True or False",),
    ),
    (
        "anyio_backend",
        ("trio", {"restrict_keyboard_interrupt_to_checkpoints": None}),
        ("must be True or False",),
    ),
    (
        "anyio_backend",
        ("asyncio", {"use_uvloop": True, "loop_factory": asyncio.new_event_loop}),
        ("give either use_uvloop or loop_factory, not both",),
    ),
    # anyio_backends: wrong types
    ("anyio_backends", "asyncio", (_LIST, "for one backend set anyio_backend")),
    ("anyio_backends", b"asyncio", (_LIST,)),
    ("anyio_backends", None, (_LIST,)),
    ("anyio_backends", 2, (_LIST,)),
    ("anyio_backends", {"asyncio", "trio"}, (_LIST,)),
    ("anyio_backends", {"asyncio": {}}, (_LIST,)),
    ("anyio_backends", iter(["asyncio"]), (_LIST,)),
    ("anyio_backends", ("asyncio", {"debug": True}), (_A_BACKEND,)),
    # anyio_backends: empty
    ("anyio_backends", [], ("is empty: list at least one backend, or remove it",)),
    ("anyio_backends", (), ("is empty",)),
    # anyio_backends: duplicates
    ("anyio_backends", ["asyncio", "asyncio"], ("lists 'asyncio' twice", "remove one")),
    ("anyio_backends", ["trio", ("trio", {})], ("lists 'trio' twice",)),
    (
        "anyio_backends",
        [("asyncio", {"debug": None}), "asyncio"],
        (f"and 'asyncio' would both generate {NAME}_asyncio",),
    ),
    (
        "anyio_backends",
        [("trio", {"clock": trio.testing.MockClock()})] * 2,
        ("twice (as trio_clock_MockClock)",),
    ),
    (
        "anyio_backends",
        [
            ("trio", {"clock": trio.testing.MockClock()}),
            ("trio", {"clock": trio.testing.MockClock(rate=2)}),
        ],
        (
            f"would both generate {NAME}_trio_clock_MockClock",
            "keep one, or declare the other in a subclass",
        ),
    ),
    # anyio_backends: bad entries, named as entries of anyio_backends
    ("anyio_backends", ["asyncio", "curio"], ("unknown backend 'curio'", _UNKNOWN)),
    ("anyio_backends", ["asyncio", 1], (_A_BACKEND,)),
    ("anyio_backends", [["trio"]], (_A_BACKEND,)),
    (
        "anyio_backends",
        ["asyncio", ("trio", {"debug": True})],
        ("'debug' is not an option of the trio backend",),
    ),
    (
        "anyio_backends",
        [("asyncio", {"debug": 1})],
        ("option 'debug' of the asyncio backend must be True, False or None",),
    ),
    # loop_scope
    ("loop_scope", "Class", ("'Class' is not a scope", _SCOPES)),
    ("loop_scope", "package", ("'package' is not a scope", _SCOPES)),
    ("loop_scope", "", (_SCOPES,)),
    ("loop_scope", None, (_SCOPES,)),
    ("loop_scope", 1, (_SCOPES,)),
    ("loop_scope", ["class"], (_SCOPES,)),
    # timeout and class_timeout
    *[
        (attr, value, (_TIMEOUT,))
        for attr in ("timeout", "class_timeout")
        for value in (0, -1, -0.5, "1", True, False, math.nan, -math.inf, [1], 1j)
    ],
    # leaked_tasks
    ("loop_errors", "ignore", ("'fail', 'warn', 'log'",)),
    ("loop_errors", None, ("'fail', 'warn', 'log'",)),
    ("leaked_tasks", "Fail", ("'Fail'", _LEAKED)),
    ("leaked_tasks", "", (_LEAKED,)),
    ("leaked_tasks", None, (_LEAKED,)),
    ("leaked_tasks", True, (_LEAKED,)),
    ("leaked_tasks", 1, (_LEAKED,)),
    # loop_factory
    ("loop_factory", 1, ("must be a callable or None",)),
    ("loop_factory", "asyncio.new_event_loop", ("must be a callable or None",)),
    ("loop_factory", True, ("must be a callable or None",)),
]


class TestBadAttributeValues(unittest.TestCase):
    def setUp(self) -> None:
        clean_environ(self)

    def assert_config_error(
        self, fragments: tuple[str, ...], **ns: Any
    ) -> ConfigurationError:
        with self.assertRaises(ConfigurationError) as caught:
            define(**ns)
        message = str(caught.exception)
        self.assertIn(NAME, message)  # the class
        for fragment in fragments:
            self.assertIn(fragment, message)
        return caught.exception

    def test_every_bad_value_fails_at_class_definition(self) -> None:
        for attr, value, fragments in BAD_VALUES:
            with self.subTest(attr=attr, value=value):
                self.assert_config_error((attr, *fragments), **{attr: value})

    def test_bad_values_fail_on_subclasses_too(self) -> None:
        # an inherited bad value can't happen (the base failed); a subclass's own
        # bad value names the subclass, not its valid base
        base = define("TestBase", anyio_backends=["asyncio", "trio"])
        for attr, value, fragments in BAD_VALUES[::7]:
            with self.subTest(attr=attr, value=value):
                with self.assertRaises(ConfigurationError) as caught:
                    define(bases=(base,), **{attr: value})
                message = str(caught.exception)
                self.assertIn(NAME, message)
                self.assertNotIn("TestBase", message)
                for fragment in fragments:
                    self.assertIn(fragment, message)

    def test_a_configuration_error_is_a_type_error(self) -> None:
        # so code that guards class creation with `except TypeError` still works
        self.assertTrue(issubclass(ConfigurationError, TypeError))

    def test_anyio_backend_and_anyio_backends_together(self) -> None:
        self.assert_config_error(
            (
                "set either anyio_backend (one backend) or anyio_backends "
                "(one generated class per backend), not both",
            ),
            anyio_backend="trio",
            anyio_backends=["trio"],
        )

    def test_loop_factory_with_a_trio_backend(self) -> None:
        self.assert_config_error(
            (
                "loop_factory is an asyncio setting but the backend is 'trio'",
                "remove loop_factory or use the asyncio backend",
            ),
            anyio_backend="trio",
            loop_factory=asyncio.new_event_loop,
        )

    def test_loop_factory_with_trio_among_the_backends(self) -> None:
        # said for the declaring class, not for its generated TestConfigured_trio
        error = self.assert_config_error(
            (
                "loop_factory is an asyncio setting but anyio_backends also lists "
                "'trio'",
                "('asyncio', {'loop_factory': ...})",
            ),
            anyio_backends=["asyncio", "trio"],
            loop_factory=asyncio.new_event_loop,
        )
        self.assertNotIn(f"{NAME}_trio", str(error))

    def test_loop_factory_with_uvloop(self) -> None:
        self.assert_config_error(
            ("loop_factory", "give either use_uvloop or loop_factory, not both"),
            anyio_backend=("asyncio", {"use_uvloop": True}),
            loop_factory=asyncio.new_event_loop,
        )

    def test_trio_variants_sharing_a_module_or_session_run(self) -> None:
        # one trio run per thread: the second variant could only fail at run time
        backends = ["asyncio", "trio", ("trio", {"clock": trio.testing.MockClock()})]
        for scope in ("module", "session"):
            with self.subTest(scope):
                self.assert_config_error(
                    (
                        f"loop_scope = {scope!r} keeps a trio run open for the "
                        f"whole {scope}",
                        "(trio, trio_clock_MockClock) can't both run",
                        "set loop_scope = 'class', or keep one of them per run with "
                        "ANYIO_UNITTEST_BACKENDS",
                    ),
                    anyio_backends=backends,
                    loop_scope=scope,
                )
        define(anyio_backends=backends, loop_scope="class")
        keep = {"ANYIO_UNITTEST_BACKENDS": "asyncio,trio_clock_MockClock"}
        with mock.patch.dict(os.environ, keep):
            define(anyio_backends=backends, loop_scope="module")

    def test_good_values_are_accepted(self) -> None:
        good: list[tuple[str, object]] = [
            ("anyio_backend", "asyncio"),
            ("anyio_backend", "trio"),
            ("anyio_backend", ("asyncio", {})),
            ("anyio_backend", ("asyncio", {"debug": None, "use_uvloop": False})),
            ("anyio_backend", ("trio", {"instruments": ()})),
            ("anyio_backends", ("trio",)),
            ("timeout", None),
            ("timeout", 1),
            ("timeout", 0.001),
            ("timeout", math.inf),
            ("class_timeout", 2.5),
            ("loop_factory", None),
            ("loop_factory", asyncio.new_event_loop),
            *[("loop_scope", s) for s in ("function", "class", "module", "session")],
            *[("leaked_tasks", v) for v in ("fail", "warn", "cancel", "ignore")],
        ]
        for attr, value in good:
            with self.subTest(attr=attr, value=value):
                self.assertTrue(issubclass(define(**{attr: value}), AnyIOTestCase))


class TestBadHooks(unittest.TestCase):
    """Hooks of the wrong kind: sync where async is needed, and the reverse."""

    def setUp(self) -> None:
        clean_environ(self)

    def assert_config_error(self, *fragments: str, **ns: Any) -> None:
        with self.assertRaises(ConfigurationError) as caught:
            define(**ns)
        message = str(caught.exception)
        self.assertIn(f"{SCRATCH}.{NAME}", message)
        for fragment in fragments:
            self.assertIn(fragment, message)

    def test_async_def_setup_and_teardown(self) -> None:
        for name, fix in (("setUp", "asyncSetUp"), ("tearDown", "asyncTearDown")):
            with self.subTest(name):
                self.assert_config_error(
                    f"{name} must be a plain (sync) method; rename it {fix}",
                    **{name: _coro_fn},
                )

    def test_async_def_class_setup_and_teardown(self) -> None:
        for name, fix in (
            ("setUpClass", "asyncSetUpClass"),
            ("tearDownClass", "asyncTearDownClass"),
        ):
            # with or without @classmethod the fix is the same: rename it
            for value in (classmethod(_coro_fn), _coro_fn):
                with self.subTest(name, value=value):
                    self.assert_config_error(
                        f"{name} must be a plain (sync) method; rename it {fix}",
                        loop_scope="class",
                        **{name: value},
                    )

    def test_sync_class_setup_that_is_not_a_classmethod(self) -> None:
        for name in ("setUpClass", "tearDownClass"):
            with self.subTest(name):
                self.assert_config_error(
                    f"{name} must be a classmethod: decorate it with @classmethod",
                    **{name: _sync_fn},
                )

    def test_sync_async_setup_and_teardown(self) -> None:
        for name, twin in (("asyncSetUp", "setUp"), ("asyncTearDown", "tearDown")):
            for value in (_sync_fn, None, 1):
                with self.subTest(name, value=value):
                    self.assert_config_error(
                        f"{name} must be defined with 'async def' (sync code goes "
                        f"in {twin})",
                        **{name: value},
                    )

    def test_sync_async_class_hooks(self) -> None:
        for name in ("asyncSetUpClass", "asyncTearDownClass"):
            with self.subTest(name):
                self.assert_config_error(
                    f"{name} must be defined with 'async def'",
                    loop_scope="class",
                    **{name: classmethod(_sync_fn)},
                )

    def test_async_class_hooks_that_are_not_classmethods(self) -> None:
        for name in ("asyncSetUpClass", "asyncTearDownClass"):
            for value in (_coro_fn, staticmethod(_coro_fn), None):
                with self.subTest(name, value=value):
                    self.assert_config_error(
                        f"{name} must be a classmethod: decorate it with @classmethod",
                        loop_scope="class",
                        **{name: value},
                    )

    def test_async_class_hooks_with_function_scope(self) -> None:
        for name in ("asyncSetUpClass", "asyncTearDownClass"):
            with self.subTest(name):
                self.assert_config_error(
                    f"{name} needs a runner that outlives one test, but loop_scope "
                    f"is 'function'; set loop_scope = 'class'",
                    **{name: classmethod(_coro_fn)},
                )

    def test_bad_hooks_of_a_plain_mixin(self) -> None:
        # class T(Mixin, AnyIOTestCase): the mixin's hooks are the class's hooks
        cases: list[tuple[str, object, str]] = [
            ("asyncSetUp", _sync_fn, "must be defined with 'async def'"),
            ("setUp", _coro_fn, "rename it asyncSetUp"),
            ("asyncSetUpClass", staticmethod(_coro_fn), "must be a classmethod"),
            ("setUpClass", classmethod(_coro_fn), "rename it asyncSetUpClass"),
        ]
        for name, value, fragment in cases:
            mixin = type("SomeMixin", (), {name: value})
            with self.subTest(name):
                self.assert_config_error(
                    f"{name} (inherited from SomeMixin) ",
                    fragment,
                    bases=(mixin, AnyIOTestCase),
                    loop_scope="class",
                )

    def test_a_mixins_class_setup_opens_the_class_runner(self) -> None:
        # the mixin's setUpClass calls super(); it must not hide ours
        events: list[str] = []

        class Mixin:
            @classmethod
            def setUpClass(cls) -> None:
                events.append("mixin setUpClass")
                super().setUpClass()  # type: ignore[misc]

        async def asyncSetUpClass(cls: Any) -> None:
            events.append("asyncSetUpClass")

        async def test_it(self: Any) -> None:
            events.append("test")

        cls = define(
            bases=(Mixin, AnyIOTestCase),
            loop_scope="class",
            asyncSetUpClass=classmethod(asyncSetUpClass),
            test_it=test_it,
        )
        result = unittest.TestResult()
        unittest.TestSuite([cls("test_it")]).run(result)
        self.assertEqual((result.testsRun, result.errors, result.failures), (1, [], []))
        self.assertEqual(events, ["mixin setUpClass", "asyncSetUpClass", "test"])

    def test_private_runner_hooks_of_the_stdlib_class(self) -> None:
        # IsolatedAsyncioTestCase's own hooks, which AnyIOTestCase never calls:
        # overridden, they would be silently ignored
        for name, fix in [
            ("_setupAsyncioRunner", "loop_factory"),
            ("_callAsync", "asyncSetUp"),
            ("_callMaybeAsync", "asyncSetUp"),
        ]:
            with self.subTest(name):
                self.assert_config_error(
                    f"{name} overrides a private hook of IsolatedAsyncioTestCase",
                    "never calls",
                    fix,
                    **{name: _sync_fn},
                )
            mixin = type("SomeMixin", (), {name: _sync_fn})
            with self.subTest(name, inherited=True):
                self.assert_config_error(
                    f"{name} (inherited from SomeMixin) overrides",
                    bases=(mixin, AnyIOTestCase),
                )

    def test_correct_hooks_are_accepted(self) -> None:
        cls = define(
            loop_scope="class",
            setUp=_sync_fn,
            tearDown=_sync_fn,
            setUpClass=classmethod(_sync_fn),
            tearDownClass=classmethod(_sync_fn),
            asyncSetUp=_coro_fn,
            asyncTearDown=_coro_fn,
            asyncSetUpClass=classmethod(_coro_fn),
            asyncTearDownClass=classmethod(_coro_fn),
        )
        result = unittest.TestResult()
        unittest.TestSuite([cls("test_trivial")]).run(result)
        self.assertEqual((result.testsRun, result.errors, result.failures), (1, [], []))


class TestBadEnvironment(unittest.TestCase):
    """The environment variables, checked when a class is defined."""

    def setUp(self) -> None:
        clean_environ(self)

    def assert_env_error(
        self, variables: dict[str, str], *fragments: str, **ns: Any
    ) -> None:
        with (
            mock.patch.dict(os.environ, variables),
            self.assertRaises(ConfigurationError) as caught,
        ):
            define(**ns)
        message = str(caught.exception)
        for fragment in fragments:
            self.assertIn(fragment, message)

    def test_backends_filter(self) -> None:
        fix = "give a comma-separated list of 'asyncio', 'trio' or generated ids"
        for raw, bad in (
            ("curio", "curio"),
            ("asyncio,curio", "curio"),
            ("asyncio;trio", "asyncio;trio"),
            ("ASYNCIO", "ASYNCIO"),
            ("asyncio_uvlop", "asyncio_uvlop"),  # a typo: it would select nothing
            ("asyncio_use_uvloop", "asyncio_use_uvloop"),  # the id is asyncio_uvloop
            ("trio_debug", "trio_debug"),  # no such trio option
        ):
            with self.subTest(raw):
                self.assert_env_error(
                    {"ANYIO_UNITTEST_BACKENDS": raw},
                    f"ANYIO_UNITTEST_BACKENDS={raw!r}: unknown backend {bad!r}",
                    fix,
                    anyio_backends=["asyncio", "trio"],
                )

    def test_backends_filter_listing_nothing(self) -> None:
        for raw in (",", " , ,"):
            with self.subTest(raw):
                self.assert_env_error(
                    {"ANYIO_UNITTEST_BACKENDS": raw},
                    "lists no backend",
                    "'asyncio,trio' (or unset it to run all backends)",
                )

    def test_backends_filter_accepts_names_and_ids(self) -> None:
        for raw in (
            "trio",
            " asyncio , trio ",
            "asyncio_uvloop",
            "trio_clock_MockClock",
            "asyncio_no_debug,trio_strict_exception_groups",
            "",
        ):
            with (
                self.subTest(raw),
                mock.patch.dict(os.environ, {"ANYIO_UNITTEST_BACKENDS": raw}),
            ):
                define(anyio_backends=["asyncio", "trio"])

    def test_default_backend(self) -> None:
        for raw, fragment in (
            ("curio", "unknown backend 'curio'"),
            ("asyncio,trio", "unknown backend 'asyncio,trio'"),
            ("Trio", "unknown backend 'Trio'"),
        ):
            # checked even for classes that name their backend (so a typo in a
            # CI job fails at once, not only for some classes)
            for ns in ({}, {"anyio_backend": "trio"}, {"anyio_backends": ["trio"]}):
                with self.subTest(raw, ns=ns):
                    self.assert_env_error(
                        {"ANYIO_UNITTEST_BACKEND": raw},
                        "ANYIO_UNITTEST_BACKEND",
                        fragment,
                        _UNKNOWN,
                        **ns,
                    )

    def test_timeout(self) -> None:
        for raw in ("abc", "0", "-1", "nan", "inf-"):
            with self.subTest(raw):
                self.assert_env_error(
                    {"ANYIO_UNITTEST_TIMEOUT": raw},
                    f"ANYIO_UNITTEST_TIMEOUT={raw!r}",
                    "give a positive number of seconds (or unset it)",
                )

    def test_policies(self) -> None:
        for name in ("LEAKED_TASKS", "LOOP_ERRORS"):
            with self.subTest(name):
                self.assert_env_error(
                    {f"ANYIO_UNITTEST_{name}": "never"},
                    f"ANYIO_UNITTEST_{name}='never'",
                    "use one of 'fail', 'warn', ",
                )


class TestOtherMisuse(unittest.TestCase):
    def setUp(self) -> None:
        clean_environ(self)

    def test_timeout_decorator_values(self) -> None:
        for value in (0, -1, "5", True, math.nan):
            with self.subTest(value=value), self.assertRaises(ConfigurationError) as c:
                timeout(value)  # type: ignore[arg-type]
            self.assertIn("anyio_unittest.timeout(...)", str(c.exception))
            self.assertIn(_TIMEOUT, str(c.exception))

    def test_a_generated_name_taken_by_another_class(self) -> None:
        module = types.ModuleType("anyio_unittest_scratch_clash")
        sys.modules[module.__name__] = module
        self.addCleanup(sys.modules.pop, module.__name__)
        module.TestClash_trio = object()  # type: ignore[attr-defined]
        with self.assertRaises(ConfigurationError) as caught:
            define(
                "TestClash",
                __module__=module.__name__,
                anyio_backends=["asyncio", "trio"],
            )
        message = str(caught.exception)
        self.assertIn("anyio_unittest_scratch_clash.TestClash", message)
        self.assertIn("would be named TestClash_trio", message)
        self.assertIn("rename one of them", message)

    def test_running_the_declaring_class_itself(self) -> None:
        # its tests belong to the generated classes; run directly it must say so
        # (an error of the test), never pass without having run anything
        cls = define(anyio_backends=["asyncio", "trio"])
        result = unittest.TestResult()
        unittest.TestSuite([cls("test_trivial")]).run(result)
        self.assertEqual(result.testsRun, 0)
        self.assertEqual(len(result.errors), 1)
        self.assertIn("setUpClass", str(result.errors[0][0]))
        message = result.errors[0][1]
        self.assertIn("ConfigurationError", message)
        self.assertIn("declares anyio_backends", message)
        self.assertIn("(asyncio, trio)", message)
        self.assertIn(f"run those, e.g. {NAME}_asyncio", message)


if __name__ == "__main__":
    unittest.main()
