"""What the package tells about its runners, apart from a test's own outcome.

A :class:`Record` is kept for each runner (for function scope, one for all the
runners of a class): who opened it, for which scope, how many tests ran on it,
what opening it, its class and module steps, its tests and closing it took, and
what it left. From them:

* the runner report, printed at the end of a run when ``ANYIO_UNITTEST_REPORT=1``
  (by the pytest plugin in its terminal summary, otherwise at interpreter exit,
  once the last runners are closed);
* the explanation added to an error of an object used on a runner other than
  the one it belongs to (asyncio's "bound to a different event loop", trio's
  ``RunFinishedError``): which runner the test ran on, which other runners the
  object may come from, and the fix.

The scopes open and close runners through :func:`open_runner` and
:func:`close_runner`, so that every runner has its record.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ._exceptions import ConfigurationError
from ._frames import related_exceptions

if TYPE_CHECKING:
    from ._backends import Backend
    from ._driver import Runner

# our frames are hidden from reported tracebacks: unittest's flag, and pytest's
__unittest = True
__tracebackhide__ = True

REPORT_ENV = "ANYIO_UNITTEST_REPORT"


def report_wanted() -> bool:
    """Whether ``ANYIO_UNITTEST_REPORT`` asks for the runner report."""
    raw = os.environ.get(REPORT_ENV, "").strip()
    if raw in ("", "0"):
        return False
    if raw == "1":
        return True
    raise ConfigurationError(
        f"{REPORT_ENV}={raw!r}: set it to 1 to print a report of the runners at "
        f"the end of the run, or to 0 (or unset it) for none"
    )


class Record:
    """One runner (or a class's function-scope runners): what it ran and cost."""

    __slots__ = (
        "backend",
        "closed",
        "closing",
        "hooks",
        "label",
        "leaked",
        "left_behind",
        "loop_errors",
        "module",
        "opening",
        "runners",
        "scope",
        "testing",
        "tests",
    )

    def __init__(self, label: str, backend: str, scope: str, module: str) -> None:
        #: who it was opened for ("class runner of x.Y")
        self.label = label
        self.backend = backend
        self.scope = scope
        self.module = module
        self.runners = 0
        self.tests = 0
        #: seconds spent opening, in class and module steps, in tests (timed
        #: only for the report), closing
        self.opening = 0.0
        self.hooks = 0.0
        self.testing = 0.0
        self.closing = 0.0
        self.closed = 0
        self.leaked = 0
        self.loop_errors = 0
        #: why each of its runners was left behind
        self.left_behind: list[str] = []

    def describe(self) -> str:
        """How an error message names it."""
        if self.scope == "function":
            return f"a runner of its own ({self.backend}, loop_scope = 'function')"
        closed = ", already closed" if self.closed >= self.runners else ""
        return f"the {self.label} ({self.backend}, loop_scope = {self.scope!r}{closed})"


#: every record of this process, in the order opened
RECORDS: list[Record] = []
_FUNCTION_RECORDS: dict[tuple[str, str], Record] = {}
#: whether tests are timed (for the report; read once, at the first runner)
_timed: bool | None = None


def timed() -> bool:
    global _timed
    if _timed is None:
        _timed = report_wanted()
    return _timed


def open_runner(
    backend: Backend, label: str, scope: str, module: str, opener: str = ""
) -> Runner:
    """Open a runner of *backend* for *label*, with its record.

    :param opener: for function scope, the class ("x.Y") whose runners share a
        record
    """
    if scope == "function":
        record = _FUNCTION_RECORDS.get((opener, backend.id))
        if record is None:
            record = Record(
                f"function-scope runners of {opener}", backend.id, scope, module
            )
            _FUNCTION_RECORDS[opener, backend.id] = record
            RECORDS.append(record)
    else:
        record = Record(label, backend.id, scope, module)
        RECORDS.append(record)
    timed()  # a bad ANYIO_UNITTEST_REPORT fails before any runner opens
    start = time.perf_counter()
    runner = backend.open_runner(label)
    record.opening += time.perf_counter() - start
    record.runners += 1
    runner.record = record
    return runner


def close_runner(runner: Runner) -> None:
    """Close *runner*, timed, noting in its record whether it was left behind."""
    record: Record | None = runner.record
    start = time.perf_counter()
    try:
        runner.close()
    finally:
        if record is not None:
            record.closing += time.perf_counter() - start
            record.closed += 1
            if runner.left_behind is not None:
                record.left_behind.append(runner.left_behind)


def timing(record: Record | None, hooks: bool) -> Callable[[], None]:
    """Start timing a step; call what it returns when the step is over."""
    if record is None or not (hooks or timed()):
        return _nothing
    start = time.perf_counter()

    def stop() -> None:
        elapsed = time.perf_counter() - start
        if hooks:
            record.hooks += elapsed
        else:
            record.testing += elapsed

    return stop


def _nothing() -> None:
    pass


# -- the runner report ------------------------------------------------------------

_printed = False


def format_report() -> str:
    """The runner report: one block per runner."""
    records = [r for r in RECORDS if r.runners]
    if not records:
        return ""
    tests = sum(r.tests for r in records)
    runners = sum(r.runners for r in records)
    lines = [
        f"anyio_unittest runner report: {runners} runner(s) opened, {tests} "
        f"test(s) ran on them"
    ]
    for r in records:
        many = f", {r.runners} runners" if r.runners > 1 else ""
        lines.append(f"  {r.label} [{r.backend}, loop_scope = {r.scope!r}{many}]")
        total = r.opening + r.hooks + r.testing + r.closing
        hooks = f"; class/module steps {_ms(r.hooks)}" if r.scope != "function" else ""
        lines.append(
            f"    {r.tests} test(s), {_ms(r.testing)} in them{hooks}; opening "
            f"{_ms(r.opening)}, closing {_ms(r.closing)}; {_ms(total)} in all"
        )
        left = []
        if r.leaked:
            left.append(f"{r.leaked} leaked task(s) or timer(s)")
        if r.loop_errors:
            left.append(f"{r.loop_errors} loop error(s)")
        left += [f"left behind: {reason}" for reason in r.left_behind]
        if r.closed < r.runners and not r.left_behind:
            left.append(f"{r.runners - r.closed} runner(s) not closed")
        if left:
            lines.append("    left: " + "; ".join(left))
    return "\n".join(lines) + "\n"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def take_report() -> str:
    """The runner report if it is asked for and was not given yet (else "");
    once per process."""
    global _printed
    if _printed or not report_wanted():
        return ""
    text = format_report()
    _printed = bool(text)
    return text


def print_report(write: Callable[[str], object] | None = None) -> None:
    """Print the runner report if it is asked for, once per process."""
    text = take_report()
    if not text:
        return
    if write is None:
        sys.stderr.write("\n" + text)
        sys.stderr.flush()
    else:
        write(text)


# -- objects of another runner ------------------------------------------------------

#: asyncio's messages for an object (a lock, an event, a queue, a future) used
#: on a loop other than the one it was bound to
_ASYNCIO_MESSAGES = (
    "is bound to a different event loop",
    "attached to a different loop",
)
_NOTE = "anyio_unittest: "


def explain_cross_loop(error: BaseException, record: Record | None) -> None:
    """If *error* is (or holds) the error of an object of another runner, add
    to it which runner the code ran on, where the object may come from, and
    the fix."""
    if record is None:
        return
    found = _cross_loop_error(error)
    if found is None:
        return
    exc, kind = found
    if any(_NOTE in note for note in getattr(exc, "__notes__", ())):
        return
    others = [
        r
        for r in reversed(RECORDS)
        if r is not record and r.backend.split("_")[0] == record.backend.split("_")[0]
    ]
    # the module's own runners first: the likeliest to share objects
    others.sort(key=lambda r: r.module != record.module)
    origin = ""
    if others:
        names = "; ".join(r.describe() for r in others[:3])
        more = f" (and {len(others) - 3} more)" if len(others) > 3 else ""
        origin = (
            f" The other {record.backend} runners of this run include {names}{more}."
        )
    if kind == "asyncio":
        what = (
            "it uses an asyncio object (a Lock, Event, Condition, Semaphore, "
            "Queue or future, or a client holding one) that belongs to another "
            "event loop: the one it was made or first used on"
        )
    else:
        what = (
            "it uses something of a trio run that has ended (a TrioToken, or "
            "a portal or client holding one), made on another runner"
        )
    note = (
        f"{_NOTE}this code ran on {record.describe()}; {what}.{origin} An object "
        f"made in asyncSetUpClass or asyncSetUpModule can only be used on the "
        f"runner that ran that hook: to share it between classes, give them one "
        f"runner (loop_scope = 'module' or 'session'), or make the object per "
        f"class (in asyncSetUpClass) or per test (in asyncSetUp)."
    )
    add_note = getattr(exc, "add_note", None)
    if add_note is not None:
        add_note(note)
    elif exc.args and isinstance(exc.args[0], str):  # Python 3.10
        exc.args = (f"{exc.args[0]}\n{note}", *exc.args[1:])


def _cross_loop_error(error: BaseException) -> tuple[BaseException, str] | None:
    trio = sys.modules.get("trio")
    for exc in related_exceptions(error):
        if type(exc) is RuntimeError and any(
            message in str(exc) for message in _ASYNCIO_MESSAGES
        ):
            return exc, "asyncio"
        if trio is not None and isinstance(exc, trio.RunFinishedError):
            return exc, "trio"
    return None


def note_findings(record: Record | None, leaked: int = 0, loop_errors: int = 0) -> None:
    """What a guard rail found on a runner, for the report."""
    if record is not None:
        record.leaked += leaked
        record.loop_errors += loop_errors
