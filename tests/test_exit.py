"""The process exits promptly after the last test, whatever waits on a runner.

Session runners close at the end of a run, before the interpreter waits for the
threads that are not daemons: anyio's worker threads (they stop when the task
that started them ends) and a thread blocked on the runner itself
(``run_coroutine_threadsafe(...).result()``, ``trio.from_thread.run``) would
otherwise keep it alive for ever. Checked end to end under every runner.
"""

from __future__ import annotations

import time
import unittest

from ._support import run, write_suite

#: seconds a run of this small suite may take, start-up included
BOUND = 60.0

SUITE = {
    "test_session_exit.py": """
        import asyncio
        import threading

        import anyio
        import trio

        from anyio_unittest import AnyIOTestCase


        def blocked_on(loop_or_token, backend):
            # a thread that waits on the runner after the last test
            def wait():
                try:
                    if backend == "trio":
                        trio.from_thread.run(
                            trio.sleep, 3600, trio_token=loop_or_token
                        )
                    else:
                        asyncio.run_coroutine_threadsafe(
                            asyncio.sleep(3600), loop_or_token
                        ).result()
                except BaseException as exc:
                    print(f"the waiting thread got {type(exc).__name__}")

            threading.Thread(target=wait).start()


        class TestSession(AnyIOTestCase):
            anyio_backends = [
                "asyncio",
                ("asyncio", {"use_uvloop": True}),
                "trio",
            ]
            loop_scope = "session"

            async def test_a_worker_thread(self):
                # anyio's worker thread: not a daemon, stops with its task
                self.assertTrue(await anyio.Path(__file__).exists())

            async def test_b_thread_waiting_on_the_runner(self):
                backend = anyio_backend_name()
                if backend == "trio":
                    blocked_on(trio.lowlevel.current_trio_token(), backend)
                else:
                    blocked_on(asyncio.get_running_loop(), backend)


        def anyio_backend_name():
            import sniffio

            return sniffio.current_async_library()
    """
}

PYTEST = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:asyncio"]
RUNNERS = {
    "unittest": ["-m", "unittest", "-v"],
    "pytest": PYTEST,
    "xdist": [*PYTEST, "-n", "2"],
    "unittest-parallel": [
        "-m",
        "unittest_parallel",
        "-j",
        "2",
        "--level",
        "class",
        "-s",
        ".",
        "-t",
        ".",
    ],
}


class TestExit(unittest.TestCase):
    def test_session_runners_let_the_process_exit(self) -> None:
        folder = write_suite(SUITE)
        for name, args in RUNNERS.items():
            with self.subTest(runner=name):
                start = time.monotonic()
                outcome = run(args, folder, timeout=BOUND)
                elapsed = time.monotonic() - start
                self.assertEqual(outcome.returncode, 0, outcome.output)
                self.assertLess(elapsed, BOUND, outcome.output)
                if name in ("unittest", "pytest"):
                    # the threads ended because their runners closed
                    self.assertEqual(outcome.output.count("the waiting thread got"), 3)


if __name__ == "__main__":
    unittest.main()
