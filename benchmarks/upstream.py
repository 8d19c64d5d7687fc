"""A minimal keep-alive HTTP/1.1 server on loopback that counts the TCP connections it accepts.

Run in its own process (``python -m benchmarks.upstream``) so that client and server do not share a
core. It answers every request with a short fixed body; ``GET /__stats`` returns the connection count.
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import sys

BODY = b'{"ok": true}'
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
    len(BODY),
    BODY,
)


class Counter:
    connections = 0


class Http(asyncio.Protocol):
    """Answers each request as soon as its head is complete (the benchmarks send no bodies)."""

    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        Counter.connections += 1
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        assert self.transport is not None
        while b"\r\n\r\n" in self.buffer:
            head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            if head.startswith(b"GET /__stats"):
                body = b'{"connections": %d}' % Counter.connections
                self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            else:
                self.transport.write(RESPONSE)


async def serve(port: int, certfile: str | None, keyfile: str | None) -> None:
    context = None
    if certfile:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(certfile, keyfile)
    server = await asyncio.get_running_loop().create_server(
        Http, "127.0.0.1", port, ssl=context, backlog=1024
    )
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--certfile")
    parser.add_argument("--keyfile")
    args = parser.parse_args()
    try:
        asyncio.run(serve(args.port, args.certfile, args.keyfile))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
