"""No password in what asynctools prints, hosts yarl would rewrite are refused, policies must be a mapping.

A secret is planted in URL user info (containers, ``acquire()``, ``session()``, bad-URL errors) and in
Redis URLs (``RedisLimit`` reprs, the policy conflict error, ``RedisLimitError`` and the log warning of
an unreachable Redis, on an unused loopback port), and looked for in what comes out: it must be absent,
``***`` shown in its place. Servers are real loopback ones (the ``upstream`` fixture, a ``TestServer``).
"""

from __future__ import annotations

import logging
from types import MappingProxyType

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from conftest import Upstream
from redis_server import free_port
from yarl import URL

from asynctools import AbstractSessionContainer, SessionRegistry
from asynctools._keys import parse_url
from asynctools._policy import RateLimit, RedisLimit, RedisLimitError, SitePolicy
from asynctools._redact import redact, redact_repr

SECRET = "S3CR3T-PLANTED"


class Api(AbstractSessionContainer):
    pass


def assert_redacted(text: str) -> None:
    assert SECRET not in text, text
    assert "***" in text, text


def assert_untouched(registry: SessionRegistry) -> None:
    stats = registry.stats()
    assert (stats.open, stats.in_use, stats.created, stats.acquired) == (0, 0, 0, 0), stats


# --- the helper ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        (f"http://user:{SECRET}@host/p", "http://user:***@host/p"),
        (f"redis://:{SECRET}@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        (f"http://u:{SECRET}@with@at@host/", "http://u:***@host/"),
        (f"unix:///tmp/r.sock?db=0&password={SECRET}", "unix:///tmp/r.sock?db=0&password=***"),
        (f"not a url //u:{SECRET}@ at all", "not a url //u:***@ at all"),
        (f"user:{SECRET}@host", "user:***@host"),  # the scheme forgotten
        (f"https://{SECRET}@github.com/a@b", "https://***@github.com/a@b"),  # a token as the user name
        ("http://host/a@b", "http://host/a@b"),  # no user info: nothing to hide
    ],
)
def test_redact_masks_the_password_as_written(given: str, shown: str) -> None:
    assert redact(given) == shown
    assert redact_repr(given) == repr(shown)


def test_redact_repr_keeps_a_yarl_url_a_url() -> None:
    assert redact_repr(URL(f"http://user:{SECRET}@host/")) == "URL('http://user:***@host/')"
    assert redact_repr(URL("http://host/")) == "URL('http://host/')"
    assert redact_repr(URL(f"https://{SECRET}@host/")) == "URL('https://***@host/')"


# --- containers, acquire(), session() and bad URLs -------------------------------------------------


async def test_a_container_repr_hides_the_password_detached_and_attached(
    upstream: Upstream, registry: SessionRegistry
) -> None:
    port = URL(upstream.url()).port
    api = Api(f"http://user:{SECRET}@127.0.0.1:{port}/", registry=registry)
    assert_redacted(repr(api))
    async with api:
        async with api.get("echo") as resp:
            assert resp.status == 200
        assert "attached" in repr(api)
        assert_redacted(repr(api))
    assert upstream.requests == 1


def test_a_token_given_as_the_user_name_is_hidden_in_reprs_and_errors(registry: SessionRegistry) -> None:
    assert_redacted(repr(Api(f"https://{SECRET}@api.example/", registry=registry)))
    with pytest.raises(ValueError) as caught:
        Api(f"ftp://{SECRET}@api.example/", registry=registry)
    assert_redacted(str(caught.value))


BAD_URLS = [
    pytest.param(f"ftp://user:{SECRET}@host/", id="scheme"),
    pytest.param(f"http://user:{SECRET}@", id="no-host"),
    pytest.param(f"http://user:{SECRET}@api.example:99999/", id="bad-port"),
    pytest.param(f"http://user:{SECRET}@api<x>.example/", id="bad-host"),
    pytest.param(f"http://user:{SECRET}@exa\r\nmple.com/", id="crlf-host"),
    pytest.param(f"user:{SECRET}@host", id="relative"),
    pytest.param(URL(f"ftp://user:{SECRET}@host/"), id="yarl-scheme"),
]


@pytest.mark.parametrize("url", BAD_URLS)
async def test_bad_url_errors_hide_the_password(url: object, registry: SessionRegistry) -> None:
    with pytest.raises(ValueError) as in_container:
        Api(url, registry=registry)  # type: ignore[arg-type]
    assert_redacted(str(in_container.value))
    with pytest.raises(ValueError) as in_acquire:
        await registry.acquire(url)
    assert_redacted(str(in_acquire.value))
    with pytest.raises(ValueError) as in_session:
        registry.session(url)
    assert_redacted(str(in_session.value))
    assert_untouched(registry)


async def test_a_url_of_the_wrong_type_hides_the_password(registry: SessionRegistry) -> None:
    with pytest.raises(TypeError) as caught:
        await registry.acquire(f"http://user:{SECRET}@host/".encode())
    assert_redacted(str(caught.value))


def test_base_url_given_twice_hides_both_passwords() -> None:
    with pytest.raises(TypeError) as caught:

        class Twice(AbstractSessionContainer, base_url=f"http://a:{SECRET}@one/"):
            base_url = f"http://b:{SECRET}@two/"  # type: ignore[assignment]

    assert_redacted(str(caught.value))
    assert "a:***@one" in str(caught.value) and "b:***@two" in str(caught.value)


async def test_a_policy_conflict_hides_the_site_password(registry: SessionRegistry) -> None:
    registry.set_policy(f"http://user:{SECRET}@127.0.0.1/", SitePolicy(retry=None))
    with pytest.raises(ValueError, match="already has the site policy") as caught:
        registry.set_policy(f"http://user:{SECRET}@127.0.0.1/", SitePolicy(rate=RateLimit(1, per=1)))
    assert_redacted(str(caught.value))


# --- Redis URLs ------------------------------------------------------------------------------------


def redis_policy(url: str, **options: object) -> SitePolicy:
    shared = RedisLimit(url, **options)  # type: ignore[arg-type]
    return SitePolicy(retry=None, rate=RateLimit(5, per=60, redis=shared))


def test_redis_limit_repr_hides_the_password() -> None:
    limit = RedisLimit(f"redis://:{SECRET}@127.0.0.1:6379/0", prefix="p")
    assert repr(limit) == (
        "RedisLimit(url='redis://:***@127.0.0.1:6379/0', on_error='fail', timeout=1.0, recheck=5.0, "
        "prefix='p')"
    )
    assert_redacted(repr(redis_policy(f"redis://user:{SECRET}@127.0.0.1/0")))
    assert_redacted(repr(RedisLimit(f"redis://127.0.0.1/0?password={SECRET}")))


def test_a_bad_redis_url_error_hides_the_password() -> None:
    with pytest.raises(ValueError) as caught:
        RedisLimit(f"http://:{SECRET}@127.0.0.1:6379/0")
    assert_redacted(str(caught.value))


async def test_a_policy_conflict_hides_the_redis_password(registry: SessionRegistry) -> None:
    registry.set_policy("http://127.0.0.1/", redis_policy(f"redis://:{SECRET}@127.0.0.1:1/0"))
    with pytest.raises(ValueError, match="already has the site policy") as caught:
        registry.set_policy("http://127.0.0.1/", redis_policy(f"redis://:{SECRET}@127.0.0.1:2/0"))
    assert_redacted(str(caught.value))


async def test_unreachable_redis_error_hides_the_password(upstream: Upstream) -> None:
    redis = f"redis://:{SECRET}@127.0.0.1:{free_port()}/0"  # nothing listens there
    registry = SessionRegistry(policies={upstream.origin: redis_policy(redis, timeout=0.5)})
    try:
        with pytest.raises(RedisLimitError) as caught:
            async with registry.session(upstream.url()) as session:
                await session.get(upstream.url("/echo"))
    finally:
        await registry.close()
    assert "which could not be reached" in str(caught.value)
    assert_redacted(str(caught.value))
    assert upstream.requests == 0


async def test_unreachable_redis_warning_hides_the_password(
    upstream: Upstream, caplog: pytest.LogCaptureFixture
) -> None:
    redis = f"redis://:{SECRET}@127.0.0.1:{free_port()}/0"
    policy = redis_policy(redis, timeout=0.5, on_error="local", recheck=3600.0)
    registry = SessionRegistry(policies={upstream.origin: policy})
    try:
        with caplog.at_level(logging.DEBUG):
            async with (
                registry.session(upstream.url()) as session,
                session.get(upstream.url("/echo")) as resp,
            ):
                assert resp.status == 200
    finally:
        await registry.close()
    unreachable = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert unreachable, caplog.text
    for record in caplog.records:
        assert SECRET not in record.getMessage(), record.getMessage()
        assert SECRET not in repr(record.args), record.args
    assert_redacted(unreachable[0].getMessage())


# --- hosts yarl would rewrite ----------------------------------------------------------------------

REWRITTEN = [
    pytest.param("http://exa\r\nmple.com/", "example.com", id="crlf"),
    pytest.param("http://127.0.0.1\r\n.evil.com/", "127.0.0.1.evil.com", id="crlf-ip"),
    pytest.param("http://exa\rmple.com/", "example.com", id="cr"),
    pytest.param("http://exa\nmple.com/", "example.com", id="lf"),
    pytest.param("http://exa\tmple.com/", "example.com", id="tab"),
    pytest.param("http://example.com\n", "example.com", id="trailing-lf"),
    pytest.param("\thttp://example.com/", "example.com", id="leading-tab"),
    pytest.param("http://example.com/v1\r\n", "example.com", id="crlf-in-path"),
    pytest.param(" http://example.com/", None, id="leading-space"),
    pytest.param("http://example.com /", None, id="space-after-host"),
    pytest.param("http://exa\u00a0mple.com/", None, id="nbsp"),
    pytest.param("http://exa\u3000mple.com/", None, id="ideographic-space"),
    pytest.param("http://exa\x0bmple.com/", None, id="vt"),
]


@pytest.mark.parametrize(("url", "yarl_host"), REWRITTEN)
async def test_a_host_yarl_would_rewrite_is_refused_saying_so(
    url: str, yarl_host: str | None, registry: SessionRegistry
) -> None:
    for attempt in (
        lambda: Api(url, registry=registry),
        lambda: registry.session(url),
        lambda: parse_url(url),
    ):
        with pytest.raises(ValueError, match="yarl would") as caught:
            attempt()
        message = str(caught.value)
        assert repr(url) in message, message  # the value as given, control characters escaped
        if yarl_host is not None:
            assert repr(yarl_host) in message, message  # what yarl would have made of it
    with pytest.raises(ValueError, match="yarl would"):
        await registry.acquire(url)
    assert_untouched(registry)


async def test_a_rewritten_host_with_a_password_is_refused_without_showing_it(
    registry: SessionRegistry,
) -> None:
    with pytest.raises(ValueError, match="yarl would") as caught:
        Api(f"http://user:{SECRET}@exa\r\nmple.com/", registry=registry)
    assert_redacted(str(caught.value))


async def test_whitespace_in_a_base_path_is_still_encoded_not_refused() -> None:
    async def raw_path(request: web.Request) -> web.Response:
        return web.Response(text=request.raw_path)

    app = web.Application()
    app.router.add_get("/{tail:.*}", raw_path)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    registry = SessionRegistry()
    try:
        api = Api(str(server.make_url("/a b/")), registry=registry)
        async with api, api.get("c") as resp:
            assert await resp.text() == "/a%20b/c"
    finally:
        await registry.close()
        await server.close()


# --- policies must be a mapping --------------------------------------------------------------------


@pytest.mark.parametrize(
    "policies",
    [
        pytest.param([("http://127.0.0.1/", SitePolicy())], id="list"),
        pytest.param((("http://127.0.0.1/", SitePolicy()),), id="tuple"),
        pytest.param("http://127.0.0.1/", id="str"),
        pytest.param([], id="empty-list"),
    ],
)
def test_policies_that_are_not_a_mapping_are_a_type_error(policies: object) -> None:
    with pytest.raises(TypeError) as caught:
        SessionRegistry(policies=policies)  # type: ignore[arg-type]
    message = str(caught.value)
    assert "mapping of site URL -> SitePolicy" in message, message
    assert type(policies).__name__ in message, message


def test_policies_with_a_password_in_a_list_do_not_show_it() -> None:
    with pytest.raises(TypeError) as caught:
        SessionRegistry(policies=[(f"http://u:{SECRET}@127.0.0.1/", SitePolicy())])  # type: ignore[arg-type]
    assert_redacted(str(caught.value))


async def test_any_mapping_of_policies_is_taken() -> None:
    registry = SessionRegistry(policies=MappingProxyType({"http://127.0.0.1/": SitePolicy()}))
    try:
        assert registry._site_policies().get(("http", "127.0.0.1", 80)) == SitePolicy()
    finally:
        await registry.close()
