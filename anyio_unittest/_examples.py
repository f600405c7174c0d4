"""Hypothesis examples on the test's runner (``@given`` on ``async def`` tests).

Hypothesis calls ``execute_example`` of the test case for each example it
tries. This module is deliberately *not* marked ``__unittest``: unittest cuts a
failure's traceback at the first marked frame after the user's, and this frame
sits between Hypothesis's wrapper and the user's failing line. Where Python
allows it, the traceback loses this frame anyway (``hide_own_frames``, then a
bare ``raise``: 3.11+); on 3.10 the re-raise puts this frame back, and then it
is better shown than have the failing line cut off.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from ._driver import hide_own_frames
from ._scopes import await_object

__tracebackhide__ = True


def execute_example(self: Any, function: Callable[[], object]) -> object:
    """Run one Hypothesis example; ``@given`` on an ``async def`` test works.

    The example runs on the test's runner, in a scope task of its own whose
    context is a fresh copy of the test's, so nothing one example sets is seen
    by the next.
    """
    context = self._anyio_unittest_context
    runner = self._anyio_unittest_runner
    if context is None or runner is None:
        raise RuntimeError(f"{self.id()}: an example can only run inside the test")
    example = context.copy()
    result = example.run(function)
    if not hasattr(result, "__await__"):
        return result
    task = runner.open_task(example, f"an example of test {self.id()}")
    try:
        value = task.call(await_object, result, timeout=self._anyio_unittest_timeout)
        if type(self).loop_scope != "function" and type(self).leaked_tasks != "ignore":
            # each example is its own scope task: check what it left, as for a test
            leaked = task.leaked_tasks()
            problems = (
                self._anyio_unittest_leaks(task, runner, leaked) if leaked else []
            )
            if problems:
                raise self.failureException("\n\n".join(problems))
        return value
    except BaseException as exc:
        hide_own_frames(exc)
        if sys.version_info >= (3, 11):
            raise  # keeps the edited traceback
        # 3.10's bare raise would restore the unedited one
        raise exc
    finally:
        task.close()
