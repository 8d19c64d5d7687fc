"""``python -m example``: serve the maths server on http://localhost:8080 (Ctrl-C stops it)."""

from __future__ import annotations

import argparse

from aiohttp import web

from .server import make_app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m example", description=__doc__)
    parser.add_argument("--host", default="localhost")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument(
        "--upstream",
        help="a mathjs-compatible API to use instead of the embedded one, e.g. http://api.mathjs.org/v4",
    )
    args = parser.parse_args()
    url = f"http://{args.host}:{args.port}"
    print(f"maths server on {url}: try  curl '{url}/squares?values=1,2,3,4,5,6,7,8,9,10'", flush=True)
    web.run_app(make_app(args.upstream), host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
