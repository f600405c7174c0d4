"""Every exception the package raises, public and internal."""

from __future__ import annotations

# our frames are hidden from reported tracebacks: unittest's flag, and pytest's
__unittest = True
__tracebackhide__ = True


class ConfigurationError(TypeError):
    """A test class, or an environment variable, is configured wrongly.

    Raised when the class is defined wherever that is possible; the message names
    the class, the attribute and the fix.
    """


class RunnerConflictError(RuntimeError):
    """A runner was asked for that cannot coexist with one already open."""


class RunnerLeftBehind(RuntimeError):
    """Async code was due on a runner that a stuck test (or a second Ctrl-C) left
    behind: nothing runs on it any more. The message names who left it."""


class Interrupted(Exception):
    """A call cancelled by a Ctrl-C that a handler of the runner's turned into a
    graceful stop (``python -m unittest -c``): the test errors, the run stops."""


class ScopeCancelled(Exception):
    """A class- or module-level async step was cancelled (not by a time limit)."""


class LoopErrors(Exception):
    """Errors the event loop only logged, found at the end of a scope."""


class LeakedTaskWarning(ResourceWarning):
    """A test left tasks running on a shared runner (``leaked_tasks = "warn"``)."""


class LoopErrorWarning(RuntimeWarning):
    """The event loop reported errors during a test (``loop_errors = "warn"``)."""


class FirstInterrupt(KeyboardInterrupt):
    """The first Ctrl-C, raised by our handler: the test it hit still gets its
    teardown before the run stops (a plain ``KeyboardInterrupt`` does not)."""


class CallTimeout(TimeoutError):
    """A call was cancelled because its time limit passed."""

    def __init__(self, timeout: float, where: str, others: str = "") -> None:
        super().__init__(f"timed out after {timeout:g} seconds")
        self.timeout = timeout
        #: the formatted stack of the call where the cancellation reached it
        self.where = where
        #: the other tasks of its runner and where they waited, formatted
        self.others = others

    def details(self) -> str:
        """The end of a time-out's message: where the code was waiting, and
        where the other tasks it may have been waiting on were."""
        return f"; it was waiting at:\n{self.where or '  (no stack)'}{self._others()}"

    def _others(self) -> str:
        if not self.others:
            return ""
        return f"\nThe other tasks on its runner, at that moment:\n{self.others}"


class CallStuck(CallTimeout):
    """A call went on past the grace period after its time limit cancelled it:
    its runner is left behind."""

    def __init__(
        self, timeout: float, where: str, grace: float, threads: str, others: str = ""
    ) -> None:
        super().__init__(timeout, where, others)
        self.grace = grace
        #: the stacks of the process's other threads, formatted
        self.threads = threads

    def details(self) -> str:
        threads = f"\nThe other threads:\n{self.threads}" if self.threads else ""
        return (
            f", and had not ended {self.grace:g} s after its cancellation (it "
            f"ignores the cancellation, or waits on something that can't be "
            f"cancelled). Its runner is left behind: nothing more runs on it, and "
            f"what was still due on it fails. It is stuck at:\n"
            f"{self.where or '  (no stack)'}{self._others()}{threads}"
        )
