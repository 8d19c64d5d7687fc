"""SitePolicy(from_headers=True): the quota a site's responses state is obeyed by every request to it."""

from __future__ import annotations

import asyncio
import email.utils
import math
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict

from asynctools import RateLimit, Retry, SessionRegistry, SitePolicy
from asynctools._policy._quota import UNIX_TIME_FROM, read_quota

NOW = 1_800_000_000.0  # a Unix time


@pytest.mark.parametrize(
    ("headers", "remaining", "reset"),
    [
        ({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(NOW + 42)}, 0, 42.0),  # GitHub: Unix
        ({"X-RateLimit-Remaining": "7", "X-RateLimit-Reset": "30"}, 7, 30.0),  # seconds from now
        ({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(NOW - 5)}, 0, 0.0),  # already past
        (
            {
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": str(NOW + 9),
                "X-RateLimit-Reset-After": "1.5",
            },
            0,
            1.5,
        ),  # Discord: the seconds are exact
        ({"RateLimit": '"default";r=0;t=30, "burst";r=5;t=1'}, 0, 30.0),  # IETF, structured
        ({"RateLimit": "limit=100, remaining=0, reset=12"}, 0, 12.0),  # IETF, an earlier draft
        ({"RateLimit-Remaining": "3", "RateLimit-Reset": "4"}, 3, 4.0),  # IETF, earlier still
        ({"X-RateLimit-Remaining": "2"}, 2, None),  # no reset said
    ],
)
def test_each_form_of_quota_header_is_read(
    headers: dict[str, str], remaining: int, reset: float | None
) -> None:
    quota = read_quota(headers, NOW)
    assert quota is not None and (quota.remaining, quota.reset) == (remaining, reset)


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-RateLimit-Remaining": "many"}, {"X-RateLimit-Remaining": "-1"}, {"RateLimit": '"x";q=5'}],
)
def test_no_quota_or_an_unreadable_one_is_none(headers: dict[str, str]) -> None:
    assert read_quota(headers, NOW) is None


def test_a_reset_over_a_year_of_seconds_is_a_unix_time() -> None:
    assert UNIX_TIME_FROM < NOW - 50 * 365 * 86400  # any Unix time since 1971 is above it
    year = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(UNIX_TIME_FROM - 1)}
    quota = read_quota(year, NOW)
    assert quota is not None and quota.reset == UNIX_TIME_FROM - 1


class GitHubLike:
    """A loopback server with a quota of *limit* requests per *window* seconds, GitHub's way: every
    answer says what is left and when it resets (a Unix time, to the hundredth); past it, 403."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit, self.window = limit, window
        self.reset = time.time() + window
        self.used = 0
        self.arrivals: list[tuple[float, int]] = []

    async def handle(self, request: web.Request) -> web.Response:
        now = time.time()
        if now >= self.reset:
            self.reset, self.used = now + self.window, 0
        status = 200 if self.used < self.limit else 403
        self.used += status == 200
        self.arrivals.append((now, status))
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.limit - self.used),
            "X-RateLimit-Reset": f"{math.ceil(self.reset * 100) / 100:.2f}",  # never before the reset
        }
        return web.Response(status=status, headers=headers, text="ok" if status == 200 else "quota")


@pytest.fixture
async def github() -> AsyncIterator[tuple[GitHubLike, str]]:
    state = GitHubLike(limit=3, window=0.4)
    app = web.Application()
    app.router.add_get("/", state.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield state, str(server.make_url("/"))
    finally:
        await server.close()


async def test_a_spent_quota_pauses_the_site_until_its_reset_and_its_403_is_retried(
    github: tuple[GitHubLike, str],
) -> None:
    server, url = github
    registry = SessionRegistry(policies={url: SitePolicy(retry=Retry(attempts=10), from_headers=True)})
    async with registry.session(url) as session:
        statuses = []
        for _ in range(8):  # one after the other: each answer is read before the next is sent
            async with session.get(url) as resp:
                statuses.append(resp.status)
    assert statuses == [200] * 8
    # Once an answer said 0 were left, nothing reached the site before the reset it named.
    answers = [status for _, status in server.arrivals]
    assert answers.count(403) == 0, server.arrivals
    (site,) = registry.stats().sites
    assert site.pauses >= 2 and site.quota_remaining is not None and site.quota_reset is not None
    await registry.close()


async def test_a_403_saying_the_quota_is_spent_is_retried_after_the_reset(
    github: tuple[GitHubLike, str],
) -> None:
    server, url = github
    server.used = server.limit  # spent before we came
    registry = SessionRegistry(policies={url: SitePolicy(retry=Retry(attempts=3), from_headers=True)})
    async with registry.session(url) as session, session.get(url) as resp:
        assert resp.status == 200
    (first, refused), (second, answered) = server.arrivals
    assert (refused, answered) == (403, 200) and second > first
    (site,) = registry.stats().sites
    assert site.retries == {"403": 1}
    await registry.close()


async def test_without_from_headers_the_quota_is_not_read(github: tuple[GitHubLike, str]) -> None:
    server, url = github
    server.used = server.limit
    registry = SessionRegistry(policies={url: SitePolicy(retry=Retry(attempts=3))})
    async with registry.session(url) as session, session.get(url) as resp:
        assert resp.status == 403  # not in Retry.statuses, and its headers are not read
    (site,) = registry.stats().sites
    assert (site.pauses, site.quota_remaining) == (0, None)
    await registry.close()


async def test_a_generous_header_never_lifts_a_stated_rate_limit(github: tuple[GitHubLike, str]) -> None:
    server, url = github
    server.limit = 1000
    policy = SitePolicy(retry=None, rate=RateLimit(1, per=60), from_headers=True)
    registry = SessionRegistry(policies={url: policy})
    async with registry.session(url) as session:
        async with session.get(url) as resp:
            assert resp.status == 200 and resp.headers["X-RateLimit-Remaining"] == "999"
        task = asyncio.ensure_future(session.get(url))
        while not task.done() and registry.stats().sites[0].rate_waiting == 0:  # noqa: ASYNC110
            await asyncio.sleep(0.001)  # (polled: no event says "waiting")
        assert not task.done() and registry.stats().sites[0].rate_waiting == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert len(server.arrivals) == 1
    await registry.close()


def test_from_headers_must_be_a_bool() -> None:
    with pytest.raises(TypeError, match="from_headers"):
        SitePolicy(from_headers="yes")  # type: ignore[arg-type]


def test_a_reset_in_unix_milliseconds_is_read_as_such() -> None:
    quota = read_quota({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str((NOW + 2) * 1000)}, NOW)
    assert quota is not None and quota.reset == pytest.approx(2.0)


def test_a_unix_reset_is_measured_against_the_servers_date() -> None:
    server_clock = NOW + 600  # the server's clock is ten minutes ahead, and says so
    headers = {
        "Date": email.utils.formatdate(server_clock, usegmt=True),
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": str(server_clock + 2),
    }
    quota = read_quota(headers, NOW)
    assert quota is not None and quota.reset == pytest.approx(2.0)


def test_a_field_on_several_lines_counts_whole_and_the_most_restrictive_value_wins() -> None:
    two_lines = CIMultiDict([("RateLimit", '"a";r=5;t=1'), ("RateLimit", '"b";r=0;t=2')])
    quota = read_quota(two_lines, NOW)
    assert quota is not None and (quota.remaining, quota.reset) == (0, 2.0)
    disagreeing = CIMultiDict(
        [("X-RateLimit-Remaining", "5"), ("X-RateLimit-Remaining", "0"), ("X-RateLimit-Reset", "2")]
    )
    quota = read_quota(disagreeing, NOW)
    assert quota is not None and quota.remaining == 0


@pytest.mark.parametrize("field", ['"d";r=0;t=1e309', '"d";r=0;t=2xyz', "limit=9, remaining=0, reset=2e9"])
def test_a_value_that_is_not_a_number_whole_is_not_read_as_its_prefix(field: str) -> None:
    quota = read_quota({"RateLimit": field}, NOW)
    assert quota is None or quota.reset is None
