"""Backend parametrisation: ``anyio_backends`` turns one class into real classes.

In-process tests define suites in scratch modules (registered in ``sys.modules``
so that generated classes are put in them and can be pickled) and run them from
sync tests; end-to-end tests run ``python -m unittest``, pytest, pytest-xdist and
unittest-parallel on a written suite and compare the test ids they report.
"""

from __future__ import annotations

import collections
import importlib.util
import itertools
import os
import pickle
import re
import sys
import textwrap
import types
import unittest
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar
from unittest import mock

from anyio_unittest import AnyIOTestCase

from ._support import (
    SKIPPED_TESTS_COUNT_AS_RUN,
    Outcome,
    reported_texts,
    run,
    run_cases,
    run_pytest,
    run_unittest,
    unittest_description,
    unittest_ids,
    write_suite,
)

HAVE_UVLOOP = importlib.util.find_spec("uvloop") is not None
_counter = itertools.count()
loader = unittest.TestLoader()


def clean_environ(case: unittest.TestCase) -> None:
    """Run *case* without the ANYIO_UNITTEST_* variables the caller may have set."""
    patcher = mock.patch.dict(os.environ)
    patcher.start()
    case.addCleanup(patcher.stop)
    for key in [k for k in os.environ if k.startswith("ANYIO_UNITTEST_")]:
        del os.environ[key]


def scratch(case: unittest.TestCase, source: str) -> Any:
    """Execute *source* as a fresh module, importable while *case* runs."""
    module = types.ModuleType(f"anyio_unittest_scratch_{next(_counter)}")
    sys.modules[module.__name__] = module
    case.addCleanup(sys.modules.pop, module.__name__, None)
    code = compile(textwrap.dedent(source), f"<{module.__name__}>", "exec")
    exec(code, module.__dict__)
    return module


def names(cls: type) -> list[str]:
    return list(loader.getTestCaseNames(cls))


# -- in-process ----------------------------------------------------------------

PROTOCOL = """
    import asyncio
    import sniffio
    import trio
    import trio.testing
    from anyio_unittest import AnyIOTestCase

    SEEN = []
    FACTORY_CALLS = []
    EVENTS = []

    class Recorder(trio.abc.Instrument):
        def before_run(self):
            EVENTS.append("before_run")

    def make_loop():
        FACTORY_CALLS.append(1)
        return asyncio.new_event_loop()

    CLOCK = trio.testing.MockClock()

    class TestProtocol(AnyIOTestCase):
        \"\"\"Round trips over every backend.\"\"\"

        anyio_backends = [
            "asyncio",
            "trio",
            ("asyncio", {"use_uvloop": True}),
            ("asyncio", {"debug": True}),
            ("asyncio", {"debug": False}),
            ("asyncio", {"loop_factory": make_loop}),
            ("asyncio", {"use_uvloop": True, "debug": True}),
            ("trio", {"clock": CLOCK}),
            ("trio", {"strict_exception_groups": True}),
            ("trio", {"instruments": [Recorder()]}),
            ("trio", {"restrict_keyboard_interrupt_to_checkpoints": True}),
        ]

        async def test_roundtrip(self):
            \"\"\"One round trip.\"\"\"
            SEEN.append((type(self).__name__, sniffio.current_async_library()))

        async def test_options(self):
            spec = self.anyio_backend
            name, options = (spec, {}) if isinstance(spec, str) else spec
            if name == "asyncio":
                loop = asyncio.get_running_loop()
                if options.get("debug") is not None:
                    assert loop.get_debug() is options["debug"], loop.get_debug()
                # (the package's loop subclasses uvloop's, to trace timers)
                uvloop = any(
                    c.__module__.startswith("uvloop") for c in type(loop).__mro__
                )
                assert uvloop is bool(options.get("use_uvloop")), type(loop)
            else:
                clock = trio.lowlevel.current_clock()
                assert (clock is CLOCK) is ("clock" in options), clock

        def helper(self):
            pass
"""

#: the ids, in the order of the list above
PROTOCOL_IDS = [
    "asyncio",
    "trio",
    "asyncio_uvloop",
    "asyncio_debug",
    "asyncio_no_debug",
    "asyncio_loop_factory_make_loop",
    "asyncio_debug_uvloop",
    "trio_clock_MockClock",
    "trio_strict_exception_groups",
    "trio_instruments_Recorder",
    "trio_restrict_keyboard_interrupt_to_checkpoints",
]
UVLOOP_IDS = {"asyncio_uvloop", "asyncio_debug_uvloop"}


class TestGeneratedClasses(unittest.TestCase):
    def setUp(self) -> None:
        clean_environ(self)
        self.module = scratch(self, PROTOCOL)
        self.declaring = self.module.TestProtocol

    def test_one_class_per_backend_with_readable_ids(self) -> None:
        generated = self.declaring.anyio_backend_classes
        self.assertEqual(list(generated), PROTOCOL_IDS)
        for (backend_id, cls), spec in zip(
            generated.items(), self.declaring.anyio_backends, strict=True
        ):
            with self.subTest(backend_id):
                name = f"TestProtocol_{backend_id}"
                self.assertIs(getattr(self.module, name), cls)
                self.assertEqual(cls.__name__, name)
                self.assertEqual(cls.__qualname__, name)
                self.assertEqual(cls.__module__, self.module.__name__)
                self.assertEqual(cls.__doc__, "Round trips over every backend.")
                self.assertTrue(issubclass(cls, self.declaring))
                self.assertEqual(cls.anyio_backend, spec)
                self.assertEqual(cls.anyio_backend_classes, {})
                self.assertEqual(names(cls), ["test_options", "test_roundtrip"])
                self.assertEqual(cls.test_roundtrip.__doc__, "One round trip.")
                self.assertEqual(
                    cls("test_roundtrip").id(),
                    f"{self.module.__name__}.{name}.test_roundtrip",
                )

    def test_the_declaring_class_contributes_nothing(self) -> None:
        self.assertEqual(names(self.declaring), [])
        self.assertNotIn("test_roundtrip", dir(self.declaring))
        self.assertTrue(hasattr(self.declaring, "test_roundtrip"))  # still there
        self.assertIs(self.declaring.__test__, False)  # pytest
        suite = loader.loadTestsFromModule(self.module)
        ids = [t.id().split(".", 1)[1] for t in _flatten(suite)]
        expected = [
            f"TestProtocol_{backend_id}.{test}"
            for backend_id in PROTOCOL_IDS
            for test in ("test_options", "test_roundtrip")
        ]
        self.assertEqual(sorted(ids), sorted(expected))

    def test_each_generated_class_runs_on_its_backend(self) -> None:
        classes = self.declaring.anyio_backend_classes.values()
        result = run_cases(*map(loader.loadTestsFromTestCase, classes))
        self.assertEqual(reported_texts(result), [])
        skipped = {t.id().split(".")[1] for t, _ in result.skipped}
        expected_skips = (
            set() if HAVE_UVLOOP else {f"TestProtocol_{i}" for i in UVLOOP_IDS}
        )
        self.assertEqual(skipped, expected_skips)
        self.assertEqual(result.testsRun, 2 * len(PROTOCOL_IDS))
        ran = {i for i in PROTOCOL_IDS if f"TestProtocol_{i}" not in skipped}
        self.assertEqual(
            sorted(self.module.SEEN),
            sorted((f"TestProtocol_{i}", i.split("_")[0]) for i in ran),
        )
        # the options reached the runners
        self.assertEqual(len(self.module.FACTORY_CALLS), 2)
        self.assertEqual(self.module.EVENTS, ["before_run"] * 2)

    def test_ids_are_stable(self) -> None:
        # the same source in another module (and, end to end, in another process)
        again = scratch(self, PROTOCOL)
        self.assertEqual(list(again.TestProtocol.anyio_backend_classes), PROTOCOL_IDS)

    def test_generated_test_instances_pickle(self) -> None:
        for backend_id, cls in self.declaring.anyio_backend_classes.items():
            with self.subTest(backend_id):
                test = cls("test_roundtrip")
                clone = pickle.loads(pickle.dumps(test))
                self.assertIs(type(clone), cls)
                self.assertEqual(clone.id(), test.id())
                result = run_cases(clone)
                self.assertEqual(reported_texts(result), [])
                self.assertEqual(result.testsRun, 1)


def _flatten(suite: unittest.TestSuite) -> list[unittest.TestCase]:
    tests: list[unittest.TestCase] = []
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            tests.extend(_flatten(item))
        else:
            tests.append(item)
    return tests


INHERITANCE = """
    import sniffio
    from anyio_unittest import AnyIOTestCase

    RAN = []

    class Recording:
        async def asyncSetUp(self):
            RAN.append(
                (type(self).__name__, self._testMethodName,
                 sniffio.current_async_library())
            )

    class Base(Recording, AnyIOTestCase):
        anyio_backends = ["asyncio", "trio"]

        async def test_base(self):
            pass

    class TestChild(Base):
        \"\"\"The child.\"\"\"

        async def test_child(self):
            pass

    class TestOverride(Base):
        anyio_backends = ["trio", ("trio", {"strict_exception_groups": True})]

    class TestPinned(Base):
        anyio_backend = "trio"

    class TestPinnedChild(TestPinned):
        async def test_more(self):
            pass

    class TestFromGenerated(Base_asyncio):
        async def test_extra(self):
            pass

    class TestMixin:
        async def test_from_mixin(self):
            pass

    class AbstractBase(Recording, AnyIOTestCase):
        anyio_backends = ["asyncio", "trio"]
        loop_scope = "class"

        def helper(self):
            pass

    class TestConcrete(TestMixin, AbstractBase):
        async def test_own(self):
            pass

    class TestGrandChild(TestChild):
        anyio_backends = ["asyncio"]
"""


class TestInheritance(unittest.TestCase):
    def setUp(self) -> None:
        clean_environ(self)
        self.module = scratch(self, INHERITANCE)

    def generated(self, cls: Any) -> dict[str, list[str]]:
        return {i: names(c) for i, c in cls.anyio_backend_classes.items()}

    def test_a_subclass_is_parametrised_the_same_way(self) -> None:
        m = self.module
        tests = ["test_base", "test_child"]
        self.assertEqual(self.generated(m.TestChild), {"asyncio": tests, "trio": tests})
        self.assertIs(m.TestChild_trio.__base__, m.TestChild)
        self.assertEqual(m.TestChild_trio.__doc__, "The child.")
        self.assertEqual(names(m.TestChild), [])
        self.assertEqual(
            self.generated(m.TestGrandChild), {"asyncio": ["test_base", "test_child"]}
        )
        self.assertFalse(hasattr(m, "TestGrandChild_trio"))

    def test_a_subclass_may_override_the_backends(self) -> None:
        m = self.module
        self.assertEqual(
            self.generated(m.TestOverride),
            {"trio": ["test_base"], "trio_strict_exception_groups": ["test_base"]},
        )
        self.assertFalse(hasattr(m, "TestOverride_asyncio"))

    def test_a_subclass_may_pin_one_backend(self) -> None:
        m = self.module
        for cls, tests in (
            (m.TestPinned, ["test_base"]),
            (m.TestPinnedChild, ["test_base", "test_more"]),
            (m.TestFromGenerated, ["test_base", "test_extra"]),
        ):
            with self.subTest(cls.__name__):
                self.assertEqual(names(cls), tests)  # a plain class, own name
                self.assertIs(cls.__test__, True)
                self.assertEqual(cls.anyio_backend_classes, {})
                self.assertFalse(
                    [n for n in vars(m) if n.startswith(f"{cls.__name__}_")]
                )

    def test_mixins_and_abstract_bases_generate_nothing(self) -> None:
        m = self.module
        self.assertEqual(m.AbstractBase.anyio_backend_classes, {})
        self.assertFalse([n for n in vars(m) if n.startswith("AbstractBase_")])
        self.assertNotIsInstance(m.TestMixin, type(AnyIOTestCase))
        tests = ["test_from_mixin", "test_own"]
        self.assertEqual(
            self.generated(m.TestConcrete), {"asyncio": tests, "trio": tests}
        )
        self.assertEqual(m.TestConcrete_trio.loop_scope, "class")

    def test_everything_runs_once_on_the_right_backend(self) -> None:
        result = run_cases(loader.loadTestsFromModule(self.module))
        self.assertEqual(reported_texts(result), [])
        expected = [
            *[(f"Base_{b}", "test_base", b) for b in ("asyncio", "trio")],
            *[
                (f"TestChild_{b}", t, b)
                for b in ("asyncio", "trio")
                for t in ("test_base", "test_child")
            ],
            *[
                (f"TestOverride_{i}", "test_base", "trio")
                for i in ("trio", "trio_strict_exception_groups")
            ],
            ("TestPinned", "test_base", "trio"),
            ("TestPinnedChild", "test_base", "trio"),
            ("TestPinnedChild", "test_more", "trio"),
            ("TestFromGenerated", "test_base", "asyncio"),
            ("TestFromGenerated", "test_extra", "asyncio"),
            *[
                (f"TestConcrete_{b}", t, b)
                for b in ("asyncio", "trio")
                for t in ("test_from_mixin", "test_own")
            ],
            ("TestGrandChild_asyncio", "test_base", "asyncio"),
            ("TestGrandChild_asyncio", "test_child", "asyncio"),
        ]
        self.assertEqual(sorted(self.module.RAN), sorted(expected))
        self.assertEqual(result.testsRun, len(expected))

    def test_a_users_own_test_flag_stands(self) -> None:
        module = scratch(
            self,
            """
            from anyio_unittest import AnyIOTestCase

            class BaseNotCollected(AnyIOTestCase):
                __test__ = False

                async def test_x(self):
                    pass

            class TestCollected(BaseNotCollected):
                pass
            """,
        )
        self.assertIs(module.BaseNotCollected.__test__, False)
        self.assertIs(module.TestCollected.__test__, True)


SELECTION = """
    import sniffio
    from anyio_unittest import AnyIOTestCase

    RAN = []

    class Recording(AnyIOTestCase):
        async def asyncSetUp(self):
            RAN.append((type(self).__name__, sniffio.current_async_library()))

    class TestMany(Recording):
        anyio_backends = ["asyncio", "trio", ("asyncio", {"use_uvloop": True})]

        async def test_it(self):
            pass

    class TestPinnedAsyncio(Recording):
        anyio_backend = "asyncio"

        async def test_it(self):
            pass

    class TestPinnedUvloop(Recording):
        anyio_backend = ("asyncio", {"use_uvloop": True})

        async def test_it(self):
            pass

    class TestDefault(Recording):
        async def test_it(self):
            pass
"""


class TestEnvironmentSelection(unittest.TestCase):
    def setUp(self) -> None:
        clean_environ(self)

    def load(self, **variables: str) -> tuple[Any, unittest.TestResult]:
        with mock.patch.dict(os.environ, variables):
            module = scratch(self, SELECTION)
            return module, run_cases(loader.loadTestsFromModule(module))

    def outcome(self, module: Any, result: unittest.TestResult) -> dict[str, Any]:
        self.assertEqual(reported_texts(result), [])
        return {
            "ran": sorted(module.RAN),
            "skipped": sorted((t.id().split(".")[1], why) for t, why in result.skipped),
            "generated": list(module.TestMany.anyio_backend_classes),
        }

    def test_only_the_listed_backends(self) -> None:
        module, result = self.load(ANYIO_UNITTEST_BACKENDS="trio")
        why = "ANYIO_UNITTEST_BACKENDS='trio' excludes the {} backend"
        self.assertEqual(
            self.outcome(module, result),
            {
                "ran": [("TestMany_trio", "trio")],
                "skipped": [
                    ("TestDefault", why.format("asyncio")),
                    ("TestPinnedAsyncio", why.format("asyncio")),
                    ("TestPinnedUvloop", why.format("asyncio_uvloop")),
                ],
                "generated": ["trio"],
            },
        )
        # the other generated classes are not created at all
        self.assertFalse(hasattr(module, "TestMany_asyncio"))
        self.assertFalse(hasattr(module, "TestMany_asyncio_uvloop"))

    def test_a_backend_name_keeps_its_variants_and_an_id_only_itself(self) -> None:
        module, _ = self.load(ANYIO_UNITTEST_BACKENDS="asyncio")
        self.assertEqual(
            list(module.TestMany.anyio_backend_classes), ["asyncio", "asyncio_uvloop"]
        )
        module, result = self.load(ANYIO_UNITTEST_BACKENDS="trio, asyncio_uvloop")
        self.assertEqual(
            list(module.TestMany.anyio_backend_classes), ["trio", "asyncio_uvloop"]
        )
        skipped = {t.id().split(".")[1] for t, _ in result.skipped}
        self.assertIn("TestPinnedAsyncio", skipped)
        if HAVE_UVLOOP:
            self.assertNotIn("TestPinnedUvloop", skipped)
            self.assertIn(("TestPinnedUvloop", "asyncio"), module.RAN)

    def test_the_default_backend(self) -> None:
        module, result = self.load(ANYIO_UNITTEST_BACKEND="trio")
        outcome = self.outcome(module, result)
        # only the class declaring neither attribute moves to trio
        self.assertIn(("TestDefault", "trio"), outcome["ran"])
        self.assertIn(("TestPinnedAsyncio", "asyncio"), outcome["ran"])
        self.assertEqual(outcome["generated"], ["asyncio", "trio", "asyncio_uvloop"])
        self.assertIs(module.TestDefault.anyio_backend, "asyncio")  # attribute kept

    def test_a_default_backend_that_the_filter_excludes(self) -> None:
        module, result = self.load(
            ANYIO_UNITTEST_BACKEND="trio", ANYIO_UNITTEST_BACKENDS="asyncio"
        )
        self.assertIn(
            (
                "TestDefault",
                "ANYIO_UNITTEST_BACKENDS='asyncio' excludes the trio backend",
            ),
            self.outcome(module, result)["skipped"],
        )

    def test_missing_uvloop_skips_with_the_reason(self) -> None:
        with mock.patch.dict(sys.modules, {"uvloop": None}):  # "not installed"
            module, result = self.load()
        reason = "uvloop is not installed (pip install anyio-unittest[uvloop])"
        outcome = self.outcome(module, result)
        self.assertEqual(
            outcome["skipped"],
            [("TestMany_asyncio_uvloop", reason), ("TestPinnedUvloop", reason)],
        )
        # generated all the same (its tests are reported, as skipped)
        self.assertEqual(outcome["generated"], ["asyncio", "trio", "asyncio_uvloop"])
        # the 2 skipped count as run, except on CPython 3.12.1
        self.assertEqual(result.testsRun, 6 if SKIPPED_TESTS_COUNT_AS_RUN else 4)


# -- end to end ----------------------------------------------------------------

SUITE = {
    "test_param.py": """
        import os

        import sniffio
        import trio.testing

        from anyio_unittest import AnyIOTestCase


        def library(spec):
            return spec if isinstance(spec, str) else spec[0]


        class TestProtocol(AnyIOTestCase):
            \"\"\"Round trips.\"\"\"

            anyio_backends = [
                "asyncio",
                "trio",
                ("asyncio", {"use_uvloop": True}),
                ("trio", {"clock": trio.testing.MockClock()}),
            ]

            async def test_roundtrip(self):
                \"\"\"One round trip.\"\"\"
                lib = sniffio.current_async_library()
                self.assertEqual(lib, library(self.anyio_backend))

            async def test_second(self):
                self.assertEqual(
                    sniffio.current_async_library(), library(self.anyio_backend)
                )


        class TestChild(TestProtocol):
            async def test_child(self):
                self.assertEqual(
                    sniffio.current_async_library(), library(self.anyio_backend)
                )


        class TestPinned(TestProtocol):
            anyio_backend = "trio"


        class TestPlain(AnyIOTestCase):
            async def test_plain(self):
                expected = os.environ.get("EXPECT_DEFAULT", "asyncio")
                self.assertEqual(sniffio.current_async_library(), expected)
    """,
}
PROTOCOL_TESTS = ["test_roundtrip", "test_second"]
E2E_IDS = [
    *[
        f"test_param.{cls}_{b}.{t}"
        for cls, tests in (
            ("TestProtocol", PROTOCOL_TESTS),
            ("TestChild", [*PROTOCOL_TESTS, "test_child"]),
        )
        for b in ("asyncio", "trio", "asyncio_uvloop", "trio_clock_MockClock")
        for t in tests
    ],
    *[f"test_param.TestPinned.{t}" for t in PROTOCOL_TESTS],
    "test_param.TestPlain.test_plain",
]

HONESTY = {
    "test_honesty.py": """
        import sniffio

        from anyio_unittest import AnyIOTestCase

        # another plugin has taken over: whatever runs, asyncio is detected
        sniffio.current_async_library = lambda: "asyncio"


        class TestHonest(AnyIOTestCase):
            anyio_backends = ["asyncio", "trio", ("asyncio", {"use_uvloop": True})]

            async def test_detect(self):
                print("BODY RAN", type(self).__name__)
    """,
    "hide_uvloop.py": """
        import sys

        sys.modules["uvloop"] = None  # as if uvloop were not installed

        import unittest

        unittest.main(module=None, argv=["python -m unittest", *sys.argv[1:]])
    """,
}

_PYTEST_DONE = re.compile(r"\b(?:PASSED|FAILED|SKIPPED|ERROR)\b.*?(\S+\.py::\w+::\w+)")
_PYTEST_DONE_AFTER = re.compile(r"(\S+\.py::\w+::\w+) (?:PASSED|FAILED|SKIPPED|ERROR)")
_PYTEST_COLLECTED = re.compile(r"^(\S+\.py::\w+::\w+)$", re.MULTILINE)


def unittest_ran(outcome: Outcome) -> list[str]:
    return unittest_ids(outcome.output)


def _dotted(node_id: str) -> str:
    path, cls, test = node_id.split("::")
    return f"{path.removesuffix('.py').replace('/', '.')}.{cls}.{test}"


def pytest_ran(outcome: Outcome) -> list[str]:
    ids = _PYTEST_DONE.findall(outcome.output) + _PYTEST_DONE_AFTER.findall(
        outcome.output
    )
    return [_dotted(i) for i in ids]


def pytest_collected(outcome: Outcome) -> list[str]:
    return [_dotted(i) for i in _PYTEST_COLLECTED.findall(outcome.output)]


def _summary(outcome: Outcome) -> Outcome:
    ran = re.search(r"^Ran (\d+) tests?", outcome.output, re.MULTILINE)
    outcome.counts["ran"] = int(ran.group(1)) if ran else 0
    summary = re.search(r"^(?:OK|FAILED)(?: \((.*)\))?$", outcome.output, re.M)
    if summary and summary.group(1):
        for part in summary.group(1).split(", "):
            key, _, value = part.partition("=")
            outcome.counts[key] = int(value)
    return outcome


class TestEndToEnd(unittest.TestCase):
    """Real runners in subprocesses, started together in setUpClass."""

    runs: ClassVar[dict[str, Future[Outcome]]]
    pool: ClassVar[ThreadPoolExecutor]

    @classmethod
    def setUpClass(cls) -> None:
        suite = write_suite(SUITE)
        honesty = write_suite(HONESTY)
        verbose = ("-v", "-v")  # run_pytest passes -q
        # plugins that play no part here only slow each start-up down
        lean = ("-p", "no:asyncio", "-p", "no:hypothesispytest", "-p", "no:anyio")
        jobs: dict[str, tuple[Any, ...]] = {
            "unittest": (run_unittest, suite, "-v"),
            "collect 1": (run_pytest, suite, *lean, "--collect-only"),
            "collect 2": (run_pytest, suite, *lean, "--collect-only"),
            "load": (run_pytest, suite, *lean, *verbose, "-n", "2", "--dist", "load"),
            "loadscope": (
                run_pytest,
                suite,
                *lean,
                *verbose,
                "-n",
                "2",
                "--dist",
                "loadscope",
            ),
            "one class": (run_unittest, suite, "-v", "test_param.TestProtocol_trio"),
            "-k unittest": (run_unittest, suite, "-v", "-k", "trio"),
            "-k pytest": (run_pytest, suite, *lean, *verbose, "-k", "trio"),
            "parallel": (
                _parallel,
                suite,
            ),
            "only asyncio": (
                run_unittest,
                suite,
                "-v",
                {"ANYIO_UNITTEST_BACKENDS": "asyncio"},
            ),
            "only trio": (
                run_pytest,
                suite,
                *lean,
                *verbose,
                {
                    "ANYIO_UNITTEST_BACKENDS": "trio",
                    "ANYIO_UNITTEST_BACKEND": "trio",
                    "EXPECT_DEFAULT": "trio",
                },
            ),
            "bad filter": (run_unittest, suite, {"ANYIO_UNITTEST_BACKENDS": "curio"}),
            "honesty": (_hidden_uvloop, honesty),
        }
        # the two collections run with different hash seeds: ids must not depend
        # on set or dict ordering
        seeds = {"collect 1": "1", "collect 2": "2"}
        cls.pool = ThreadPoolExecutor(max_workers=3)
        cls.runs = {}
        for label, (fn, folder, *args) in jobs.items():
            env = {"PYTHONHASHSEED": seeds.get(label, "0")}
            if args and isinstance(args[-1], dict):
                env.update(args.pop())
            cls.runs[label] = cls.pool.submit(fn, folder, *args, env=env)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.pool.shutdown(wait=True, cancel_futures=True)

    def outcome(self, label: str) -> Outcome:
        return self.runs[label].result(timeout=300)

    def test_unittest_lists_each_test_once_per_backend(self) -> None:
        outcome = self.outcome("unittest")
        ids = unittest_ran(outcome)
        self.assertEqual(
            collections.Counter(ids), collections.Counter(E2E_IDS), outcome.output
        )
        self.assertEqual(outcome.count("ran"), len(E2E_IDS), outcome.output)
        self.assertEqual(outcome.count("skipped"), 0 if HAVE_UVLOOP else 6)
        self.assertEqual(outcome.returncode, 0, outcome.output)
        # docstrings carried over: unittest prints the first line under the id
        self.assertIn(
            unittest_description("test_param.TestProtocol_trio.test_roundtrip")
            + "\nOne round trip. ... ok",
            outcome.output,
        )

    def test_pytest_ids_are_stable_across_processes(self) -> None:
        first, second = self.outcome("collect 1"), self.outcome("collect 2")
        ids = pytest_collected(first)
        self.assertEqual(sorted(ids), sorted(E2E_IDS), first.output)
        self.assertEqual(ids, pytest_collected(second))  # same order, too
        self.assertIn(f"{len(E2E_IDS)} tests collected", first.output)

    def test_pytest_xdist_runs_each_test_once(self) -> None:
        collected = pytest_collected(self.outcome("collect 1"))
        for mode in ("load", "loadscope"):
            with self.subTest(mode):
                outcome = self.outcome(mode)
                self.assertIn("2 workers", outcome.output)
                ran = pytest_ran(outcome)
                self.assertEqual(sorted(ran), sorted(collected), outcome.output)
                passed = len(E2E_IDS) - (0 if HAVE_UVLOOP else 6)
                self.assertEqual(outcome.count("passed"), passed, outcome.output)
                self.assertEqual(outcome.returncode, 0, outcome.output)

    def test_one_generated_class_by_name(self) -> None:
        outcome = self.outcome("one class")
        self.assertEqual(
            unittest_ran(outcome),
            [f"test_param.TestProtocol_trio.{t}" for t in PROTOCOL_TESTS],
            outcome.output,
        )
        self.assertEqual(outcome.returncode, 0, outcome.output)

    def test_minus_k_selects_a_backend(self) -> None:
        expected = sorted(i for i in E2E_IDS if "trio" in i.split(".")[1])
        self.assertEqual(len(expected), 10)
        for label, ids in (
            ("-k unittest", unittest_ran),
            ("-k pytest", pytest_ran),
        ):
            with self.subTest(label):
                outcome = self.outcome(label)
                self.assertEqual(sorted(ids(outcome)), expected, outcome.output)
                self.assertEqual(outcome.returncode, 0, outcome.output)

    def test_unittest_parallel_pickles_generated_tests(self) -> None:
        # --level test pickles each test instance into a spawned worker, which
        # must find the generated class in its module by name
        outcome = self.outcome("parallel")
        self.assertIn(f"Ran {len(E2E_IDS)} tests", outcome.output)
        self.assertEqual(outcome.returncode, 0, outcome.output)
        # (-v prints each id when a test starts and again with its outcome)
        self.assertEqual(sorted(set(unittest_ran(outcome))), sorted(E2E_IDS))

    def test_env_limits_the_backends(self) -> None:
        outcome = self.outcome("only asyncio")
        ids = unittest_ran(outcome)
        pinned = [f"test_param.TestPinned.{t}" for t in PROTOCOL_TESTS]
        expected = [
            i
            for i in E2E_IDS
            if "_asyncio" in i or i.startswith("test_param.TestPlain")
        ]
        self.assertEqual(sorted(ids), sorted(expected + pinned), outcome.output)
        self.assertEqual(outcome.count("skipped"), 2 if HAVE_UVLOOP else 8)
        for test in PROTOCOL_TESTS:
            self.assertIn(
                unittest_description(f"test_param.TestPinned.{test}") + " ... skipped "
                "\"ANYIO_UNITTEST_BACKENDS='asyncio' excludes the trio backend\"",
                outcome.output.replace("\nOne round trip.", ""),
            )
        self.assertEqual(outcome.returncode, 0, outcome.output)

    def test_env_limits_the_backends_under_pytest(self) -> None:
        outcome = self.outcome("only trio")
        expected = [
            *(i for i in E2E_IDS if "_trio" in i),
            *(i for i in E2E_IDS if ".TestPinned." in i or ".TestPlain." in i),
        ]
        self.assertEqual(sorted(pytest_ran(outcome)), sorted(expected), outcome.output)
        # TestPlain passed, so it ran on trio (it checks EXPECT_DEFAULT)
        self.assertEqual(outcome.count("passed"), len(expected), outcome.output)

    def test_a_bad_filter_stops_the_import_with_the_message(self) -> None:
        outcome = self.outcome("bad filter")
        self.assertNotEqual(outcome.returncode, 0)
        self.assertIn(
            "ConfigurationError: ANYIO_UNITTEST_BACKENDS='curio': unknown backend "
            "'curio'",
            outcome.output,
        )
        self.assertNotIn("test_param.TestProtocol_", outcome.output)

    def test_honesty_check_and_missing_uvloop(self) -> None:
        outcome = self.outcome("honesty")
        output = outcome.output
        # asyncio: passes; trio: the code detects asyncio, so it fails loudly and
        # the test body never runs; uvloop: skipped with the reason (which counts
        # as run, except on CPython 3.12.1)
        self.assertEqual(
            (outcome.count("ran"), outcome.count("errors"), outcome.count("skipped")),
            (3 if SKIPPED_TESTS_COUNT_AS_RUN else 2, 1, 1),
            output,
        )
        self.assertIn(
            unittest_description("test_honesty.TestHonest_asyncio.test_detect"), output
        )
        self.assertIn("BODY RAN TestHonest_asyncio", output)
        self.assertNotIn("BODY RAN TestHonest_trio", output)
        self.assertNotIn("BODY RAN TestHonest_asyncio_uvloop", output)
        self.assertIn(
            "ERROR: "
            + unittest_description("test_honesty.TestHonest_trio.test_detect"),
            output,
        )
        self.assertIn(
            "anyio_unittest started a trio runner but the code inside it detects "
            "'asyncio': another plugin or loop policy has taken over",
            output,
        )
        self.assertIn(
            unittest_description("test_honesty.TestHonest_asyncio_uvloop.test_detect")
            + " ... skipped "
            "'uvloop is not installed (pip install anyio-unittest[uvloop])'",
            output,
        )


def _parallel(folder: Path, env: dict[str, str]) -> Outcome:
    return run(
        ["-m", "unittest_parallel", "-v", "-j", "2", "--level", "test"], folder, env
    )


def _hidden_uvloop(folder: Path, env: dict[str, str]) -> Outcome:
    return _summary(run(["hide_uvloop.py", "-v", "test_honesty"], folder, env))


if __name__ == "__main__":
    unittest.main()
