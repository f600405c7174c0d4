"""What a trivial async test costs: AnyIOTestCase beside the stdlib, the
mechanisms users would otherwise pick, and the bare mechanism.

From the repository root, with the ``bench`` extra installed (the ``test``
extra's runners, and matplotlib for ``--plot``)::

    python benchmarks/bench.py              # default rows, 2000 tests, 5 repetitions
    python benchmarks/bench.py --tests 500 --repeat 3 --no-write --rows 'anyio-*'
    python benchmarks/bench.py --list       # every row; module/session on request
    python benchmarks/bench.py --memory     # peak memory, 2,000 vs 20,000 tests
    python benchmarks/bench.py --profile anyio-trio-class

How it measures:

* A row is N trivial tests (``pass``) in one class, made with ``type()`` in a
  module registered in ``sys.modules`` (where unittest finds module fixtures).
  ``peer-*`` rows are what users would otherwise write (one loop per class and
  ``run_until_complete``; anyio's own test runner, per class or per test);
  ``ref-*`` rows are the bare mechanism without library code, the least any
  design that enters a loop kept open once per test pays.
* In-process rows are timed around ``unittest.TextTestRunner().run(suite)``:
  fixtures and opening and closing runners count, building the suite does not.
  Before each sample, 20 tests of the row run untimed (warm caches); a sample
  lasts at least MIN_SAMPLE seconds (a fast row's suite runs several times,
  averaged), so that one stall of the scheduler does not double it.
* pytest rows run ``python -m pytest`` in a subprocess per sample; a small
  plugin around ``pytest_runtestloop`` times the tests inside it (start-up,
  imports and collection left out) and counts them: fewer than N passed is an
  error, never a number. Each pytest row loads only its own async plugin.
* Repetitions are interleaved, each running every row once, so drift and bursts
  of load hit all rows alike. The table gives the median and the min-max.
* Ratios are paired: each in-process sample is taken right after a sample of
  the floor (sync ``unittest.TestCase``). A row's "x floor" is the median of its
  sample / floor-sample ratios; a ratio between two in-process rows (the
  comparison column, the targets) is the quotient of their "x floor", so each
  side is set against the machine as fast as it was then. pytest rows (a
  process per sample: nothing to pair) compare medians.

Not pyperf: it runs one benchmark to the end at a time, in worker processes it
calibrates itself, so it can neither interleave rows nor pair a sample with a
floor sample taken just before, which is what keeps ratios steady on a machine
whose speed drifts (``python -m pyperf system tune`` still helps on your own).
"""

from __future__ import annotations

import argparse
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
import time
import types
import unittest
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import entry_points, version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if __package__ in (None, ""):  # ``python benchmarks/bench.py``: this checkout
    sys.path.insert(0, str(ROOT))

from anyio_unittest import AnyIOTestCase, __version__  # noqa: E402
from anyio_unittest._scopes import registry  # noqa: E402
from benchmarks import mechanisms as m  # noqa: E402

FLOOR, PYTEST_FLOOR = "unittest-sync", "pytest-unittest-sync"
MIN_SAMPLE = 0.25  # seconds an in-process sample lasts at least
WARM = 20  # tests run untimed before each sample

# -- rows ---------------------------------------------------------------------------


@dataclass
class Row:
    key: str
    kind: str  # ours, peer, ref or stdlib: the chart's colours
    base: type[unittest.TestCase] | None = None  # in process: the suite's base
    attrs: dict[str, Any] = field(default_factory=dict)  # its class attributes
    vs: str | None = None  # the row of the comparison column
    label: str = ""  # default: the first line of base's docstring
    hooks: bool = False  # asyncSetUp and asyncTearDown defined
    default: bool = True  # run when --rows is not given
    source: str = ""  # pytest rows: the test module, tests left out
    plugins: tuple[str, ...] = ()  # pytest rows: the async plugins left on
    group: str = ""  # the table's section

    def __post_init__(self) -> None:
        if not self.label and self.base is not None:
            self.label = (self.base.__doc__ or self.base.__name__).split("\n")[0]
        self.label += " + asyncSetUp/asyncTearDown" if self.hooks else ""


def ours(b: str, scope: str, vs: str, hooks: bool = False, default: bool = True) -> Row:
    spec: Any = ("asyncio", {"use_uvloop": True}) if b == "uvloop" else b
    key, attrs = f"anyio-{b}-{scope}" + "-hooks" * hooks, {"anyio_backend": spec}
    attrs["loop_scope"] = scope
    label = f"AnyIOTestCase, loop_scope={scope}"
    return Row(key, "ours", AnyIOTestCase, attrs, vs, label, hooks, default)


REFS: dict[str, dict[str, type[m.Bridge]]] = {
    "asyncio": {
        "task-per-test": m.AsyncioTaskPerTest,
        "shared-task": m.AsyncioSharedTask,
    },
    "trio": {"task-per-test": m.TrioTaskPerTest, "shared-task": m.TrioSharedTask},
}


def refs(b: str, vs: str, hooks: bool = False) -> list[Row]:
    attrs, end = ({"entry": m.Bridge.phases}, "-hooks") if hooks else ({}, "")
    return [
        Row(f"ref-{b}-{name}{end}", "ref", base, attrs, vs, hooks=hooks)
        for name, base in REFS[b].items()
    ]


def backend_rows(b: str) -> list[Row]:
    """AnyIOTestCase on *b*, each row followed by the peers and references it meets."""
    cls, runner, on_asyncio = f"anyio-{b}-class", {"backend": b}, b == "asyncio"
    per_class = f"peer-anyio-runner-{b}-class"
    loop_per_class = Row("peer-asyncio-run-until-complete", "peer", m.LoopPerClass)
    return [
        ours(b, "function", f"peer-anyio-runner-{b}-function"),
        Row(f"peer-anyio-runner-{b}-function", "peer", m.AnyioRunnerPerTest, runner),
        ours(b, "class", loop_per_class.key if on_asyncio else per_class),
        ours(b, "module", cls, default=False),
        ours(b, "session", cls, default=False),
        *([loop_per_class] if on_asyncio else []),
        Row(per_class, "peer", m.AnyioRunnerPerClass, runner),
        *refs(b, cls),
        ours(b, "class", cls, hooks=True),
        *(refs(b, f"{cls}-hooks", hooks=True) if on_asyncio else []),
    ]


UNITTEST_SOURCE = "import unittest\nclass TestBench(unittest.TestCase):\n"
ANYIO_CLASS_SOURCE = """from anyio_unittest import AnyIOTestCase
class TestBench(AnyIOTestCase):
    anyio_backend = "{b}"
    loop_scope = "class"
"""
ANYIO_PLUGIN_SOURCE = """import pytest
pytestmark = pytest.mark.anyio
@pytest.fixture(scope="module")
def anyio_backend():
    return "{b}"
@pytest.fixture(scope="class", autouse=True)
async def hold_runner():  # anyio's plugin keeps its runner open while one lives
    yield
class TestBench:
"""
PYTEST_ASYNCIO_SOURCE = """import pytest
@pytest.mark.asyncio(loop_scope="class")
class TestBench:
"""


def pytest_rows() -> list[Row]:
    fns = "pytest-functions-sync"
    # fmt: off
    rows = [
        Row(PYTEST_FLOOR, "stdlib", label="sync unittest.TestCase",
            source=UNITTEST_SOURCE),
        Row(fns, "stdlib", vs=PYTEST_FLOOR, label="plain sync test functions",
            source="class TestBench:\n"),
        *[Row(f"pytest-anyio-{b}-class", "ours", vs=f"pytest-anyio-plugin-{b}-class",
              label=f"AnyIOTestCase {b}, loop_scope=class",
              source=ANYIO_CLASS_SOURCE.format(b=b), plugins=("anyio_unittest",))
          for b in ("asyncio", "trio")],
        *[Row(f"pytest-anyio-plugin-{b}-class", "peer", vs=fns,
              label=f"anyio plugin {b}, class-scoped async fixture",
              source=ANYIO_PLUGIN_SOURCE.format(b=b), plugins=("anyio",))
          for b in ("asyncio", "trio")],
    ]
    if importlib.util.find_spec("pytest_asyncio"):
        rows.append(Row("pytest-asyncio-class", "peer", vs=fns,
                        label='pytest-asyncio, loop_scope="class"',
                        source=PYTEST_ASYNCIO_SOURCE, plugins=("asyncio",)))
    # fmt: on
    return rows


def all_rows() -> list[Row]:
    nodebug = m.NoDebugIsolatedAsyncioTestCase
    groups = {
        "floor": [
            Row(FLOOR, "stdlib", unittest.TestCase, label="sync unittest.TestCase")
        ],
        "asyncio": [
            Row("isolated", "stdlib", unittest.IsolatedAsyncioTestCase),
            Row("isolated-nodebug", "stdlib", nodebug, vs="isolated"),
            *backend_rows("asyncio"),
        ],
        "trio": backend_rows("trio"),
        "uvloop": [
            ours("uvloop", s, f"anyio-asyncio-{s}", default=s in ("function", "class"))
            for s in ("function", "class", "module", "session")
            if importlib.util.find_spec("uvloop")
        ],
        "pytest": pytest_rows(),
    }
    for group, rows in groups.items():
        for row in rows:
            row.group = group
    return [row for rows in groups.values() for row in rows]


def select_rows(patterns: list[str] | None) -> list[Row]:
    """The default rows, or those matching a pattern; the floors always."""
    rows = all_rows()

    def wanted(r: Row) -> bool:
        if patterns:
            return any(fnmatch.fnmatchcase(r.key, p) for p in patterns)
        return r.default

    keep = [r for r in rows if r.key == FLOOR or wanted(r)]
    if any(r.source for r in keep) and all(r.key != PYTEST_FLOOR for r in keep):
        first = next(i for i, r in enumerate(keep) if r.source)
        keep.insert(first, next(r for r in rows if r.key == PYTEST_FLOOR))
    return keep


# -- running a row --------------------------------------------------------------------


class BenchError(RuntimeError):
    """A benchmarked suite did not pass."""


async def _nothing(self: object) -> None:
    pass


def _sync_nothing(self: object) -> None:
    pass


def test_names(n: int) -> list[str]:
    return [f"test_{i:05d}" for i in range(n)]


def make_case(row: Row, n: int, tag: str = "") -> type[unittest.TestCase]:
    """*row*'s class of *n* trivial tests, in a module of its own."""
    base = row.base
    assert base is not None, f"{row.key} is a pytest row"
    name = "bench_" + "".join(c if c.isalnum() else "_" for c in row.key + tag)
    module = sys.modules.setdefault(name, types.ModuleType(name))
    if issubclass(base, m.Bridge):
        test: Callable[..., object] = m.Bridge.bridged
    else:
        test = _sync_nothing if base is unittest.TestCase else _nothing
    ns: dict[str, Any] = {"__module__": name, **row.attrs}
    if row.hooks:
        ns.update(asyncSetUp=_nothing, asyncTearDown=_nothing)
    ns.update(dict.fromkeys(test_names(n), test))
    metaclass: Any = type(base)  # AnyIOTestCase's checks the configuration
    cls: type[unittest.TestCase] = metaclass("Bench", (base,), ns)
    module.Bench = cls  # type: ignore[attr-defined]
    return cls


def run_suite(row: Row, suite: unittest.TestSuite, n: int) -> float:
    """Seconds unittest's own runner takes to run *suite*, which must pass."""
    runner = unittest.TextTestRunner(stream=io.StringIO(), verbosity=0)
    with m.no_debug_loops(row.base is m.NoDebugIsolatedAsyncioTestCase):
        start = time.perf_counter()
        result = runner.run(suite)
        elapsed = time.perf_counter() - start
    registry.close_all()  # session runners: no row borrows another's (private API)
    if not result.wasSuccessful() or result.testsRun != n:
        problems = "\n".join(text for _, text in result.errors + result.failures)
        raise BenchError(f"{row.key}: {result.testsRun} of {n} ran\n{problems[:3000]}")
    return elapsed


class InProcess:
    def __init__(self, row: Row, n: int) -> None:
        self.row, self.n, self.runs = row, n, 1
        self.cls, self.warm = make_case(row, n), make_case(row, WARM, "-warm")
        self.runs = max(1, math.ceil(MIN_SAMPLE / (self.sample() * n / 1e6)))

    def run(self, cls: type[unittest.TestCase], n: int) -> float:
        return run_suite(self.row, unittest.TestSuite(map(cls, test_names(n))), n)

    def sample(self) -> float:
        """µs per test."""
        self.run(self.warm, WARM)
        gc.collect()
        total = sum(self.run(self.cls, self.n) for _ in range(self.runs))
        return total / self.runs / self.n * 1e6


TIMER_PLUGIN = """import json, os, time
import pytest
counts = {"passed": 0, "failed": 0, "skipped": 0, "error": 0}
@pytest.hookimpl(wrapper=True)
def pytest_runtestloop(session):  # first set-up to last tear-down
    start = time.perf_counter()
    try:
        return (yield)
    finally:
        counts["seconds"] = time.perf_counter() - start
        with open(os.environ["BENCH_TIMER_OUT"], "w") as f:
            json.dump(counts, f)
def pytest_runtest_logreport(report):
    if report.when == "call":
        counts[report.outcome] += 1
    elif report.outcome != "passed":
        counts["error"] += 1
"""


class InPytest:
    def __init__(self, row: Row, n: int, tmp: Path) -> None:
        self.row, self.n, self.folder = row, n, tmp / row.key
        self.folder.mkdir()
        test = "async def" if row.plugins else "def"
        tests = "".join(f"    {test} {t}(self):\n        pass\n" for t in test_names(n))
        (self.folder / "test_bench.py").write_text(row.source + tests)
        (self.folder / "_bench_timer.py").write_text(TIMER_PLUGIN)
        (self.folder / "pytest.ini").write_text("[pytest]\naddopts =\n")
        self.args = ["-p", "_bench_timer", "-p", "no:cacheprovider", "-p", "no:xdist"]
        for plugin in ("asyncio", "anyio", "anyio_unittest", "hypothesispytest"):
            if plugin not in row.plugins:
                self.args += ["-p", f"no:{plugin}"]
        if "asyncio" in row.plugins:
            self.args += ["-o", "asyncio_default_fixture_loop_scope=function"]
        installed = {ep.name for ep in entry_points(group="pytest11")}
        if "anyio_unittest" in row.plugins and "anyio_unittest" not in installed:
            self.args += ["-p", "anyio_unittest.pytest_plugin"]

    def sample(self) -> float:
        """µs per test, as timed inside pytest."""
        out = self.folder / "timing.json"
        out.unlink(missing_ok=True)
        drop = ("ANYIO_UNITTEST_", "PYTEST_ADDOPTS", "PYTHONDEVMODE", "PYTHONASYNCIO")
        env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
        env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{self.folder}"
        env["BENCH_TIMER_OUT"] = str(out)
        command = [sys.executable, "-m", "pytest", "-q", *self.args, "test_bench.py"]
        proc = subprocess.run(
            command, cwd=self.folder, env=env, capture_output=True, text=True
        )
        timing = json.loads(out.read_text()) if out.exists() else {}
        if proc.returncode or timing.get("passed") != self.n:
            output = proc.stdout[-3000:] + proc.stderr[-3000:]
            raise BenchError(
                f"{self.row.key}: exit {proc.returncode}, {timing}\n{output}"
            )
        return float(timing["seconds"]) / self.n * 1e6


# -- the table and the targets --------------------------------------------------------


@dataclass
class Result:
    row: Row
    samples: list[float] = field(default_factory=list)  # µs per test
    floors: list[float] = field(default_factory=list)  # the floor's, just before
    x_floor: float = math.nan  # in process: the median of samples / floors
    cost: float = math.nan  # µs; in process, x_floor times the floor's median

    @property
    def median(self) -> float:
        return statistics.median(self.samples)


def run_table(rows: list[Row], n: int, repeat: int) -> dict[str, Result]:
    """Every row *repeat* times, interleaved; each in-process sample paired."""
    results = {row.key: Result(row) for row in rows}
    with tempfile.TemporaryDirectory(prefix="anyio_unittest_bench_") as tmp:
        benches: list[InProcess | InPytest] = [
            InPytest(r, n, Path(tmp)) if r.source else InProcess(r, n) for r in rows
        ]
        floor = benches[0]  # select_rows puts it first
        for rep in range(repeat):
            for bench in benches:
                progress(f"repetition {rep + 1}/{repeat}: {bench.row.key}")
                result = results[bench.row.key]
                if isinstance(bench, InProcess) and bench is not floor:
                    result.floors.append(floor.sample())
                    results[FLOOR].samples.append(result.floors[-1])
                result.samples.append(bench.sample())
    progress("")
    for res in results.values():
        if res.floors:
            pairs = zip(res.samples, res.floors)  # noqa: B905
            res.x_floor = statistics.median(s / f for s, f in pairs)
            res.cost = res.x_floor * results[FLOOR].median
        else:
            floor_res = results.get(PYTEST_FLOOR if res.row.source else FLOOR)
            res.x_floor = res.median / floor_res.median if floor_res else math.nan
            res.cost = res.median
    return results


def progress(message: str) -> None:
    if sys.stderr.isatty():
        print(f"\r{message:<72}", end="" if message else "\r", file=sys.stderr)


Term = str | tuple[str, str]  # a row, or a row net of another one

#: (row, compared with, at most this ratio)
TARGETS: list[tuple[Term, Term, float]] = [
    ("anyio-trio-class", "peer-anyio-runner-trio-class", 1.0),
    ("anyio-asyncio-class", "peer-asyncio-run-until-complete", 1.5),
    ("anyio-asyncio-function", "peer-anyio-runner-asyncio-function", 0.6),
    ("anyio-asyncio-function", "isolated-nodebug", 1.0),
    ("anyio-asyncio-function", "isolated", 0.25),
    ("anyio-trio-function", "peer-anyio-runner-trio-function", 1.0),
    ("anyio-asyncio-class-hooks", "anyio-asyncio-class", 1.25),
    ("anyio-trio-class-hooks", "anyio-trio-class", 1.25),
    # under pytest, net of the item type (a unittest one, or a plain function)
    *[
        (
            (f"pytest-anyio-{b}-class", PYTEST_FLOOR),
            (f"pytest-anyio-plugin-{b}-class", "pytest-functions-sync"),
            1.0,
        )
        for b in ("asyncio", "trio")
    ],
]


def cost(results: dict[str, Result], term: Term | None) -> float | None:
    if isinstance(term, tuple):
        a, b = cost(results, term[0]), cost(results, term[1])
        return None if a is None or b is None else a - b
    return results[term].cost if term in results else None


def ratio(results: dict[str, Result], a: Term, b: Term | None) -> float | None:
    x, y = cost(results, a), cost(results, b)
    return None if x is None or y is None else x / y if y > 0 else math.inf


def check_targets(results: dict[str, Result]) -> list[dict[str, Any]]:
    checks = []
    for row, against, limit in TARGETS:
        value = ratio(results, row, against)
        if value is not None:
            us = [round(cost(results, t) or 0.0, 2) for t in (row, against)]
            checks.append(
                {"row": row, "against": against, "limit": limit, "us": us,
                 "ratio": round(value, 3), "met": value <= limit}
            )  # fmt: skip
    return checks


def markdown(
    meta: dict[str, Any], results: dict[str, Result], checks: list[dict[str, Any]]
) -> str:
    versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
    out = [
        "# anyio_unittest benchmark",
        "",
        f"{meta['date']}, commit {meta['commit']}; Python {meta['python']} on "
        f"{meta['platform']}, {meta['cpus']} CPUs; load average "
        f"{meta['load_before']} before, {meta['load_after']} after; {versions}.",
        "",
        f"{meta['tests']} trivial tests in one class, {meta['repeat']} interleaved "
        "repetitions. µs per test: median, min-max. x floor: in process, the "
        "median of each sample over the sync `unittest.TestCase` sample taken just "
        f"before it; pytest rows, over `{PYTEST_FLOOR}` (medians). x comparison: in "
        "process, the quotient of the two rows' x floor; pytest rows, of medians.",
        "",
        "| row | what | µs/test | min-max | x floor | x comparison |",
        "|---|---|--:|--:|--:|---|",
    ]
    group = FLOOR
    for key, res in results.items():
        if res.row.group != group:
            group = res.row.group
            out.append(f"| **{group}** | | | | | |")
        r, vs = ratio(results, key, res.row.vs), res.row.vs
        out.append(
            f"| `{key}` | {res.row.label} | {res.median:,.1f} | "
            f"{min(res.samples):,.1f}-{max(res.samples):,.1f} | {res.x_floor:.2f}x | "
            + (f"{r:.2f}x `{vs}` |" if r is not None else "|")
        )
    out += ["", "## Targets", "", "| row | compared with | ratio | limit | |"]
    out.append("|---|---|--:|--:|---|")
    for c in checks:
        row, against = (
            f"`{t}`" if isinstance(t, str) else f"`{t[0]}` - `{t[1]}` ({us:,.1f} µs)"
            for t, us in zip((c["row"], c["against"]), c["us"])  # noqa: B905
        )
        verdict = "met" if c["met"] else "**missed**"
        limit = f"≤ {c['limit']:g}x"
        out.append(f"| {row} | {against} | {c['ratio']:.2f}x | {limit} | {verdict} |")
    return "\n".join(out) + "\n"


COLOURS = {
    "ours": ("tab:blue", "AnyIOTestCase"),
    "peer": ("tab:orange", "peer: what users would otherwise pick"),
    "ref": ("tab:green", "reference: the bare mechanism, no library"),
    "stdlib": ("tab:gray", "stdlib / sync baseline"),
}


def plot(results: dict[str, Result], meta: dict[str, Any], path: Path) -> bool:
    """The table as horizontal bars of µs/test (log scale), coloured by kind."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.patches import Patch
    except ImportError:
        print("no chart: matplotlib is not installed", file=sys.stderr)
        return False
    res = list(results.values())
    y = range(len(res))
    med = [r.median for r in res]
    spread = [[r.median - min(r.samples) for r in res]]
    spread.append([max(r.samples) - r.median for r in res])
    fig, ax = plt.subplots(figsize=(10, 0.24 * len(res) + 1.3))
    colours = [COLOURS[r.row.kind][0] for r in res]
    error = {"elinewidth": 0.7, "capsize": 1.5, "ecolor": "0.3"}
    ax.barh(y, med, xerr=spread, color=colours, error_kw=error)
    ax.set_yticks(y, [r.row.key for r in res], fontsize=7.5)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlim(min(med) / 1.5, max(max(r.samples) for r in res) * 4)
    for i, r in enumerate(res):
        ax.text(max(r.samples) * 1.1, i, f"{r.median:,.1f}", va="center", fontsize=6.5)
        if i == 0 or r.row.group != res[i - 1].row.group:
            ax.axhline(i - 0.5, color="0.7", lw=0.6)
            where: dict[str, Any] = {"transform": ax.get_yaxis_transform()}
            where.update(ha="right", va="top", fontsize=8, color="0.4")
            ax.text(0.99, i - 0.4, r.row.group, **where)
    ax.set_xlabel("µs per trivial test (median; whiskers: min-max; log scale)")
    ax.set_title(
        f"anyio_unittest {meta['commit']}: {meta['tests']} tests, {meta['repeat']} "
        f"repetitions, Python {meta['python']}",
        fontsize=9,
    )
    handles = [Patch(color=c, label=text) for c, text in COLOURS.values()]
    ax.legend(handles=handles, fontsize=7, ncols=4, frameon=False, loc="upper center",
              bbox_to_anchor=(0.5, -0.6 / fig.get_figheight()))  # fmt: skip
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return True


def metadata(n: int, repeat: int) -> dict[str, Any]:
    def git(*args: str) -> str:
        proc = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return proc.stdout.strip()

    dirty = "+dirty" if git("status", "--porcelain", "--", "anyio_unittest") else ""
    dists = ("anyio", "trio", "uvloop", "pytest", "pytest_asyncio")
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat("T", "seconds"),
        "commit": (git("rev-parse", "--short", "HEAD") or "?") + dirty,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "cpus": os.cpu_count(),
        "load_before": load(),
        "tests": n,
        "repeat": repeat,
        "versions": {"anyio_unittest": __version__}
        | {d: version(d) for d in dists if importlib.util.find_spec(d)},
    }


def load() -> list[float] | None:
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


# -- memory and profile ---------------------------------------------------------------

MEMORY_ROWS = (FLOOR, "anyio-asyncio-class", "anyio-trio-class")
MEMORY_COUNTS = (2000, 20000)
PACKAGES = ("anyio_unittest", "unittest", "asyncio", "trio", "anyio", "benchmarks")


class LazySuite(unittest.TestSuite):
    """Makes each test as the run reaches it: memory growth is what a run keeps."""

    def __init__(self, cls: type[unittest.TestCase], n: int) -> None:
        super().__init__()
        self.cls, self.n, self._cleanup = cls, n, False

    def __iter__(self) -> Iterator[unittest.TestCase]:
        return map(self.cls, test_names(self.n))

    def countTestCases(self) -> int:
        return self.n


def find_row(key: str) -> Row:
    row = next((r for r in all_rows() if r.key == key), None)
    if row is None or row.base is None:
        raise SystemExit(f"{key!r} is not an in-process row; see --list")
    return row


def memory_child(key: str, n: int) -> dict[str, float]:
    """In a fresh process: the peak RSS of a run of *n* tests, in MB."""
    import resource

    row = find_row(key)
    run_suite(row, LazySuite(make_case(row, n), n), n)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB; macOS: bytes
    return {"peak_rss_mb": rss / (2**20 if sys.platform == "darwin" else 2**10)}


def memory_report() -> tuple[str, dict[str, list[float]]]:
    """Markdown, and the peak RSS in MB of each row for each of MEMORY_COUNTS."""
    lo, hi = MEMORY_COUNTS
    report: dict[str, list[float]] = {}
    lines = [
        f"## Memory: {hi:,} vs {lo:,} tests in one class, a fresh process each",
        "",
        "Tests are made as the run reaches them, so the growth is what a run keeps "
        "per test. Target for the class-scoped rows: peak RSS grows by < 20 MB.",
        "",
        f"| row | peak RSS, {lo:,} tests (MB) | {hi:,} tests | growth |",
        "|---|--:|--:|--:|",
    ]
    for key in MEMORY_ROWS:
        rss = report[key] = []
        for n in MEMORY_COUNTS:
            command = [sys.executable, __file__, "--memory-child", key, str(n)]
            proc = subprocess.run(command, capture_output=True, text=True)
            if proc.returncode:
                raise BenchError(f"memory, {key}: {proc.stdout}{proc.stderr}")
            rss.append(json.loads(proc.stdout)["peak_rss_mb"])
        lines.append(
            f"| `{key}` | {rss[0]:.1f} | {rss[1]:.1f} | {rss[1] - rss[0]:+.1f} |"
        )
    return "\n".join(lines) + "\n", report


def profile(key: str, n: int, top: int) -> None:
    """cProfile one run of a row's suite: own time per test, by package and function."""
    import cProfile
    import pstats

    bench = InProcess(find_row(key), n)
    profiler = cProfile.Profile()
    profiler.runcall(bench.run, bench.cls, n)
    stats: dict[Any, Any] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    packages: dict[str, float] = {}
    functions = []
    for (file, line, func), (_, calls, own, cumulative, _) in stats.items():
        parts = Path(file).parts
        package = next((p for p in reversed(parts) if p in PACKAGES), "other")
        packages[package] = packages.get(package, 0.0) + own / n * 1e6
        where = "/".join(parts[parts.index(package) :]) if package in parts else file
        functions.append((own, cumulative, calls, f"{where}:{line}({func})"))
    total = sum(packages.values())
    print(f"cProfile of {key}, {n} tests: {total:.1f} µs/test (profiling inflates it)")
    for package, own in sorted(packages.items(), key=lambda p: -p[1]):
        print(f"{own:9.2f} µs/test {own / total:6.1%}  {package}")
    print(f"\n{'own µs':>9} {'cum µs':>9} {'calls':>6}  (per test)")
    for own, cumulative, calls, where in sorted(functions, reverse=True)[:top]:
        per_test = f"{own / n * 1e6:9.2f} {cumulative / n * 1e6:9.2f} {calls / n:6.2f}"
        print(f"{per_test}  {where}")


# -- command line ---------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    add = parser.add_argument
    add("--tests", type=int, default=2000, help="tests per row (default 2000)")
    add("--repeat", type=int, default=5, help="interleaved repetitions (default 5)")
    add("--rows", action="append", metavar="GLOB", help="rows to run (repeatable)")
    add("--list", action="store_true", help="list every row")
    add("--json", action="store_true", help="print JSON instead of the table")
    add("--no-write", action="store_true", help="write no files in results/")
    add("--plot", nargs="?", const="", metavar="PNG", help="draw the chart (to PNG)")
    add("--check", action="store_true", help="exit 1 if a target is missed")
    add("--memory", action="store_true", help="peak memory, 2,000 vs 20,000 tests")
    add("--profile", metavar="ROW", help="cProfile one in-process row")
    add("--top", type=int, default=30, help="functions --profile lists")
    add("--memory-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    out = ROOT / "benchmarks" / "results"
    tag = f"py{sys.version_info.major}{sys.version_info.minor}"

    if args.memory_child:
        print(json.dumps(memory_child(args.memory_child[0], int(args.memory_child[1]))))
        return 0
    if args.list:
        for row in all_rows():
            note = "" if row.default else " (not by default)"
            print(f"{row.key:37} {row.label}{note}")
        return 0
    if args.profile:
        profile(args.profile, args.tests, args.top)
        return 0
    if args.memory:
        text, report = memory_report()
        print(json.dumps(report) if args.json else text)
        if not args.no_write:
            (out / f"memory-{tag}.md").write_text(text)
            data = {"tests": MEMORY_COUNTS, "peak_rss_mb": report}
            (out / f"memory-{tag}.json").write_text(json.dumps(data, indent=2) + "\n")
        return 0

    meta = metadata(args.tests, args.repeat)
    results = run_table(select_rows(args.rows), args.tests, args.repeat)
    meta["load_after"] = load()
    checks = check_targets(results)
    text = markdown(meta, results, checks)
    rows = [row_json(res, results) for res in results.values()]
    payload = {"meta": meta, "rows": rows, "targets": checks}
    print(json.dumps(payload, indent=2) if args.json else text)
    if not args.no_write:
        (out / f"bench-{tag}.md").write_text(text)
        (out / f"bench-{tag}.json").write_text(json.dumps(payload, indent=2) + "\n")
    if args.plot is not None or not args.no_write:
        png = Path(args.plot) if args.plot else out / f"bench-{tag}.png"
        if plot(results, meta, png) and not args.json:
            print(f"chart: {png}")
    return 1 if args.check and not all(c["met"] for c in checks) else 0


def row_json(res: Result, results: dict[str, Result]) -> dict[str, Any]:
    vs = ratio(results, res.row.key, res.row.vs)
    return {
        "key": res.row.key,
        "label": res.row.label,
        "kind": res.row.kind,
        "runner": "pytest" if res.row.source else "unittest",
        "samples_us": [round(s, 2) for s in res.samples],
        "median_us": round(res.median, 2),
        "min_us": round(min(res.samples), 2),
        "max_us": round(max(res.samples), 2),
        "ratio_floor": round(res.x_floor, 3),
        "vs": res.row.vs if vs is not None else None,
        "ratio_vs": None if vs is None else round(vs, 3),
    }


if __name__ == "__main__":
    sys.exit(main())
