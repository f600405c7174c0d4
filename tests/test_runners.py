"""End to end: the runners people use, on one small suite in two modules.

The suite (``SUITE`` below) uses every ``loop_scope`` on asyncio and trio
(``anyio_backends``), module hooks, async class hooks and cleanups, and has
passing tests, one failing, one erroring and one skipped test (each twice: once
per backend). Each runner runs in a subprocess with warnings as errors and
``PYTHONDEVMODE=1``; we check its counts, that its output has no sign of a
runner left open, and a log that the suite's ``_track`` module writes: every
runner the library opens and closes (``Backend.open_runner`` is patched) and
every module and class hook, per process.

The runs are independent, so ``setUpClass`` starts them all on a small thread
pool and each test waits for the ones it checks.

Findings this file pins down (see the report of each test):

* pytest-xdist ``--dist load`` splits a class (and a module) over workers: each
  worker sets up the module and the class it got tests of, on its own runners,
  and tears them down again; sharing holds within a worker.
* unittest-parallel ``--level test`` runs each test alone (a bare
  ``TestCase.run()``): the class and module scopes are set up and torn down
  around that one test ("a class of one"), so ``asyncSetUpModule`` runs once
  per test.
* unittest-parallel ends its pool with ``Pool.terminate()``: a worker often gets
  SIGTERM before it can exit, so ``atexit`` does not run and the session runners
  of that worker are never closed (module and class runners are: they end with
  their suite). Nothing of the user's runs at a session runner's end, so only
  tasks still pending on it are not cancelled.
* On trio, while a session runner is open, function- and class-scoped trio
  tests run inside that same trio run (trio allows one run per thread).
"""

from __future__ import annotations

import ast
import json
import os
import re
import unittest
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tests._support import (
    ROOT,
    SKIPPED_TESTS_COUNT_AS_RUN,
    Outcome,
    entry_point_folder,
    run,
    unittest_id,
    write_suite,
)

# --------------------------------------------------------------------------
# the suite

TRACK = '''
"""Log runners opened and closed, and hook events, to $TRACK_LOG (per process)."""
import itertools
import os

from anyio_unittest import _backends

LOG = os.environ["TRACK_LOG"]


def log(*words):
    with open(LOG, "a") as f:
        f.write(" ".join(map(str, (os.getpid(), *words))) + "\\n")


if not getattr(_backends.Backend.open_runner, "tracked", False):
    _numbers = itertools.count(1)
    _open_runner = _backends.Backend.open_runner

    def open_runner(self, owner):
        runner = _open_runner(self, owner)
        number = next(_numbers)
        log("open", number, self.id, owner.replace(" ", "_"))
        close = runner.close

        def tracked_close():
            log("close", number)
            close()

        runner.close = tracked_close
        return runner

    open_runner.tracked = True
    _backends.Backend.open_runner = open_runner
'''

COMMON = '''
import anyio
import sniffio

from _track import log


def current_run():
    """The loop or trio run this code runs on."""
    if sniffio.current_async_library() == "trio":
        import trio

        return trio.lowlevel.current_trio_token()
    import asyncio

    return asyncio.get_running_loop()


class Resource:
    """An async context manager that logs its exit."""

    def __init__(self, name):
        self.name = name
        self.open = False

    async def __aenter__(self):
        await anyio.sleep(0)
        self.open = True
        return self

    async def __aexit__(self, *exc_info):
        await anyio.sleep(0)
        self.open = False
        log("exit", self.name)
'''

TEST_MOD = '''
"""Module and session scope, with async module hooks."""
import contextvars
import unittest

import anyio
import sniffio

import anyio_unittest
from _common import Resource, current_run, log
from anyio_unittest import AnyIOTestCase

MODULE_RUN = contextvars.ContextVar("module_run")
#: the module resource of each runner; the module hooks run once per runner: on
#: the module runner (for ModuleScoped) and on the session runner (SessionScoped)
RESOURCES = {}


async def asyncSetUpModule():
    name = sniffio.current_async_library()
    log("setUpModule", name)
    MODULE_RUN.set(current_run())
    RESOURCES[current_run()] = await anyio_unittest.enterAsyncModuleContext(
        Resource("module_" + name)
    )


async def asyncTearDownModule():
    await anyio.sleep(0)
    log("tearDownModule", sniffio.current_async_library())


class ModuleScoped(AnyIOTestCase):
    anyio_backends = ["asyncio", "trio"]
    loop_scope = "module"

    async def test_module_runner_shared(self):
        name = sniffio.current_async_library()
        self.assertEqual(name, self.anyio_backend)
        self.assertIs(MODULE_RUN.get(), current_run())
        self.assertTrue(RESOURCES[current_run()].open)
        print("NOISE-PASS")

    async def test_that_fails(self):
        await anyio.sleep(0)
        print("NOISE-FAIL")
        self.fail("expected failure")


class SessionScoped(AnyIOTestCase):
    anyio_backends = ["asyncio", "trio"]
    loop_scope = "session"

    @classmethod
    async def asyncSetUpClass(cls):
        log("setUpClass", cls.__name__)
        cls.shared_run = current_run()
        cls.resource = await cls.enterAsyncClassContext(Resource(cls.__name__))

    @classmethod
    async def asyncTearDownClass(cls):
        assert cls.resource.open
        log("tearDownClass", cls.__name__)

    async def test_session_runner(self):
        name = sniffio.current_async_library()
        self.assertEqual(name, self.anyio_backend)
        self.assertIs(current_run(), self.shared_run)
        self.assertIs(MODULE_RUN.get(), current_run())
        self.assertTrue(RESOURCES[current_run()].open)
        self.assertTrue(self.resource.open)

    async def test_that_errors(self):
        await anyio.sleep(0)
        raise RuntimeError("expected error")

    @unittest.skip("expected skip")
    async def test_skipped(self):
        raise AssertionError("a skipped test ran")
'''

TEST_OTHER = '''
"""Function and class scope, with async class hooks and cleanups."""
import anyio
import sniffio

from _common import Resource, current_run, log
from anyio_unittest import AnyIOTestCase


class FunctionScoped(AnyIOTestCase):
    anyio_backends = ["asyncio", "trio"]

    async def asyncSetUp(self):
        self.test_run = current_run()
        self.resource = await self.enterAsyncContext(Resource("test"))

    async def test_one(self):
        self.assertEqual(sniffio.current_async_library(), self.anyio_backend)
        self.assertIs(current_run(), self.test_run)
        self.assertTrue(self.resource.open)
        print("NOISE-PASS")

    async def test_two(self):
        await anyio.sleep(0.001)
        self.assertIs(current_run(), self.test_run)


class ClassScoped(AnyIOTestCase):
    anyio_backends = ["asyncio", "trio"]
    loop_scope = "class"

    @classmethod
    async def asyncSetUpClass(cls):
        log("setUpClass", cls.__name__)
        cls.shared_run = current_run()
        cls.resource = await cls.enterAsyncClassContext(Resource(cls.__name__))

    @classmethod
    async def asyncTearDownClass(cls):
        assert cls.resource.open
        log("tearDownClass", cls.__name__)

    async def test_one(self):
        self.assertEqual(sniffio.current_async_library(), self.anyio_backend)
        self.assertIs(current_run(), self.shared_run)
        self.assertTrue(self.resource.open)

    async def test_two(self):
        self.assertIs(current_run(), self.shared_run)
        self.assertTrue(self.resource.open)
'''

SUITE = {
    "_track.py": TRACK,
    "_common.py": COMMON,
    "test_mod.py": TEST_MOD,
    "test_other.py": TEST_OTHER,
}


def _unittest_expected(tests: int, **counts: int) -> dict[str, int]:
    """What unittest's summary says of a run of *tests* tests of SUITE with
    these *counts* (failures, errors, skipped). SUITE's skipped tests are
    skipped by a decorator: "Ran N tests" counts them on most Pythons, not on
    3.12.1 (see ``SKIPPED_TESTS_COUNT_AS_RUN``)."""
    skipped = 0 if SKIPPED_TESTS_COUNT_AS_RUN else counts.get("skipped", 0)
    return {"ran": tests - skipped, **counts}


#: everything, as unittest counts it: 18 tests, 2 of them skipped
UNITTEST_ALL = _unittest_expected(18, failures=2, errors=2, skipped=2)
#: one backend's half of SUITE (``-k trio``, ``ANYIO_UNITTEST_BACKENDS``)
UNITTEST_HALF = _unittest_expected(9, failures=1, errors=1, skipped=1)
#: everything, as pytest counts it: an error in a unittest test is "failed"
PYTEST_ALL = {"passed": 12, "failed": 4, "skipped": 2}

#: text that means something was left open or broken at the end
BAD_OUTPUT = (
    "ResourceWarning",
    "nclosed",  # "unclosed event loop", "Unclosed ..."
    "Task was destroyed",
    "Event loop is closed",
    "Exception ignored",
    "was never awaited",
    "INTERNALERROR",
    "Coverage.py warning",
    "CoverageWarning",
)
#: a frame of the package in a traceback (unittest's and pytest's formats)
PACKAGE_FRAME = re.compile(
    r'File "[^"]*anyio_unittest[/\\]|anyio_unittest[/\\]\w+\.py:\d+: in '
)

# --------------------------------------------------------------------------
# running and reading


def _unittest_counts(output: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    ran = re.search(r"^Ran (\d+) tests?", output, re.MULTILINE)
    counts["ran"] = int(ran.group(1)) if ran else -1
    summary = re.search(r"^(?:OK|FAILED)(?: \((.*)\))?$", output, re.MULTILINE)
    if summary and summary.group(1):
        for part in summary.group(1).split(", "):
            key, _, value = part.partition("=")
            counts[key.replace(" ", "_")] = int(value)
    return counts


def _pytest_counts(output: str) -> dict[str, int]:
    lines = [line for line in output.splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    found = re.findall(
        r"(\d+) (passed|failed|errors?|skipped|deselected|xfailed|xpassed|warnings?)",
        last,
    )
    return {kind.rstrip("s") if kind != "passed" else kind: int(n) for n, kind in found}


class Run:
    """One runner's outcome, and what the suite's ``_track`` module logged."""

    def __init__(self, outcome: Outcome, log: list[list[str]], folder: Path) -> None:
        self.returncode = outcome.returncode
        self.output = outcome.output
        self.log = log
        self.folder = folder

    def __repr__(self) -> str:
        return f"<Run rc={self.returncode}>\n{self.output[-3000:]}"


class Workspace:
    def __init__(self) -> None:
        self.env = {
            "PYTHONDEVMODE": "1",
            "PYTHONPATH": os.pathsep.join(
                [
                    str(ROOT),
                    str(entry_point_folder()),
                    *filter(None, [os.environ.get("PYTHONPATH")]),
                ]
            ),
        }

    def suite(self) -> Path:
        return write_suite(SUITE)

    def run(
        self, folder: Path, args: list[str], env: dict[str, str] | None = None
    ) -> Outcome:
        log = folder / "track.log"
        return run(args, folder, {**self.env, "TRACK_LOG": str(log), **(env or {})})

    def result(self, folder: Path, outcome: Outcome) -> Run:
        path = folder / "track.log"
        lines = path.read_text().splitlines() if path.exists() else []
        return Run(outcome, [line.split() for line in lines], folder)

    def runner(self, *args: str, env: dict[str, str] | None = None) -> Run:
        folder = self.suite()
        return self.result(folder, self.run(folder, list(args), env))


#: plugins installed here that the runs don't need: pytest-asyncio (it has a run
#: of its own) and Hypothesis's (~1 s of imports per process)
NO_PLUGINS = ("-p", "no:asyncio", "-p", "no:hypothesispytest")


def _pytest(*args: str) -> list[str]:
    # pytest-asyncio is installed here: without it for all but its own run
    return ["-m", "pytest", "-q", "-p", "no:cacheprovider", *NO_PLUGINS, *args]


def _job_lf(ws: Workspace) -> tuple[Run, Run]:
    folder = ws.suite()
    first = ws.result(folder, ws.run(folder, ["-m", "pytest", *NO_PLUGINS]))
    (folder / "track.log").unlink()
    again = ["-m", "pytest", *NO_PLUGINS, "--lf"]  # not -q: it hides the header
    return first, ws.result(folder, ws.run(folder, again))


COVERAGERC = "[run]\nsource_pkgs = anyio_unittest\nbranch = true\n"


def _job_coverage(ws: Workspace) -> tuple[Run, dict[str, Any]]:
    folder = ws.suite()
    (folder / ".coveragerc").write_text(COVERAGERC)
    outcome = ws.run(folder, ["-m", "coverage", "run", "-m", "unittest"])
    ws.run(folder, ["-m", "coverage", "json", "-q", "-o", "cov.json"])
    return ws.result(folder, outcome), json.loads((folder / "cov.json").read_text())


def _job_coverage_combined(
    ws: Workspace,
) -> tuple[list[Run], list[str], dict[str, Any]]:
    folder = ws.suite()
    (folder / ".coveragerc").write_text(COVERAGERC)
    runs = []
    for backend in ("asyncio", "trio"):
        outcome = ws.run(
            folder,
            ["-m", "coverage", "run", "-p", "-m", "unittest"],
            {"ANYIO_UNITTEST_BACKENDS": backend},
        )
        runs.append(ws.result(folder, outcome))
        (folder / "track.log").unlink()
    data_files = sorted(p.name for p in folder.glob(".coverage.*"))
    combine = ws.run(folder, ["-m", "coverage", "combine"])
    data_files.append(f"combine: rc {combine.returncode}")
    data_files += sorted(
        p.name for p in folder.glob(".coverage*") if p.name != ".coveragerc"
    )
    ws.run(folder, ["-m", "coverage", "json", "-q", "-o", "cov.json"])
    return runs, data_files, json.loads((folder / "cov.json").read_text())


_XDIST_LINE = re.compile(
    r"\b(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS) (\S+?\.py)::(\w+)::(\w+)"
)
_PYTEST_STATUS = {
    "PASSED": "ok",
    "FAILED": "failed",
    "ERROR": "failed",
    "SKIPPED": "skipped",
    "XFAIL": "expected failure",
    "XPASS": "unexpected success",
}
_UNITTEST_STATUS = {
    "ok": "ok",
    "FAIL": "failed",
    "ERROR": "failed",
    "skipped": "skipped",
    "expected failure": "expected failure",
    "unexpected success": "unexpected success",
}


_STATUS = (
    r"\.\.\. (ok|FAIL|ERROR|skipped '[^'\n]*'|expected failure|unexpected success)"
)
#: asyncio's debug-mode warning about a slow step, which its logger writes to
#: stderr, as unittest writes its -v lines: under load it lands between a
#: line's "... " and its status ("test_x (m.C.test_x) ... Executing <Task
#: pending name='Task-3' coro=<...> ...> took 0.125 seconds\nok")
_SLOW_STEP = re.compile(r"Executing <[^\n]*> took \d+\.\d+ seconds\n")


def verbose_tests(output: str) -> Counter[tuple[str, str, str, str]]:
    """(module, class, test, status) of each test a ``-v`` unittest run printed."""
    found: Counter[tuple[str, str, str, str]] = Counter()
    output = _SLOW_STEP.sub("", output)
    # unittest-parallel's workers write "... ok" and "\n" apart, so another
    # worker's line may follow "ok" directly: end each status line first
    output = re.sub(_STATUS, r"... \1\n", output)
    for line in re.finditer(
        # the description (see unittest_id), the docstring's first line if any,
        # then the status (what the tests print goes to stdout, never between)
        r"^(\w+ \([\w.]+\))(?:\n[^\n]*?)? " + _STATUS,
        output,
        re.MULTILINE,
    ):
        description, status = line.groups()
        where, _, method = unittest_id(description).rpartition(".")
        module, _, cls = where.rpartition(".")
        status = status.split(" '")[0]
        found[module.rpartition(".")[2], cls, method, _UNITTEST_STATUS[status]] += 1
    return found


def xdist_tests(output: str) -> Counter[tuple[str, str, str, str]]:
    """(module, class, test, status) of each test a ``pytest -n 2 -v`` run printed."""
    found: Counter[tuple[str, str, str, str]] = Counter()
    for status, path, cls, method in _XDIST_LINE.findall(output):
        module = Path(path).stem
        found[module, cls, method, _PYTEST_STATUS[status]] += 1
    return found


def _job_examples(ws: Workspace) -> tuple[Outcome, Outcome, Outcome]:
    env = {"TRACK_LOG": os.devnull}
    unittest_run = run(
        ["-m", "unittest", "discover", "-v", "-s", "examples", "-t", "examples"],
        ROOT,
        {**ws.env, **env},
    )
    xdist = run(
        [
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:hypothesispytest",
            "-v",
            "-n",
            "2",
            "examples/",
        ],
        ROOT,
        {**ws.env, **env},
    )
    parallel = run(
        [
            "-m",
            "unittest_parallel",
            "-v",
            "-j",
            "2",
            "--level",
            "class",
            "-s",
            "examples",
            "-t",
            "examples",
        ],
        ROOT,
        {**ws.env, **env},
    )
    return unittest_run, xdist, parallel


# --------------------------------------------------------------------------
# the tests


class TestRunners(unittest.TestCase):
    ws: Workspace
    pool: ThreadPoolExecutor
    jobs: dict[str, Future[Any]]

    @classmethod
    def setUpClass(cls) -> None:
        cls.ws = ws = Workspace()
        cls.pool = ThreadPoolExecutor(max_workers=3, thread_name_prefix="e2e")
        cls.addClassCleanup(cls.pool.shutdown, wait=True, cancel_futures=True)
        jobs: dict[str, Callable[[], Any]] = {
            # slowest first
            "xdist load": lambda: ws.runner(*_pytest("-n", "2", "--dist", "load")),
            "xdist loadscope": lambda: ws.runner(
                *_pytest("-n", "2", "--dist", "loadscope")
            ),
            "xdist loadfile": lambda: ws.runner(
                *_pytest("-n", "2", "--dist", "loadfile")
            ),
            "examples": lambda: _job_examples(ws),
            "pytest lf": lambda: _job_lf(ws),
            "pytest anyio": lambda: ws.runner(*_pytest("-p", "anyio")),
            "pytest no anyio": lambda: ws.runner(*_pytest("-p", "no:anyio")),
            "pytest asyncio strict": lambda: ws.runner(
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "-p",
                "no:hypothesispytest",
                "-p",
                "asyncio",
                "--asyncio-mode=strict",
                "-o",
                "asyncio_default_fixture_loop_scope=function",
            ),
            "pytest -k": lambda: ws.runner(
                *_pytest("-k", "asyncio and not FunctionScoped")
            ),
            "pytest -x": lambda: ws.runner(*_pytest("-x")),
            "parallel module": lambda: ws.runner(
                "-m",
                "unittest_parallel",
                "-j",
                "2",
                "--level",
                "module",
                "-s",
                ".",
                "-t",
                ".",
            ),
            "parallel class": lambda: ws.runner(
                "-m",
                "unittest_parallel",
                "-j",
                "2",
                "--level",
                "class",
                "-s",
                ".",
                "-t",
                ".",
            ),
            "parallel test": lambda: ws.runner(
                "-m",
                "unittest_parallel",
                "-j",
                "2",
                "--level",
                "test",
                "-s",
                ".",
                "-t",
                ".",
            ),
            "coverage": lambda: _job_coverage(ws),
            "coverage combined": lambda: _job_coverage_combined(ws),
            "unittest": lambda: ws.runner(
                "-m", "unittest", "discover", "-s", ".", "-t", "."
            ),
            "unittest -k": lambda: ws.runner("-m", "unittest", "-k", "trio"),
            "unittest -f": lambda: ws.runner("-m", "unittest", "-f"),
            "unittest -c": lambda: ws.runner("-m", "unittest", "-c"),
            "unittest -v": lambda: ws.runner("-m", "unittest", "-v"),
            "unittest -b": lambda: ws.runner("-m", "unittest", "-b"),
        }
        cls.jobs = {name: cls.pool.submit(job) for name, job in jobs.items()}

    def job(self, name: str) -> Any:
        return self.jobs[name].result(timeout=300)

    # -- shared checks -------------------------------------------------------

    def check_clean(self, output: str) -> None:
        for bad in BAD_OUTPUT:
            self.assertNotIn(bad, output, f"{bad!r} in the output:\n{output[-4000:]}")
        frame = PACKAGE_FRAME.search(output)
        self.assertIsNone(frame, f"a package frame is reported:\n{output[-4000:]}")

    def check_log(self, run: Run, *, session_may_stay_open: bool = False) -> None:
        """Every runner closed exactly once; hooks balanced; module runners closed
        before the next module starts (the pytest plugin's job under pytest)."""
        self.assertTrue(run.log, f"nothing logged: is the suite running?\n{run!r}")
        by_pid: dict[str, list[list[str]]] = {}
        for entry in run.log:
            by_pid.setdefault(entry[0], []).append(entry[1:])
        for pid, entries in by_pid.items():
            opened = {e[1]: e[3] for e in entries if e[0] == "open"}
            closes = Counter(e[1] for e in entries if e[0] == "close")
            for number, owner in opened.items():
                if session_may_stay_open and owner.startswith("session_runner"):
                    self.assertLessEqual(closes[number], 1, (owner, run))
                    continue
                self.assertEqual(closes[number], 1, f"{owner} closes in {pid}\n{run!r}")
            self.assertLessEqual(set(closes), set(opened))
            events = Counter(tuple(e) for e in entries if e[0] not in ("open", "close"))
            for (kind, *what), count in events.items():
                if kind.startswith("setUp"):
                    down = "tearDown" + kind[len("setUp") :]
                    self.assertEqual(
                        events[(down, *what)], count, (pid, kind, what, run)
                    )
                    resource = (
                        "exit",
                        ("module_" if kind == "setUpModule" else "") + what[0],
                    )
                    self.assertEqual(events[resource], count, (pid, resource, run))
            # module runners of test_mod end before anything of test_other starts
            position = {id(e): i for i, e in enumerate(entries)}
            for entry in entries:
                if entry[0] == "open" and entry[3].startswith(
                    "module_runner_of_test_mod"
                ):
                    close = [e for e in entries if e[:2] == ["close", entry[1]]]
                    later = [
                        e
                        for e in entries[position[id(entry)] :]
                        if e[0] == "open" and "test_other" in e[3]
                    ]
                    if close and later:
                        self.assertLess(
                            position[id(close[0])],
                            position[id(later[0])],
                            f"{entry[3]} still open when test_other started\n{run!r}",
                        )
                    elif later:
                        self.fail(f"{entry[3]} never closed\n{run!r}")

    def opened(self, run: Run) -> Counter[str]:
        """How many runners of each kind were opened (over all processes)."""
        kinds = Counter()
        for entry in run.log:
            if entry[1] == "open":
                match = re.match(
                    r"test|class_runner|module_runner|session_runner", entry[4]
                )
                kinds[match.group() if match else entry[4]] += 1
        return kinds

    def hooks(self, run: Run, kind: str) -> Counter[str]:
        return Counter(e[2] for e in run.log if e[1] == kind)

    def check_unittest(self, run: Run, expected: dict[str, int]) -> None:
        self.assertEqual(_unittest_counts(run.output), expected, run)
        self.assertEqual(run.returncode, 1, run)
        self.check_clean(run.output)
        self.check_log(run)

    def check_pytest(self, run: Run, expected: dict[str, int]) -> None:
        self.assertEqual(_pytest_counts(run.output), expected, run)
        self.assertEqual(run.returncode, 1, run)
        self.check_clean(run.output)
        self.check_log(run)

    # -- python -m unittest --------------------------------------------------

    def test_unittest_discover(self) -> None:
        run = self.job("unittest")
        self.check_unittest(run, UNITTEST_ALL)
        # one runner per backend and scope, and per test for "function"
        self.assertEqual(
            self.opened(run),
            {"test": 4, "class_runner": 2, "module_runner": 2, "session_runner": 2},
            run,
        )
        # once per backend on the module runner, once on the session runner
        self.assertEqual(self.hooks(run, "setUpModule"), {"asyncio": 2, "trio": 2})

    def test_unittest_k(self) -> None:
        run = self.job("unittest -k")
        self.check_unittest(run, UNITTEST_HALF)
        self.assertEqual(self.hooks(run, "setUpModule"), {"trio": 2})

    def test_unittest_failfast(self) -> None:
        # test_mod.ModuleScoped_asyncio runs first: one pass, then the failure
        run = self.job("unittest -f")
        self.check_unittest(run, _unittest_expected(2, failures=1))
        self.assertEqual(self.hooks(run, "tearDownModule"), {"asyncio": 1})

    def test_unittest_catch(self) -> None:
        self.check_unittest(self.job("unittest -c"), UNITTEST_ALL)

    def test_unittest_verbose(self) -> None:
        run = self.job("unittest -v")
        self.check_unittest(run, UNITTEST_ALL)
        tests = verbose_tests(run.output)
        self.assertEqual(sum(tests.values()), 18, run)
        self.assertEqual(
            Counter(status for *_, status in tests.elements()),
            {"ok": 12, "failed": 4, "skipped": 2},
        )
        classes = {cls for _, cls, _, _ in tests}
        self.assertEqual(
            classes,
            {
                f"{c}_{b}"
                for c in (
                    "ModuleScoped",
                    "SessionScoped",
                    "FunctionScoped",
                    "ClassScoped",
                )
                for b in ("asyncio", "trio")
            },
        )
        self.assertIn("NOISE-PASS", run.output)  # what -b must hide

    def test_unittest_buffer(self) -> None:
        run = self.job("unittest -b")
        self.check_unittest(run, UNITTEST_ALL)
        self.assertNotIn("NOISE-PASS", run.output)
        # shown with the failures' reports (asyncio and trio)
        self.assertIn("NOISE-FAIL", run.output)

    # -- pytest --------------------------------------------------------------

    def test_pytest_with_anyio_plugin(self) -> None:
        run = self.job("pytest anyio")
        self.check_pytest(run, PYTEST_ALL)
        self.assertEqual(
            self.opened(run),
            {"test": 4, "class_runner": 2, "module_runner": 2, "session_runner": 2},
            run,
        )

    def test_pytest_without_anyio_plugin(self) -> None:
        self.check_pytest(self.job("pytest no anyio"), PYTEST_ALL)

    def test_pytest_asyncio_strict(self) -> None:
        self.check_pytest(self.job("pytest asyncio strict"), PYTEST_ALL)

    def test_pytest_k(self) -> None:
        run = self.job("pytest -k")
        self.check_pytest(
            run, {"passed": 4, "failed": 2, "skipped": 1, "deselected": 11}
        )

    def test_pytest_exitfirst(self) -> None:
        run = self.job("pytest -x")
        self.check_pytest(run, {"passed": 1, "failed": 1})
        self.assertEqual(self.hooks(run, "tearDownModule"), {"asyncio": 1})

    def test_pytest_last_failed(self) -> None:
        first, again = self.job("pytest lf")
        self.check_pytest(first, PYTEST_ALL)
        self.check_pytest(again, {"failed": 4, "deselected": 14})
        self.assertIn("rerun previous 4 failures", again.output)
        # the module still set up (once per backend) for its failing tests only
        self.assertEqual(self.hooks(again, "setUpModule"), {"asyncio": 2, "trio": 2})

    # -- pytest-xdist --------------------------------------------------------

    def check_xdist(self, name: str) -> Run:
        run = self.job(name)
        self.check_pytest(run, PYTEST_ALL)
        pids = {e[0] for e in run.log}
        self.assertLessEqual(len(pids), 2, run)
        # each worker sets a module up at most once per runner: the module
        # runner and the session runner, of each backend
        for pid in pids:
            setups = Counter(e[2] for e in run.log if e[:2] == [pid, "setUpModule"])
            self.assertLessEqual(set(setups.values()), {1, 2}, run)
        return run

    def test_xdist_load(self) -> None:
        # may split a class or module over both workers: each sets it up itself
        self.check_xdist("xdist load")

    def test_xdist_loadscope(self) -> None:
        run = self.check_xdist("xdist loadscope")
        # a class is never split
        self.assertEqual(sum(self.hooks(run, "setUpClass").values()), 4, run)

    def test_xdist_loadfile(self) -> None:
        run = self.check_xdist("xdist loadfile")
        # a module is never split: set up once per runner in all
        self.assertEqual(self.hooks(run, "setUpModule"), {"asyncio": 2, "trio": 2})

    # -- unittest-parallel ---------------------------------------------------

    def check_parallel(self, name: str) -> Run:
        run = self.job(name)
        self.assertEqual(_unittest_counts(run.output), UNITTEST_ALL, run)
        self.assertEqual(run.returncode, 4, run)  # its exit status: failures + errors
        self.check_clean(run.output)
        # its workers are terminated (SIGTERM) at the end: atexit, which closes
        # the session runners, may not run
        self.check_log(run, session_may_stay_open=True)
        return run

    def test_unittest_parallel_module(self) -> None:
        run = self.check_parallel("parallel module")
        self.assertEqual(self.hooks(run, "setUpModule"), {"asyncio": 2, "trio": 2})

    def test_unittest_parallel_class(self) -> None:
        run = self.check_parallel("parallel class")
        self.assertEqual(self.hooks(run, "setUpModule"), {"asyncio": 2, "trio": 2})
        self.assertEqual(sum(self.hooks(run, "setUpClass").values()), 4, run)

    def test_unittest_parallel_test(self) -> None:
        # each test alone, without class setup: the library sets the class and
        # module scopes up around it ("a class of one"), skipped tests included
        run = self.check_parallel("parallel test")
        self.assertEqual(self.hooks(run, "setUpModule"), {"asyncio": 5, "trio": 5})
        self.assertEqual(sum(self.hooks(run, "setUpClass").values()), 10, run)

    # -- coverage ------------------------------------------------------------

    def check_measured(self, data: dict[str, Any], drivers: tuple[str, ...]) -> None:
        files = {
            Path(name).name: info
            for name, info in data["files"].items()
            if "anyio_unittest" in Path(name).parts
        }
        for module in ("_case.py", "_scopes.py", *drivers):
            self.assertIn(module, files, sorted(files))
            self.assertTrue(files[module]["executed_lines"], module)
        for driver in drivers:
            # lines that only run inside the event loop / the trio guest run
            executed = set(files[driver]["executed_lines"])
            tree = ast.parse((ROOT / "anyio_unittest" / driver).read_text())
            async_lines = {
                node.lineno
                for fn in ast.walk(tree)
                if isinstance(fn, ast.AsyncFunctionDef)
                for stmt in fn.body
                for node in ast.walk(stmt)
                if isinstance(node, ast.stmt)
            }
            self.assertTrue(async_lines & executed, f"{driver}: no async line measured")

    def test_coverage_run_unittest(self) -> None:
        run, data = self.job("coverage")
        self.check_unittest(run, UNITTEST_ALL)
        self.check_measured(data, ("_asyncio_driver.py", "_trio_driver.py"))

    def test_coverage_combined_across_processes(self) -> None:
        runs, data_files, data = self.job("coverage combined")
        for each in runs:
            self.check_unittest(each, UNITTEST_HALF)
        # two data files, combined into one
        self.assertEqual(len(data_files), 4, data_files)
        self.assertEqual(data_files[2:], ["combine: rc 0", ".coverage"], data_files)
        # the asyncio lines come from one process, the trio lines from the other
        self.check_measured(data, ("_asyncio_driver.py", "_trio_driver.py"))

    # -- examples/ -----------------------------------------------------------

    def test_examples_same_tests_everywhere(self) -> None:
        unittest_run, xdist, parallel = self.job("examples")
        expected = verbose_tests(unittest_run.output)
        self.assertTrue(
            expected, f"no tests found in examples/:\n{unittest_run.output}"
        )
        self.assertEqual(
            sum(expected.values()), _unittest_counts(unittest_run.output)["ran"]
        )
        self.assertEqual(xdist_tests(xdist.output), expected, xdist.output[-4000:])
        self.assertEqual(
            verbose_tests(parallel.output), expected, parallel.output[-4000:]
        )
        for outcome in (unittest_run, xdist, parallel):
            self.check_clean(outcome.output)
