"""Drop-in parity on a real suite: aiosqlite's own ``IsolatedAsyncioTestCase``
tests, run unchanged and with the base class swapped for ``AnyIOTestCase``.

aiosqlite's wheel ships its tests (``aiosqlite.tests``: ``SmokeTest``, about 30
tests of a file database through a worker thread, offline, about a second);
the ``test`` extra installs it. A runner script, written below, runs them in a
subprocess: once as they are, once after ``unittest.IsolatedAsyncioTestCase =
AnyIOTestCase`` (before aiosqlite's test modules are imported, so their ``from
unittest import IsolatedAsyncioTestCase`` picks up the swap), as a user
migrating a suite would change the base and nothing else. It writes each test's
outcome (ok, fail, error, skip, ...) and the base its class got to a JSON file,
since aiosqlite's tests print to stdout. The outcomes must be the same test by
test, on the defaults: ``loop_scope = "function"``, ``loop_errors`` and
``leaked_tasks`` failing the test; and with the loop shared by the class.
"""

from __future__ import annotations

import importlib.util
import json
import unittest
from pathlib import Path
from typing import Any, ClassVar

from tests._support import run, write_suite

HAVE_AIOSQLITE = importlib.util.find_spec("aiosqlite") is not None

SUITE = "aiosqlite.tests"

RUNNER = '''
"""runner.py BASE OUT: run aiosqlite's tests on BASE ("stdlib", or "function"
or "class": AnyIOTestCase with that loop_scope), each test's outcome to OUT."""
import json
import sys
import unittest

base, out = sys.argv[1:]
if base != "stdlib":
    from anyio_unittest import AnyIOTestCase

    if base == "function":
        # the swap, and nothing else
        unittest.IsolatedAsyncioTestCase = AnyIOTestCase
    else:

        class Shared(AnyIOTestCase):
            loop_scope = base

        unittest.IsolatedAsyncioTestCase = Shared


class Result(unittest.TestResult):
    """Test id -> [outcome, what was reported (a traceback, a skip reason)]."""

    def __init__(self):
        super().__init__()
        self.outcomes = {}

    def _record(self, test, outcome, text=""):
        self.outcomes[test.id()] = [outcome, text]

    def addSuccess(self, test):
        super().addSuccess(test)
        self._record(test, "ok")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._record(test, "fail", self.failures[-1][1])

    def addError(self, test, err):
        super().addError(test, err)
        self._record(test, "error", self.errors[-1][1])

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._record(test, "skip", reason)

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self._record(test, "expected failure")

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._record(test, "unexpected success")


def tests(suite):
    for test in suite:
        if isinstance(test, unittest.TestSuite):
            yield from tests(test)
        else:
            yield test


def base_of(test):
    """Which base class the test's class ended up with."""
    modules = {cls.__module__ for cls in type(test).__mro__}
    if any(m.split(".")[0] == "anyio_unittest" for m in modules):
        return "anyio_unittest"
    return "unittest" if "unittest.async_case" in modules else "other"


suite = unittest.defaultTestLoader.loadTestsFromName("SUITE")
bases = {test.id(): base_of(test) for test in tests(suite)}
result = Result()
suite.run(result)
with open(out, "w") as f:
    json.dump({"outcomes": result.outcomes, "bases": bases}, f, indent=1)
'''.replace("SUITE", SUITE)


@unittest.skipUnless(HAVE_AIOSQLITE, "aiosqlite (in the test extra) is not installed")
class AiosqliteParityTests(unittest.TestCase):
    folder: ClassVar[Path]
    stdlib: ClassVar[dict[str, Any]]

    @classmethod
    def setUpClass(cls) -> None:
        cls.folder = write_suite({"runner.py": RUNNER})
        cls.stdlib = cls.run_suite("stdlib")

    @classmethod
    def run_suite(cls, base: str) -> dict[str, Any]:
        out = cls.folder / f"{base}.json"
        outcome = run(["runner.py", base, str(out)], cls.folder)
        if outcome.returncode != 0 or not out.exists():
            raise AssertionError(
                f"the runner ({base}) exited with {outcome.returncode}:\n"
                f"{outcome.output}"
            )
        data: dict[str, Any] = json.loads(out.read_text())
        return data

    def test_stdlib_run_is_a_real_run(self) -> None:
        """The reference ran aiosqlite's tests on the stdlib class, and they
        mostly pass: an import error or a broken install, the same on both
        sides, would make any comparison pass."""
        outcomes = self.stdlib["outcomes"]
        self.assertEqual(set(self.stdlib["bases"].values()), {"unittest"})
        self.assertEqual(set(outcomes), set(self.stdlib["bases"]))
        self.assertTrue(all(i.startswith(SUITE + ".") for i in outcomes), outcomes)
        passed = [i for i, (kind, _) in outcomes.items() if kind == "ok"]
        self.assertGreaterEqual(len(passed), 20, outcomes)

    def assert_same_outcomes(self, base: str) -> None:
        swapped = self.run_suite(base)
        # the swap took: every test ran on AnyIOTestCase
        self.assertEqual(set(swapped["bases"].values()), {"anyio_unittest"})
        expected = {i: kind for i, (kind, _) in self.stdlib["outcomes"].items()}
        got = {i: kind for i, (kind, _) in swapped["outcomes"].items()}
        differences = {
            test_id: f"{got.get(test_id)} (stdlib: {expected.get(test_id)})"
            for test_id in sorted(set(expected) | set(got))
            if expected.get(test_id) != got.get(test_id)
        }
        reports = "\n\n".join(
            f"{test_id}: {difference}\n{swapped['outcomes'].get(test_id, ['', ''])[1]}"
            for test_id, difference in differences.items()
        )
        self.assertEqual(differences, {}, reports)

    def test_same_outcomes_with_the_base_swapped(self) -> None:
        """Function scope and the guard rails' defaults: what a user who only
        changes the base class gets."""
        self.assert_same_outcomes("function")

    def test_same_outcomes_with_a_loop_per_class(self) -> None:
        """The suite's tests also share one loop without noticing: each closes
        what it opens."""
        self.assert_same_outcomes("class")


if __name__ == "__main__":
    unittest.main()
