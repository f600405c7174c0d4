"""What pytest needs that unittest's own protocol cannot give it.

pytest runs ``TestCase.run()`` and class setup and cleanups itself, but ignores
``unittest.addModuleCleanup``; so module runners are ended here, when the last
test of a module has been torn down, and session runners at the session's end.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from ._report import take_report
from ._scopes import registry

#: where an xdist worker puts its runner report for the controller
_REPORT_KEY = "anyio_unittest_report"
#: on xdist's controller: each worker's runner report, by worker id
_worker_reports: dict[str, str] = {}


def pytest_configure(config: pytest.Config) -> None:
    registry.pytest_ends_modules = True
    _worker_reports.clear()


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_teardown(
    item: pytest.Item, nextitem: pytest.Item | None
) -> Generator[None, None, None]:
    yield
    module = getattr(item, "module", None)
    if module is None:
        return
    if nextitem is None or getattr(nextitem, "module", None) is not module:
        registry.end_module(module.__name__)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    # after pytest's own, which tears down what a stopped run (Ctrl-C) left set
    # up: tearDownClass and class cleanups need their runners still open
    try:
        registry.close_all()
    finally:
        workeroutput = getattr(session.config, "workeroutput", None)
        if workeroutput is not None:
            # an xdist worker, whose output nobody sees: the controller prints
            # its report (pytest-xdist sends workeroutput when this hook is over)
            workeroutput[_REPORT_KEY] = take_report()


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook
def pytest_testnodedown(node: Any, error: object) -> None:
    report = getattr(node, "workeroutput", {}).get(_REPORT_KEY)
    if report:
        _worker_reports[node.workerinput["workerid"]] = report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    # after pytest_sessionfinish, where the last runners were closed
    reports = [take_report()]
    for worker in sorted(_worker_reports, key=lambda w: (len(w), w)):  # gw2, gw10
        reports.append(f"xdist worker {worker}: {_worker_reports[worker]}")
    text = "".join(reports)
    if text:
        terminalreporter.section("anyio_unittest runners")
        terminalreporter.write(text)


def pytest_unconfigure(config: pytest.Config) -> None:
    registry.pytest_ends_modules = False
