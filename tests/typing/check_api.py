"""Typing tests: checked by mypy (``mypy tests/typing``), never run.

Lines marked ``type: ignore[...]`` must be errors: mypy's
``warn_unused_ignores`` (part of ``--strict``) fails the check if one of them
stops being an error, so misuse is proven to be caught, not just hoped to be.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio.testing

import anyio_unittest
from anyio_unittest import AnyIOTestCase


@asynccontextmanager
async def resource() -> AsyncIterator[int]:
    yield 42


class Good(AnyIOTestCase):
    anyio_backends = ["asyncio", "trio", ("asyncio", {"use_uvloop": True})]
    loop_scope = "class"
    timeout = 5
    leaked_tasks = "warn"
    value: int

    @classmethod
    async def asyncSetUpClass(cls) -> None:
        cls.value = await cls.enterAsyncClassContext(resource())
        cls.addAsyncClassCleanup(trio.sleep, 0)

    async def asyncSetUp(self) -> None:
        got: int = await self.enterAsyncContext(resource())
        self.addAsyncCleanup(trio.sleep, 0)
        del got

    @anyio_unittest.timeout(10)
    async def test_it(self) -> None:
        self.assertEqual(self.value, 42)


class Pinned(AnyIOTestCase):
    anyio_backend = ("trio", {"clock": trio.testing.MockClock(autojump_threshold=0)})
    loop_scope = "module"


async def asyncSetUpModule() -> None:
    anyio_unittest.addAsyncModuleCleanup(trio.sleep, 0)
    value: int = await anyio_unittest.enterAsyncModuleContext(resource())
    del value


class Misspelt(AnyIOTestCase):
    loop_scope = "clas"  # type: ignore[assignment]
    anyio_backend = "curio"  # type: ignore[assignment]
    leaked_tasks = "explode"  # type: ignore[assignment]


class WrongCleanup(AnyIOTestCase):
    async def asyncSetUp(self) -> None:
        self.addAsyncCleanup(trio.sleep, "soon")  # type: ignore[arg-type]
        await self.enterAsyncContext(object())  # type: ignore[arg-type]


anyio_unittest.timeout("5")  # type: ignore[arg-type]
