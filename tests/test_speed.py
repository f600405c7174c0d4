"""A speed regression check: shared runners must stay far cheaper than a loop per test.

The benchmark (``benchmarks/bench.py``) holds the precise figures and the
targets; this only catches a change that makes shared scopes cost what a loop
per test costs. It runs the benchmark's own suites, on a small N, in a fresh
interpreter (so neither ``-X dev``, which turns asyncio's debug mode on, nor a
coverage tracer, nor this process's open runners skew it), and compares the
best of three interleaved repetitions, with margins wide enough for a loaded
2-core machine. A regression of the package's code shows on any Python, so tox
runs it (about 20 s) on one only: ``TEST_SPEED_GUARD=off`` skips it.
"""

from __future__ import annotations

import json
import os
import unittest

from benchmarks import bench

from ._support import ROOT, run

TESTS = 300
REPEAT = 3

#: (row, compared with, at most this ratio). What this guards above all: a
#: shared runner must stay far cheaper than a runner per test (measured: about
#: 0.3x on asyncio, 0.13x on trio), and function scope far cheaper than
#: IsolatedAsyncioTestCase (about 0.25x; its target is 0.25x). Our own cost is
#: guarded against the benchmark's reference rows, the bare mechanism with no
#: library code, which moves with the machine as we do (measured with 1,000
#: tests: about 3.3x on asyncio, 1.7x on trio; best of 3 with 300 tests on a
#: loaded machine, up to 4.1x). The sync floor (about 5.5x on asyncio, 7.3x on
#: trio) only catches a gross regression. The async hooks run in one entry into
#: the loop (checked by test_lifecycle's
#: test_the_async_phases_run_in_one_entry_into_the_loop); their cost here
#: (measured 1.1x-1.3x on asyncio, 0.9x-1.35x on trio) is guarded loosely. The
#: benchmark's own targets, against the peers (anyio's test runner,
#: run_until_complete), are its business, not this test's.
LIMITS = [
    ("anyio-asyncio-class", "anyio-asyncio-function", 0.5),
    ("anyio-trio-class", "anyio-trio-function", 0.5),
    ("anyio-asyncio-function", "isolated", 0.5),
    ("anyio-asyncio-class", "ref-asyncio-task-per-test", 6.0),
    ("anyio-trio-class", "ref-trio-task-per-test", 3.5),
    ("anyio-asyncio-class-hooks", "anyio-asyncio-class", 1.75),
    ("anyio-trio-class-hooks", "anyio-trio-class", 1.75),
    ("anyio-asyncio-class", bench.FLOOR, 15.0),
    ("anyio-trio-class", bench.FLOOR, 20.0),
]


def best_of(rows: list[str]) -> dict[str, float]:
    """The fastest repetition of each row, in µs per test."""
    args = ["--tests", str(TESTS), "--repeat", str(REPEAT), "--json", "--no-write"]
    for row in rows:
        args += ["--rows", row]
    outcome = run(["-m", "benchmarks.bench", *args], ROOT)
    if outcome.returncode != 0:
        raise AssertionError(f"the benchmark failed:\n{outcome.output}")
    text = outcome.output
    payload, _ = json.JSONDecoder().raw_decode(text[text.index("{") :])
    return {row["key"]: row["min_us"] for row in payload["rows"]}


@unittest.skipIf(
    os.environ.get("TEST_SPEED_GUARD") == "off",
    "TEST_SPEED_GUARD=off (tox runs this guard on Python 3.13 only)",
)
class SpeedTest(unittest.TestCase):
    def test_shared_runners_stay_far_cheaper_than_a_runner_per_test(self) -> None:
        needed = sorted({key for key, _, _ in LIMITS} | {o for _, o, _ in LIMITS})
        best = best_of(needed)
        self.assertEqual(set(needed) - set(best), set(), "rows missing")
        report = "\n".join(f"  {key}: {us:.1f} µs/test" for key, us in best.items())
        for key, other, limit in LIMITS:
            with self.subTest(row=key, against=other):
                ratio = best[key] / best[other]
                self.assertLess(
                    ratio,
                    limit,
                    f"{key} costs {ratio:.2f}x {other} (limit {limit:g}x); "
                    f"best of {REPEAT}, {TESTS} tests:\n{report}\n"
                    f"see python benchmarks/bench.py --profile {key}",
                )


if __name__ == "__main__":
    unittest.main()
