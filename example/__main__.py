"""``python -m example``: serve the maths server on http://localhost:8080 (Ctrl-C stops it)."""

from __future__ import annotations

import argparse
import errno
import os
import socket
import sys

from aiohttp import web
from yarl import URL

from .server import check_upstream, make_app

DESCRIPTION = """\
Serve the maths server of the aiohttp-asynctools 0.1.3 README, by default on http://localhost:8080:
GET /squares?values=1,2,3 squares each value through a math API, GET / is the same as a web page, and
GET /stats shows the session registry at work. Unless --upstream is given, the same process also serves a
local stand-in for the math API, so no network is needed. Ctrl-C stops the server.
"""


def port_number(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text} is not a TCP port number (1 to 65535)")
    return port


def upstream_url(text: str) -> str:
    try:
        return check_upstream(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m example",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--host",
        default="localhost",
        help="the host name or address to listen on (default: localhost; 0.0.0.0 for every IPv4 interface)",
    )
    parser.add_argument(
        "--port", type=port_number, default=8080, help="the TCP port to listen on (default: 8080)"
    )
    parser.add_argument(
        "--upstream",
        type=upstream_url,
        metavar="URL",
        help=(
            "the URL of a mathjs-compatible API to use instead of the local stand-in, "
            "for example http://api.mathjs.org/v4 (default: the local stand-in)"
        ),
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    url = str(URL.build(scheme="http", host=args.host, port=args.port))
    listening = False

    def banner(_aiohttp_message: str) -> None:
        # aiohttp calls this once its sockets listen: only then is the URL worth printing.
        nonlocal listening
        listening = True
        print(f"maths server on {url}: try  curl '{url}/squares?values=1,2,3,4,5,6,7,8,9,10'", flush=True)

    try:
        web.run_app(make_app(args.upstream), host=args.host, port=args.port, print=banner)
    except OSError as exc:
        if listening:
            raise
        if isinstance(exc, socket.gaierror):  # a host name that does not resolve
            reason = exc.strerror or str(exc)
        elif exc.errno == errno.EADDRINUSE:
            reason = "the port is in use"
        else:  # asyncio's message repeats the address: the errno's own words are enough
            reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
        hint = "--port" if exc.errno in (errno.EADDRINUSE, errno.EACCES) else "--host"
        print(
            f"python -m example: cannot listen on {args.host}:{args.port}: {reason}"
            f" (choose another with {hint})",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
