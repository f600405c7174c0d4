"""The harness of ``test_matrix``: generated suites, a fork server, report
parsers and the checks of one cell.

:class:`BackendMatrix` writes every cell of one backend, and the sync twins,
as modules (:func:`module_source`) into a folder with a ``sitecustomize`` that
imports ``mx_probe`` (:data:`PROBE`). The probe wraps ``Backend.open_runner`` to
follow every runner opened, counts ``/proc/self/fd`` at start-up and after the
last ``atexit`` handler, records the markers of the hooks and, as a pytest
plugin (``-p mx_probe``), pytest's reports with the frames of their tracebacks;
it writes all of it to a JSON file as the process ends.

The cells that do not stop the run are run in one real ``python -m`` process
per runner (:meth:`BackendMatrix.run_shared`, :func:`run_real`). Those that stop
it each need a process of their own: they are run by a *fork server*
(:data:`FORK_SERVER`, :func:`run_forked`): one process imports everything once,
then for each cell forks a child that runs exactly what ``python -m unittest``
runs (``unittest.main(module=None)``) or ``pytest.main()``, then does what the
interpreter does at exit (print the uncaught exception, run the ``atexit``
handlers, collect garbage) and exits with the interpreter's exit code.

What a runner reported is read into :class:`Report` records
(:func:`unittest_reports`, :func:`pytest_reports`). :func:`check_shared_cell`,
:func:`check_stop_cell` and :func:`process_problems` compare a cell with its
twin and check a process; each returns the problems it found (empty: none).

Cost: 282 cells a backend (846 with uvloop), each under both runners: six real
runs, ~470 forked children (a pytest child ~0.1 s) and eight real runs of
samples; about a minute of CPU, spread over three worker threads, longest first.

uvloop opens a pipe pair for the whole process with its first loop and keeps it;
for the uvloop backend that first loop is made before the descriptors are
counted.
"""

from __future__ import annotations

import difflib
import importlib.util
import json
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property, partial
from pathlib import Path
from typing import Any

from tests._support import ROOT, Outcome, run

HAVE_UVLOOP = importlib.util.find_spec("uvloop") is not None

FAULTS = ("fail", "value", "group", "cancel", "exit", "interrupt")
PER_TEST = (
    "setUp",
    "asyncSetUp",
    "test",
    "asyncTearDown",
    "tearDown",
    "sync cleanup",
    "async cleanup",
)
CLASS_LEVEL = (
    "setUpClass",
    "asyncSetUpClass",
    "asyncTearDownClass",
    "async class cleanup",
)
MODULE_LEVEL = ("asyncSetUpModule", "asyncTearDownModule", "async module cleanup")
SCOPES = ("function", "class", "module", "session")
RUNNERS = ("unittest", "pytest")

#: backend id -> the anyio_backend value
BACKENDS: dict[str, str] = {"asyncio": '"asyncio"', "trio": '"trio"'}
if HAVE_UVLOOP:
    BACKENDS["asyncio_uvloop"] = '("asyncio", {"use_uvloop": True})'


def hooks_of(scope: str) -> tuple[str, ...]:
    """The hooks a suite with *scope* can have (the others are config errors)."""
    if scope == "function":
        return ("setUpClass", *PER_TEST)
    if scope == "class":
        return (*CLASS_LEVEL, *PER_TEST)
    return (*MODULE_LEVEL, *CLASS_LEVEL, *PER_TEST)


#: the async class- and module-level steps (see CANCELLED below)
ASYNC_SCOPE_STEPS = frozenset(
    {"asyncSetUpClass", "asyncTearDownClass", "async class cleanup", *MODULE_LEVEL}
)


def stops(runner: str, hook: str, fault: str) -> bool:
    """Whether the fault ends the whole run (so the cell needs its own process).

    unittest catches only ``Exception`` around class and module fixtures and
    their cleanups; pytest catches everything there but ``KeyboardInterrupt``.
    """
    if fault == "interrupt":
        return True
    if hook in PER_TEST or runner != "unittest":
        return False
    return fault == "exit" or (fault == "cancel" and hook not in ASYNC_SCOPE_STEPS)


def slug(hook: str) -> str:
    first, *rest = hook.split()
    return first + "".join(word.capitalize() for word in rest)


@dataclass(frozen=True)
class Cell:
    backend: str
    scope: str
    hook: str
    fault: str

    @property
    def cid(self) -> str:
        return f"{self.scope}_{slug(self.hook)}_{self.fault}"

    @property
    def module_level(self) -> bool:
        return self.hook in MODULE_LEVEL

    def __str__(self) -> str:
        return f"{self.backend}/{self.scope}/{self.hook}/{self.fault}"


def all_cells(backend: str) -> list[Cell]:
    return [
        Cell(backend, scope, hook, fault)
        for scope in SCOPES
        for hook in hooks_of(scope)
        for fault in FAULTS
    ]


# --------------------------------------------------------------------------
# where the package differs from unittest by design
#
# CANCELLED: a cancellation out of an async class- or module-level step (a class
# task group whose task failed) is the error ScopeCancelled of that class or
# module, not the end of the run (unittest lets BaseException out of fixtures):
# there the twin raises ScopeCancelled itself.
#
# MODULE_END: asyncSetUpModule runs in the module's setUpModule, as the twin's
# sync step does (the module's classes all run on one runner), but the module's
# end, its cleanups included, comes also after a BaseException out of it, which
# the twin's setUpModule lets out without its cleanups (pytest goes on; unittest
# stops the run before any).


def expected_markers(cell: Cell, want: list[str]) -> list[str]:
    setup = f"{cell.cid}|-|asyncSetUpModule"
    cleanup = f"{cell.cid}|-|async module cleanup"
    if cell.hook == "asyncSetUpModule" and want == [setup]:
        return [setup, cleanup]
    return want


# --------------------------------------------------------------------------
# what runs in the subprocesses

PROBE = r'''
"""Counts runners and file descriptors, records markers and pytest reports."""
import atexit
import gc
import json
import os
import sys

STATE = {}

if os.environ.get("MX_WARM_UVLOOP"):
    # uvloop opens a pipe pair for the whole process with its first loop (and
    # keeps it): open it before the descriptors are counted
    import asyncio

    import uvloop

    _loop = uvloop.new_event_loop()
    _loop.run_until_complete(asyncio.sleep(0))
    _loop.close()
    del _loop

# likewise the pipe the package keeps once an asyncio runner needed it (the
# wakeup fd that lets Ctrl-C wake a loop)
from anyio_unittest._sigint import router as _router

_router.wakeup_pipe()
del _router


def fd_count():
    return len(os.listdir("/proc/self/fd"))


def reset():
    STATE.clear()
    STATE.update(fd_start=fd_count(), markers=[], runners=[], reports=[])


reset()


def mark(text):
    STATE["markers"].append(text)


def _runner_state(entry):
    """(closed, ended): the runner was closed; its loop or trio run has ended
    (a trio runner is a view on the one run of the thread, see _trio_driver)."""
    runner = entry["runner"]
    loop = getattr(runner, "loop", None)
    if loop is not None:
        return loop.is_closed(), loop.is_closed()
    return bool(runner._closed), not runner.run.alive


def _snapshot():
    out = []
    for e in STATE["runners"]:
        closed, ended = _runner_state(e)
        out.append({"owner": e["owner"], "id": e["id"], "closes": e["closes"],
                    "closed": closed, "ended": ended})
    return out


def _before_library_exit():
    STATE["runners_at_exit"] = _snapshot()


def _final():
    gc.collect()
    STATE["runners_final"] = _snapshot()
    for entry in STATE["runners"]:
        entry.pop("runner", None)
    STATE["fd_end"] = fd_count()
    path = os.environ.get("MX_REPORT")
    if path:
        data = {k: v for k, v in STATE.items() if k != "runners"}
        with open(path, "w") as f:
            json.dump(data, f)


# registered first, so it runs last: after the library's own atexit handler
atexit.register(_final)

from anyio_unittest import _backends  # noqa: E402  (registers the library's)

# registered after the library's, so it runs before it
atexit.register(_before_library_exit)

_open_runner = _backends.Backend.open_runner


def open_runner(self, owner):
    runner = _open_runner(self, owner)
    entry = {"owner": owner, "id": self.id, "closes": 0, "runner": runner}
    STATE["runners"].append(entry)
    close = runner.close

    def counted_close():
        entry["closes"] += 1
        close()

    runner.close = counted_close
    return runner


_backends.Backend.open_runner = open_runner


# -- as a pytest plugin (-p mx_probe) -------------------------------------------

PACKAGE = os.sep + "anyio_unittest" + os.sep


def frames_of(exc):
    """module:function of every frame in *exc*'s tracebacks, chained and grouped."""
    seen, out, stack = set(), [], [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        tb = e.__traceback__
        while tb is not None:
            code = tb.tb_frame.f_code
            if PACKAGE in code.co_filename:
                name = "anyio_unittest"
            else:
                name = os.path.splitext(os.path.basename(code.co_filename))[0]
            out.append(f"{name}:{code.co_name}")
            tb = tb.tb_next
        out.append("")  # the end of one traceback
        stack.append(e.__cause__)
        if not e.__suppress_context__:
            stack.append(e.__context__)
        stack.extend(getattr(e, "exceptions", ()))
    return out


import pytest  # noqa: E402


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if call.excinfo is not None:
        report._mx_frames = frames_of(call.excinfo.value)
    return report


def pytest_runtest_logreport(report):
    if report.passed and report.when != "call":
        return
    crash = getattr(report.longrepr, "reprcrash", None)
    STATE["reports"].append({
        "nodeid": report.nodeid,
        "when": report.when,
        "outcome": report.outcome,
        "crash": crash.message if crash is not None else "",
        "text": report.longreprtext if report.failed else "",
        "frames": getattr(report, "_mx_frames", []),
    })


def pytest_collectreport(report):
    if report.failed:
        STATE["reports"].append({
            "nodeid": report.nodeid, "when": "collect", "outcome": "failed",
            "crash": "", "text": report.longreprtext, "frames": [],
        })
'''

FORK_SERVER = r'''
"""Run each job in a forked child, as `python -m unittest` / `pytest` would."""
import atexit
import gc
import json
import os
import sys
import threading
import time
import traceback
import unittest

import pytest

import mx_probe


def child(job):
    out = os.open(job["out"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.close(out)
    os.environ["MX_REPORT"] = job["report"]
    # its own folder: pytest lists the folder of what it collects
    os.chdir(job["cwd"])
    sys.path.insert(0, job["cwd"])
    mx_probe.reset()
    code = 0
    try:
        if job["runner"] == "unittest":
            sys.argv = ["python -m unittest", job["module"]]
            unittest.main(module=None)
        else:
            code = pytest.main([*job["args"], job["module"] + ".py"])
    except SystemExit as exc:  # what the interpreter does with it
        if exc.code is None:
            code = 0
        elif isinstance(exc.code, int):
            code = exc.code
        else:
            print(exc.code, file=sys.stderr)
            code = 1
    except BaseException as exc:
        traceback.print_exc()
        code = 130 if isinstance(exc, KeyboardInterrupt) else 1
    # what the interpreter does at exit: threading's exit hooks, then the
    # atexit handlers (mx_probe's last one collects garbage)
    threading._shutdown()
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def warm_up(pytest_too):
    """Import now what a first run imports lazily, so that no child has to."""
    import contextlib

    import anyio_unittest

    class WarmUp(anyio_unittest.AnyIOTestCase):
        anyio_backends = ["asyncio", "trio"]

        async def test_it(self):
            async with anyio.create_task_group() as tg:
                tg.start_soon(anyio.sleep, 0)

    import anyio

    suite = unittest.defaultTestLoader.loadTestsFromTestCase
    for cls in WarmUp.anyio_backend_classes.values():
        result = unittest.TestResult()
        suite(cls).run(result)
        assert result.wasSuccessful(), result.errors
    if not pytest_too:
        return
    # pytest renders a KeyboardInterrupt by parsing the source file of every
    # frame (~0.2 s a run): parse each file once, here, for all the children
    import ast
    import functools
    import types

    from _pytest._code import source

    cached_ast = types.ModuleType("ast")
    cached_ast.__dict__.update(ast.__dict__)
    cached_ast.parse = functools.lru_cache(maxsize=None)(ast.parse)
    source.ast = cached_ast
    folder = os.path.splitext(sys.argv[1])[0] + "_warm_up"
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "test_warm_up.py"), "w") as f:
        f.write(WARM_UP_TEST)
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        pytest.main(["-q", "-p", "no:cacheprovider", "-p", "no:asyncio", folder])


WARM_UP_TEST = """
from anyio_unittest import AnyIOTestCase


class WarmUp(AnyIOTestCase):
    loop_scope = "class"

    async def test_interrupt(self):
        raise KeyboardInterrupt
"""


def main():
    jobs = json.load(open(sys.argv[1]))
    results = {}
    warm_up(any(job["runner"] == "pytest" for job in jobs))
    # what is imported now is never garbage: the children's collections skip it
    gc.collect()
    gc.freeze()
    for job in jobs:
        sys.stdout.flush()
        sys.stderr.flush()
        started = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            try:
                child(job)
            finally:
                os._exit(99)
        _, status = os.waitpid(pid, 0)
        results[job["name"]] = os.waitstatus_to_exitcode(status)
        results[job["name"] + ":seconds"] = time.perf_counter() - started
    with open(sys.argv[2], "w") as f:
        json.dump(results, f)


main()
'''

PROLOGUE = """
import sys
import unittest

import anyio

import anyio_unittest
from anyio_unittest import AnyIOTestCase
from mx_probe import mark

if sys.version_info < (3, 11):
    from exceptiongroup import ExceptionGroup

BACKEND = {backend}
BACKEND_NAME = BACKEND if isinstance(BACKEND, str) else BACKEND[0]
RUNNER = {runner!r}
MODKEY = {modkey!r}
KIND = {kind!r}
MODULE_FAULT = {module_fault!r}
FAULTS = {{}}


def cancel_exc():
    if BACKEND_NAME == "trio":
        import trio

        return trio.Cancelled._create()
    import asyncio

    return asyncio.CancelledError()


def fail(obj, message):
    if isinstance(obj, unittest.TestCase):
        obj.fail(message)
    raise AssertionError(message)


def where(obj):
    if isinstance(obj, type):
        return obj.CELL, "-"
    return obj.CELL, obj._testMethodName


def faulty(obj, event, test):
    return obj.FAULT == event and test in ("-", "test_1")


def step(obj, event):
    cell, test = where(obj)
    mark(f"{{KIND}}|{{cell}}|{{test}}|{{event}}")
    if faulty(obj, event, test):
        FAULTS[cell][0](obj)


def mstep(event):
    mark(f"{{KIND}}|{{MODKEY}}|-|{{event}}")
    if MODULE_FAULT == event:
        FAULTS[MODKEY][0](None)
"""

ASYNC_PART = """

async def astep(obj, event):
    await anyio.sleep(0)
    cell, test = where(obj)
    mark(f"{KIND}|{cell}|{test}|{event}")
    if faulty(obj, event, test):
        await FAULTS[cell][1](obj)


async def amstep(event):
    await anyio.sleep(0)
    mark(f"{KIND}|{MODKEY}|-|{event}")
    if MODULE_FAULT == event:
        await FAULTS[MODKEY][1](None)


class _Hooks:
    CELL = ""
    FAULT = ""

    @classmethod
    def setUpClass(cls):
        step(cls, "setUpClass")

    @classmethod
    def tearDownClass(cls):
        step(cls, "tearDownClass")

    def setUp(self):
        self.addCleanup(step, self, "sync cleanup")
        step(self, "setUp")

    async def asyncSetUp(self):
        self.addAsyncCleanup(astep, self, "async cleanup")
        await astep(self, "asyncSetUp")

    async def test_1(self):
        await astep(self, "test")

    async def test_2(self):
        await astep(self, "test")

    async def asyncTearDown(self):
        await astep(self, "asyncTearDown")

    def tearDown(self):
        step(self, "tearDown")


class _ClassHooks(_Hooks):
    @classmethod
    async def asyncSetUpClass(cls):
        cls.addAsyncClassCleanup(astep, cls, "async class cleanup")
        await astep(cls, "asyncSetUpClass")

    @classmethod
    async def asyncTearDownClass(cls):
        await astep(cls, "asyncTearDownClass")
"""

ASYNC_MODULE_HOOKS = """

async def asyncSetUpModule():
    anyio_unittest.addAsyncModuleCleanup(amstep, "async module cleanup")
    await amstep("asyncSetUpModule")


async def asyncTearDownModule():
    await amstep("asyncTearDownModule")
"""

TWIN_PART = """

class _Hooks:
    CELL = ""
    FAULT = ""

    @classmethod
    def setUpClass(cls):
        step(cls, "setUpClass")

    @classmethod
    def tearDownClass(cls):
        step(cls, "tearDownClass")

    def setUp(self):
        self.addCleanup(step, self, "sync cleanup")
        step(self, "setUp")
        self.addCleanup(step, self, "async cleanup")
        step(self, "asyncSetUp")

    def test_1(self):
        step(self, "test")

    def test_2(self):
        step(self, "test")

    def tearDown(self):
        step(self, "asyncTearDown")
        step(self, "tearDown")


class _ClassHooks(_Hooks):
    @classmethod
    def setUpClass(cls):
        step(cls, "setUpClass")
        cls.addClassCleanup(step, cls, "async class cleanup")
        step(cls, "asyncSetUpClass")

    @classmethod
    def tearDownClass(cls):
        step(cls, "asyncTearDownClass")
        step(cls, "tearDownClass")
"""

# pytest ignores unittest.addModuleCleanup (pytest-dev/pytest#14958): there the
# twin runs its module cleanups itself, where unittest would
TWIN_MODULE_HOOKS = """

_MODULE_CLEANUPS = []


def add_module_cleanup(fn, *args):
    if RUNNER == "unittest":
        unittest.addModuleCleanup(fn, *args)
    else:
        _MODULE_CLEANUPS.append((fn, args))


def run_module_cleanups():
    errors = []
    while _MODULE_CLEANUPS:
        fn, args = _MODULE_CLEANUPS.pop()
        try:
            fn(*args)
        except Exception as exc:
            errors.append(exc)
    if errors:
        raise errors[0]


def setUpModule():
    add_module_cleanup(mstep, "async module cleanup")
    try:
        mstep("asyncSetUpModule")
    except Exception:
        run_module_cleanups()
        raise


def tearDownModule():
    # unittest runs the module cleanups after tearDownModule returns or raises
    # an Exception, not after a BaseException
    try:
        mstep("asyncTearDownModule")
    except Exception:
        run_module_cleanups()
        raise
    run_module_cleanups()
"""


def fault_source(cell: Cell, key: str, twin: bool) -> str:
    """``fault_<cid>(obj)`` (sync) and ``afault_<cid>(obj)`` (async), registered
    as ``FAULTS[key]``; a traceback through them names the cell."""
    cid, fault = cell.cid, cell.fault
    message = f"fault {cid}"
    sync = {
        "fail": f"fail(obj, {message!r})",
        "value": f"raise ValueError({message!r})",
        "group": (
            f"try:\n        schild_{cid}()\n    except ValueError as exc:\n"
            f"        raise ExceptionGroup({message!r}, [exc]) from None"
        ),
        "cancel": "raise cancel_exc()",
        "exit": "raise SystemExit(3)",
        "interrupt": "raise KeyboardInterrupt",
    }[fault]
    if twin and fault == "cancel" and cell.hook in ASYNC_SCOPE_STEPS:
        sync = f"raise anyio_unittest.ScopeCancelled({message!r})"  # CANCELLED
    lines = [
        f"def schild_{cid}():\n    raise ValueError({message!r})\n",
        f"def fault_{cid}(obj):\n    {sync}\n",
    ]
    if twin:
        lines.append(f"FAULTS[{key!r}] = (fault_{cid}, None)\n")
    else:
        if fault == "group":
            body = (
                f"async with anyio.create_task_group() as tg:\n"
                f"        tg.start_soon(child_{cid})"
            )
            lines.append(
                f"async def child_{cid}():\n    await anyio.sleep(0)\n"
                f"    raise ValueError({message!r})\n"
            )
        else:
            body = f"await anyio.sleep(0)\n    {sync}"
        lines.append(f"async def afault_{cid}(obj):\n    {body}\n")
        lines.append(f"FAULTS[{key!r}] = (fault_{cid}, afault_{cid})\n")
    return "\n\n".join(lines)


def class_source(name: str, modkey: str, scope: str, hook: str, twin: bool) -> str:
    mixin = "_Hooks" if scope == "function" else "_ClassHooks"
    if twin:
        return (
            f"\n\nclass {name}({mixin}, unittest.TestCase):\n"
            f"    CELL = {modkey + '.' + name!r}\n    FAULT = {hook!r}\n"
        )
    return (
        f"\n\nclass {name}({mixin}, AnyIOTestCase):\n"
        f"    anyio_backend = BACKEND\n    loop_scope = {scope!r}\n"
        f"    CELL = {modkey + '.' + name!r}\n    FAULT = {hook!r}\n"
    )


def cell_class(cell: Cell) -> str:
    return f"C_{slug(cell.hook)}_{cell.fault}"


def module_source(
    *,
    twin: bool,
    runner: str,
    backend: str,
    modkey: str,
    scope: str | None,
    cells: Iterable[Cell] = (),
    module_cell: Cell | None = None,
    clean: Iterable[tuple[str, str]] = (),
) -> str:
    """One generated module: class cells, or one module-level cell, then clean
    classes (name, scope)."""
    parts = [
        PROLOGUE.format(
            backend=BACKENDS[backend],
            runner=runner,
            modkey=modkey,
            kind="t" if twin else "a",
            module_fault=module_cell.hook if module_cell else "",
        ),
        TWIN_PART if twin else ASYNC_PART,
    ]
    if scope in ("module", "session"):
        parts.append(TWIN_MODULE_HOOKS if twin else ASYNC_MODULE_HOOKS)
    if module_cell is not None:
        parts.append(fault_source(module_cell, modkey, twin))
        clean = [("C_first", module_cell.scope), ("C_second", module_cell.scope)]
        clean += [("Z_clean", module_cell.scope)]
    for cell in cells:
        name = cell_class(cell)
        parts.append(fault_source(cell, f"{modkey}.{name}", twin))
        parts.append(class_source(name, modkey, cell.scope, cell.hook, twin))
    for name, clean_scope in clean:
        parts.append(class_source(name, modkey, clean_scope, "", twin))
    return "\n".join(parts)


# --------------------------------------------------------------------------
# reading what a runner reported


@dataclass
class Report:
    """One reported problem: unittest's ``ERROR:``/``FAIL:`` block, or a failed
    pytest report."""

    kind: str  # unittest: ERROR / FAIL; pytest: "<when> <outcome>"
    name: str  # unittest: the description; pytest: the node id
    text: str
    exc: str  # the type of the exception reported
    frames: list[str]  # module:function of each frame of its tracebacks

    def module(self) -> str:
        if "::" in self.name:
            return self.name.split("::")[0].removesuffix(".py")
        inner = re.search(r"\((.*)\)", self.name)
        dotted = inner.group(1) if inner else self.name
        return dotted.split(".")[0]

    def klass(self) -> str:
        if "::" in self.name:
            parts = self.name.split("::")
            return parts[1] if len(parts) > 1 else ""
        inner = re.search(r"\((.*)\)", self.name)
        parts = (inner.group(1) if inner else "").split(".")
        return parts[1] if len(parts) > 1 else ""

    def signature(self, twin: str, cell_twin: str) -> tuple[str, str, str]:
        """Comparable with the twin's: module names mapped to the twin's."""
        return (self.kind, self.name.replace(twin, cell_twin), self.exc)


_BLOCK = re.compile(
    r"^={70}\n(ERROR|FAIL): (.+?)\n-{70}\n(.*?)(?=^={70}\n|^-{70}\nRan |\Z)",
    re.MULTILINE | re.DOTALL,
)


def exc_type_of(text: str) -> str:
    """The type of the outermost exception at the end of a traceback."""
    lines = [line for line in text.rstrip().splitlines() if line.strip()]
    if not lines:
        return ""
    last = lines[-1]
    if last.strip().startswith("+---"):  # an exception group's box
        for line in reversed(lines):
            found = re.match(r"^  \| ([\w.]+)(?::|$)", line)
            if found:
                return found.group(1).rsplit(".", 1)[-1]
        return "?group"
    return last.split(":")[0].strip().rsplit(".", 1)[-1]


_FRAME = re.compile(r'File "(?:[^"]*/)?(\w+)\.py", line \d+, in (\w+)')


def unittest_reports(output: str) -> list[Report]:
    return [
        Report(
            kind,
            name,
            text,
            exc_type_of(text),
            [f"{m}:{f}" for m, f in _FRAME.findall(text)],
        )
        for kind, name, text in _BLOCK.findall(output)
    ]


def pytest_reports(data: dict[str, Any]) -> list[Report]:
    out = []
    for r in data["reports"]:
        if r["outcome"] == "passed":
            continue
        crash = r["crash"].split(":")[0].strip().rsplit(".", 1)[-1]
        kind = f"{r['when']} {r['outcome']}"
        out.append(Report(kind, r["nodeid"], r["text"], crash, r["frames"]))
    return out


BAD_OUTPUT = (
    "ResourceWarning",
    "Task was destroyed but it is pending",
    "Event loop is closed",
    "Exception ignored",
    "was never awaited",
    "INTERNALERROR",
)

# --------------------------------------------------------------------------
# running


@dataclass
class ProcessResult:
    output: str
    returncode: int
    data: dict[str, Any]
    folder: Path
    reports: list[Report] = field(default_factory=list)

    @property
    def markers(self) -> list[str]:
        return list(self.data.get("markers", []))

    @cached_property
    def marker_index(self) -> dict[tuple[str, str], list[tuple[str, str]]]:
        """(side, module key) -> [(owner, marker without the side)], in order."""
        index: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for marker in self.markers:
            side, _, rest = marker.partition("|")
            name = rest.split("|")[0]
            index.setdefault((side, name.split(".")[0]), []).append((name, rest))
        return index

    @cached_property
    def report_index(self) -> dict[str, list[Report]]:
        """module -> its reports, in order."""
        index: dict[str, list[Report]] = {}
        for report in self.reports:
            index.setdefault(report.module(), []).append(report)
        return index

    @cached_property
    def fault_counts(self) -> Counter[str]:
        """``module:cid`` of each cell's fault -> how many reports show it (a
        traceback through one of its fault functions)."""
        counts: Counter[str] = Counter()
        for report in self.reports:
            keys = set()
            for frame in report.frames:
                module, _, function = frame.partition(":")
                found = _FAULT_FRAME.match(function)
                if found:
                    keys.add(f"{module}:{function[found.end() :]}")
            counts.update(keys)
        return counts


_FAULT_FRAME = re.compile(r"(?:a?fault|s?child)_")


def write_common(folder: Path) -> None:
    (folder / "mx_probe.py").write_text(PROBE)
    (folder / "sitecustomize.py").write_text("import mx_probe  # noqa: F401\n")


def env_for(folder: Path, report: Path | None, backend: str) -> dict[str, str]:
    env = {
        "PYTHONPATH": os.pathsep.join(
            [str(folder), str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
        ),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    if report is not None:
        env["MX_REPORT"] = str(report)
    if backend == "asyncio_uvloop":
        env["MX_WARM_UVLOOP"] = "1"
    return env


PYTEST_ARGS = [
    "-q",
    "-p",
    "no:cacheprovider",
    "-p",
    "no:asyncio",
    "-p",
    "no:hypothesispytest",
    "-p",
    "mx_probe",
    # the reports' frames are recorded by mx_probe; pytest's long rendering of
    # ~600 tracebacks would take most of the run
    "--tb=line",
]


#: for the cells that stop the run under pytest (one pytest a child, ~0.1 s
#: each, a quarter of it registering plugins): builtin plugins that take no
#: part in a run of unittest tests that stops are left out
LEAN = [
    word
    for name in (
        "anyio",
        "xdist",
        "xdist.looponfail",
        "doctest",
        "junitxml",
        "pastebin",
        "legacypath",
        "stepwise",
        "setuponly",
        "setupplan",
        "tmpdir",
        "monkeypatch",
        "recwarn",
        "python_path",
    )
    for word in ("-p", f"no:{name}")
]


def run_real(
    folder: Path,
    runner: str,
    targets: list[str],
    tag: str,
    backend: str,
    cwd: Path | None = None,
) -> ProcessResult:
    """``python -m unittest`` or ``python -m pytest`` in *cwd* (default:
    *folder*, which holds ``sitecustomize``)."""
    cwd = cwd or folder
    report = folder / f"report_{runner}_{tag}.json"
    args = (
        ["-m", "unittest", *targets]
        if runner == "unittest"
        else ["-m", "pytest", *PYTEST_ARGS, *targets]
    )
    outcome: Outcome = run(args, cwd, env_for(folder, report, backend), timeout=300)
    data = json.loads(report.read_text()) if report.exists() else {}
    result = ProcessResult(outcome.output, outcome.returncode, data, folder)
    result.reports = (
        unittest_reports(outcome.output)
        if runner == "unittest"
        else pytest_reports(data)
    )
    return result


def run_forked(
    folder: Path, jobs: list[tuple[str, str, str]], backend: str
) -> dict[str, ProcessResult]:
    """Run each job (name, runner, module) in a child of one fork server."""
    specs = []
    for name, runner, module in jobs:
        specs.append(
            {
                "name": name,
                "runner": runner,
                "module": module,
                "cwd": str(folder / module),
                "args": [*PYTEST_ARGS, *LEAN],
                "out": str(folder / f"{name}.out"),
                "report": str(folder / f"{name}.json"),
            }
        )
    tag = jobs[0][0] if jobs else "none"
    job_file = folder / f"jobs_{tag}.json"
    result_file = folder / f"results_{tag}.json"
    job_file.write_text(json.dumps(specs))
    server = run(
        ["mx_fork.py", str(job_file), str(result_file)],
        folder,
        env_for(folder, None, backend),
        timeout=600,
    )
    if not result_file.exists():
        raise AssertionError(f"the fork server failed:\n{server.output}")
    codes = json.loads(result_file.read_text())
    results = {}
    for spec in specs:
        name = spec["name"]
        out = Path(spec["out"])
        report = Path(spec["report"])
        data = json.loads(report.read_text()) if report.exists() else {}
        output = out.read_text() if out.exists() else ""
        reports = (
            pytest_reports(data)
            if spec["runner"] == "pytest"
            else unittest_reports(output)
        )
        results[name] = ProcessResult(
            output, codes.get(name, -1), data, folder / spec["module"], reports
        )
    return results


# --------------------------------------------------------------------------
# the generated suites of one backend


class BackendMatrix:
    """Generates and runs every cell of one backend under both runners.

    *twins*: the backend whose runs hold the sync twins of this one's cells (a
    twin depends on the backend only through the cancellation exception: the
    other backends run only the twins that differ, see ``own_twin``).
    """

    def __init__(self, backend: str, root: Path, twins: str) -> None:
        self.backend = backend
        self.twins = twins
        self.folder = root / backend
        self.folder.mkdir()
        write_common(self.folder)
        (self.folder / "mx_fork.py").write_text(FORK_SERVER)
        self.cells = all_cells(backend)
        #: runner -> the run of the cells that do not stop it
        self.shared: dict[str, ProcessResult] = {}
        #: (runner, cid, twin) -> the run of one cell that stops it
        self.stopped: dict[tuple[str, str, bool], ProcessResult] = {}

    def write(self, name: str, folder: str, source: str) -> None:
        """Write module *name* into the subfolder *folder*."""
        path = self.folder / folder
        path.mkdir(exist_ok=True)
        (path / f"{name}.py").write_text(source)

    def source(self, runner: str, twin: bool, **kwargs: Any) -> str:
        return module_source(twin=twin, runner=runner, backend=self.backend, **kwargs)

    # -- the cells that do not stop the run: one process per runner -----------

    def shared_modules(self, runner: str) -> list[str]:
        names = []
        folder = f"shared_{runner}"
        holder = self.twins == self.backend  # of every twin, or only its own
        for twin in (False, True):
            prefix = f"test_{runner[0]}{'t' if twin else 'a'}"
            for scope in SCOPES:
                cells = [
                    c
                    for c in self.cells
                    if c.scope == scope
                    and not c.module_level
                    and not stops(runner, c.hook, c.fault)
                    and (holder or not twin or own_twin(c))
                ]
                if not cells:
                    continue
                name = f"{prefix}_{scope}"
                names.append(name)
                self.write(
                    name,
                    folder,
                    self.source(
                        runner,
                        twin,
                        modkey=scope,
                        scope=scope,
                        cells=cells,
                        clean=[("Z_clean", scope)],
                    ),
                )
                for cell in self.cells:
                    if (
                        cell.scope == scope
                        and cell.module_level
                        and not stops(runner, cell.hook, cell.fault)
                        and (holder or not twin or own_twin(cell))
                    ):
                        name = f"{prefix}_{cell.cid}"
                        names.append(name)
                        self.write(
                            name,
                            folder,
                            self.source(
                                runner,
                                twin,
                                modkey=cell.cid,
                                scope=scope,
                                module_cell=cell,
                            ),
                        )
            if twin and not holder:
                continue
            # the last module: one clean class per scope, after every fault
            name = f"{prefix}_zz_clean"
            names.append(name)
            self.write(
                name,
                folder,
                self.source(
                    runner,
                    twin,
                    modkey="zz_clean",
                    scope=None,
                    clean=[(f"Z_{s}", s) for s in SCOPES],
                ),
            )
        return sorted(names)

    def run_shared(self, runner: str) -> None:
        """One process: unittest is given the modules in order; pytest their
        folder (collected in name order: the same order)."""
        names = self.shared_modules(runner)
        cwd = self.folder / f"shared_{runner}"
        self.shared[runner] = run_real(
            self.folder,
            runner,
            names if runner == "unittest" else ["."],
            "shared",
            self.backend,
            cwd=cwd,
        )

    # -- the cells that stop the run: one forked process each ------------------

    def stop_cells(self, runner: str) -> list[Cell]:
        return [c for c in self.cells if stops(runner, c.hook, c.fault)]

    def stop_module(self, runner: str, cell: Cell, twin: bool) -> str:
        name = f"test_{runner[0]}s{'t' if twin else 'a'}_{cell.cid}"
        if cell.module_level:
            source = self.source(
                runner, twin, modkey=cell.cid, scope=cell.scope, module_cell=cell
            )
        else:
            source = self.source(
                runner,
                twin,
                modkey=cell.cid,
                scope=cell.scope,
                cells=[cell],
                clean=[("Z_clean", cell.scope)],
            )
        self.write(name, name, source)  # alone: pytest lists its folder
        return name

    def holds_twin(self, cell: Cell) -> bool:
        """Whether this backend's folder runs the twin of *cell* (of any backend)."""
        return self.backend == twin_holder(cell)

    def stop_jobs(
        self, runner: str, everything: list[Cell]
    ) -> list[tuple[float, Callable[[], None]]]:
        """This backend's cells that stop *runner*, and the twins it holds, in
        chunks of one fork server each: (estimated seconds, run it)."""
        jobs = []
        index: dict[str, tuple[str, str, bool]] = {}
        for cell in self.stop_cells(runner):
            module = self.stop_module(runner, cell, twin=False)
            jobs.append((module, runner, module))
            index[module] = (runner, cell.cid, False)
        for cell in everything:
            if stops(runner, cell.hook, cell.fault) and self.holds_twin(cell):
                module = self.stop_module(runner, cell, twin=True)
                if module not in index:
                    jobs.append((module, runner, module))
                    index[module] = (runner, cell.cid, True)

        def run_chunk(chunk: list[tuple[str, str, str]]) -> None:
            for name, result in run_forked(self.folder, chunk, self.backend).items():
                self.stopped[index[name]] = result

        each = 0.1 if runner == "pytest" else 0.03  # seconds a child, unloaded
        size = 48 if runner == "pytest" else 90
        return [
            (1 + each * len(jobs[i : i + size]), partial(run_chunk, jobs[i : i + size]))
            for i in range(0, len(jobs), size)
        ]


def own_twin(cell: Cell) -> bool:
    """Whether the twin of *cell* differs from the asyncio cell's twin: only in
    the cancellation exception, where unittest sees it."""
    return (
        cell.backend == "trio"
        and cell.fault == "cancel"
        and cell.hook not in ASYNC_SCOPE_STEPS
    )


def twin_holder(cell: Cell) -> str:
    return cell.backend if own_twin(cell) else "asyncio"


# --------------------------------------------------------------------------
# checks


def diff(what: str, got: list[Any], want: list[Any]) -> str:
    lines = difflib.unified_diff(
        [str(x) for x in want], [str(x) for x in got], "want", "got", lineterm="", n=2
    )
    return f"{what} (- want, + got):\n    " + "\n    ".join(lines)


def owned_markers(result: ProcessResult, kind: str, key: str, whole: bool) -> list[str]:
    """Markers of the async side (*kind* "a") or the twin ("t") for *key*: a
    class (``modkey.Class``), a module's own hooks (``modkey``), or with *whole*
    a module key and all of its classes."""
    return [
        rest
        for name, rest in result.marker_index.get((kind, key.split(".")[0]), [])
        if name == key or (whole and name.startswith(key + "."))
    ]


def evidence(cell: Cell, module: str, report: Report) -> bool:
    """Whether *report*'s tracebacks go through the cell's fault in *module*
    (any module if *module* is empty)."""
    names = {f"{p}_{cell.cid}" for p in ("fault", "afault", "child", "schild")}
    return any(
        frame.partition(":")[2] in names
        and (not module or frame.startswith(module + ":"))
        for frame in report.frames
    )


def reports_of(result: ProcessResult, module: str, klass: str | None) -> list[Report]:
    return [
        x
        for x in result.report_index.get(module, [])
        if klass is None or x.klass() == klass
    ]


def fault_count(result: ProcessResult, cell: Cell, module: str) -> int:
    """How many of all the reports of a run show the cell's fault of *module*."""
    return result.fault_counts[f"{module}:{cell.cid}"]


def between_user_frames(frames: list[str]) -> bool:
    """Whether a traceback has a frame of the package after one of the suite's
    (unittest hides only the leading frames of modules marked ``__unittest``;
    pytest hides all of them in tests, not in class fixtures)."""
    user = False
    for frame in frames:
        if not frame:  # the next traceback of the chain or group
            user = False
        elif frame.startswith("test_"):
            user = True
        elif user and frame.startswith("anyio_unittest:"):
            return True
    return False


def compare_reports(
    result: ProcessResult,
    twin_result: ProcessResult,
    runner: str,
    cell: Cell,
    a: str,
    t: str,
) -> list[str]:
    """Differences between the reports of the cell (module *a*) and those of its
    twin (module *t*): what, where, how often, and no package frames."""
    klass = None if cell.module_level else cell_class(cell)
    problems = []
    got = [x.signature(a, t) for x in reports_of(result, a, klass)]
    twin_reports = reports_of(twin_result, t, klass)
    want = [x.signature(t, t) for x in twin_reports]
    if got != want:
        problems.append(diff("reported", got, want))
    seen = fault_count(result, cell, a)
    twin_seen = fault_count(twin_result, cell, t)
    if seen != twin_seen:
        problems.append(f"the fault is reported {seen} times, the twin's {twin_seen}")
    for x in reports_of(result, a, None):
        # unittest: what it prints; pytest: the frames it would print if it did
        # not hide them (the text of the package's own errors is all ours)
        shown = runner == "unittest" and "/anyio_unittest/" in x.text
        if shown or between_user_frames(x.frames):
            problems.append(f"the package's frames are shown in {x.name}:\n{x.text}")
    return problems


def cell_key(cell: Cell, shared: bool) -> str:
    if cell.module_level:
        return cell.cid
    return f"{cell.scope if shared else cell.cid}.{cell_class(cell)}"


def check_shared_cell(
    result: ProcessResult, twin: ProcessResult, runner: str, cell: Cell
) -> list[str]:
    stem = cell.cid if cell.module_level else cell.scope
    a, t = f"test_{runner[0]}a_{stem}", f"test_{runner[0]}t_{stem}"
    problems = compare_reports(result, twin, runner, cell, a, t)
    key = cell_key(cell, shared=True)
    got = owned_markers(result, "a", key, cell.module_level)
    want = owned_markers(twin, "t", key, cell.module_level)
    if not want:
        problems.append("the twin recorded nothing: the generated suite is broken")
    want = expected_markers(cell, want)
    if got != want:
        problems.append(diff("hooks that ran", got, want))
    return problems


def teardown_tail(cell: Cell, got: list[str], want: list[str]) -> bool:
    """Whether *got* is *want* plus, at most, what the library runs of the
    module's async teardown as the run stops (unittest runs none of it then):
    asyncTearDownModule if asyncSetUpModule had succeeded, then the module
    cleanups."""
    if got[: len(want)] != want:
        return False
    tail = got[len(want) :]
    teardown = f"{cell.cid}|-|asyncTearDownModule"
    cleanup = f"{cell.cid}|-|async module cleanup"
    setup_ok = f"{cell.cid}|-|asyncSetUpModule" in got and (
        cell.hook != "asyncSetUpModule"
    )
    allowed = [m for m in ([teardown] if setup_ok else []) + [cleanup] if m not in want]
    return tail in (allowed, allowed[1:], [])


def stop_line(result: ProcessResult) -> str:
    """How a run that stopped ended: its exit code and the final exception."""
    code = result.returncode
    if code == -2:  # killed by the SIGINT Python sends itself: the same as 130
        code = 130
    if re.search(r"!{3,} KeyboardInterrupt !{3,}", result.output):
        last = "pytest: KeyboardInterrupt"
    elif "Traceback" in result.output:
        last = exc_type_of(result.output)
    else:
        last = "no traceback"
    return f"exit code {code}, {last}"


def check_stop_cell(
    result: ProcessResult, twin: ProcessResult, runner: str, cell: Cell
) -> list[str]:
    a, t = f"test_{runner[0]}sa_{cell.cid}", f"test_{runner[0]}st_{cell.cid}"
    problems = []
    how, twin_how = stop_line(result), stop_line(twin)
    if how != twin_how:
        problems.append(f"the run ended: got {how!r}, want {twin_how!r}")
    if cell.fault == "interrupt" and not twin_how.endswith("KeyboardInterrupt"):
        problems.append(f"the twin did not stop for KeyboardInterrupt: {twin_how}")
    if runner == "pytest":
        problems += compare_reports(result, twin, runner, cell, a, t)
    key = cell_key(cell, shared=False)
    got = owned_markers(result, "a", key, True)
    want = owned_markers(twin, "t", key, True)
    if not want:
        problems.append("the twin recorded nothing: the generated suite is broken")
    if not teardown_tail(cell, got, want):
        problems.append(diff("hooks that ran", got, want))
    problems += process_problems(result, runner, stopped=True)
    return problems


def scope_of(owner: str) -> str:
    for prefix, scope in (
        ("test ", "function"),
        ("class runner of ", "class"),
        ("module runner of ", "module"),
        ("session runner", "session"),
    ):
        if owner.startswith(prefix):
            return scope
    return "?"


def process_problems(result: ProcessResult, runner: str, stopped: bool) -> list[str]:
    """Runners, descriptors and warnings of one process."""
    data = result.data
    if not data:
        return [f"no report was written; the output was:\n{result.output[-5000:]}"]
    problems = []
    for bad in BAD_OUTPUT:
        if bad in result.output:
            problems.append(f"{bad!r} in the output:\n{result.output[-5000:]}")
    if data["fd_end"] != data["fd_start"]:
        problems.append(
            f"{data['fd_start']} file descriptors open at start-up, "
            f"{data['fd_end']} at the end"
        )
    final = data["runners_final"]
    for entry in final:
        if not (entry["closed"] and entry["ended"]):
            problems.append(f"runner never closed: {entry['owner']}")
    for owner, count in Counter(e["owner"] for e in final).items():
        if count > 1:
            problems.append(f"{count} runners opened for {owner}")
    sessions = [e for e in final if scope_of(e["owner"]) == "session"]
    if len(sessions) > 1:
        problems.append(f"{len(sessions)} session runners")
    if not stopped:
        # under unittest, session runners end at interpreter exit; all others
        # (and under pytest all) must be closed by then
        for entry in data["runners_at_exit"]:
            keep = scope_of(entry["owner"]) == "session" and runner == "unittest"
            if not entry["closed"] and not keep:
                problems.append(f"runner open at interpreter exit: {entry['owner']}")
    return problems


def expected_owners(result: ProcessResult, runner: str, backend: str) -> set[str]:
    """The runners a shared run must have opened, from the hooks that ran."""
    owners = set()
    for marker in result.markers:
        side, key, test, event = marker.split("|")
        if side != "a":
            continue
        modkey, _, klass = key.partition(".")
        module = f"test_{runner[0]}a_{modkey}"
        scope = klass[2:] if modkey == "zz_clean" else modkey.split("_")[0]
        if scope == "function" and test != "-":
            owners.add(f"test {module}.{klass}.{test}")
        elif scope == "class" and event == "asyncSetUpClass":
            owners.add(f"class runner of {module}.{klass}")
        elif scope == "module" and event in ("asyncSetUpModule", "asyncSetUpClass"):
            owners.add(f"module runner of {module} ({backend})")
        elif scope == "session" and event in ("asyncSetUpModule", "asyncSetUpClass"):
            owners.add(f"session runner ({backend})")
    return owners


def owner_kind(owner: str) -> str:
    """A runner's owner without what the label adds after a session's backend."""
    return re.sub(r"^(session runner \(\w+\)).*", r"\1", owner)
