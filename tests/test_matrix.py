"""Fault-injection matrix: a fault in every hook, scope and backend.

Every *cell* is one fault (``self.fail``, ``ValueError``, an exception group
from a task group, the backend's cancellation exception, ``SystemExit``,
``KeyboardInterrupt``) raised in one hook (``asyncSetUpModule`` ... an async
module cleanup) of a suite with one ``loop_scope`` on one backend. Hooks that
do not exist for a scope (``asyncSetUpClass`` with ``"function"``, module hooks
with ``"class"``) are configuration errors, tested in ``test_config``.

Each cell is generated twice: as ``AnyIOTestCase`` code, and as its *sync twin*,
a plain ``unittest.TestCase`` that does the same with the sync analogue of each
async hook (``asyncSetUp`` is the second half of ``setUp``, ``asyncTearDown``
the first half of ``tearDown``, ``asyncSetUpClass`` the second half of
``setUpClass``, ``asyncTearDownClass`` the first half of ``tearDownClass``, an
async (class, module) cleanup a sync one, ``asyncSetUpModule`` and
``asyncTearDownModule`` are ``setUpModule`` and ``tearDownModule``). Every hook
records a marker before it may raise. Both run under the same real runner, and
for each cell we check:

* what is reported (failure or error, the exception type, against which test,
  class or module, at which pytest phase) equals what is reported for the twin;
* the fault is reported as often as the twin's (once under unittest);
* the markers (which hooks, teardowns and cleanups ran, in which order) equal
  the twin's, so every teardown and cleanup unittest promises still runs;
* the tests and classes after it run and pass (each cell class has a second
  test, each module a clean last class, each run a clean last module);
* no reported traceback shows the package's frames;

and for each process: every runner opened (``Backend.open_runner`` is wrapped
by a ``sitecustomize`` written beside the suite) is closed, as its scope says:
module and class runners before the interpreter exits, session runners by the
end of the session; no file descriptor is left open (``/proc/self/fd`` is
counted at start-up and after the last ``atexit`` handler); nothing in the
output says "ResourceWarning", "Task was destroyed but it is pending", "Event
loop is closed" or "Exception ignored".

Cells that stop the run (``KeyboardInterrupt``; under unittest also
``SystemExit`` out of class and module fixtures, which unittest lets through,
and the cancellation out of the sync ``setUpClass``) each need a process of
their own. They are run by a *fork server*, which runs each in a forked child
as ``python -m unittest`` or pytest would; a few of them are also run as real
``python -m`` processes, to check that the fork server gives the same outcome.
For those cells we check that the async cell and its twin stop the same way
(exit code, final exception, pytest's "KeyboardInterrupt" banner), that the
markers equal the twin's (the library may run a module's async teardown on the
way out, which unittest does not: it is allowed after the twin's markers), and
that every runner is closed and every descriptor released by the end.

Where the package differs from unittest by design (``asyncSetUpModule`` runs
lazily, after the first class's ``setUpClass``; a cancellation out of an async
class- or module-level step is the error ``ScopeCancelled``, not the end of the
run; see "where the package differs" in ``_matrix``), the expectation built
from the twin is changed by exactly that much.

The generator, the probe, the fork server, the report parsers and the checks of
one cell are in ``tests/_matrix.py``, with what a run costs.

Found with it (fixed in the package): under pytest, a ``KeyboardInterrupt`` in a
test of a class, module or session scope closed every runner at once, so that
pytest's own teardown of the stopped run (``tearDownClass``, class cleanups)
failed with a ``RuntimeError`` from the library and the async class teardown
never ran; the pytest plugin also closed the runners at the session's end
*before* pytest tore down what the stopped run had left set up.
"""

from __future__ import annotations

import json
import os
import unittest
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import Any

from tests._matrix import (
    BACKENDS,
    RUNNERS,
    SCOPES,
    BackendMatrix,
    Cell,
    ProcessResult,
    Report,
    cell_class,
    cell_key,
    check_shared_cell,
    check_stop_cell,
    diff,
    expected_owners,
    own_twin,
    owned_markers,
    owner_kind,
    process_problems,
    reports_of,
    run_real,
    stop_line,
    stops,
    twin_holder,
)
from tests._support import scratch_folder

#: cells that stop the run, also run as real ``python -m`` processes
REAL_SAMPLES = [
    ("unittest", Cell("asyncio", "module", "test", "interrupt")),
    ("unittest", Cell("trio", "class", "asyncSetUpClass", "exit")),
    ("pytest", Cell("trio", "module", "asyncTearDown", "interrupt")),
    ("pytest", Cell("asyncio", "session", "asyncSetUpModule", "interrupt")),
]

#: the runners whose cells run here: all, or those TEST_MATRIX_RUNNERS lists
#: (comma-separated). tox runs the pytest half (85 % of the matrix's time) on
#: one Python only, to keep CI short; see tox.ini.
SELECTED = os.environ.get("TEST_MATRIX_RUNNERS", ",".join(RUNNERS)).split(",")
if not set(SELECTED) <= set(RUNNERS):
    raise ValueError(f"TEST_MATRIX_RUNNERS={SELECTED}: runners are {RUNNERS}")


class FaultMatrix(unittest.TestCase):
    """Every cell of every backend, under unittest and pytest."""

    matrices: dict[str, BackendMatrix]
    #: (runner, cid, twin, backend) -> a real python -m run of that stop cell
    real: dict[tuple[str, str, bool, str], ProcessResult]

    @classmethod
    def setUpClass(cls) -> None:
        root = scratch_folder("matrix_")
        cls.matrices = {b: BackendMatrix(b, root, "asyncio") for b in BACKENDS}
        everything = [c for m in cls.matrices.values() for c in m.cells]
        jobs: list[tuple[float, Callable[[], None]]] = []
        for matrix in cls.matrices.values():
            for runner in SELECTED:
                jobs += matrix.stop_jobs(runner, everything)
                cost = 5.0 if runner == "pytest" else 1.5
                jobs.append((cost, partial(matrix.run_shared, runner)))
        cls.real = {}
        for runner, cell in [s for s in REAL_SAMPLES if s[0] in SELECTED]:
            for twin in (False, True):
                holder = cls.matrices[twin_holder(cell) if twin else cell.backend]
                key = (runner, cell.cid, twin, holder.backend)
                jobs.append((1.0, partial(cls.run_real_sample, holder, key)))
        jobs.sort(key=lambda job: -job[0])  # the longest first: they end together
        with ThreadPoolExecutor(3) as pool:
            futures: list[Future[None]] = [pool.submit(job) for _, job in jobs]
            for future in futures:
                future.result()

    @classmethod
    def run_real_sample(
        cls, holder: BackendMatrix, key: tuple[str, str, bool, str]
    ) -> None:
        runner, cid, twin, _ = key
        module = f"test_{runner[0]}s{'t' if twin else 'a'}_{cid}"
        target = module if runner == "unittest" else f"{module}.py"
        cls.real[key] = run_real(
            holder.folder,
            runner,
            [target],
            module,
            holder.backend,
            cwd=holder.folder / module,
        )

    def shared_twin(self, matrix: BackendMatrix, runner: str) -> ProcessResult:
        return self.matrices[matrix.twins].shared[runner]

    def selected(self, runner: str) -> None:
        if runner not in SELECTED:
            self.skipTest(f"TEST_MATRIX_RUNNERS={','.join(SELECTED)}")

    def check_shared(self, runner: str) -> None:
        self.selected(runner)
        for backend, matrix in self.matrices.items():
            result = matrix.shared[runner]
            twin = self.shared_twin(matrix, runner)
            with self.subTest(backend=backend, check="the process"):
                problems = process_problems(result, runner, stopped=False)
                final = result.data.get("runners_final", [])
                owners = {owner_kind(e["owner"]) for e in final}
                expected = expected_owners(result, runner, backend)
                if owners != expected:
                    problems.append(diff("runners", sorted(owners), sorted(expected)))
                self.assertFalse(problems, "\n".join(problems))
            with self.subTest(backend=backend, check="the clean classes"):
                self.check_clean(result, twin, runner)
            for cell in matrix.cells:
                if not stops(runner, cell.hook, cell.fault):
                    with self.subTest(cell=str(cell)):
                        holder = matrix if own_twin(cell) else self.matrices["asyncio"]
                        problems = check_shared_cell(
                            result, holder.shared[runner], runner, cell
                        )
                        self.assertFalse(problems, f"\n{cell}:\n" + "\n".join(problems))

    def check_clean(
        self, result: ProcessResult, twin: ProcessResult, runner: str
    ) -> None:
        """The module hooks of each scope's module, the clean class after the
        cells in it, and the clean module after all: all run, nothing reported."""
        r = runner[0]
        for key, module in [
            *[(f"{s}.Z_clean", f"test_{r}a_{s}") for s in SCOPES],
            *[(s, f"test_{r}a_{s}") for s in ("module", "session")],
            *[(f"zz_clean.Z_{s}", f"test_{r}a_zz_clean") for s in SCOPES],
        ]:
            got = owned_markers(result, "a", key, whole=False)
            want = owned_markers(twin, "t", key, whole=False)
            self.assertTrue(want, key)
            self.assertEqual(got, want, key)
            klass = key.partition(".")[2] or None
            reported = [x.name for x in reports_of(result, module, klass)]
            if klass is None:  # the module's own hooks: nothing against it
                reported = [n for n in reported if "(" in n and "." not in n]
            self.assertEqual(reported, [], key)

    def check_stops(self, runner: str) -> None:
        self.selected(runner)
        for matrix in self.matrices.values():
            for cell in matrix.stop_cells(runner):
                with self.subTest(cell=str(cell)):
                    result = matrix.stopped[(runner, cell.cid, False)]
                    holder = self.matrices[twin_holder(cell)]
                    twin = holder.stopped[(runner, cell.cid, True)]
                    problems = check_stop_cell(result, twin, runner, cell)
                    self.assertFalse(problems, f"\n{cell}:\n" + "\n".join(problems))

    def test_cells_that_do_not_stop_the_run_unittest(self) -> None:
        self.check_shared("unittest")

    def test_cells_that_do_not_stop_the_run_pytest(self) -> None:
        self.check_shared("pytest")

    def test_cells_that_stop_the_run_unittest(self) -> None:
        self.check_stops("unittest")

    def test_cells_that_stop_the_run_pytest(self) -> None:
        self.check_stops("pytest")

    def test_the_fork_server_runs_as_the_real_runners_do(self) -> None:
        """A few cells that stop the run, as real ``python -m`` processes (run
        in ``setUpClass``): the same exit, the same hooks, the same reports as
        in the fork server."""
        for (runner, cid, twin, backend), real in self.real.items():
            with self.subTest(runner=runner, cell=cid, backend=backend, twin=twin):
                forked = self.matrices[backend].stopped[(runner, cid, twin)]
                self.assertEqual(stop_line(real), stop_line(forked))
                self.assertEqual(real.markers, forked.markers)
                self.assertEqual(
                    [x.signature("", "") for x in real.reports],
                    [x.signature("", "") for x in forked.reports],
                )
                if not twin:
                    self.assertEqual(process_problems(real, runner, stopped=True), [])

    def test_the_checks_can_fail(self) -> None:
        """Each check finds a planted fault in a copy of a real run."""
        self.selected("unittest")  # the run it copies
        matrix = self.matrices["asyncio"]
        result = matrix.shared["unittest"]
        cell = Cell("asyncio", "class", "asyncTearDown", "value")
        self.assertEqual(check_shared_cell(result, result, "unittest", cell), [])

        def planted(
            output: str = "",
            data: dict[str, Any] | None = None,
            reports: list[Report] | None = None,
        ) -> ProcessResult:
            return ProcessResult(
                result.output + output,
                result.returncode,
                {**result.data, **(data or {})},
                result.folder,
                result.reports if reports is None else reports,
            )

        key = f"a|{cell_key(cell, shared=True)}|test_1|async cleanup"
        no_cleanup = planted(data={"markers": [m for m in result.markers if m != key]})
        self.assertIn(
            "hooks that ran",
            "".join(check_shared_cell(no_cleanup, result, "unittest", cell)),
        )
        mine = [x for x in result.reports if x.klass() == cell_class(cell)]
        twice = planted(reports=[*result.reports, *mine])
        problems = "".join(check_shared_cell(twice, result, "unittest", cell))
        self.assertIn("reported", problems)
        self.assertIn("the fault is reported 2 times", problems)
        runners = json.loads(json.dumps(result.data["runners_final"]))
        runners[0]["closed"] = False
        leaky = planted(data={"runners_final": runners, "fd_end": 99})
        problems = "".join(process_problems(leaky, "unittest", stopped=False))
        self.assertIn("runner never closed", problems)
        self.assertIn("file descriptors", problems)
        warned = planted(output="\nResourceWarning: unclosed")
        self.assertTrue(process_problems(warned, "unittest", stopped=False))
        framed = [
            Report(
                "ERROR",
                x.name,
                x.text + '\n  File "/x/anyio_unittest/_case.py"',
                x.exc,
                x.frames,
            )
            for x in mine
        ]
        shown = planted(reports=[*result.reports, *framed])
        self.assertIn(
            "frames", "".join(check_shared_cell(shown, result, "unittest", cell))
        )
