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

from ._frames import hide_own_frames

__tracebackhide__ = True


def execute_example(self: Any, function: Callable[[], object]) -> object:
    """Run one Hypothesis example; ``@given`` on an ``async def`` test works.

    The example runs on the test's runner, in a scope task of its own whose
    context is a fresh copy of the test's, so nothing one example sets is seen
    by the next.
    """
    test = self._anyio_unittest_run
    if test is None:
        raise RuntimeError(f"{self.id()}: an example can only run inside the test")
    try:
        return test.example(function)
    except BaseException as exc:
        hide_own_frames(exc)
        if sys.version_info >= (3, 11):
            raise  # keeps the edited traceback
        # 3.10's bare raise would restore the unedited one
        raise exc
