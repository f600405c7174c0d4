"""Fast, trustworthy async ``unittest`` test cases on asyncio and trio."""

from ._backends import BackendName as BackendName
from ._backends import BackendSpec as BackendSpec
from ._case import AnyIOTestCase as AnyIOTestCase
from ._case import Clock as Clock
from ._case import LeakedTasks as LeakedTasks
from ._case import LoopErrorsPolicy as LoopErrorsPolicy
from ._case import LoopScope as LoopScope
from ._case import addAsyncModuleCleanup as addAsyncModuleCleanup
from ._case import enterAsyncModuleContext as enterAsyncModuleContext
from ._case import timeout as timeout
from ._clock import VirtualClock as VirtualClock
from ._clock import current_clock as current_clock
from ._exceptions import ConfigurationError as ConfigurationError
from ._exceptions import Interrupted as Interrupted
from ._exceptions import LeakedTaskWarning as LeakedTaskWarning
from ._exceptions import LoopErrors as LoopErrors
from ._exceptions import LoopErrorWarning as LoopErrorWarning
from ._exceptions import RunnerConflictError as RunnerConflictError
from ._exceptions import RunnerLeftBehind as RunnerLeftBehind
from ._exceptions import ScopeCancelled as ScopeCancelled
from ._version import __version__ as __version__

__all__ = [
    "AnyIOTestCase",
    "BackendName",
    "BackendSpec",
    "Clock",
    "ConfigurationError",
    "Interrupted",
    "LeakedTaskWarning",
    "LeakedTasks",
    "LoopErrorWarning",
    "LoopErrors",
    "LoopErrorsPolicy",
    "LoopScope",
    "RunnerConflictError",
    "RunnerLeftBehind",
    "ScopeCancelled",
    "VirtualClock",
    "__version__",
    "addAsyncModuleCleanup",
    "current_clock",
    "enterAsyncModuleContext",
    "timeout",
]

# Public classes and functions report the package as their home (reprs, docs).
for _obj in (
    AnyIOTestCase,
    ConfigurationError,
    Interrupted,
    LeakedTaskWarning,
    LoopErrorWarning,
    LoopErrors,
    RunnerConflictError,
    RunnerLeftBehind,
    ScopeCancelled,
    VirtualClock,
    addAsyncModuleCleanup,
    current_clock,
    enterAsyncModuleContext,
    timeout,
):
    _obj.__module__ = __name__
del _obj
