"""A minimal keep-alive HTTP/1.1 server on loopback that counts the TCP connections it accepts.

Run in its own process (``python -m benchmarks.upstream``) so that client and server do not share a
core. It answers every request with a short fixed body; ``GET /__stats`` returns the connection count.
With ``--ports N`` it listens on N ports of 127.0.0.1, N distinct origins for the many-sites workload
(one certificate for 127.0.0.1 covers them all), and prints them as one JSON list.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
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


def raise_fd_limit() -> None:
    """Thousands of listening sockets and as many accepted ones: take the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def serve(port: int, ports: int, certfile: str | None, keyfile: str | None) -> None:
    context = None
    if certfile:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(certfile, keyfile)
    loop = asyncio.get_running_loop()
    servers = [
        await loop.create_server(Http, "127.0.0.1", port if ports == 1 else 0, ssl=context, backlog=1024)
        for _ in range(ports)
    ]
    numbers = [server.sockets[0].getsockname()[1] for server in servers]
    print(numbers[0] if ports == 1 else json.dumps(numbers), flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ports", type=int, default=1, help="listen on this many ports (chosen by the OS)")
    parser.add_argument("--certfile")
    parser.add_argument("--keyfile")
    args = parser.parse_args()
    try:
        raise_fd_limit()
        asyncio.run(serve(args.port, args.ports, args.certfile, args.keyfile))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
