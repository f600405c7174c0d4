"""What pytest needs that unittest's own protocol cannot give it.

pytest runs ``TestCase.run()`` and class setup and cleanups itself, but ignores
``unittest.addModuleCleanup``; so module runners are ended here, when the last
test of a module has been torn down, and session runners at the session's end.
"""

from __future__ import annotations

from collections.abc import Generator

import pytest

from ._report import print_report
from ._scopes import registry


def pytest_configure(config: pytest.Config) -> None:
    registry.pytest_ends_modules = True


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
    registry.close_all()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    # after pytest_sessionfinish, where the last runners were closed
    def write(text: str) -> None:
        terminalreporter.section("anyio_unittest runners")
        terminalreporter.write(text)

    print_report(write)


def pytest_unconfigure(config: pytest.Config) -> None:
    registry.pytest_ends_modules = False
