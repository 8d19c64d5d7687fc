"""The maths server: ``GET /squares?values=1,2,3`` squares each value through one shared session.

``GET /`` is the same as a web page (a form and a table, rendered on the server, no JavaScript);
``GET /stats`` shows the registry at work: one session created, ``acquired`` growing per request, and per
upstream site (``upstreams``) the metrics of ``SessionRegistry(metrics=True)`` (connections opened and
reused, latency) and the figures of ``MathRequests``' site policy (retries by cause, rate-limit waits).
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import re
from collections.abc import AsyncIterator, Mapping
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

__all__ = ("MAX_VALUES", "BadInput", "UpstreamFailed", "check_upstream", "make_app", "upstream_figures")

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
    context["stats"] = stats = request.app[REGISTRY].stats()
    context["upstreams"] = upstream_figures(stats)
    context["policy"] = MathRequests.policy
    return aiohttp_jinja2.render_template("index.html", request, context, status=status)


def _site(origin: str | None) -> str:
    """One spelling per origin (``http://a`` and ``http://a:80`` are one site): ``scheme://host:port``."""
    url = URL(origin or "")
    return f"{url.scheme}://{url.host}:{url.port}" if url.host else str(origin)


def upstream_figures(stats: asynctools.RegistryStats) -> list[dict[str, Any]]:
    """Per upstream site, what the page and ``/stats`` show: its sessions, metrics and policy figures.

    One dict per origin the registry holds a session for or has figures of, in origin order: ``origin``;
    ``sessions``: ``open`` and ``idle`` for this origin, ``created`` for the whole registry on this loop;
    from the metrics (``SessionRegistry(metrics=True)``, else ``None``): ``requests``,
    ``connections_opened`` / ``connections_reused``, ``latency_p50_ms`` / ``latency_p99_ms`` (``None``
    before any request) and ``responses`` by status class; from the site policy (else ``None``):
    ``attempts``, ``retries`` by cause, ``gave_up``, ``rate_waits`` and ``rate_wait_seconds``.
    """
    metrics = {_site(site.origin): site for site in stats.metrics}
    policies = {_site(site.origin): site for site in stats.sites}
    sessions = [(_site(session.origin), session) for session in stats.sessions if not session.closed]
    figures = []
    for origin in sorted(metrics.keys() | policies.keys() | {origin for origin, _ in sessions}):
        m, p = metrics.get(origin), policies.get(origin)
        mine = [session for key, session in sessions if key == origin]
        figures.append(
            {
                "origin": origin,
                "sessions": {
                    "open": len(mine),
                    "idle": sum(session.idle for session in mine),
                    "created": stats.created,
                },
                "requests": m.requests if m else None,
                "connections_opened": m.connections_opened if m else None,
                "connections_reused": m.connections_reused if m else None,
                "latency_p50_ms": _ms(m.latency_p50) if m else None,
                "latency_p99_ms": _ms(m.latency_p99) if m else None,
                "responses": {k: v for k, v in m.responses.items() if v} if m else None,
                "attempts": p.attempts if p else None,
                "retries": dict(p.retries) if p else None,
                "gave_up": p.gave_up if p else None,
                "rate_waits": p.rate_waits if p else None,
                "rate_wait_seconds": round(p.rate_wait_seconds, 3) if p else None,
            }
        )
    return figures


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def _jsonable(value: Any) -> Any:
    """The stats as JSON values: dataclasses and read-only mappings (``MappingProxyType``) as dicts.

    Not ``dataclasses.asdict()``: it deep-copies the mappings, and a ``MappingProxyType`` cannot be copied.
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: _jsonable(getattr(value, field.name)) for field in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    return value


async def stats(request: web.Request) -> web.Response:
    snapshot = request.app[REGISTRY].stats()
    body = _jsonable(snapshot)
    body["upstreams"] = upstream_figures(snapshot)
    return web.json_response(body)


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
    upstream: str | None = None,
    *,
    timeout: float = 5.0,
    registry: asynctools.SessionRegistry | None = None,
    flaky: float = 0.0,
) -> web.Application:
    """The maths app; with no *upstream*, it also serves its own math API on a free loopback port.

    *upstream* is the URL of a mathjs-compatible ``GET ...?expr=`` endpoint (``ValueError`` if it is not an
    absolute http(s) URL); *timeout* is how long a call to the math API may take, in seconds. *flaky* is
    the share of requests (0 to 1) the embedded math API answers with 429 or 503, to see retries
    (``ValueError`` if it is out of range, or given with an *upstream*). *registry* defaults to a
    ``SessionRegistry(metrics=True)`` of the app's own.
    """
    if upstream is not None:
        check_upstream(upstream)
        if flaky:
            raise ValueError(f"flaky={flaky!r} applies to the embedded math API, not to {upstream!r}")
    upstream_app = make_upstream_app(flaky) if upstream is None else None  # checks *flaky* now
    app = web.Application()
    app[REGISTRY] = registry if registry is not None else asynctools.SessionRegistry(metrics=True)
    app[TIMEOUT] = timeout
    aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True)
    app.router.add_get("/", index)
    app.router.add_get("/squares", squares)
    app.router.add_get("/stats", stats)
    app.router.add_static("/static", HERE / "static")

    async def embedded_upstream(app: web.Application) -> AsyncIterator[None]:
        assert upstream_app is not None
        # No access log: a page of 1,000 squares would print 1,000 lines of the stand-in's traffic.
        runner = web.AppRunner(upstream_app, access_log=None)
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
