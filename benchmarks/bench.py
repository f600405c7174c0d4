"""The cost of a trivial async test, beside the stdlib and the pytest plugins.

Run from the repository root (needs only the ``test`` extra)::

    python benchmarks/bench.py              # the table: 2000 tests, 5 repetitions
    python benchmarks/bench.py --tests 500 --repeat 3 --rows 'anyio-*-class*'
    python benchmarks/bench.py --memory     # peak memory, 2,000 vs 20,000 tests
    python benchmarks/bench.py --profile anyio-asyncio-class

How it measures:

* Every row is a suite of N trivial tests (``pass``), all in one class unless
  ``--per-class`` says otherwise, built in memory with ``type()``. The classes
  live in real modules registered in ``sys.modules`` (unittest looks a test's
  module up there for module fixtures; ``loop_scope = "module"`` needs them).
* In-process rows are timed around ``unittest.TextTestRunner(stream=<null>,
  verbosity=0).run(suite)``: class and module fixtures, runner start and close
  are included, building the suite is not. Each row is warmed up once first;
  a sample of a fast row is the mean of as many runs of its suite as make it
  last MIN_SAMPLE seconds, so that one scheduler stall doesn't double it.
* pytest rows run ``python -m pytest`` in a subprocess each time. The time is
  measured inside that process by a small plugin that wraps
  ``pytest_runtestloop`` (first test's setup to last test's teardown), so
  interpreter start-up, imports and collection are left out, as they are for
  the in-process rows; the plugin also counts the passed tests, and a run that
  did not pass all N is an error, never a number.
* Reference rows (``ref-*``) run the bare mechanism with no library code: a
  loop kept open, entered once per test (asyncio: ``run_forever()`` stopped by
  the test's task; trio: one guest-run tick, two with a task per test). They
  are the least any design that enters the loop per test can cost, and show
  how much of a row's cost is ours.
* Repetitions are interleaved (each repetition runs every row once), so a burst
  of load on a shared machine hits all rows alike; the table gives the median
  and the min-max spread, and ratios: to the floor (sync ``unittest.TestCase``;
  each in-process sample over a floor sample taken right before it, the median
  of those) and to the peer (``IsolatedAsyncioTestCase`` as shipped; medians).
  pytest rows are compared with their pytest counterparts (a sync
  ``unittest.TestCase`` and ``IsolatedAsyncioTestCase`` under pytest).

``IsolatedAsyncioTestCase`` with debug mode off: the stdlib forces
``asyncio.Runner(debug=True)`` and offers no switch; overriding
``_setupAsyncioRunner`` would rely on a private method. Instead the row gives it
an event loop whose ``set_debug()`` keeps debug mode off: through the public
``loop_factory`` class attribute on Python 3.13+, and on 3.10-3.12 through an
event loop policy installed only while that row runs (``asyncio.Runner`` and
3.10's ``asyncio.new_event_loop()`` both ask the policy for the loop). Everything
else about the class is as shipped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import fnmatch
import gc
import importlib.util
import io
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import types
import unittest
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from queue import SimpleQueue
from typing import Any

import trio

ROOT = Path(__file__).resolve().parent.parent
if __package__ in (None, ""):
    # ``python benchmarks/bench.py``: benchmark the checkout, not an installed copy
    sys.path.insert(0, str(ROOT))

import anyio_unittest  # noqa: E402
from anyio_unittest import AnyIOTestCase  # noqa: E402

HAS_UVLOOP = importlib.util.find_spec("uvloop") is not None
HAS_PYTEST_ASYNCIO = importlib.util.find_spec("pytest_asyncio") is not None

#: the issue's targets: (row key, compared with, at most this ratio)
TARGETS: list[tuple[str, str, float]] = [
    *[(f"anyio-asyncio-{s}", "floor", 2.0) for s in ("class", "module", "session")],
    *[
        (f"anyio-asyncio-{s}-hooks", "floor", 2.5)
        for s in ("class", "module", "session")
    ],
    *[(f"anyio-trio-{s}", "floor", 2.5) for s in ("class", "module", "session")],
    ("anyio-asyncio-function", "peer", 0.25),
    ("anyio-asyncio-function", "isolated-nodebug", 1.0),
]
FLOOR = "unittest-sync"
PEER = "isolated"
PYTEST_FLOOR = "pytest-unittest-sync"
PYTEST_PEER = "pytest-isolated"


# -- rows ----------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One configuration of the table."""

    key: str
    label: str
    #: "sync", "isolated", "isolated-nodebug", "reference", "anyio" (in
    #: process), or "pytest"
    kind: str
    backend: str | None = None  # "asyncio", "trio" or "uvloop"
    loop_scope: str | None = None
    hooks: bool = False
    #: for pytest rows: which suite file ("unittest-sync", "anyio_unittest", ...)
    suite: str | None = None


def all_rows() -> list[Row]:
    rows = [
        Row(FLOOR, "unittest.TestCase (sync floor)", "sync"),
        Row(PEER, "IsolatedAsyncioTestCase (as shipped, debug on)", "isolated"),
        Row(
            "isolated-nodebug",
            "IsolatedAsyncioTestCase, debug off",
            "isolated-nodebug",
        ),
    ]
    for key, (label, backend) in REFERENCES.items():
        rows.append(Row(key, f"reference, no library: {label}", "reference", backend))
        if backend == "asyncio":  # the one backend with a target for hooks
            rows.append(
                Row(
                    f"{key}-hooks",
                    f"reference, no library: {label} + asyncSetUp/asyncTearDown",
                    "reference",
                    backend,
                    hooks=True,
                )
            )
    backends = ["asyncio", "trio"] + (["uvloop"] if HAS_UVLOOP else [])
    for backend in backends:
        for scope in ("function", "class", "module", "session"):
            for hooks in (False, True):
                key = f"anyio-{backend}-{scope}" + ("-hooks" if hooks else "")
                label = f"AnyIOTestCase {backend}, loop_scope={scope}" + (
                    " + asyncSetUp/asyncTearDown" if hooks else ""
                )
                rows.append(Row(key, label, "anyio", backend, scope, hooks))
    pytest_rows = [
        (PYTEST_FLOOR, "unittest.TestCase (sync)", "unittest-sync"),
        ("pytest-functions-sync", "plain sync test functions", "functions-sync"),
        (PYTEST_PEER, "IsolatedAsyncioTestCase", "isolated"),
        (
            "pytest-anyio-asyncio-class",
            "AnyIOTestCase asyncio, loop_scope=class",
            "anyio-asyncio",
        ),
        (
            "pytest-anyio-trio-class",
            "AnyIOTestCase trio, loop_scope=class",
            "anyio-trio",
        ),
    ]
    if HAS_PYTEST_ASYNCIO:
        pytest_rows.append(
            (
                "pytest-asyncio-class",
                'pytest-asyncio, loop_scope="class"',
                "pytest-asyncio",
            )
        )
    pytest_rows += [
        (
            "pytest-anyio-plugin-asyncio-class",
            "anyio plugin asyncio, class-scoped async fixture",
            "anyio-plugin-asyncio",
        ),
        (
            "pytest-anyio-plugin-trio-class",
            "anyio plugin trio, class-scoped async fixture",
            "anyio-plugin-trio",
        ),
    ]
    for key, label, suite in pytest_rows:
        rows.append(Row(key, f"pytest: {label}", "pytest", suite=suite))
    return rows


def select_rows(patterns: Sequence[str] | None) -> list[Row]:
    """The rows matching any of the glob *patterns* (all if none), plus the floor."""
    rows = all_rows()
    if not patterns:
        return rows
    keep = [
        r
        for r in rows
        if r.key == FLOOR or any(fnmatch.fnmatchcase(r.key, p) for p in patterns)
    ]
    if any(r.kind == "pytest" for r in keep) and not any(
        r.key == PYTEST_FLOOR for r in keep
    ):
        keep.insert(
            next(i for i, r in enumerate(keep) if r.kind == "pytest"),
            next(r for r in rows if r.key == PYTEST_FLOOR),
        )
    return keep


def find_row(key: str) -> Row:
    for row in all_rows():
        if row.key == key:
            return row
    raise SystemExit(f"unknown row {key!r}; see --list")


# -- suites, in process ----------------------------------------------------------


def _backend_spec(backend: str) -> Any:
    if backend == "uvloop":
        return ("asyncio", {"use_uvloop": True})
    return backend


_NoDebugBase: Any = (
    asyncio.ProactorEventLoop  # type: ignore[attr-defined,unused-ignore]
    if sys.platform == "win32"
    else asyncio.SelectorEventLoop
)


class NoDebugLoop(_NoDebugBase):  # type: ignore[misc,unused-ignore]
    """asyncio's default loop, except that debug mode cannot be switched on."""

    def set_debug(self, enabled: bool) -> None:
        super().set_debug(False)


class NoDebugIsolatedAsyncioTestCase(unittest.IsolatedAsyncioTestCase):
    """``IsolatedAsyncioTestCase`` on a loop that keeps debug mode off (3.13+)."""

    loop_factory = NoDebugLoop  # read by Python 3.13+ only


@contextlib.contextmanager
def no_debug_loops(row: Row) -> Iterator[None]:
    """Before 3.13, make every new default loop a NoDebugLoop while *row* runs."""
    if row.kind != "isolated-nodebug" or sys.version_info >= (3, 13):
        yield
        return

    class NoDebugPolicy(asyncio.DefaultEventLoopPolicy):  # type: ignore[misc,name-defined,unused-ignore]
        def new_event_loop(self) -> asyncio.AbstractEventLoop:
            return NoDebugLoop()

    previous = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(NoDebugPolicy())
    try:
        yield
    finally:
        asyncio.set_event_loop_policy(previous)


def method_names(n: int) -> list[str]:
    return [f"test_{i:05d}" for i in range(n)]


def _module_for(row: Row, tag: str) -> types.ModuleType:
    """A real module in ``sys.modules`` for *row*'s generated classes."""
    name = "anyio_unittest_bench_" + "".join(
        c if c.isalnum() else "_" for c in f"{row.key}_{tag}"
    )
    module = sys.modules.get(name)
    if module is None:
        module = types.ModuleType(name, f"Generated benchmark suite: {row.label}")
        sys.modules[name] = module
    return module


# -- reference rows: the bare mechanism, without any library code ------------------
#
# What it costs at the very least to run a trivial async test from unittest's sync
# hooks on a loop kept open between tests: the loop is entered once per test and
# leaves again, nothing else (no timeouts, leak checks, contexts, Ctrl-C).
# A floor target below these rows can't be met by any design that enters the loop
# per test; "task per test" is the least a design with per-test task isolation
# pays (what anyio_unittest does), "shared task" the least one without it.


class _Reference(unittest.TestCase):
    """Runs the test, and ``asyncSetUp``/``asyncTearDown`` where the class has
    them, in one entry into the loop (:meth:`enter`), as anyio_unittest does;
    between the phases, the loop moves once (:meth:`pause`)."""

    def enter(self, coro: Any) -> None:
        raise NotImplementedError

    async def pause(self) -> None:
        await asyncio.sleep(0)

    def _callTestMethod(self, method: Any) -> None:
        self.enter(self.phases(method()))

    async def phases(self, test: Any) -> None:
        set_up = getattr(self, "asyncSetUp", None)
        tear_down = getattr(self, "asyncTearDown", None)
        if set_up is not None:
            await set_up()
            await self.pause()
        await test
        if tear_down is not None:
            await self.pause()
            await tear_down()


class _AsyncioReference(_Reference):
    loop: asyncio.AbstractEventLoop

    @classmethod
    def setUpClass(cls) -> None:
        cls.loop = asyncio.new_event_loop()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.loop.close()


async def _then_stop(loop: asyncio.AbstractEventLoop, coro: Any) -> Any:
    try:
        return await coro
    finally:
        loop.stop()


class AsyncioTaskPerTest(_AsyncioReference):
    """Each test in a new task, run by ``run_forever()``, which the task stops:
    one loop iteration a test."""

    def enter(self, coro: Any) -> None:
        task = self.loop.create_task(_then_stop(self.loop, coro))
        self.loop.run_forever()
        task.result()


class AsyncioSharedTask(_AsyncioReference):
    """Every test in one long-lived task, handed its coroutine through a future."""

    inbox: asyncio.Future[Any]
    server: asyncio.Task[None]

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        cls.inbox = cls.loop.create_future()
        cls.server = cls.loop.create_task(cls.serve())

    @classmethod
    async def serve(cls) -> None:
        while (coro := await cls.inbox) is not None:
            cls.inbox = cls.loop.create_future()
            try:
                await coro
            finally:
                cls.loop.stop()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.inbox.set_result(None)
        cls.loop.run_until_complete(cls.server)
        super().tearDownClass()

    def enter(self, coro: Any) -> None:
        self.inbox.set_result(coro)
        self.loop.run_forever()


class TrioSharedTask(_Reference):
    """A trio guest run hosted by a queue on this thread, one long-lived task
    that stays runnable between tests: one trio tick a test, no thread hop."""

    queue: SimpleQueue[Callable[[], object]]
    pending: Any
    finished: bool
    outcome: Any

    @classmethod
    def setUpClass(cls) -> None:
        cls.queue = SimpleQueue()
        cls.pending = None
        cls.finished = False
        cls.outcome = None
        trio.lowlevel.start_guest_run(
            cls.serve,
            run_sync_soon_threadsafe=cls.queue.put,
            run_sync_soon_not_threadsafe=cls.queue.put,
            done_callback=cls.done,
        )
        cls.pump(lambda: cls.finished)

    async def pause(self) -> None:
        return  # trio orders nothing between calls: see anyio_unittest's driver

    @classmethod
    def done(cls, outcome: Any) -> None:
        cls.outcome = outcome

    @classmethod
    def pump(cls, until: Callable[[], bool]) -> None:
        get = cls.queue.get
        while not until():
            get()()

    @classmethod
    async def serve(cls) -> None:
        cls.finished = True
        while True:
            coro, cls.pending = cls.pending, None
            if coro == "stop":
                return
            if coro is not None:
                await cls.start(coro)
            await trio.lowlevel.checkpoint()

    @classmethod
    async def start(cls, coro: Any) -> None:
        await cls.run_test(coro)  # in this very task

    @classmethod
    async def run_test(cls, coro: Any) -> None:
        try:
            await coro
        finally:
            cls.finished = True

    @classmethod
    def tearDownClass(cls) -> None:
        cls.pending = "stop"
        cls.pump(lambda: cls.outcome is not None)
        cls.outcome.unwrap()

    def enter(self, coro: Any) -> None:
        cls = type(self)
        cls.finished = False
        cls.pending = coro
        cls.pump(lambda: cls.finished)


class TrioTaskPerTest(TrioSharedTask):
    """As above, but each test in a new task that the long-lived one spawns
    (a system task: the only kind that can be given a context): two ticks."""

    @classmethod
    async def start(cls, coro: Any) -> None:
        trio.lowlevel.spawn_system_task(cls.run_test, coro)


REFERENCES: dict[str, tuple[str, str]] = {
    "ref-asyncio-task-per-test": ("asyncio, a task per test", "asyncio"),
    "ref-asyncio-shared-task": ("asyncio, one task for all tests", "asyncio"),
    "ref-trio-task-per-test": ("trio guest run, a task per test", "trio"),
    "ref-trio-shared-task": ("trio guest run, one task for all tests", "trio"),
}
_REFERENCE_BASES: dict[str, type[unittest.TestCase]] = {
    "ref-asyncio-task-per-test": AsyncioTaskPerTest,
    "ref-asyncio-shared-task": AsyncioSharedTask,
    "ref-trio-task-per-test": TrioTaskPerTest,
    "ref-trio-shared-task": TrioSharedTask,
}


def make_case(
    row: Row, n: int, *, tag: str = "", name: str = "Bench"
) -> type[unittest.TestCase]:
    """A test class for *row* with *n* trivial tests ``test_00000`` ...

    Defined in a generated module (see :func:`_module_for`), never in a module
    a test loader would collect.
    """
    module = _module_for(row, tag)
    base: type[unittest.TestCase]
    namespace: dict[str, Any] = {"__module__": module.__name__, "__qualname__": name}
    if row.kind == "sync":
        base = unittest.TestCase

        def test(self: Any) -> None:
            pass

    else:
        if row.kind == "isolated":
            base = unittest.IsolatedAsyncioTestCase
        elif row.kind == "isolated-nodebug":
            base = NoDebugIsolatedAsyncioTestCase
        elif row.kind == "reference":
            base = _REFERENCE_BASES[row.key.removesuffix("-hooks")]
        elif row.kind == "anyio":
            base = AnyIOTestCase
            assert row.backend is not None
            namespace["anyio_backend"] = _backend_spec(row.backend)
            namespace["loop_scope"] = row.loop_scope
        else:
            raise ValueError(f"{row.key} is not an in-process row")

        async def test(self: Any) -> None:  # type: ignore[misc]
            pass

    if row.hooks:

        async def asyncSetUp(self: Any) -> None:
            pass

        async def asyncTearDown(self: Any) -> None:
            pass

        namespace["asyncSetUp"] = asyncSetUp
        namespace["asyncTearDown"] = asyncTearDown
    for test_name in method_names(n):
        namespace[test_name] = test
    metaclass: Any = type(base)  # AnyIOTestCaseMeta validates the class
    cls: type[unittest.TestCase] = metaclass(name, (base,), namespace)
    setattr(module, name, cls)
    return cls


def make_classes(
    row: Row, n: int, per_class: int = 0, *, tag: str = ""
) -> list[tuple[type[unittest.TestCase], list[str]]]:
    """*n* tests for *row*: one class, or classes of *per_class* tests each."""
    size = per_class if per_class > 0 else n
    classes = []
    for index, start in enumerate(range(0, n, size)):
        count = min(size, n - start)
        cls = make_case(row, count, tag=tag, name=f"Bench{index:04d}")
        classes.append((cls, method_names(count)))
    return classes


def make_suite(
    classes: Sequence[tuple[type[unittest.TestCase], Sequence[str]]],
) -> unittest.TestSuite:
    return unittest.TestSuite(cls(name) for cls, names in classes for name in names)


class LazySuite(unittest.TestSuite):
    """A suite that makes each test only when it is its turn (for ``--memory``).

    A normal suite holds every test instance before the run; this one holds
    none, so what memory grows with N is what the runner keeps per test.
    """

    def __init__(self, cls: type[unittest.TestCase], n: int) -> None:
        super().__init__()
        self._cls = cls
        self._n = n
        self._cleanup = False

    def __iter__(self) -> Iterator[unittest.TestCase]:
        cls = self._cls
        for name in method_names(self._n):
            yield cls(name)

    def countTestCases(self) -> int:
        return self._n


class _NullStream(io.TextIOBase):
    def write(self, s: str) -> int:
        return len(s)


class BenchError(RuntimeError):
    """A benchmarked suite did not pass."""


def run_suite(suite: unittest.TestSuite, expected: int, row: Row) -> float:
    """Run *suite* as unittest's own runner does; return the seconds it took."""
    runner = unittest.TextTestRunner(stream=_NullStream(), verbosity=0)
    gc.collect()
    with no_debug_loops(row):
        start = time.perf_counter()
        result = runner.run(suite)
        elapsed = time.perf_counter() - start
    _close_session_runners()
    if not result.wasSuccessful() or result.testsRun != expected:
        problems = [text for _, text in result.errors + result.failures]
        raise BenchError(
            f"{row.key}: {result.testsRun} of {expected} tests ran, "
            f"{len(result.failures)} failed, {len(result.errors)} errors\n"
            + "\n".join(problems[:3])
        )
    return elapsed


def _close_session_runners() -> None:
    # session runners stay open until the end of a real run; close them between
    # rows so that no row borrows a runner another row opened (private API: the
    # benchmark lives in the repository and moves with the package)
    from anyio_unittest._scopes import registry

    registry.close_all()


#: seconds a sample of an in-process row lasts at least
MIN_SAMPLE = 0.25


class InProcessBench:
    """A row's classes, built once, run as many times as asked."""

    def __init__(self, row: Row, n: int, per_class: int = 0) -> None:
        self.row = row
        self.n = n
        self.classes = make_classes(row, n, per_class)
        warm = make_classes(row, min(n, 20), tag="warmup")
        self._warmup = warm
        #: runs of the suite per sample, so that each sample lasts MIN_SAMPLE
        self.runs = 1

    def warm_up(self) -> None:
        count = sum(len(names) for _, names in self._warmup)
        run_suite(make_suite(self._warmup), count, self.row)
        # A sample of a fast row (the floor: ~20 ms) would be doubled by one
        # stall of a shared machine's scheduler: run it several times instead.
        once = run_suite(make_suite(self.classes), self.n, self.row)
        self.runs = max(1, math.ceil(MIN_SAMPLE / once))

    def run(self) -> float:
        """Seconds for one run of the whole suite (averaged over self.runs)."""
        # untimed, a few tests first: the row before may have been a pytest
        # subprocess, which leaves this process's caches cold (seen as the
        # floor, the first row of each repetition, running 50% slow)
        count = sum(len(names) for _, names in self._warmup)
        run_suite(make_suite(self._warmup), count, self.row)
        total = sum(
            run_suite(make_suite(self.classes), self.n, self.row)
            for _ in range(self.runs)
        )
        return total / self.runs


# -- suites under pytest ---------------------------------------------------------

_TIMER_PLUGIN = '''
"""Times pytest's test loop (first setup to last teardown) and counts outcomes."""
import json
import os
import time

import pytest

_counts = {"passed": 0, "failed": 0, "error": 0, "skipped": 0}


@pytest.hookimpl(wrapper=True)
def pytest_runtestloop(session):
    start = time.perf_counter()
    try:
        return (yield)
    finally:
        elapsed = time.perf_counter() - start
        with open(os.environ["BENCH_TIMER_OUT"], "w") as f:
            json.dump({"seconds": elapsed, **_counts}, f)


def pytest_runtest_logreport(report):
    if report.when == "call":
        _counts[report.outcome] += 1
    elif report.outcome == "failed":
        _counts["error"] += 1
    elif report.outcome == "skipped":
        _counts["skipped"] += 1
'''


def pytest_source(suite: str, n: int) -> str:
    """The test module for a pytest row: one class of *n* trivial tests."""
    if suite == "functions-sync":
        head = "class TestBench:\n"
        body = "".join(f"    def test_{i:05d}(self):\n        pass\n" for i in range(n))
        return head + body
    if suite in ("unittest-sync", "isolated", "anyio-asyncio", "anyio-trio"):
        base, extra, prefix = {
            "unittest-sync": ("unittest.TestCase", "", "def"),
            "isolated": ("unittest.IsolatedAsyncioTestCase", "", "async def"),
            "anyio-asyncio": (
                "AnyIOTestCase",
                '    anyio_backend = "asyncio"\n    loop_scope = "class"\n',
                "async def",
            ),
            "anyio-trio": (
                "AnyIOTestCase",
                '    anyio_backend = "trio"\n    loop_scope = "class"\n',
                "async def",
            ),
        }[suite]
        head = "import unittest\n\nfrom anyio_unittest import AnyIOTestCase\n\n\n"
        head += f"class TestBench({base}):\n{extra}"
        body = "".join(
            f"    {prefix} test_{i:05d}(self):\n        pass\n" for i in range(n)
        )
        return head + body
    if suite == "pytest-asyncio":
        head = (
            "import pytest\n\n\n"
            '@pytest.mark.asyncio(loop_scope="class")\nclass TestBench:\n'
        )
        body = "".join(
            f"    async def test_{i:05d}(self):\n        pass\n" for i in range(n)
        )
        return head + body
    if suite in ("anyio-plugin-asyncio", "anyio-plugin-trio"):
        backend = suite.rpartition("-")[2]
        head = textwrap.dedent(
            f'''\
            import pytest

            pytestmark = pytest.mark.anyio


            @pytest.fixture(scope="module")
            def anyio_backend():
                return "{backend}"


            @pytest.fixture(scope="class", autouse=True)
            async def hold_runner():
                # a class-scoped async fixture: anyio's plugin keeps its runner
                # open while one is alive, so the class shares one event loop
                yield


            class TestBench:
            '''
        )
        body = "".join(
            f"    async def test_{i:05d}(self):\n        pass\n" for i in range(n)
        )
        return head + body
    raise ValueError(f"unknown pytest suite {suite!r}")


def _plugin_registered(name: str) -> bool:
    from importlib.metadata import entry_points

    return any(ep.name == name for ep in entry_points(group="pytest11"))


def pytest_args(suite: str) -> list[str]:
    """Plugin switches: each row runs with its own async plugin only."""
    args = ["-p", "no:cacheprovider", "-p", "no:randomly", "-p", "no:xdist"]
    if suite != "pytest-asyncio":
        args += ["-p", "no:asyncio"]
    else:
        args += ["-o", "asyncio_default_fixture_loop_scope=function"]
    if not suite.startswith("anyio-plugin"):
        args += ["-p", "no:anyio"]
    if suite.startswith("anyio-") and not suite.startswith("anyio-plugin"):
        if not _plugin_registered("anyio_unittest"):
            args += ["-p", "anyio_unittest.pytest_plugin"]
    else:
        args += ["-p", "no:anyio_unittest"]
    return args


class PytestBench:
    """A pytest row: a written test file, run in a fresh subprocess each time."""

    def __init__(self, row: Row, n: int, folder: Path) -> None:
        assert row.suite is not None
        self.row = row
        self.n = n
        self.folder = folder / row.key
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "pytest.ini").write_text("[pytest]\naddopts =\n")
        (self.folder / "_bench_timer.py").write_text(_TIMER_PLUGIN)
        (self.folder / "test_bench.py").write_text(pytest_source(row.suite, n))

    def run(self) -> float:
        out = self.folder / "timing.json"
        with contextlib.suppress(FileNotFoundError):
            out.unlink()
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("ANYIO_UNITTEST_")
            and k not in ("PYTEST_ADDOPTS", "PYTHONDEVMODE", "PYTHONASYNCIODEBUG")
        }
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(self.folder)])
        env["BENCH_TIMER_OUT"] = str(out)
        assert self.row.suite is not None
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "_bench_timer",
                *pytest_args(self.row.suite),
                "test_bench.py",
            ],
            cwd=self.folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        try:
            timing = json.loads(out.read_text())
        except FileNotFoundError:
            timing = None
        if proc.returncode != 0 or timing is None or timing["passed"] != self.n:
            raise BenchError(
                f"{self.row.key}: pytest exited with {proc.returncode}, "
                f"timing {timing}:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
            )
        return float(timing["seconds"])


# -- the table -------------------------------------------------------------------


@dataclass
class Result:
    row: Row
    samples: list[float] = field(default_factory=list)  # seconds per test
    #: in process: the floor's sample taken right before each of ours
    floor_samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    def floor_ratio(self) -> float | None:
        """The median of our samples over the floor's taken just before them.

        A shared machine's speed drifts over seconds: the floor (the fastest,
        so the most sensitive row) measured next to each sample drifts with it,
        where the ratio of two medians from different moments would not.
        """
        if not self.floor_samples:
            return None
        pairs = zip(self.samples, self.floor_samples)  # noqa: B905
        return statistics.median(ours / floor for ours, floor in pairs)


def run_table(
    rows: Sequence[Row],
    n: int,
    repeat: int,
    per_class: int = 0,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Result]:
    """Every row *repeat* times, interleaved; seconds per test."""
    say = progress or (lambda _: None)
    benches: list[InProcessBench | PytestBench] = []
    with tempfile.TemporaryDirectory(prefix="anyio_unittest_bench_") as tmp:
        for row in rows:
            if row.kind == "pytest":
                benches.append(PytestBench(row, n, Path(tmp)))
            else:
                in_process = InProcessBench(row, n, per_class)
                in_process.warm_up()
                benches.append(in_process)
        results = {row.key: Result(row) for row in rows}
        floor = next(
            (
                b
                for b in benches
                if b.row.key == FLOOR and isinstance(b, InProcessBench)
            ),
            None,
        )
        for rep in range(repeat):
            for bench in benches:
                say(f"repetition {rep + 1}/{repeat}: {bench.row.key}")
                result = results[bench.row.key]
                paired = isinstance(bench, InProcessBench) and bench is not floor
                if paired and floor is not None:
                    floor_sample = floor.run() / n
                    results[FLOOR].samples.append(floor_sample)
                    result.floor_samples.append(floor_sample)
                result.samples.append(bench.run() / n)
    return results


def ratios(results: dict[str, Result], key: str) -> tuple[float | None, float | None]:
    """(ratio to the floor, ratio to the peer) of a row, compared like with like."""
    row = results[key].row
    floor, peer = (PYTEST_FLOOR, PYTEST_PEER) if row.kind == "pytest" else (FLOOR, PEER)
    median = results[key].median

    def ratio(other: str) -> float | None:
        if other not in results:
            return None
        if other == FLOOR:
            paired = results[key].floor_ratio()
            if paired is not None:
                return paired
        return median / results[other].median

    return ratio(floor), ratio(peer)


def _references_for(key: str) -> list[str]:
    """The reference rows of the backend of row *key* (``anyio-<backend>-...``),
    with the same hooks."""
    backend = key.split("-")[1]
    suffix = "-hooks" if key.endswith("-hooks") else ""
    return [k + suffix for k, (_, b) in REFERENCES.items() if b == backend]


def check_targets(results: dict[str, Result]) -> list[dict[str, Any]]:
    checks = []
    for key, against, limit in TARGETS:
        other = {"floor": FLOOR, "peer": PEER}.get(against, against)
        if key not in results or other not in results:
            continue
        paired = results[key].floor_ratio() if other == FLOOR else None
        value = paired or results[key].median / results[other].median
        best = min(results[key].samples) / min(results[other].samples)
        # what the bare mechanism costs, for a target against the floor: a
        # limit below it can't be met by any design that enters the loop per test
        bare = {
            ref: round(results[ref].floor_ratio() or 0.0, 3)
            for ref in (_references_for(key) if other == FLOOR else [])
            if ref in results
        }
        checks.append(
            {
                "row": key,
                "against": other,
                "limit": limit,
                "ratio": round(value, 3),
                "best_ratio": round(best, 3),
                "ok": value <= limit,
                "bare_mechanism": bare,
            }
        )
    return checks


def load_warning(meta: dict[str, Any]) -> str | None:
    """A note when other work shared the CPUs during the run."""
    loads = [
        load[0]
        for load in (meta.get("load_average_before"), meta.get("load_average_after"))
        if load
    ]
    cpus = meta.get("cpus") or 1
    if not loads or max(loads) <= cpus / 2:
        return None
    return (
        f"The machine was busy (1-minute load average up to {max(loads):g} on "
        f"{cpus} CPUs): medians and spreads carry that noise; the best-of ratios "
        f"in the targets table are the steadier figure."
    )


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def _git_state() -> str | None:
    """The checkout's commit, with ``+dirty`` if the package has local changes."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        )
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "anyio_unittest"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def _load() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def metadata(n: int, repeat: int, per_class: int) -> dict[str, Any]:
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "load_average_before": _load(),
        "commit": _git_state(),
        "tests": n,
        "repeat": repeat,
        "per_class": per_class or n,
        "versions": {
            "anyio_unittest": anyio_unittest.__version__,
            **{
                d: _version(d)
                for d in ("anyio", "trio", "uvloop", "pytest", "pytest-asyncio")
            },
        },
    }


def _fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def table_lines(results: dict[str, Result]) -> list[str]:
    header = "| configuration | µs/test (median) | min-max | x floor | x peer |"
    lines = [header, "|---|--:|--:|--:|--:|"]
    for key, res in results.items():
        to_floor, to_peer = ratios(results, key)
        us = [s * 1e6 for s in res.samples]
        lines.append(
            f"| {res.row.label} `{key}` | {res.median * 1e6:,.1f} | "
            f"{min(us):,.1f}-{max(us):,.1f} | {_fmt_ratio(to_floor)} | "
            f"{_fmt_ratio(to_peer)} |"
        )
    return lines


def markdown(
    meta: dict[str, Any], results: dict[str, Result], checks: list[dict[str, Any]]
) -> str:
    versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items() if v)
    out = [
        "# anyio_unittest benchmark",
        "",
        f"- date: {meta['date']}; anyio_unittest at {meta.get('commit') or '?'}",
        f"- Python {meta['python']} ({meta['implementation']}) on {meta['platform']}",
        f"- CPU: {meta['cpu']} ({meta['cpus']} logical CPUs); load average "
        f"before/after: {meta['load_average_before']} / "
        f"{meta.get('load_average_after')}",
        f"- {meta['tests']} trivial tests per run ({meta['per_class']} per "
        f"class), {meta['repeat']} interleaved repetitions; {versions}",
        "",
        "µs per test: median and spread over the repetitions. x floor: in "
        "process, the median of the row's samples each over a sample of the "
        "sync `unittest.TestCase` row taken right before it (so the two see "
        "the machine at the same speed; the floor row lists all those "
        "samples); pytest rows, the ratio of medians to the same class under "
        "pytest. x peer: the ratio of medians to `IsolatedAsyncioTestCase` "
        "(as shipped).",
        "",
        *table_lines(results),
    ]
    warning = load_warning(meta)
    if warning:
        out[-len(results) - 2 : -len(results) - 2] = [f"**Note.** {warning}", ""]
    if checks:
        out += [
            "",
            "## Targets",
            "",
            "The verdict is on the ratio in the table (x floor / x peer); the "
            "ratio of the fastest repetitions is shown beside it. *Bare "
            "mechanism*: the reference rows of the same backend, to the same "
            "floor (no library code: the least any design that enters the loop "
            "once per test pays).",
            "",
            "| row | compared with | ratio | ratio (best) | limit | | bare mechanism |",
            "|---|---|--:|--:|--:|---|---|",
        ]
        for c in checks:
            bare = ", ".join(
                f"{v:.2f}x `{k}`" for k, v in c.get("bare_mechanism", {}).items()
            )
            out.append(
                f"| `{c['row']}` | `{c['against']}` | {c['ratio']:.2f}x | "
                f"{c['best_ratio']:.2f}x | <= {c['limit']:g}x | "
                f"{'ok' if c['ok'] else '**missed**'} | {bare or '-'} |"
            )
    return "\n".join(out) + "\n"


def plot(results: dict[str, Result], meta: dict[str, Any], path: Path) -> bool:
    """A bar chart of µs/test per configuration, if matplotlib is importable."""
    try:
        import matplotlib  # type: ignore[import-not-found,unused-ignore]

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return False
    keys = list(results)
    medians = [results[k].median * 1e6 for k in keys]
    # error bars: from the fastest to the slowest repetition
    lows = [m - min(results[k].samples) * 1e6 for k, m in zip(keys, medians)]  # noqa: B905
    highs = [max(results[k].samples) * 1e6 - m for k, m in zip(keys, medians)]  # noqa: B905
    kinds = {
        "sync floor": "tab:gray",
        "IsolatedAsyncioTestCase": "tab:red",
        "anyio_unittest": "tab:blue",
        "reference, no library": "tab:green",
        "other pytest plugins": "tab:orange",
    }
    colours = [kinds[_plot_kind(results[k].row)] for k in keys]
    fig, ax = plt.subplots(figsize=(9, 0.28 * len(keys) + 1.5))
    ax.barh(keys, medians, xerr=[lows, highs], color=colours)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("µs per trivial test (median, min-max; log scale)")
    ax.set_title(
        f"anyio_unittest, {meta['tests']} tests, Python {meta['python']}, "
        f"{meta['cpu']}",
        fontsize=9,
    )
    ax.tick_params(axis="y", labelsize=7)
    from matplotlib.patches import (  # type: ignore[import-not-found,unused-ignore]
        Patch,
    )

    ax.legend(
        handles=[Patch(color=c, label=k) for k, c in kinds.items()],
        fontsize=7,
        loc="lower right",
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def _plot_kind(row: Row) -> str:
    if row.key in (FLOOR, PYTEST_FLOOR) or row.suite == "functions-sync":
        return "sync floor"
    if "isolated" in row.key:
        return "IsolatedAsyncioTestCase"
    if row.kind == "reference":
        return "reference, no library"
    if row.kind == "anyio" or row.suite in ("anyio-asyncio", "anyio-trio"):
        return "anyio_unittest"
    return "other pytest plugins"


# -- memory ----------------------------------------------------------------------

MEMORY_ROWS = ("unittest-sync", "anyio-asyncio-class", "anyio-trio-class")
MEMORY_COUNTS = (2000, 20000)


def memory_child(key: str, n: int, use_tracemalloc: bool) -> dict[str, Any]:
    """Run *n* tests of *key* in one class, made lazily; report memory (in MB)."""
    import resource

    row = find_row(key)
    cls = make_case(row, n)
    report: dict[str, Any] = {"row": key, "tests": n}
    if use_tracemalloc:
        import tracemalloc

        tracemalloc.start()
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
    run_suite(LazySuite(cls, n), n, row)
    gc.collect()
    if use_tracemalloc:
        current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        report["traced_retained_mb"] = (current - before) / 2**20
        report["traced_peak_mb"] = (peak - before) / 2**20
    else:
        # ru_maxrss is in KiB on Linux, in bytes on macOS
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        scale = 2**20 if sys.platform == "darwin" else 2**10
        report["peak_rss_mb"] = maxrss / scale
    return report


def _run_child(args: list[str]) -> dict[str, Any]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONDEVMODE", "PYTHONASYNCIODEBUG", "PYTHONTRACEMALLOC")
    }
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode != 0:
        raise BenchError(f"child {args} failed:\n{proc.stdout}{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def memory_report(counts: Sequence[int] = MEMORY_COUNTS) -> dict[str, Any]:
    """Peak RSS and traced memory of each memory row, a fresh process per run."""
    rows = [k for k in MEMORY_ROWS if k in {r.key for r in all_rows()}]
    out: dict[str, Any] = {"counts": list(counts), "rows": {}}
    for key in rows:
        entry: dict[str, Any] = {}
        for n in counts:
            rss = _run_child(["--_memory-child", key, str(n)])
            traced = _run_child(["--_memory-child", key, str(n), "--_tracemalloc"])
            entry[str(n)] = {**rss, **traced}
        low, high = (entry[str(counts[0])], entry[str(counts[-1])])
        entry["rss_growth_mb"] = high["peak_rss_mb"] - low["peak_rss_mb"]
        entry["traced_peak_growth_mb"] = high["traced_peak_mb"] - low["traced_peak_mb"]
        entry["traced_retained_growth_mb"] = (
            high["traced_retained_mb"] - low["traced_retained_mb"]
        )
        out["rows"][key] = entry
    return out


def memory_markdown(report: dict[str, Any]) -> str:
    low, high = report["counts"][0], report["counts"][-1]
    lines = [
        f"## Memory: {high:,} vs {low:,} tests in one class (a fresh process each)",
        "",
        "Tests are made one at a time as the run reaches them, so growth is what "
        "is kept per test. Target for the class-scoped rows: peak RSS grows by "
        "< 20 MB.",
        "",
        f"| row | peak RSS {low:,} (MB) | peak RSS {high:,} (MB) | RSS growth | "
        f"traced peak growth | traced retained growth |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for key, e in report["rows"].items():
        lines.append(
            f"| `{key}` | {e[str(low)]['peak_rss_mb']:.1f} | "
            f"{e[str(high)]['peak_rss_mb']:.1f} | {e['rss_growth_mb']:+.1f} | "
            f"{e['traced_peak_growth_mb']:+.2f} | "
            f"{e['traced_retained_growth_mb']:+.2f} |"
        )
    return "\n".join(lines) + "\n"


# -- profile ---------------------------------------------------------------------


def profile(key: str, n: int, top: int, per_class: int = 0) -> str:
    """cProfile one run of *key*'s suite; a table of cost per test, by function."""
    import cProfile
    import pstats

    row = find_row(key)
    if row.kind == "pytest":
        raise SystemExit("--profile works on in-process rows only")
    bench = InProcessBench(row, n, per_class)
    bench.warm_up()
    suite = make_suite(bench.classes)
    profiler = cProfile.Profile()
    profiler.enable()
    run_suite(suite, n, row)
    profiler.disable()
    stats = pstats.Stats(profiler)
    entries = []
    for (filename, line, func), (_cc, nc, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        where = _short_path(filename)
        entries.append((tt, ct, nc, f"{where}:{line}({func})"))
    total = sum(e[0] for e in entries)
    groups: dict[str, float] = {}
    for tt, _ct, _nc, name in entries:
        group = name.split("/", 1)[0] if "/" in name else "other"
        if group not in ("anyio_unittest", "unittest", "asyncio", "trio", "anyio"):
            group = "other (builtins, contextlib, outcome, sniffio, ...)"
        groups[group] = groups.get(group, 0.0) + tt
    lines = [
        f"cProfile of {key} ({row.label}), {n} tests: "
        f"{total / n * 1e6:.1f} µs/test of profiled time "
        "(profiling inflates it; compare the shares, not the totals)",
        "",
        "own time by package:",
        *(
            f"{tt / n * 1e6:11.2f} µs/test {tt / total:6.1%}  {group}"
            for group, tt in sorted(groups.items(), key=lambda g: -g[1])
        ),
        "",
        f"{'own µs/test':>11} {'cum µs/test':>11} {'calls/test':>10}  function",
    ]
    for tt, ct, nc, name in sorted(entries, reverse=True)[:top]:
        lines.append(
            f"{tt / n * 1e6:11.2f} {ct / n * 1e6:11.2f} {nc / n:10.2f}  {name}"
        )
    lines += ["", "by cumulative time:", ""]
    for tt, ct, nc, name in sorted(entries, key=lambda e: e[1], reverse=True)[:top]:
        lines.append(
            f"{tt / n * 1e6:11.2f} {ct / n * 1e6:11.2f} {nc / n:10.2f}  {name}"
        )
    return "\n".join(lines)


def _short_path(filename: str) -> str:
    if filename.startswith("~") or filename.startswith("<"):
        return filename
    path = Path(filename)
    if path.name == "bench.py":
        return "bench.py"
    for marker in ("anyio_unittest", "unittest", "asyncio", "trio", "anyio"):
        if marker in path.parts:
            index = len(path.parts) - 1 - path.parts[::-1].index(marker)
            return "/".join(path.parts[index:])
    return path.name


# -- command line ----------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--tests", type=int, default=2000, help="tests per suite")
    parser.add_argument("--repeat", type=int, default=5, help="repetitions per row")
    parser.add_argument(
        "--per-class", type=int, default=0, help="tests per class (0: all in one)"
    )
    parser.add_argument(
        "--rows",
        action="append",
        metavar="GLOB",
        help="only the rows whose key matches (repeatable; the floor always runs)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "benchmarks" / "results",
        help="folder for the Markdown, JSON and PNG results",
    )
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if a target is missed"
    )
    parser.add_argument("--list", action="store_true", help="list the row keys")
    parser.add_argument(
        "--memory", action="store_true", help="measure memory, 2,000 vs 20,000 tests"
    )
    parser.add_argument("--profile", metavar="ROW", help="cProfile one row's suite")
    parser.add_argument("--top", type=int, default=30, help="functions to show")
    parser.add_argument("--json", action="store_true", help="print JSON only")
    parser.add_argument("--_memory-child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--_tracemalloc", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args._memory_child:
        key, count = args._memory_child
        print(json.dumps(memory_child(key, int(count), args._tracemalloc)))
        return 0
    if args.list:
        for row in all_rows():
            print(f"{row.key:40} {row.label}")
        return 0
    if args.profile:
        print(profile(args.profile, args.tests, args.top, args.per_class))
        return 0
    if args.memory:
        report = memory_report()
        if args.json:
            print(json.dumps(report, indent=2))
        else:
            print(memory_markdown(report))
        missed = [
            k
            for k, e in report["rows"].items()
            if k != FLOOR and e["rss_growth_mb"] >= 20
        ]
        if not args.no_write:
            args.out.mkdir(parents=True, exist_ok=True)
            tag = _file_tag()
            (args.out / f"memory-{tag}.md").write_text(memory_markdown(report))
            (args.out / f"memory-{tag}.json").write_text(
                json.dumps({"meta": metadata(0, 1, 0), **report}, indent=2) + "\n"
            )
        return 1 if args.check and missed else 0

    rows = select_rows(args.rows)
    meta = metadata(args.tests, args.repeat, args.per_class)

    def progress(message: str) -> None:
        if not args.json and sys.stderr.isatty():
            print(f"\r{message:<72}", end="", file=sys.stderr, flush=True)

    results = run_table(rows, args.tests, args.repeat, args.per_class, progress)
    if not args.json and sys.stderr.isatty():
        print("\r" + " " * 72 + "\r", end="", file=sys.stderr)
    meta["load_average_after"] = _load()
    checks = check_targets(results)
    payload = {
        "meta": meta,
        "rows": [
            {
                "key": key,
                "label": res.row.label,
                "runner": "pytest" if res.row.kind == "pytest" else "unittest",
                "samples_us": [round(s * 1e6, 2) for s in res.samples],
                "median_us": round(res.median * 1e6, 2),
                "min_us": round(min(res.samples) * 1e6, 2),
                "max_us": round(max(res.samples) * 1e6, 2),
                "ratio_floor": _round(ratios(results, key)[0]),
                "ratio_peer": _round(ratios(results, key)[1]),
            }
            for key, res in results.items()
        ],
        "targets": checks,
    }
    text = markdown(meta, results, checks)
    if args.json:
        print(json.dumps(payload, indent=2))
    else:
        print(text)
    if not args.no_write:
        args.out.mkdir(parents=True, exist_ok=True)
        tag = _file_tag()
        (args.out / f"bench-{tag}.md").write_text(text)
        (args.out / f"bench-{tag}.json").write_text(
            json.dumps(payload, indent=2) + "\n"
        )
        if plot(results, meta, args.out / f"bench-{tag}.png") and not args.json:
            print(f"plot: {args.out / f'bench-{tag}.png'}")
        if not args.json:
            print(f"written: {args.out / f'bench-{tag}.md'} and .json")
    return 1 if args.check and not all(c["ok"] for c in checks) else 0


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _file_tag() -> str:
    """``py311``: results of different Pythons sit side by side."""
    return f"py{sys.version_info.major}{sys.version_info.minor}"


if __name__ == "__main__":
    sys.exit(main())
