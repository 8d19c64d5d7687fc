"""The maths server end to end: the 0.1.3 README's curl, bad input, failing upstreams, /stats, Ctrl-C."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

import asynctools
from example.maths import MATHS_POLICY
from example.server import make_app
from example.upstream import FlakySchedule

if TYPE_CHECKING:
    from pytest_aiohttp import AiohttpClient

    Maths = TestClient[web.Request, web.Application]  # what the maths fixture gives

ROOT = Path(__file__).parent.parent
SEED_JSON = {
    "values": ["1", "2", "3", "4", "5", "6", "7", "8", "9", "10"],
    "results": ["1", "4", "9", "16", "25", "36", "49", "64", "81", "100"],
}


@pytest.fixture
async def maths(aiohttp_client: AiohttpClient) -> Maths:
    return await aiohttp_client(make_app())


async def test_the_seed_readmes_curl(maths: Maths) -> None:
    resp = await maths.get("/squares?values=1,2,3,4,5,6,7,8,9,10")
    assert resp.status == 200
    assert await resp.json() == SEED_JSON


async def test_negative_and_decimal_values(maths: Maths) -> None:
    resp = await maths.get("/squares", params={"values": "-3, 0.5,1e3"})
    assert await resp.json() == {"values": ["-3", "0.5", "1e3"], "results": ["9", "0.25", "1000000"]}


async def test_one_session_serves_every_request(maths: Maths) -> None:
    for _ in range(5):
        assert (await maths.get("/squares?values=1,2,3,4,5,6,7,8,9,10")).status == 200
    stats = await (await maths.get("/stats")).json()
    assert stats["created"] == 1
    assert stats["acquired"] == 5
    assert stats["in_use"] == 0
    assert [s["users"] for s in stats["sessions"]] == [0]


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("", "missing or empty 'values'"),
        ("?values=", "missing or empty 'values'"),
        ("?values=1,two,3", "'two' is not a number"),
        ("?values=1,,3", "'' is not a number"),
        ("?values=nan", "'nan' is not a finite number"),
        # float() takes these, mathjs does not: refused here rather than a 502 from the upstream.
        ("?values=1_000", "'1_000' is not a number: the math API takes no underscores in numbers"),
        ("?values=%D9%A3", "'\u0663' is not a number"),
        ("?values=" + ",".join(["1"] * 1001), "1001 values given, at most 1000"),
    ],
)
async def test_bad_input_gets_a_400_naming_the_problem(maths: Maths, query: str, words: str) -> None:
    resp = await maths.get("/squares" + query)
    assert resp.status == 400
    assert words in (await resp.json())["error"]
    assert (await maths.get("/squares?values=2")).status == 200  # still serving


async def test_a_thousand_values_are_fine(maths: Maths) -> None:
    resp = await maths.get("/squares", params={"values": ",".join(str(i) for i in range(1000))})
    body = await resp.json()
    assert body["results"][999] == "998001"


async def faulty_upstream(behaviour: str) -> TestServer:
    async def v4(request: web.Request) -> web.Response:
        if behaviour == "fails":
            return web.Response(status=500, text="Internal error")
        if behaviour == "garbage":
            return web.Response(text="<html>banana</html>")
        await asyncio.Event().wait()  # hangs
        raise AssertionError("unreachable")

    app = web.Application()
    app.router.add_get("/v4", v4)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


@pytest.mark.parametrize(
    ("behaviour", "words"),
    [
        ("fails", "ClientResponseError: 500"),
        ("garbage", "answered '<html>banana</html>' for (2)^2, not a number"),
        ("hangs", "did not answer in time"),
    ],
)
async def test_a_failing_upstream_gets_a_502_naming_it(
    aiohttp_client: AiohttpClient, behaviour: str, words: str
) -> None:
    upstream = await faulty_upstream(behaviour)
    try:
        client = await aiohttp_client(make_app(str(upstream.make_url("/v4")), timeout=0.2))
        resp = await client.get("/squares?values=2")
        assert resp.status == 502
        error = (await resp.json())["error"]
        assert str(upstream.make_url("/v4")) in error
        assert words in error
    finally:
        await upstream.close()


async def test_an_upstream_that_is_not_there(aiohttp_client: AiohttpClient) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens once the socket is closed
    client = await aiohttp_client(make_app(f"http://127.0.0.1:{port}/v4"))
    resp = await client.get("/squares?values=2")
    assert resp.status == 502
    assert "ClientConnectorError" in (await resp.json())["error"]


async def test_the_embedded_upstream_refuses_malformed_expressions(maths: Maths) -> None:
    resp = await maths.get("/squares?values=2")
    assert resp.status == 200
    stats = await (await maths.get("/stats")).json()
    origin = stats["sessions"][0]["origin"]
    async with maths.session.get(f"{origin}/v4", params={"expr": "2 +* 3"}) as bad:
        assert bad.status == 400
        assert (await bad.text()).startswith("Error: Value expected")
    async with maths.session.get(f"{origin}/v4") as missing:
        assert missing.status == 400
    async with maths.session.get(f"{origin}/v4", params={"expr": "(1_000)^2"}) as underscores:
        assert underscores.status == 400
        assert (await underscores.text()).startswith("Error: Unexpected character '_'")


@pytest.mark.parametrize(
    "upstream", ["not-a-url", "/v4", "api.mathjs.org/v4", "ftp://api.mathjs.org/v4", "http:///v4"]
)
def test_make_app_refuses_an_upstream_that_is_not_an_absolute_http_url(upstream: str) -> None:
    with pytest.raises(ValueError, match=f"{upstream!r}.*absolute http"):
        make_app(upstream)


async def test_the_page_renders_a_table_without_javascript(maths: Maths) -> None:
    page = await (await maths.get("/")).text()
    assert '<form method="get" action="/">' in page and "<script" not in page
    resp = await maths.get("/", params={"values": "1,2,-3"})
    html = await resp.text()
    for value, square in (("1", "1"), ("2", "4"), ("-3", "9")):
        assert f"<tr><td>{value}</td><td>{square}</td></tr>" in html
    resp = await maths.get("/", params={"values": "1,<b>x"})
    assert resp.status == 400
    assert "&#39;&lt;b&gt;x&#39; is not a number" in await resp.text()
    css = await maths.get("/static/style.css")
    assert css.status == 200 and "table" in await css.text()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RunningExample:
    """``python -m example`` in a subprocess, as a user runs it."""

    def __init__(self, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-X",
                "dev",
                "-m",
                "example",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                *args,
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.proc.stdout is not None
        self.banner = self.proc.stdout.readline()

    def get(self, path: str) -> str:
        # No retry: the banner is printed once the server listens.
        with urllib.request.urlopen(self.url + path) as resp:
            return str(resp.read().decode())

    def interrupt(self) -> tuple[int, str]:
        self.proc.send_signal(signal.SIGINT)
        _, err = self.proc.communicate(timeout=60)
        return self.proc.returncode, err


def test_python_m_example_serves_the_curl_and_stops_cleanly_on_ctrl_c() -> None:
    server = RunningExample()
    try:
        assert f"{server.url}/squares?values=1,2,3,4,5,6,7,8,9,10" in server.banner
        assert json.loads(server.get("/squares?values=1,2,3,4,5,6,7,8,9,10")) == SEED_JSON
    finally:  # a failed request must not leave the server running
        code, err = server.interrupt()
    assert code == 0
    for text in ("Traceback", "Unclosed", "ResourceWarning", "Task was destroyed", "Exception ignored"):
        assert text not in err, err


def run_example(*args: str) -> tuple[int, str, str]:
    """``python -m example ARGS``, expected to stop by itself: its exit code, stdout and stderr.

    If it starts serving instead (its first line is the banner), it is stopped and the test fails, so a
    regression fails the test rather than hanging it.
    """
    with tempfile.TemporaryFile("w+") as stderr:  # a file, not a pipe: it cannot fill up and block
        proc = subprocess.Popen(
            [sys.executable, "-X", "dev", "-m", "example", *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert proc.stdout is not None
        with proc.stdout:
            first = proc.stdout.readline()
            if first.startswith("maths server on"):
                proc.send_signal(signal.SIGINT)
                proc.wait()
                raise AssertionError(f"python -m example {' '.join(args)} started serving: {first}")
            out = first + proc.stdout.read()
        code = proc.wait()
        stderr.seek(0)
        return code, out, stderr.read()


def test_a_port_in_use_is_one_line_on_stderr_and_exit_1() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, out, err = run_example("--host", "127.0.0.1", "--port", str(port))
    assert code == 1, err
    assert out == ""  # no URL: nothing listens there
    assert err.count("\n") == 1, err
    assert f"127.0.0.1:{port}" in err
    assert "in use" in err and "--port" in err


@pytest.mark.parametrize("upstream", ["not-a-url", "ftp://api.mathjs.org/v4"])
def test_an_upstream_that_is_not_an_http_url_is_refused_at_start_up(upstream: str) -> None:
    code, out, err = run_example("--host", "127.0.0.1", "--port", str(free_port()), "--upstream", upstream)
    assert code == 2, err
    assert out == ""
    last_line = err.splitlines()[-1]
    assert last_line.startswith("python -m example: error: argument --upstream:"), err
    assert repr(upstream) in last_line
    assert "absolute http(s) URL" in last_line


def test_a_port_out_of_range_is_refused_by_argparse() -> None:
    code, out, err = run_example("--host", "127.0.0.1", "--port", "70000")
    assert code == 2, err
    assert out == ""
    assert "argument --port: 70000" in err and "1 to 65535" in err


def test_help_is_plain_text_with_help_for_every_option() -> None:
    code, out, err = run_example("--help")
    assert code == 0, err
    assert "`" not in out
    assert "http://localhost:8080" in out
    options = out.split("options:", 1)[1]
    entries = [line.strip() for line in options.splitlines() if line.strip()]
    for option in ("--host", "--port", "--upstream", "--flaky"):
        (entry,) = [e for e in entries if e.startswith(option)]
        described = entry.split(None, 2)[2:]  # past the option and its metavar
        following = entries[entries.index(entry) + 1]
        assert described or not following.startswith("-"), f"{option} has no help: {out}"
    assert "default: localhost" in options and "default: 8080" in options


# -- the site policy, the metrics and --flaky ----------------------------------------------------------------

THOUSAND = ",".join(str(i) for i in range(1000))


def upstream_of(stats: dict[str, Any]) -> dict[str, Any]:
    site: dict[str, Any]
    (site,) = stats["upstreams"]  # one upstream site: the embedded math API
    return site


async def test_stats_show_one_session_and_a_few_connections_serving_a_thousand_squares(maths: Maths) -> None:
    body = await (await maths.get("/squares", params={"values": THOUSAND})).json()
    assert body["results"] == [str(i * i) for i in range(1000)]
    stats = await (await maths.get("/stats")).json()
    site = upstream_of(stats)
    assert site["origin"] == stats["sessions"][0]["origin"]
    assert site["sessions"] == {"open": 1, "idle": 1, "created": 1}
    assert site["requests"] == site["attempts"] == 1000
    assert site["responses"] == {"2xx": 1000}
    # Every request went over a connection; the concurrency limit (8) bounds how many were ever opened.
    assert site["connections_opened"] + site["connections_reused"] == 1000
    assert 1 <= site["connections_opened"] <= MATHS_POLICY.concurrency
    assert 0 < site["latency_p50_ms"] <= site["latency_p99_ms"]
    assert site["retries"] == {} and site["gave_up"] == 0
    # Whether requests wait for the rate limit depends on how fast the machine serves them (8 at once
    # can stay under 500 a second): only that the two figures agree is certain.
    assert (site["rate_waits"] == 0) == (site["rate_wait_seconds"] == 0)
    # The raw figures are there too, as the library gives them.
    (metrics,) = stats["metrics"]
    assert metrics["requests"] == 1000 and metrics["latency_count"] == 1000
    (policy,) = stats["sites"]
    assert policy["attempts"] == 1000


async def test_the_flaky_stand_in_is_retried_and_the_squares_still_come_out_right(
    aiohttp_client: AiohttpClient,
) -> None:
    maths = await aiohttp_client(make_app(flaky=0.2))
    body = await (await maths.get("/squares", params={"values": THOUSAND})).json()
    assert body["results"] == [str(i * i) for i in range(1000)]
    site = upstream_of(await (await maths.get("/stats")).json())
    retries = site["retries"]
    assert retries["429"] > 0 and retries["503"] > 0  # the stand-in gives them in turn
    assert abs(retries["429"] - retries["503"]) <= 1
    assert site["gave_up"] == 0
    # A fifth of the attempts failed and were tried again.
    assert site["attempts"] == 1000 + retries["429"] + retries["503"]
    assert 0.15 <= (site["attempts"] - 1000) / site["attempts"] <= 0.25
    # The metrics see the requests as the code made them, retries inside: 1,000, all answered 2xx...
    assert site["requests"] == 1000 and site["responses"] == {"2xx": 1000}
    # ...and every attempt took a connection, a few of them opened.
    assert site["connections_opened"] + site["connections_reused"] == site["attempts"]
    assert site["connections_opened"] <= MATHS_POLICY.concurrency < site["requests"] / 100


async def test_an_upstream_failing_every_first_attempt_still_squares_everything(
    aiohttp_client: AiohttpClient,
) -> None:
    maths = await aiohttp_client(make_app(flaky=1))
    body = await (await maths.get("/squares", params={"values": "1,2,3,4,5,6"})).json()
    assert body["results"] == ["1", "4", "9", "16", "25", "36"]
    site = upstream_of(await (await maths.get("/stats")).json())
    assert site["retries"] == {"429": 3, "503": 3}
    assert site["attempts"] == 12 and site["gave_up"] == 0


def test_the_flaky_schedule_fails_that_share_and_never_one_expression_twice_in_a_row() -> None:
    schedule = FlakySchedule(0.2)
    answers = [schedule.failure(f"({n})^2") for n in range(20)]
    failed = [n for n, answer in enumerate(answers) if answer is not None]
    assert failed == [4, 9, 14, 19]
    assert [answers[n].status for n in failed] == [429, 503, 429, 503]  # type: ignore[union-attr]
    assert answers[4].headers["Retry-After"] == "0"  # type: ignore[union-attr]
    assert schedule.failure("(24)^2") is None  # request 20 would not fail anyway
    always = FlakySchedule(1)
    assert always.failure("(1)^2") is not None
    assert always.failure("(1)^2") is None  # the retry gets through
    assert always.failure("(1)^2") is not None
    never = FlakySchedule(0)
    assert all(never.failure("(1)^2") is None for _ in range(100))


@pytest.mark.parametrize("share", [-0.1, 1.5, float("nan"), True, "0.2"])
def test_a_flaky_share_out_of_range_is_refused(share: float | str) -> None:
    with pytest.raises(ValueError, match="from 0 to 1"):
        FlakySchedule(share)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="from 0 to 1"):
        make_app(flaky=share)  # type: ignore[arg-type]


def test_flaky_applies_to_the_stand_in_only() -> None:
    with pytest.raises(ValueError, match="embedded math API"):
        make_app("http://127.0.0.1:9/v4", flaky=0.2)


async def test_the_page_shows_the_upstream_figures(maths: Maths) -> None:
    page = await (await maths.get("/")).text()
    assert 'class="upstream"' not in page  # nothing asked of the math API yet
    html = await (await maths.get("/", params={"values": ",".join(str(i) for i in range(20))})).text()
    assert '<dd data-figure="requests">20</dd>' in html
    assert '<dd data-figure="attempts">20</dd>' in html
    assert "1 open, 1 idle" in html
    assert '<dd data-figure="retries">none</dd>' in html
    assert 'data-figure="latency_p50_ms"' in html


async def test_the_page_shows_retries_by_cause(aiohttp_client: AiohttpClient) -> None:
    maths = await aiohttp_client(make_app(flaky=0.5))
    html = await (await maths.get("/", params={"values": "1,2,3,4"})).text()
    assert '<dd data-figure="retries">1 after 429, 1 after 503</dd>' in html


async def test_a_registry_without_metrics_still_shows_its_policy_figures(
    aiohttp_client: AiohttpClient,
) -> None:
    maths = await aiohttp_client(make_app(registry=asynctools.SessionRegistry()))
    html = await (await maths.get("/", params={"values": "1,2"})).text()
    assert 'data-figure="requests"' not in html and '<dd data-figure="attempts">2</dd>' in html
    site = upstream_of(await (await maths.get("/stats")).json())
    assert site["requests"] is None and site["connections_opened"] is None
    assert site["attempts"] == 2


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--flaky", "1.5"), "argument --flaky: 1.5 is not a share from 0 to 1"),
        (("--flaky", "often"), "argument --flaky: often is not a share from 0 to 1"),
        (("--flaky", "0.2", "--upstream", "http://127.0.0.1:9/v4"), "--flaky applies to the local stand-in"),
    ],
)
def test_a_bad_flaky_is_refused_by_argparse(args: tuple[str, ...], words: str) -> None:
    code, out, err = run_example("--host", "127.0.0.1", "--port", str(free_port()), *args)
    assert code == 2, err
    assert out == ""
    assert words in err.splitlines()[-1]


def test_python_m_example_flaky_retries_and_shows_them_in_stats() -> None:
    server = RunningExample("--flaky", "0.5")
    try:
        assert json.loads(server.get("/squares?values=1,2,3,4,5,6,7,8,9,10")) == SEED_JSON
        site = upstream_of(json.loads(server.get("/stats")))
    finally:
        code, err = server.interrupt()
    assert code == 0, err
    assert site["retries"] == {"429": 3, "503": 2} or site["retries"] == {"429": 3, "503": 3}
    assert site["gave_up"] == 0 and site["requests"] == 10
