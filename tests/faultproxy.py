"""A TCP proxy for fault tests: Loom talks to Postgres (or Redis) through it, and a test cuts
every connection and refuses new ones for a while, as a server restart would.

It listens on 127.0.0.1 (a free port) and forwards to one loopback target (a host and port, or
a Unix socket path, as the embedded Postgres uses), on an event loop of its own in a
background thread. :meth:`FaultProxy.outage` aborts every open connection (a
reset, as a crashed server's peer sees) and, for ``seconds``, accepts new connections only to
abort them at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from types import TracebackType


class FaultProxy:
    def __init__(self, target_host: str, target_port: int | None = None) -> None:
        """``target_port`` ``None``: ``target_host`` is the path of a Unix socket."""
        self.target = (target_host, target_port)
        self.port = 0
        self.accepted = 0
        self.refused = 0
        self._refuse_until = 0.0
        self._open: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    # --- control (from the test's thread) -----------------------------------------------------

    def start(self) -> FaultProxy:
        self._thread.start()
        self._server = self._call(self._start())
        return self

    def stop(self) -> None:
        async def close() -> None:
            assert self._server is not None
            self._server.close()
            self._abort_all()
            current = asyncio.current_task()
            tasks = [t for t in asyncio.all_tasks() if t is not current]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self._call(close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def outage(self, seconds: float) -> float:
        """Cut every connection and refuse new ones for ``seconds``; returns the monotonic
        time at which the outage ends."""

        async def cut() -> float:
            self._refuse_until = time.monotonic() + seconds
            self._abort_all()
            return self._refuse_until

        return self._call(cut())

    def drop(self) -> None:
        """Cut every open connection (new ones are accepted)."""
        self.outage(0)

    @property
    def open_connections(self) -> int:
        return len(self._open) // 2

    # --- the proxy ----------------------------------------------------------------------------

    def _call(self, coro: object) -> object:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)  # type: ignore[arg-type]
        return future.result(timeout=30)

    async def _start(self) -> asyncio.Server:
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        return server

    def _abort_all(self) -> None:
        for writer in list(self._open):
            writer.transport.abort()
        self._open.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if time.monotonic() < self._refuse_until:
            self.refused += 1
            writer.transport.abort()
            return
        try:
            host, port = self.target
            if port is None:
                up_reader, up_writer = await asyncio.open_unix_connection(host)
            else:
                up_reader, up_writer = await asyncio.open_connection(host, port)
        except OSError:
            writer.transport.abort()
            return
        self.accepted += 1
        self._open.update((writer, up_writer))
        await asyncio.gather(
            self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
        )
        for w in (writer, up_writer):
            self._open.discard(w)
            w.transport.abort()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.transport.abort()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
