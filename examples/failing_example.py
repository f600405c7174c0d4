"""A deliberately failing test: what a failure looks like.

Not collected by ``discover`` (its name doesn't match ``test*.py``); run it from
the repository's root with::

    python3 -m unittest -v examples/failing_example.py

Both tests fail, on asyncio and on trio, and each traceback shows only your
frames (the test and the coroutine it awaited), none of ``anyio_unittest``'s.
"""

from __future__ import annotations

import anyio

from anyio_unittest import AnyIOTestCase


async def fetch_greeting() -> str:
    await anyio.sleep(0)
    return "hello"


async def parse_port(text: str) -> int:
    await anyio.sleep(0)
    return int(text)


class TestDeliberateFailures(AnyIOTestCase):
    anyio_backends = ["asyncio", "trio"]

    async def test_assertion_fails(self) -> None:
        greeting = await fetch_greeting()
        self.assertEqual(greeting, "goodbye")  # fails: reported as FAIL

    async def test_error_in_awaited_code(self) -> None:
        await parse_port("eighty")  # raises ValueError: reported as ERROR
