"""Helpers for the project's tests: run a written suite under a real runner."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import textwrap
import unittest
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Outcome:
    """What a runner printed, and the counts read from its summary."""

    returncode: int
    output: str
    counts: dict[str, int] = field(default_factory=dict)

    def count(self, kind: str) -> int:
        return self.counts.get(kind, 0)


def write_suite(files: dict[str, str]) -> Path:
    """Write *files* (name -> source, dedented) into a new temporary folder."""
    folder = Path(tempfile.mkdtemp(prefix="anyio_unittest_"))
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
