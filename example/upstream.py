"""A local stand-in for the math API's ``GET /v4?expr=...``, served from the same process."""

from __future__ import annotations

from aiohttp import web

from .expression import ExpressionError, evaluate, format_number

__all__ = ("make_upstream_app",)


async def v4(request: web.Request) -> web.Response:
    expr = request.query.get("expr")
    if expr is None:
        return web.Response(status=400, text="Error: missing query parameter expr")
    try:
        return web.Response(text=format_number(evaluate(expr)))
    except ExpressionError as exc:
        return web.Response(status=400, text=f"Error: {exc}")


def make_upstream_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/v4", v4)
    return app
