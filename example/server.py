"""The maths server: ``GET /squares?values=1,2,3`` squares each value through one shared session.

``GET /`` is the same as a web page (a form and a table, rendered on the server, no JavaScript);
``GET /stats`` shows the registry at work: one session created, ``acquired`` growing per request.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import aiohttp_jinja2
import jinja2
from aiohttp import web
from yarl import URL

import asynctools

from .expression import NUMBER
from .maths import MathRequests
from .upstream import make_upstream_app

__all__ = ("MAX_VALUES", "BadInput", "UpstreamFailed", "check_upstream", "make_app")

MAX_VALUES = 1000
HERE = Path(__file__).parent
# What the front end passes on as a value: a number the math API (the embedded one, like mathjs) reads.
SIGNED_NUMBER = re.compile(rf"[+-]?{NUMBER}")
REGISTRY = web.AppKey("registry", asynctools.SessionRegistry)
API_URL = web.AppKey("api_url", str)
TIMEOUT = web.AppKey("timeout", float)


class BadInput(ValueError):
    """The request's values cannot be squared (answered with 400)."""


class UpstreamFailed(RuntimeError):
    """The math API failed, hung or answered something that is not a number (answered with 502)."""


def parse_values(raw: str | None) -> list[str]:
    """The comma-separated values of the query; raises ``BadInput`` naming the problem."""
    if raw is None or not raw.strip():
        raise BadInput("missing or empty 'values': pass numbers such as ?values=1,2,3")
    values = [value.strip() for value in raw.split(",")]
    if len(values) > MAX_VALUES:
        raise BadInput(f"{len(values)} values given, at most {MAX_VALUES} are allowed")
    for value in values:
        if SIGNED_NUMBER.fullmatch(value) is None:
            if "_" in value:  # Python's float() takes 1_000; mathjs, and so the embedded math API, does not
                raise BadInput(f"{value!r} is not a number: the math API takes no underscores in numbers")
            if value.lower().lstrip("+-") in ("nan", "inf", "infinity"):
                raise BadInput(f"{value!r} is not a finite number")
            raise BadInput(f"{value!r} is not a number")
        if not math.isfinite(float(value)):  # 1e400
            raise BadInput(f"{value!r} is not a finite number")
    return values


async def compute_squares(app: web.Application, raw: str | None) -> tuple[list[str], list[str]]:
    """Square every value through the math API; raises ``BadInput`` or ``UpstreamFailed``."""
    values = parse_values(raw)
    maths = MathRequests(app[API_URL], registry=app[REGISTRY], timeout=app[TIMEOUT])
    try:
        async with maths:
            results = await asyncio.gather(*(maths.get_square(value) for value in values))
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        reason = (
            "did not answer in time"
            if isinstance(exc, asyncio.TimeoutError)
            else f"{type(exc).__name__}: {exc}"
        )
        raise UpstreamFailed(f"the math API at {app[API_URL]} failed: {reason}") from exc
    for value, result in zip(values, results, strict=True):
        try:
            float(result)
        except ValueError:
            raise UpstreamFailed(
                f"the math API at {app[API_URL]} answered {result[:80]!r} for ({value})^2, not a number"
            ) from None
    return values, results


async def squares(request: web.Request) -> web.Response:
    try:
        values, results = await compute_squares(request.app, request.query.get("values"))
    except BadInput as exc:
        return web.json_response({"error": str(exc)}, status=400)
    except UpstreamFailed as exc:
        return web.json_response({"error": str(exc)}, status=502)
    return web.json_response({"values": values, "results": results})


async def index(request: web.Request) -> web.Response:
    raw = request.query.get("values")
    context: dict[str, Any] = {"raw": raw or "", "rows": [], "error": None}
    status = 200
    if raw is not None:
        try:
            values, results = await compute_squares(request.app, raw)
            context["rows"] = list(zip(values, results, strict=True))
        except BadInput as exc:
            context["error"], status = str(exc), 400
        except UpstreamFailed as exc:
            context["error"], status = str(exc), 502
    context["stats"] = request.app[REGISTRY].stats()
    return aiohttp_jinja2.render_template("index.html", request, context, status=status)


async def stats(request: web.Request) -> web.Response:
    return web.json_response(dataclasses.asdict(request.app[REGISTRY].stats()))


def check_upstream(url: str) -> str:
    """*url* itself if it is an absolute http(s) URL; raises ``ValueError`` naming it otherwise.

    Checked once at start-up: a relative or non-HTTP upstream would fail every request instead.
    """
    try:
        parsed = URL(url)
    except ValueError:
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError(f"{url!r} is not an absolute http(s) URL such as http://api.mathjs.org/v4")
    return url


def make_app(
    upstream: str | None = None, *, timeout: float = 5.0, registry: asynctools.SessionRegistry | None = None
) -> web.Application:
    """The maths app; with no *upstream*, it also serves its own math API on a free loopback port.

    *upstream* is the URL of a mathjs-compatible ``GET ...?expr=`` endpoint (``ValueError`` if it is not an
    absolute http(s) URL); *timeout* is how long a call to the math API may take, in seconds.
    """
    if upstream is not None:
        check_upstream(upstream)
    app = web.Application()
    app[REGISTRY] = registry if registry is not None else asynctools.SessionRegistry()
    app[TIMEOUT] = timeout
    aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True)
    app.router.add_get("/", index)
    app.router.add_get("/squares", squares)
    app.router.add_get("/stats", stats)
    app.router.add_static("/static", HERE / "static")

    async def embedded_upstream(app: web.Application) -> AsyncIterator[None]:
        runner = web.AppRunner(make_upstream_app())
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        app[API_URL] = f"http://{host}:{port}/v4"
        yield
        await runner.cleanup()

    if upstream is None:
        app.cleanup_ctx.append(embedded_upstream)
    else:
        app[API_URL] = upstream
    # Last in, first out: the registry's sessions close before the embedded upstream stops.
    app.cleanup_ctx.append(app[REGISTRY].cleanup_ctx)
    return app
