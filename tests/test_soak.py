"""Soak: many tests on one module runner, nothing piling up.

The normal test command runs a smaller soak: 2,000 tests in 20 classes with
``loop_scope = "module"`` on each backend, under ``python -m unittest``. The full
size (20,000 tests in 100 classes per backend) is::

    python benchmarks/soak.py

which prints the numbers and exits with 1 if a check fails. The suite and the
checks are in ``benchmarks/soak.py``: every test passes; the resident set size
does not grow after the warm-up (measured: not a page in 2,000 tests, so the
bound here is 1 MiB, which a leak of ~600 bytes a test would cross); the count of
file descriptors is the same at every class's end; one runner, the module's, is
opened and closed once when the module ends.
"""

from __future__ import annotations

import unittest

from benchmarks.soak import BACKENDS, MIB, Soak, run_soak

TESTS, CLASSES = 2_000, 20
BOUND = 1 * MIB


class SoakTests(unittest.TestCase):
    def test_each_backend(self) -> None:
        for backend in BACKENDS:
            with self.subTest(backend=backend):
                result = run_soak(backend, TESTS, CLASSES)
                self.assertEqual(result.problems(BOUND), [], result.line())
                self.assertEqual(result.passed, TESTS)
                self.assertEqual(len(result.samples), CLASSES)

    def test_under_pytest(self) -> None:
        # the module runner ends through the pytest plugin there; pytest keeps a
        # report of each test (~2.4 KiB): only growth beyond the baseline's counts
        baseline = run_soak("sync", 400, 4, runner="pytest")
        self.assertEqual(baseline.problems(BOUND), [], baseline.line())
        result = run_soak("trio", 400, 4, runner="pytest")
        result.baseline = baseline
        self.assertEqual(result.problems(BOUND), [], result.line())

    def test_a_planted_leak_is_found(self) -> None:
        result = run_soak("asyncio", TESTS, CLASSES, leak=2048)
        self.assertEqual(result.passed, TESTS)
        problems = result.problems(BOUND)
        self.assertEqual(len(problems), 1, problems)
        self.assertRegex(problems[0], r"^the resident set grew by 3\.\d MiB")

    def test_the_other_checks_can_fail(self) -> None:
        good = [[100 * MIB, 7]] * 10
        module = {"owner": "module runner of test_soak_suite (trio)", "closes": 1}

        def soak(samples: list[list[int]], runners: list[dict[str, object]]) -> Soak:
            result = Soak("trio", 100, 10, "unittest", 1.0, 0, "", samples, runners)
            result.passed = 100
            return result

        self.assertEqual(soak(good, [module]).problems(BOUND), [])
        self.assertEqual(
            soak([*good[:9], [100 * MIB, 8]], [module]).problems(BOUND),
            ["the count of file descriptors changed: [7, 8]"],
        )
        class_runner = {"owner": "class runner of test_soak_suite.Soak001", "closes": 1}
        self.assertTrue(soak(good, [module, class_runner]).problems(BOUND))
        self.assertTrue(soak(good, [{**module, "closes": 0}]).problems(BOUND))
        self.assertTrue(soak(good[:9], [module]).problems(BOUND))
        failed = soak(good, [module])
        failed.passed = 99
        self.assertTrue(failed.problems(BOUND))
