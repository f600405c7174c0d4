"""The example suite: an echo server and a client shared by the tests of a class.

Run it from the repository's root with::

    python3 -m unittest discover -v -s examples -t examples

Each test runs once per backend listed in ``anyio_backends``, in the generated
classes ``TestEchoServer_asyncio``, ``TestEchoServer_trio`` and
``TestEchoServer_asyncio_uvloop`` (skipped, with the reason, where uvloop is not
installed). Everything listens on the loopback interface only.
"""

from __future__ import annotations

import anyio
from anyio.abc import SocketAttribute, SocketStream, TaskGroup

from anyio_unittest import AnyIOTestCase


async def echo(stream: SocketStream) -> None:
    """Send back every chunk received, until the client closes the connection."""
    async with stream:
        async for chunk in stream:
            await stream.send(chunk)


async def stop(server: TaskGroup) -> None:
    """Cancel the tasks of *server*; its task group's exit waits for them to end."""
    server.cancel_scope.cancel()


class TestEchoServer(AnyIOTestCase):
    """An echo server and one connected client, shared by the tests of a class."""

    anyio_backends = ["asyncio", "trio", ("asyncio", {"use_uvloop": True})]
    loop_scope = "class"  # one event loop (or trio run) for the whole class
    timeout = 10  # seconds for asyncSetUp + each test (and for each cleanup)

    port: int
    client: SocketStream

    @classmethod
    async def asyncSetUpClass(cls) -> None:
        # Class cleanups run last-in first-out: registered in this order, they
        # close the client, stop the server, wait for its task group to finish,
        # then close the listener.
        listener = await cls.enterAsyncClassContext(
            await anyio.create_tcp_listener(local_host="127.0.0.1")
        )
        cls.port = listener.extra(SocketAttribute.local_port)
        server = await cls.enterAsyncClassContext(anyio.create_task_group())
        server.start_soon(listener.serve, echo)
        cls.addAsyncClassCleanup(stop, server)
        cls.client = await cls.enterAsyncClassContext(
            await anyio.connect_tcp("127.0.0.1", cls.port)
        )

    async def asyncSetUp(self) -> None:
        # a connection of this test only, closed by its cleanup
        self.stream = await self.enterAsyncContext(
            await anyio.connect_tcp("127.0.0.1", self.port)
        )

    async def roundtrip(self, stream: SocketStream, data: bytes) -> bytes:
        await stream.send(data)
        received = b""
        with anyio.fail_after(5):
            while len(received) < len(data):
                received += await stream.receive()
        return received

    async def test_shared_client(self) -> None:
        self.assertEqual(await self.roundtrip(self.client, b"hello"), b"hello")

    async def test_shared_client_keeps_order(self) -> None:
        for i in range(10):
            message = f"message {i}".encode()
            self.assertEqual(await self.roundtrip(self.client, message), message)

    async def test_own_connection(self) -> None:
        self.assertEqual(await self.roundtrip(self.stream, b"ping"), b"ping")

    async def test_concurrent_clients(self) -> None:
        replies: dict[int, bytes] = {}

        async def talk(n: int) -> None:
            async with await anyio.connect_tcp("127.0.0.1", self.port) as stream:
                replies[n] = await self.roundtrip(stream, b"client %d" % n)

        async with anyio.create_task_group() as tg:
            for n in range(5):
                tg.start_soon(talk, n)
        self.assertEqual(replies, {n: b"client %d" % n for n in range(5)})
