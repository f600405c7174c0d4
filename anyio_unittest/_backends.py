"""Backend specifications: parsing, validation, naming and opening runners."""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeAlias

from ._driver import Runner
from ._exceptions import ConfigurationError

# our frames are hidden from reported tracebacks: unittest's flag, and pytest's
__unittest = True
__tracebackhide__ = True

BackendName: TypeAlias = Literal["asyncio", "trio"]
#: ``"asyncio"``, ``"trio"``, or ``(name, options)`` with anyio's option names
BackendSpec: TypeAlias = "BackendName | tuple[BackendName, Mapping[str, Any]]"

BACKENDS_ENV = "ANYIO_UNITTEST_BACKENDS"
BACKEND_ENV = "ANYIO_UNITTEST_BACKEND"


def _bool(value: object) -> bool:
    return isinstance(value, bool)


def _asyncio_checks() -> dict[str, tuple[Callable[[object], bool], str]]:
    return {
        "debug": (lambda v: v is None or isinstance(v, bool), "True, False or None"),
        "use_uvloop": (_bool, "True or False"),
        "loop_factory": (lambda v: v is None or callable(v), "a callable or None"),
    }


def _trio_checks() -> dict[str, tuple[Callable[[object], bool], str]]:
    import trio

    return {
        "clock": (
            lambda v: v is None or isinstance(v, trio.abc.Clock),
            "a trio.abc.Clock such as trio.testing.MockClock()",
        ),
        "instruments": (
            lambda v: (
                isinstance(v, (list, tuple))
                and all(isinstance(i, trio.abc.Instrument) for i in v)
            ),
            "a list of trio.abc.Instrument",
        ),
        "restrict_keyboard_interrupt_to_checkpoints": (_bool, "True or False"),
        "strict_exception_groups": (_bool, "True or False"),
    }


_CHECKS: dict[str, Callable[[], dict[str, tuple[Callable[[object], bool], str]]]] = {
    "asyncio": _asyncio_checks,
    "trio": _trio_checks,
}


class Backend:
    """A validated backend: its name, its options and the id used in class names.

    Its clock (the class's ``clock`` and ``autojump_threshold``) is part of what
    a runner is, as its options are, but not of its id: classes that share a
    runner agree on both.
    """

    __slots__ = ("autojump_threshold", "id", "name", "options")

    def __init__(
        self,
        name: str,
        options: Mapping[str, Any],
        autojump_threshold: float | None = None,
    ) -> None:
        self.name = name
        self.options = dict(options)
        self.id = _make_id(name, self.options)
        #: None: the real clock; else clock = "autojump" with this threshold
        self.autojump_threshold = autojump_threshold

    def with_clock(self, autojump_threshold: float | None) -> Backend:
        return Backend(self.name, self.options, autojump_threshold)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Backend):
            return NotImplemented
        return (
            self.name == other.name
            and self.options == other.options
            and self.autojump_threshold == other.autojump_threshold
        )

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        if not self.options:
            return repr(self.name)
        return repr((self.name, self.options))

    def unavailable_reason(self) -> str | None:
        """Why this known backend cannot run here (then its tests are skipped)."""
        if self.options.get("use_uvloop") and (
            importlib.util.find_spec("uvloop") is None
        ):
            return "uvloop is not installed (pip install anyio-unittest[uvloop])"
        return None

    def open_runner(self, owner: str) -> Runner:
        threshold = self.autojump_threshold
        if self.name == "asyncio":
            from ._asyncio_driver import AsyncioRunner

            return AsyncioRunner(owner, autojump_threshold=threshold, **self.options)
        from ._trio_driver import TrioRunner

        return TrioRunner(self.options, owner, threshold)


def _word(value: object) -> str:
    if isinstance(value, (str, int, float)):
        text = str(value)
    elif isinstance(value, type) or callable(value):
        text = getattr(value, "__qualname__", None) or type(value).__name__
    else:
        text = type(value).__name__
    return re.sub(r"\W+", "_", text).strip("_")


def _make_id(name: str, options: Mapping[str, Any]) -> str:
    parts = [name]
    for key in sorted(options):
        value = options[key]
        if key == "use_uvloop":
            if value:
                parts.append("uvloop")
        elif value is True:
            parts.append(key)
        elif value is False:
            parts.append(f"no_{key}")
        elif value is None or value == ():
            continue
        elif isinstance(value, (list, tuple)):
            parts.append(key + "".join(f"_{_word(v)}" for v in value))
        else:
            parts.append(f"{key}_{_word(value)}")
    return "_".join(parts)


def parse_spec(spec: object, where: str) -> Backend:
    """Validate one backend specification; *where* names the class attribute."""
    options: Mapping[str, Any]
    if isinstance(spec, str):
        name, options = spec, {}
    elif (
        isinstance(spec, tuple)
        and len(spec) == 2
        and isinstance(spec[0], str)
        and isinstance(spec[1], Mapping)
    ):
        name, options = spec[0], spec[1]
    else:
        raise ConfigurationError(
            f"{where} = {spec!r}: a backend is 'asyncio', 'trio', or a "
            f"(name, options) tuple such as ('asyncio', {{'use_uvloop': True}})"
        )
    checks = _CHECKS.get(name)
    if checks is None:
        raise ConfigurationError(
            f"{where}: unknown backend {name!r}; use 'asyncio' or 'trio'"
        )
    known = checks()
    for key, value in options.items():
        if key not in known:
            raise ConfigurationError(
                f"{where}: {key!r} is not an option of the {name} backend; "
                f"its options are {', '.join(sorted(known))}"
            )
        check, expected = known[key]
        if not check(value):
            raise ConfigurationError(
                f"{where}: option {key!r} of the {name} backend must be "
                f"{expected}, not {value!r}"
            )
    if options.get("use_uvloop") and options.get("loop_factory") is not None:
        raise ConfigurationError(
            f"{where}: give either use_uvloop or loop_factory, not both"
        )
    return Backend(name, options)


def _possible_id(text: str) -> bool:
    """Whether *text* is a backend name or could be an id that _make_id made."""
    name, _, rest = text.partition("_")
    checks = _CHECKS.get(name)
    if checks is None:
        return False
    if not rest:
        return True
    words = [w for key in checks() for w in (key, f"no_{key}")]
    if name == "asyncio":  # use_uvloop=True gives "uvloop", False nothing
        words = [w for w in words if not w.endswith("use_uvloop")] + ["uvloop"]
    return any(rest == w or rest.startswith(f"{w}_") for w in words)


def env_backend_filter() -> frozenset[str] | None:
    """The backend names or ids ``ANYIO_UNITTEST_BACKENDS`` keeps (None: all)."""
    raw = os.environ.get(BACKENDS_ENV, "").strip()
    if not raw:
        return None
    names = [n.strip() for n in raw.split(",") if n.strip()]
    if not names:
        raise ConfigurationError(
            f"{BACKENDS_ENV}={raw!r} lists no backend: give a comma-separated "
            f"list such as 'asyncio,trio' (or unset it to run all backends)"
        )
    for n in names:
        if not _possible_id(n):
            # a typo such as 'asyncio_uvlop' would otherwise select nothing
            raise ConfigurationError(
                f"{BACKENDS_ENV}={raw!r}: unknown backend {n!r}; give a "
                f"comma-separated list of 'asyncio', 'trio' or generated ids "
                f"such as 'asyncio_uvloop'"
            )
    return frozenset(names)


def env_default_backend() -> Backend | None:
    raw = os.environ.get(BACKEND_ENV, "").strip()
    if not raw:
        return None
    return parse_spec(raw, BACKEND_ENV)


def selected(backend: Backend, keep: frozenset[str] | None) -> bool:
    return keep is None or backend.name in keep or backend.id in keep
