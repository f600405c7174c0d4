"""Guard rails: what keeps a shared runner as trustworthy as a fresh one.

Each guard rail is one object here, and follows one protocol: its class
attributes are checked when a test class is defined (``check``), it looks at a
test before it starts (``start``), and after the test's cleanups it says whether
it found something (``pending``, cheap: every test asks) and reports it
(``report``: the texts the test fails with). Adding a guard rail is adding a
class here, to :data:`GUARDS`, and its attribute to ``AnyIOTestCase``.
"""

from __future__ import annotations

import bdb
import os
import sys
import warnings
from typing import TYPE_CHECKING, Any

from ._driver import GRACE, ScopeTask
from ._exceptions import ConfigurationError, LeakedTaskWarning, LoopErrorWarning
from ._frames import TASKS_SHOWN, describe_task
from ._report import note_findings
from ._threads import describe_work

if TYPE_CHECKING:
    from ._testrun import TestRun

# our frames are hidden from reported tracebacks: unittest's flag, and pytest's
__unittest = True
__tracebackhide__ = True


class Guard:
    """The protocol; a guard with nothing to do at a step keeps the default."""

    def check(self, cls: type, where: str) -> None:
        """Validate *cls*'s attributes (*where*: "module.Class"), or raise
        ConfigurationError naming the class, the attribute and the fix."""

    def start(self, run: TestRun) -> Any:
        """Before the test's first hook. What it returns is the guard's state
        for this test, kept in ``run.states[guard]`` (None: none is kept)."""

    def pending(self, run: TestRun) -> Any:
        """After the test's cleanups: what there is to report (falsy: nothing)."""
        return None

    def report(self, run: TestRun, found: Any) -> list[str]:
        """What *pending* found, as the texts the test fails with (or warns)."""
        return []


# -- time limits ------------------------------------------------------------------

TIMEOUT_ENV = "ANYIO_UNITTEST_TIMEOUT"
_MISSING: Any = object()
#: set on a test method by the ``timeout()`` decorator
TIMEOUT_ATTR = "__anyio_unittest_timeout__"


def timeout_value(value: object, where: str) -> float | None:
    if value is None:
        return None
    # "not > 0" also rejects NaN
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigurationError(
            f"{where} = {value!r}: a timeout is a positive number of seconds, "
            f"or None for no limit"
        )
    return float(value)


def env_timeout() -> float | None:
    raw = os.environ.get(TIMEOUT_ENV, "").strip()
    if not raw or raw.lower() == "none":
        return None
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:  # NaN too
        raise ConfigurationError(
            f"{TIMEOUT_ENV}={raw!r}: give a positive number of seconds (or unset it)"
        )
    return value


def under_debugger() -> bool:
    """pdb (or another bdb debugger), or PyCharm's and VS Code's pydevd."""
    trace = sys.gettrace()
    return "pydevd" in sys.modules or isinstance(
        getattr(trace, "__self__", None), bdb.Bdb
    )


class TimeLimits(Guard):
    """``timeout`` for a test's async phases, ``class_timeout`` for class-level
    steps. The limits themselves are kept by the driver (real seconds)."""

    def check(self, cls: type, where: str) -> None:
        for name in ("timeout", "class_timeout"):
            timeout_value(getattr(cls, name, None), f"{where}.{name}")
        env_timeout()  # read again by each class; a bad value fails at import

    @staticmethod
    def test_limit(cls: type, method: object) -> float | None:
        """The limit of a test's async phases: its method's decorator's, else
        the environment's, else the class's; none under a debugger (stepping
        through a test must not fail it). Worked out with the test's
        ``MethodInfo``, before its run: the plan of the run depends on it."""
        limit = getattr(method, TIMEOUT_ATTR, _MISSING)
        if limit is _MISSING:
            limit = env_timeout()
            if limit is None:
                limit = getattr(cls, "timeout", None)
        return None if limit is None or under_debugger() else limit

    @staticmethod
    def class_limit(cls: type) -> float | None:
        if under_debugger():
            return None
        return timeout_value(getattr(cls, "class_timeout", None), "class_timeout")


# -- tasks and threads a test leaves running ----------------------------------------

LEAKED_TASKS = ("fail", "warn", "cancel", "ignore")


class LeftRunning(Guard):
    """``leaked_tasks``: tasks and worker threads a test leaves running."""

    def check(self, cls: type, where: str) -> None:
        check_policy(cls, where, "leaked_tasks", LEAKED_TASKS)

    def pending(self, run: TestRun) -> Any:
        if run.function_scope:
            return True  # its leftovers are ended in the test, whatever the policy
        if run.config.policy("leaked_tasks") == "ignore":
            return None
        task = run.task
        runner = run.runner
        return (
            task.leaked_tasks()
            or runner.busy_threads(task.marker)
            or runner.pending_timers(task.marker)
        )

    def report(self, run: TestRun, found: Any) -> list[str]:
        task = run.task
        ignore = run.config.policy("leaked_tasks") == "ignore"
        if run.function_scope:
            # the runner closes with the test: end its tasks now, inside the
            # test, so that what they raise is reported here; give its threads
            # the time a runner's close gives them
            problems = stuck(task.cancel_tasks(task.leaked_tasks(everything=True)))
            threads = run.runner.busy_threads(task.marker, GRACE)
        else:
            problems = []
            leaked = task.leaked_tasks()
            if leaked:
                problems += self.tasks(run, leaked)
            threads = run.runner.busy_threads(task.marker)
            # after the tasks: a leftover task's timers were cancelled with it
            timers = run.runner.pending_timers(task.marker)
            if timers:
                problems += self.timers(run, timers)
        if threads and not ignore:
            problems += self.threads(run, threads)
        return problems

    def timers(self, run: TestRun, timers: list[Any]) -> list[str]:
        now = run.runner.loop.time()  # type: ignore[attr-defined]
        names = "\n".join(
            f"  {t.handle!r}, due in "
            f"{t.handle.when() - now:.3g} s, scheduled at {t.where}"
            for t in timers[:TASKS_SHOWN]
        )
        if len(timers) > TASKS_SHOWN:
            names += f"\n  ... and {len(timers) - TASKS_SHOWN} more"
        for timer in timers:
            timer.handle.cancel()
        note_findings(run.runner.record, leaked=len(timers))
        text = (
            f"{run.case.id()} left {len(timers)} timer(s) scheduled on its shared "
            f"loop (they were cancelled, or they would have fired in a later test; "
            f"set leaked_tasks = 'ignore' on {run.config.name} if they are meant to "
            f"outlive the test):\n{names}"
        )
        if run.config.policy("leaked_tasks") == "fail":
            return [text]
        if run.config.policy("leaked_tasks") == "warn":
            warnings.warn(LeakedTaskWarning(text), stacklevel=1)
        return []

    def check_example(self, run: TestRun, task: ScopeTask) -> list[str]:
        """An example of a Hypothesis test, in a scope task of its own."""
        if run.function_scope or run.config.policy("leaked_tasks") == "ignore":
            return []
        leaked = task.leaked_tasks()
        return self.tasks(run, leaked, task) if leaked else []

    def tasks(
        self, run: TestRun, leaked: list[Any], task: ScopeTask | None = None
    ) -> list[str]:
        task = task or run.task
        policy = run.config.policy("leaked_tasks")
        note_findings(run.runner.record, leaked=len(leaked))
        names = "\n".join(
            "  "
            + describe_task(
                t.get_name() if hasattr(t, "get_name") else t.name,
                t.get_coro() if hasattr(t, "get_coro") else t.coro,
            )
            for t in leaked[:TASKS_SHOWN]
        )
        if len(leaked) > TASKS_SHOWN:
            names += f"\n  ... and {len(leaked) - TASKS_SHOWN} more"
        cancelled = run.runner.can_cancel_tasks
        left = stuck(task.cancel_tasks(leaked)) if cancelled else []
        fate = (
            "they were cancelled"
            if cancelled
            else "trio can only cancel them through their nursery, so they go on"
        )
        text = (
            f"{run.case.id()} left {len(leaked)} task(s) running ({fate}; set "
            f"leaked_tasks = 'ignore' on {run.config.name} if they are "
            f"meant to outlive the test, or start them in asyncSetUpClass):\n{names}"
        )
        if policy == "fail":
            return [text, *left]
        if policy == "warn" or not cancelled:
            # "cancel" can't be honoured on trio: say so rather than stay silent
            warnings.warn(LeakedTaskWarning(text), stacklevel=1)
        return left

    def threads(self, run: TestRun, threads: list[Any]) -> list[str]:
        names = "\n".join(f"  {describe_work(work)}" for work in threads)
        text = (
            f"{run.case.id()} left {len(threads)} worker thread(s) running (a "
            f"thread can't be cancelled: it goes on, and the process won't wait "
            f"for it at exit; set leaked_tasks = 'ignore' on {run.config.name} "
            f"if that is meant, or await what runs there):\n{names}"
        )
        if run.config.policy("leaked_tasks") == "fail":
            return [text]
        warnings.warn(LeakedTaskWarning(text), stacklevel=1)
        return []


def stuck(tasks: list[Any]) -> list[str]:
    """The leftover *tasks* that ignored their cancellation, as a problem."""
    if not tasks:
        return []
    names = "\n".join(f"  {describe_task(t.get_name(), t.get_coro())}" for t in tasks)
    return [
        f"{len(tasks)} leftover task(s) had not ended {GRACE:g} s after their "
        f"cancellation, so their runner is left behind:\n{names}"
    ]


# -- errors the loop only logs ------------------------------------------------------

LOOP_ERRORS = ("fail", "warn", "log")


class LoopErrorsGuard(Guard):
    """``loop_errors``: what an error the event loop reports (asyncio: a
    callback that raised, "Task exception was never retrieved", a library's
    ``call_exception_handler``) does to the test it happened in. It is always
    logged too, as asyncio logs it; ``"log"`` is only that, as under
    ``IsolatedAsyncioTestCase``."""

    def check(self, cls: type, where: str) -> None:
        check_policy(cls, where, "loop_errors", LOOP_ERRORS)

    def pending(self, run: TestRun) -> Any:
        errors = run.runner.take_errors()
        if errors and run.config.policy("loop_errors") == "log":
            return None
        return errors

    def report(self, run: TestRun, found: Any) -> list[str]:
        errors = [*found, *run.runner.take_errors()]
        note_findings(run.runner.record, loop_errors=len(errors))
        text = (
            f"the event loop reported these errors during the test (set "
            f"loop_errors = 'log' on {run.config.name} to only log them, as "
            f"IsolatedAsyncioTestCase does):\n\n" + "\n".join(errors)
        )
        if run.config.policy("loop_errors") == "fail":
            return [text]
        warnings.warn(LoopErrorWarning(text), stacklevel=1)
        return []


# -- policies: a class attribute, or an environment variable for a whole run ----

#: the environment variable that sets each policy for every class of a run
POLICY_ENV = {
    "leaked_tasks": "ANYIO_UNITTEST_LEAKED_TASKS",
    "loop_errors": "ANYIO_UNITTEST_LOOP_ERRORS",
}


def policy(cls: type, name: str) -> str:
    """A policy's value for *cls*: the environment's, else the class's."""
    value = os.environ.get(POLICY_ENV[name], "").strip()
    return value or getattr(cls, name, "fail")


def check_policy(cls: type, where: str, name: str, values: tuple[str, ...]) -> None:
    value = getattr(cls, name, "fail")
    if value not in values:
        raise ConfigurationError(
            f"{where}: {name} = {value!r}; use one of {', '.join(map(repr, values))}"
        )
    env = POLICY_ENV[name]
    raw = os.environ.get(env, "").strip()
    if raw and raw not in values:
        raise ConfigurationError(
            f"{env}={raw!r}: use one of {', '.join(map(repr, values))} (or unset "
            f"it to let each class choose)"
        )


TIME_LIMITS = TimeLimits()
LEFT_RUNNING = LeftRunning()
GUARDS: tuple[Guard, ...] = (TIME_LIMITS, LEFT_RUNNING, LoopErrorsGuard())
#: the guards that look at a test after it: asked in this order
AFTER = tuple(g for g in GUARDS if type(g).pending is not Guard.pending)
#: the guards that look at a test before it
BEFORE = tuple(g for g in GUARDS if type(g).start is not Guard.start)
