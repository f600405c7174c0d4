"""Property: whatever a class statement says, the outcome is a working class or a
ConfigurationError.

Hypothesis draws values for every class attribute (plausible ones and garbage),
kinds of hooks and the environment variables. Defining the class must either
raise ConfigurationError naming the class (or the variable), or give a class
whose one trivial async test then runs, on the backend it declared, and passes
(or is skipped with the reason the configuration implies). Anything else (another
exception, a hang, a test silently not run) is a failure.

Each example's tests run in a fresh thread (trio allows one run per thread, so a
run left open elsewhere in this process can't interfere), in a module of its own,
with the session runners it opens closed at its end.
"""

from __future__ import annotations

import asyncio
import importlib.util
import itertools
import math
import os
import sys
import threading
import types
import unittest
import warnings
from typing import Any
from unittest import mock

import sniffio
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from anyio_unittest import AnyIOTestCase, ConfigurationError
from anyio_unittest._scopes import registry

from ._support import SKIPPED_TESTS_COUNT_AS_RUN, reported_texts

HAVE_UVLOOP = importlib.util.find_spec("uvloop") is not None
ENV_VARS = (
    "ANYIO_UNITTEST_BACKENDS",
    "ANYIO_UNITTEST_BACKEND",
    "ANYIO_UNITTEST_TIMEOUT",
)
ABSENT: Any = type("Absent", (), {"__repr__": lambda self: "ABSENT"})()
_modules = itertools.count()

# -- strategies ----------------------------------------------------------------

#: values of the wrong kind; never callables (a callable loop_factory is valid
#: configuration, and what it returns can only be known when it is called)
garbage = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
    st.binary(max_size=3),
    st.builds(object),
    st.lists(st.integers(), max_size=2),
    st.tuples(),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
names = st.one_of(
    st.sampled_from(["asyncio", "trio"]),
    st.sampled_from(["curio", "Trio", "", "asyncio_uvloop", "anyio"]),
    st.text(max_size=8),
)


class NullInstrument(trio.abc.Instrument):
    pass


def _options(valid: dict[str, Any], wrong: dict[str, Any], mixed: bool) -> Any:
    """Option dicts: valid values only, or with garbage and misplaced keys."""
    if not mixed:
        return st.fixed_dictionaries({}, optional=valid)
    optional = {key: strategy | garbage for key, strategy in valid.items()}
    return st.fixed_dictionaries({}, optional={**optional, **wrong})


_ASYNCIO = {
    "debug": st.sampled_from([True, False, None]),
    "use_uvloop": st.booleans(),
    "loop_factory": st.sampled_from([None, asyncio.new_event_loop]),
}
_TRIO = {
    "clock": st.none() | st.builds(trio.testing.MockClock),
    "instruments": st.lists(st.builds(NullInstrument), max_size=2),
    "restrict_keyboard_interrupt_to_checkpoints": st.booleans(),
    "strict_exception_groups": st.booleans(),
}
_TIMEOUTS = st.one_of(st.none(), st.floats(0.5, 1e9), st.integers(1, 10**6))
_TIMEOUTS |= st.just(math.inf)
_SCOPES = st.sampled_from(["function", "class", "module", "session"])
_LEAKED = st.sampled_from(["fail", "warn", "cancel", "ignore"])
#: rarely a factory: it rules trio out
_FACTORIES = st.sampled_from([None, None, None, asyncio.new_event_loop])
#: no "_" in the garbage: it could then only be a name, or an invalid value
_ENV_TEXT = st.text(alphabet="abcdeiorstuy, ACT0-9.", max_size=10)


def configurations(mixed: bool) -> Any:
    """(attributes, hook kinds, environment): all valid, or anything at all."""

    def bad(strategy: Any, *others: Any) -> Any:
        return st.one_of(strategy, *others, garbage) if mixed else strategy

    asyncio_options = _options(
        _ASYNCIO, {"clock": st.builds(trio.testing.MockClock), "bogus": garbage}, mixed
    )
    trio_options = _options(_TRIO, {"debug": st.booleans(), "bogus": garbage}, mixed)
    spec = bad(
        st.one_of(
            st.sampled_from(["asyncio", "trio"]),
            st.tuples(st.just("asyncio"), asyncio_options),
            st.tuples(st.just("trio"), trio_options),
        ),
        names,
        st.tuples(names, asyncio_options | trio_options),
    )
    backend_list = st.lists(spec, min_size=0 if mixed else 1, max_size=3)
    backends = st.fixed_dictionaries({"anyio_backends": backend_list})
    if mixed:
        backends = st.fixed_dictionaries(
            {},
            optional={
                "anyio_backend": spec,
                "anyio_backends": bad(backend_list, backend_list.map(tuple)),
            },
        )
    else:  # one of them, or neither
        backend = st.fixed_dictionaries({"anyio_backend": spec})
        backends = st.one_of(st.just({}), backend, backends)
    scope = bad(_SCOPES, st.sampled_from(["Class", "package", ""]))
    others = st.fixed_dictionaries(
        {} if mixed else {"loop_scope": scope},  # valid: always, to vary it
        optional={
            **({"loop_scope": scope} if mixed else {}),
            "timeout": bad(_TIMEOUTS),
            "class_timeout": bad(_TIMEOUTS),
            "leaked_tasks": bad(_LEAKED, st.sampled_from(["Fail", "error"])),
            "loop_factory": bad(_FACTORIES),
        },
    )
    attributes = st.tuples(backends, others).map(lambda pair: {**pair[0], **pair[1]})

    def kinds(good: list[Any], wrong: list[Any]) -> Any:
        return st.sampled_from([ABSENT, *good, *(wrong if mixed else [])])

    def hooks(attributes: dict[str, Any]) -> Any:
        # valid: async class hooks only where a runner outlives a test
        shared = mixed or attributes.get("loop_scope", "function") != "function"
        class_hook = ["async classmethod"] if shared else []
        return st.fixed_dictionaries(
            {
                "setUp": kinds(["sync"], ["async"]),
                "asyncSetUp": kinds(["async"], ["sync", None]),
                "setUpClass": kinds(["classmethod"], ["async classmethod", "sync"]),
                "asyncSetUpClass": kinds(
                    class_hook, ["classmethod", "async", "staticmethod"]
                ),
                "asyncTearDownClass": kinds(class_hook, ["classmethod", "async"]),
            }
        )

    def bad_env(*values: str) -> Any:
        good = st.sampled_from(values)
        return good | _ENV_TEXT if mixed else good

    env = st.fixed_dictionaries(
        {},
        optional={
            "ANYIO_UNITTEST_BACKENDS": bad_env(
                "asyncio", "trio", "asyncio,trio", "trio,"
            ),
            "ANYIO_UNITTEST_BACKEND": bad_env("asyncio", "trio"),
            "ANYIO_UNITTEST_TIMEOUT": bad_env("30", "1e6"),
        },
    )
    return attributes.flatmap(
        lambda attrs: st.tuples(st.just(attrs), hooks(attrs), env)
    )


# -- building and running one example -----------------------------------------


def _hooks(kinds: dict[str, Any], events: list[str]) -> dict[str, Any]:
    def sync(name: str) -> Any:
        def hook(self_or_cls: Any) -> None:
            events.append(name)

        return hook

    def async_(name: str) -> Any:
        async def hook(self_or_cls: Any) -> None:
            events.append(name)

        return hook

    makers = {
        "sync": sync,
        "async": async_,
        "classmethod": lambda n: classmethod(sync(n)),
        "async classmethod": lambda n: classmethod(async_(n)),
        "staticmethod": lambda n: staticmethod(async_(n)),
    }
    ns: dict[str, Any] = {}
    for name, kind in kinds.items():
        if kind is ABSENT:
            continue
        ns[name] = None if kind is None else makers[kind](name)
    return ns


def _library(spec: Any) -> str:
    return spec if isinstance(spec, str) else spec[0]


def _plain(spec: Any) -> Any:
    """A spec as a generated class states it: no options, just the name."""
    return spec if isinstance(spec, str) or spec[1] else spec[0]


def _run_in_fresh_thread(
    classes: list[type], module: str
) -> tuple[unittest.TestResult | None, BaseException | None]:
    outcome: dict[str, Any] = {}

    def target() -> None:
        saved = registry.sessions
        registry.sessions = []  # this example's session runners, closed below
        try:
            with warnings.catch_warnings():
                # strict_exception_groups=False is deprecated by trio; the
                # warning is not this test's subject
                warnings.simplefilter("ignore", trio.TrioDeprecationWarning)
                result = unittest.TestResult()
                loader = unittest.TestLoader()
                suite = unittest.TestSuite(map(loader.loadTestsFromTestCase, classes))
                suite.run(result)
                outcome["result"] = result
                registry.end_module(module)  # pytest ends modules in its plugin
                while registry.sessions:
                    registry.sessions.pop()[1].close()
        except BaseException as exc:
            outcome["error"] = exc
        finally:
            registry.sessions = saved

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(60)
    if thread.is_alive():
        raise AssertionError(f"the tests of {classes} hang")
    return outcome.get("result"), outcome.get("error")


class TestAnyConfiguration(unittest.TestCase):
    # half the examples are valid throughout, so that working classes of every
    # kind are run; the other half may get anything anywhere
    @settings(max_examples=60, deadline=None, database=None)
    @given(config=configurations(mixed=False) | configurations(mixed=True))
    def test_a_working_class_or_a_configuration_error(
        self, config: tuple[dict[str, Any], dict[str, Any], dict[str, str]]
    ) -> None:
        attrs, hooks, env = config
        module = types.ModuleType(f"anyio_unittest_scratch_property_{next(_modules)}")
        sys.modules[module.__name__] = module
        try:
            with mock.patch.dict(os.environ):
                for key in [k for k in os.environ if k.startswith("ANYIO_UNITTEST_")]:
                    del os.environ[key]
                os.environ.update(env)
                self.check(module, attrs, hooks, env)
        finally:
            sys.modules.pop(module.__name__, None)

    def check(
        self,
        module: types.ModuleType,
        attrs: dict[str, Any],
        hooks: dict[str, Any],
        env: dict[str, str],
    ) -> None:
        events: list[str] = []
        bodies: list[tuple[str, str]] = []

        async def test_trivial(self: Any) -> None:
            bodies.append((type(self).__name__, sniffio.current_async_library()))

        ns = {"__module__": module.__name__, "test_trivial": test_trivial}
        ns.update(_hooks(hooks, events))
        ns.update(attrs)
        try:
            cls = type("TestProp", (AnyIOTestCase,), ns)
        except ConfigurationError as exc:
            message = str(exc)
            self.assertTrue(
                "TestProp" in message or any(v in message for v in ENV_VARS),
                message,
            )
            return

        raw = env.get("ANYIO_UNITTEST_BACKENDS", "").strip()
        keep = {n.strip() for n in raw.split(",") if n.strip()} if raw else None
        if "anyio_backends" in attrs:
            declared = list(attrs["anyio_backends"])
            expected = [s for s in declared if keep is None or _library(s) in keep]
            classes = list(cls.anyio_backend_classes.values())
            self.assertEqual(
                [c.anyio_backend for c in classes],
                [_plain(s) for s in expected],
                "generated classes",
            )
        else:
            default = env.get("ANYIO_UNITTEST_BACKEND", "").strip() or "asyncio"
            expected = [attrs.get("anyio_backend", default)]
            classes = [cls]

        result, error = _run_in_fresh_thread(classes, module.__name__)
        if error is not None:
            raise AssertionError(f"running {classes} raised {error!r}") from error
        assert result is not None
        self.assertEqual(reported_texts(result), [])
        # a skipped class here is skipped by __unittest_skip__, as a decorator
        # does: some Pythons leave it out of testsRun (SKIPPED_TESTS_COUNT_AS_RUN)
        not_counted = 0 if SKIPPED_TESTS_COUNT_AS_RUN else len(result.skipped)
        self.assertEqual(result.testsRun, len(expected) - not_counted)
        # every test either ran its body on its own backend, or was skipped for
        # a reason the configuration implies
        skipped = {type(test).__name__: why for test, why in result.skipped}
        for klass, spec in zip(classes, expected, strict=True):
            name = klass.__name__
            if name in skipped:
                why = skipped[name]
                if keep is not None and _library(spec) not in keep:
                    self.assertIn("ANYIO_UNITTEST_BACKENDS", why)
                else:
                    self.assertFalse(HAVE_UVLOOP, why)
                    self.assertIn("uvloop is not installed", why)
            else:
                self.assertIn((name, _library(spec)), bodies)
        self.assertEqual(len(bodies) + len(skipped), len(expected))
        # and the hooks ran as often as unittest promises
        classes_run = len({name for name, _ in bodies})
        for hook, kind, times in (
            ("setUp", "sync", len(bodies)),
            ("asyncSetUp", "async", len(bodies)),
            ("setUpClass", "classmethod", classes_run),
            ("asyncSetUpClass", "async classmethod", classes_run),
            ("asyncTearDownClass", "async classmethod", classes_run),
        ):
            expected_times = times if hooks[hook] == kind else 0
            self.assertEqual(events.count(hook), expected_times, hook)


if __name__ == "__main__":
    unittest.main()
