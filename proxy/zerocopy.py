"""Large response bodies moved from the backend's socket to the client's by splice(2), never
through Python.

Relaying a body through the event loop costs two copies per byte (into a Python object, out of
it) and the loop's time for every chunk: a 1 GiB GET ran at 0.58× direct (bench/proxy), the
proxy's core being the limit. With splice the kernel moves the pages from one socket to the
other through a pipe, on a thread of its own, and the event loop is free meanwhile.

uvicorn hides the client's socket from the ASGI app, so `ZeroCopyHttpToolsProtocol` (the
proxy's uvicorn protocol class) hands each plain-TCP request an extension, `ClientSocket`,
through which the forwarder writes a body itself and then tells uvicorn how many bytes of the
announced Content-Length went out. Over TLS there is none (the bytes must be encrypted).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import fcntl
import os
import select
import threading
from typing import Any, Final

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

#: the ASGI scope extension holding a request's `ClientSocket`
EXTENSION: Final = "ocbridge.client_socket"
#: bodies at least this long are spliced: below, the thread hand-off costs more than it saves
MIN_LENGTH: Final = 4 * 1024 * 1024
#: how much one splice call moves, and the pipe's size
PIPE_SIZE: Final = 1024 * 1024
_F_SETPIPE_SZ: Final = 1031
_SPLICE_FLAGS: Final = 0x1 | 0x2  # SPLICE_F_MOVE | SPLICE_F_NONBLOCK
AVAILABLE: Final = hasattr(os, "splice")


class SpliceError(Exception):
    """The body could not be moved whole; `side` is "backend" or "client"."""

    def __init__(self, side: str, message: str) -> None:
        super().__init__(message)
        self.side = side


class ClientSocket:
    """The client connection of one request/response cycle, for writing its body directly."""

    __slots__ = ("_cycle", "_protocol")

    def __init__(self, protocol: HttpToolsProtocol, cycle: RequestResponseCycle) -> None:
        self._protocol = protocol
        self._cycle = cycle

    def fileno(self) -> int:
        return int(self._protocol.transport.get_extra_info("socket").fileno())

    @property
    def gone(self) -> bool:
        return bool(self._cycle.disconnected) or self._protocol.transport.is_closing()

    async def flushed(self, timeout: float) -> None:
        """Wait until everything uvicorn wrote (the response head) has left its buffer, so
        bytes written to the socket directly come after it."""
        transport = self._protocol.transport
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        delay = 0.0005
        while transport.get_write_buffer_size() and not self.gone:
            if loop.time() > deadline:
                raise SpliceError("client", "the client stopped reading")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)

    def abandon(self) -> None:
        """The client's end failed under the splice: the response cannot be finished, so the
        connection is closed and the cycle marked as the client's disconnect (uvicorn would
        otherwise report an app that returned without completing its response)."""
        self._cycle.disconnected = True
        self._protocol.transport.close()

    def sent(self, count: int) -> None:
        """`count` bytes of the body went out by splice: uvicorn checks the Content-Length it
        announced against what it wrote itself, so they are taken off what it still expects."""
        self._cycle.expected_content_length -= count


class ZeroCopyHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, giving each plain-TCP request its `ClientSocket`."""

    def on_headers_complete(self) -> None:
        previous = self.cycle
        super().on_headers_complete()
        cycle = self.cycle
        if (cycle is None or cycle is previous or not AVAILABLE
                or self.transport.get_extra_info("sslcontext") is not None
                or self.transport.get_extra_info("socket") is None):
            return
        extensions: dict[str, Any] = cycle.scope.setdefault("extensions", {})
        extensions[EXTENSION] = ClientSocket(self, cycle)


async def splice_on_thread(source: int, target: int, length: int, timeout: float) -> None:
    """`splice_body` on a thread of its own (a shared pool would cap concurrent downloads at
    its size); when the awaiting request is cancelled, the thread is told to stop and waited
    for, so no thread writes to a socket after its request ended."""
    result: concurrent.futures.Future[None] = concurrent.futures.Future()
    stop = threading.Event()

    def run() -> None:
        try:
            splice_body(source, target, length, timeout, stop)
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task
            result.set_exception(exc)
        else:
            result.set_result(None)

    thread = threading.Thread(target=run, name="ocbridge-splice", daemon=True)
    thread.start()
    try:
        # shielded: a cancelled request must not cancel the future under the running thread
        await asyncio.shield(asyncio.wrap_future(result))
    except asyncio.CancelledError:
        stop.set()
        await asyncio.to_thread(thread.join)
        raise


def splice_body(source: int, target: int, length: int, timeout: float,
                stop: threading.Event) -> None:
    """Move exactly `length` bytes from socket `source` to socket `target` (both non-blocking,
    as the event loop keeps them); blocking, for a worker thread. SpliceError when either side
    ends or stalls for `timeout` seconds, or `stop` is set."""
    read_end, write_end = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        try:
            fcntl.fcntl(write_end, _F_SETPIPE_SZ, PIPE_SIZE)
        except OSError:
            pass  # a smaller pipe (pipe-max-size) moves the same bytes in more calls
        in_pipe = 0
        left = length
        while left or in_pipe:
            if stop.is_set():
                raise SpliceError("client", "the request was cancelled")
            progressed = False
            if left and in_pipe < PIPE_SIZE:
                moved = _splice(source, write_end, min(left, PIPE_SIZE - in_pipe), "backend")
                if moved == 0:
                    raise SpliceError("backend", f"the backend ended the body {left} bytes short")
                if moved > 0:
                    left -= moved
                    in_pipe += moved
                    progressed = True
            if in_pipe:
                moved = _splice(read_end, target, in_pipe, "client")
                if moved > 0:
                    in_pipe -= moved
                    progressed = True
            if not progressed:
                _wait(source if left and in_pipe < PIPE_SIZE else -1,
                      target if in_pipe else -1, timeout, stop)
    finally:
        os.close(read_end)
        os.close(write_end)


def _splice(source: int, target: int, count: int, side: str) -> int:
    """Bytes moved, 0 at the end of the source, -1 when it would block."""
    try:
        return os.splice(source, target, count, flags=_SPLICE_FLAGS)
    except BlockingIOError:
        return -1
    except OSError as exc:
        if exc.errno in (errno.EPIPE, errno.ECONNRESET):
            raise SpliceError(side, f"the {side} closed the connection") from None
        raise SpliceError(side, f"splice failed: {exc.strerror}") from None


def _wait(source: int, target: int, timeout: float, stop: threading.Event) -> None:
    """Until `source` (-1: not waited for) can be read or `target` written; SpliceError after
    `timeout` seconds in which neither could, naming the side that held things up."""
    poller = select.poll()
    if source >= 0:
        poller.register(source, select.POLLIN)
    if target >= 0:
        poller.register(target, select.POLLOUT)
    waited = 0.0
    while not poller.poll(250):
        waited += 0.25
        if stop.is_set():
            raise SpliceError("client", "the request was cancelled")
        if waited >= timeout:
            side = "client" if target >= 0 else "backend"
            raise SpliceError(side, f"the {side} stalled for {timeout:.0f} s")
