"""Helpers for the project's tests: run a written suite under a real runner."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import textwrap
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
    folder: Path, *args: str, env: dict[str, str] | None = None
) -> Outcome:
    """``python -m unittest`` in *folder*; counts: ran, failures, errors, skipped,
    expected failures, unexpected successes."""
    outcome = run(["-m", "unittest", *args], folder, env)
    ran = re.search(r"^Ran (\d+) tests?", outcome.output, re.MULTILINE)
    outcome.counts["ran"] = int(ran.group(1)) if ran else 0
    summary = _UNITTEST_SUMMARY.search(outcome.output)
    if summary and summary.group(2):
        for part in summary.group(2).split(", "):
            key, _, value = part.partition("=")
            outcome.counts[key.replace(" ", "_")] = int(value)
    return outcome


_PYTEST_COUNT = re.compile(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed)")


def run_pytest(folder: Path, *args: str, env: dict[str, str] | None = None) -> Outcome:
    """pytest in *folder*; counts from its last line: passed, failed, error, ..."""
    outcome = run(
        ["-m", "pytest", "-p", "no:cacheprovider", "-q", *args], folder, env
    )
    lines = [line for line in outcome.output.splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    for number, kind in _PYTEST_COUNT.findall(last):
        outcome.counts["error" if kind.startswith("error") else kind] = int(number)
    return outcome
