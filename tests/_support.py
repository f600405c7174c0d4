"""Helpers for the project's tests.

A written suite run under a real runner, in a subprocess: :func:`write_suite`,
:func:`run`, :func:`run_unittest`, :func:`run_pytest`, and what their output
says. Suites run in this process: :func:`run_cases` and :func:`run_classes`;
what a result holds, as :class:`Problem` records (:func:`problems`) or in the
shape a test compares (:func:`reported_texts`, :func:`last_lines`,
:func:`texts_by_test`, :func:`outcomes_by_test`); and :class:`BackendTests`, the
mixin of sync tests that build ``AnyIOTestCase`` classes on one backend.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import unittest
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, overload

import sniffio
import trio

import anyio_unittest
from anyio_unittest import AnyIOTestCase

ROOT = Path(__file__).resolve().parent.parent


# -- suites run by a real runner, in a subprocess ----------------------------------


@dataclass
class Outcome:
    """What a runner printed, and the counts read from its summary."""

    returncode: int
    output: str
    counts: dict[str, int] = field(default_factory=dict)

    def count(self, kind: str) -> int:
        return self.counts.get(kind, 0)


_scratch_root: Path | None = None


def _remove_scratch(root: Path, owner: int) -> None:
    if os.getpid() == owner:  # not in a forked child that runs atexit handlers
        shutil.rmtree(root, ignore_errors=True)


def scratch_folder(prefix: str = "suite_") -> Path:
    """A new folder under this process's scratch folder, which is removed when
    the process exits (so that no test has to remember to; the folders pile up
    until then). A worker of a multiprocessing pool (unittest-parallel) ends
    without running atexit handlers, and leaves its scratch folder behind."""
    global _scratch_root
    if _scratch_root is None:
        _scratch_root = Path(tempfile.mkdtemp(prefix="anyio_unittest_"))
        atexit.register(_remove_scratch, _scratch_root, os.getpid())
    return Path(tempfile.mkdtemp(prefix=prefix, dir=_scratch_root))


def entry_point_folder() -> Path:
    """A dist-info exposing the package's pytest11 entry point, as installing it
    would (the checkout is only on PYTHONPATH in these runs)."""
    text = (ROOT / "pyproject.toml").read_text()
    section = re.search(
        r"^\[project\.entry-points\.pytest11\]\n(.*?)(?:^\[|\Z)",
        text,
        re.MULTILINE | re.DOTALL,
    )
    assert section, "pyproject.toml declares no pytest11 entry point"
    folder = scratch_folder("entry_point_")
    info = folder / "anyio_unittest_e2e-0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: anyio-unittest-e2e\nVersion: 0\n"
    )
    entries = [
        line.replace('"', "") for line in section.group(1).splitlines() if "=" in line
    ]
    (info / "entry_points.txt").write_text("[pytest11]\n" + "\n".join(entries) + "\n")
    return folder


def write_suite(files: dict[str, str]) -> Path:
    """Write *files* (name -> source, dedented) into a new scratch folder."""
    folder = scratch_folder()
    for name, source in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    return folder


def _env(extra: dict[str, str] | None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("ANYIO_UNITTEST_") and k != "PYTEST_ADDOPTS"
    }
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    env.pop("PYTHONDEVMODE", None)
    if extra:
        env.update(extra)
    return env


def run(
    args: list[str],
    cwd: Path,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> Outcome:
    proc = subprocess.run(
        [sys.executable, "-W", "error", *args],
        cwd=cwd,
        env=_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Outcome(proc.returncode, proc.stdout + proc.stderr)


_UNITTEST_SUMMARY = re.compile(r"^(OK|FAILED)(?: \((.*)\))?$", re.MULTILINE)


def run_unittest(
    folder: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> Outcome:
    """``python -m unittest`` in *folder*; counts: ran, failures, errors, skipped,
    expected failures, unexpected successes."""
    outcome = run(["-m", "unittest", *args], folder, env, timeout)
    ran = re.search(r"^Ran (\d+) tests?", outcome.output, re.MULTILINE)
    outcome.counts["ran"] = int(ran.group(1)) if ran else 0
    summary = _UNITTEST_SUMMARY.search(outcome.output)
    if summary and summary.group(2):
        for part in summary.group(2).split(", "):
            key, _, value = part.partition("=")
            outcome.counts[key.replace(" ", "_")] = int(value)
    return outcome


# How unittest describes a test (``str(test)``: its -v lines, its "FAIL: " and
# "ERROR: " headers): "test_x (module.Class.test_x)" from Python 3.11,
# "test_x (module.Class)" before. Each Python's format is matched strictly, so a
# description in the other format is not read as a test of this run.
if sys.version_info >= (3, 11):
    _DESCRIPTION = r"(\w+) \(([\w.]+)\.\1\)"
else:
    _DESCRIPTION = r"(\w+) \(([\w.]+)\)"
_DESCRIPTION_LINE = re.compile("^" + _DESCRIPTION, re.MULTILINE)
# "... " and the status that ends a -v line; unittest-parallel's workers write
# them and the "\n" apart, so another worker's description may follow either
# on the same line ("One round trip. ...test_b (...)", "... oktest_b (...)")
_STATUS_END = re.compile(
    r"\.\.\. ?(?:ok|FAIL|ERROR|skipped (?:'[^'\n]*'|\"[^\"\n]*\")"
    r"|expected failure|unexpected success)?"
)


def unittest_description(test_id: str) -> str:
    """What unittest prints for the test *test_id* ("module.Class.test_x") on
    this Python: "test_x (module.Class.test_x)", or "test_x (module.Class)"
    before 3.11."""
    where, _, method = test_id.rpartition(".")
    return f"{method} ({test_id if sys.version_info >= (3, 11) else where})"


def unittest_id(description: str) -> str:
    """The "module.Class.test_x" id from unittest's description of one test
    (see :func:`unittest_description`); ValueError if it is not one."""
    match = re.fullmatch(_DESCRIPTION, description)
    if match is None:
        raise ValueError(f"not a unittest test description: {description!r}")
    method, where = match.groups()
    return f"{where}.{method}"


def unittest_ids(output: str) -> list[str]:
    """The "module.Class.test_x" id of each test description that starts a line
    of ``python -m unittest -v`` (or unittest-parallel -v) *output*, in order."""
    output = _STATUS_END.sub(lambda status: status.group() + "\n", output)
    return [f"{where}.{method}" for method, where in _DESCRIPTION_LINE.findall(output)]


def _skipped_tests_count_as_run() -> bool:
    @unittest.skip("probe")
    class Probe(unittest.TestCase):
        def test(self) -> None:
            pass

    result = unittest.TestResult()
    Probe("test").run(result)
    return result.testsRun == 1


# Whether a test skipped by a skip decorator (a class's or method's
# __unittest_skip__) counts in testsRun and in "Ran N tests". It does on
# 3.10.13, 3.11.7 and 3.13.0 here; 3.12.1 leaves it out (the backport of
# gh-106584, changed again after gh-113267). Probed rather than read from the
# version, since which patch releases do it is not ours to track.
SKIPPED_TESTS_COUNT_AS_RUN = _skipped_tests_count_as_run()


_PYTEST_COUNT = re.compile(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed)")


def run_pytest(
    folder: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> Outcome:
    """pytest in *folder*; counts from its last line: passed, failed, error, ..."""
    outcome = run(
        ["-m", "pytest", "-p", "no:cacheprovider", "-q", *args], folder, env, timeout
    )
    lines = [line for line in outcome.output.splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    for number, kind in _PYTEST_COUNT.findall(last):
        outcome.counts["error" if kind.startswith("error") else kind] = int(number)
    return outcome


# -- suites run in this process ----------------------------------------------------

#: the folder of the package under test, as it appears in a traceback
PACKAGE_DIR = os.path.dirname(os.path.abspath(anyio_unittest.__file__)) + os.sep

ResultT = TypeVar("ResultT", bound=unittest.TestResult)


@overload
def run_cases(
    *tests: unittest.TestCase | unittest.TestSuite,
) -> unittest.TestResult: ...


@overload
def run_cases(
    *tests: unittest.TestCase | unittest.TestSuite, result: ResultT
) -> ResultT: ...


def run_cases(
    *tests: unittest.TestCase | unittest.TestSuite,
    result: unittest.TestResult | None = None,
) -> unittest.TestResult:
    """Run *tests* as one suite, as a runner would (class and module fixtures
    included), into *result* (a new TestResult by default), and return it."""
    if result is None:
        result = unittest.TestResult()
    unittest.TestSuite(tests).run(result)
    return result


def run_classes(*classes: type[unittest.TestCase]) -> unittest.TestResult:
    """Run every test of *classes* as one suite (see :func:`run_cases`)."""
    loader = unittest.TestLoader()
    return run_cases(*(loader.loadTestsFromTestCase(cls) for cls in classes))


def name_of(test: object) -> str:
    """The name of the test method *test* (a subtest: that of its test), or
    unittest's description of a class or module fixture ("setUpClass
    (module.Class)") that a result holds an error against."""
    test = getattr(test, "test_case", test)
    return getattr(test, "_testMethodName", None) or str(test)


@dataclass(frozen=True)
class Problem:
    """One error or failure a TestResult holds."""

    kind: str  # "error" or "failure"
    name: str  # see name_of()
    text: str  # the traceback, as reported

    @property
    def last_line(self) -> str:
        """The last line of the traceback: the exception and its message."""
        return self.text.strip().splitlines()[-1]


def problems(result: unittest.TestResult) -> list[Problem]:
    """The errors, then the failures, of *result*, in the order reported."""
    return [
        Problem(kind, name_of(test), text)
        for kind, entries in (("error", result.errors), ("failure", result.failures))
        for test, text in entries
    ]


def reported_texts(result: unittest.TestResult) -> list[str]:
    """The text of each error, then of each failure."""
    return [problem.text for problem in problems(result)]


def last_lines(result: unittest.TestResult) -> list[tuple[str, str, str]]:
    """(kind, test name, last line of the traceback) of each error, then of
    each failure."""
    return [(p.kind, p.name, p.last_line) for p in problems(result)]


def texts_by_test(result: unittest.TestResult) -> dict[str, str]:
    """Test name -> the text reported against it."""
    return {p.name: p.text for p in problems(result)}


def outcomes_by_test(result: unittest.TestResult) -> dict[str, str]:
    """Test name -> "error: <text>" or "failure: <text>"."""
    return {p.name: f"{p.kind}: {p.text}" for p in problems(result)}


def current_loop() -> object:
    """The asyncio loop, or the trio run's root task, the calling code runs on."""
    if sniffio.current_async_library() == "asyncio":
        return asyncio.get_running_loop()
    return trio.lowlevel.current_root_task()


def assert_closed(test: unittest.TestCase, loop: object) -> None:
    """*loop* (from current_loop()) is closed, or its trio run has ended."""
    if isinstance(loop, asyncio.AbstractEventLoop):
        test.assertTrue(loop.is_closed())
    else:
        # trio allows one run per thread: a new one starts only if it has ended
        test.assertIsNone(trio.run(trio.sleep, 0))


if TYPE_CHECKING:
    _TestCase = unittest.TestCase
else:
    _TestCase = object


class BackendTests(_TestCase):
    """A mixin for sync tests that build ``AnyIOTestCase`` classes on one
    backend and run them in this process: each concrete class is
    ``(SomeTests, unittest.TestCase)`` with ``backend`` set."""

    backend: ClassVar[str]

    def make(self, body: type, **attrs: Any) -> type[AnyIOTestCase]:
        """An AnyIOTestCase on this backend with the methods of *body* and the
        class attributes *attrs*, in the module of the concrete test class."""
        namespace = {
            "anyio_backend": self.backend,
            "__module__": type(self).__module__,
            **attrs,
        }
        return type(body.__name__, (body, AnyIOTestCase), namespace)

    def stdlib(
        self, body: type, **attrs: Any
    ) -> type[unittest.IsolatedAsyncioTestCase]:
        """The same with ``IsolatedAsyncioTestCase``, the reference."""
        namespace = {"__module__": type(self).__module__, **attrs}
        return type(body.__name__, (body, unittest.IsolatedAsyncioTestCase), namespace)
