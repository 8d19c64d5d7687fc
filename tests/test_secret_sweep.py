"""A secret planted in every argument a user gives never comes out of anything asynctools shows.

One secret goes into a URL's password and another into its lone user name (a token), a header, a
cookie, a Redis URL; the library then works, fails and refuses in every way a user meets (requests,
retries, a pause, a bypass refusal, an unreachable Redis, bad URLs), and everything it shows is swept:
reprs, ``stats()`` (sessions, sites, metrics), error messages, log records, warnings and the
OpenTelemetry data points.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from redis_server import free_port

from asynctools import (
    AbstractSessionContainer,
    PolicyBypassError,
    RateLimit,
    RedisLimit,
    Retry,
    SessionRegistry,
    SitePausedError,
    SitePolicy,
    otel,
)

SECRET = "PLANTED-S3CRET"
TOKEN = "PLANTED-T0KEN"


class Api(AbstractSessionContainer):
    pass


def shown_by_otel(reader: InMemoryMetricReader) -> Iterator[str]:
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data is not None else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    yield f"{metric.name} {dict(point.attributes or {})}"


async def test_no_planted_secret_comes_out_anywhere(caplog: pytest.LogCaptureFixture) -> None:
    async def answer(request: web.Request) -> web.Response:
        if request.path == "/busy":
            return web.Response(status=503, headers={"Retry-After": "60"})  # over max_wait: a pause
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    port = server.port
    with_password = f"http://user:{SECRET}@127.0.0.1:{port}/"
    with_token = f"http://{TOKEN}@127.0.0.1:{port}/"
    redis_url = f"redis://:{SECRET}@127.0.0.1:{free_port()}/0"  # nothing listens there
    policy = SitePolicy(retry=Retry(attempts=2, max_wait=1.0), concurrency=5)
    registry = SessionRegistry(metrics=True, policies={with_password: policy})
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    instrumentation = otel.instrument(registry, provider)
    shown: list[str] = []
    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        api = Api(
            with_password,
            registry=registry,
            headers={"X-Api-Key": SECRET},  # (Authorization would clash with the URL's credentials)
            cookies={"sid": SECRET},
        )
        token_api = Api(with_token, registry=registry)
        shown += [repr(api), repr(token_api), repr(registry)]
        async with api, token_api:
            shown += [repr(api), repr(token_api)]
            async with api.get("ok") as resp, token_api.get("ok") as token_resp:
                assert resp.status == token_resp.status == 200
            async with api.get("busy") as resp:
                assert resp.status == 503  # asked for 60 s, over max_wait: returned, and the site paused
            for failing in (api.get("ok"), api.get("ok", middlewares=())):
                with pytest.raises((SitePausedError, PolicyBypassError)) as refused:
                    async with failing:
                        pass
                shown.append(str(refused.value))
            stats = registry.stats()
            shown += [
                repr(stats),
                *map(repr, stats.sessions),
                *map(repr, stats.sites),
                *map(repr, stats.metrics),
            ]
        redis_policy = SitePolicy(rate=RateLimit(5, per=1, redis=RedisLimit(redis_url, timeout=0.2)))
        shown.append(repr(redis_policy))
        redis_registry = SessionRegistry(policies={f"http://127.0.0.1:{port}/": redis_policy})
        async with redis_registry.session(with_token) as session:
            with pytest.raises(Exception) as unreachable:
                await session.get(f"http://127.0.0.1:{port}/ok")
            shown.append(f"{type(unreachable.value).__name__}: {unreachable.value}")
        await redis_registry.close()
        for bad in (f"ftp://user:{SECRET}@host/", f"http://{TOKEN}@", f"http://u:{SECRET}@h\r\nost/"):
            with pytest.raises((TypeError, ValueError)) as refused_url:
                Api(bad, registry=registry)
            shown.append(str(refused_url.value))
        with pytest.raises(ValueError) as conflict:
            registry.set_policy(with_password, SitePolicy(retry=None))
        shown.append(str(conflict.value))
    shown += [str(w.message) for w in caught]
    shown += [record.getMessage() for record in caplog.records]
    shown += list(shown_by_otel(reader))
    instrumentation.uninstrument()
    provider.shutdown()
    await registry.close()
    await server.close()
    leaked = [text for text in shown if SECRET in text or TOKEN in text]
    assert not leaked, "\n".join(leaked)
    assert len(shown) > 20 and any("***" in text for text in shown)  # the sweep saw the places it masks
