"""``python -m example``: serve the maths server on http://localhost:8080 (Ctrl-C stops it)."""

from __future__ import annotations

import argparse
import errno
import math
import os
import socket
import sys

from aiohttp import web
from yarl import URL

from .server import check_upstream, make_app

DESCRIPTION = """\
Serve the maths server of the aiohttp-asynctools 0.1.3 README, by default on http://localhost:8080:
GET /squares?values=1,2,3 squares each value through a math API, GET / is the same as a web page, and
GET /stats shows the session registry at work: sessions, connections opened and reused, latency, and the
retries and rate-limit waits of the math API's site policy. Unless --upstream is given, the same process
also serves a local stand-in for the math API, so no network is needed (--flaky makes it fail a share of
requests, to see the retries). Ctrl-C stops the server.
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


def flaky_share(text: str) -> float:
    try:
        share = float(text)
    except ValueError:
        share = math.nan
    if not 0 <= share <= 1:  # NaN fails too
        raise argparse.ArgumentTypeError(f"{text} is not a share from 0 to 1, such as 0.2")
    return share


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
    parser.add_argument(
        "--flaky",
        type=flaky_share,
        default=0.0,
        metavar="SHARE",
        help=(
            "make the local stand-in answer this share of requests (0 to 1, e.g. 0.2) with 429 Too Many "
            "Requests (Retry-After: 0) or 503, in turn, never twice in a row for one expression, so that "
            "the site policy's retries show on the page and in /stats (default: 0, never)"
        ),
    )
    args = parser.parse_args(argv)
    if args.flaky and args.upstream is not None:
        parser.error("--flaky applies to the local stand-in only: it cannot be used with --upstream")
    return args


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
        web.run_app(make_app(args.upstream, flaky=args.flaky), host=args.host, port=args.port, print=banner)
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
