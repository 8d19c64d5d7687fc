"""The docs site builds warning-free; every Python snippet in it and in the README runs and type-checks.

Snippets are written against realistic APIs (GitHub's users and repositories, a weather API, an items API,
a shop with a login cookie). This module serves a loopback fake of each of those shapes, one server per
public origin, and runs each snippet with its origins replaced by the loopback ones: the test adapts to
the docs, never the reverse.

- a fence opened with ```python is a snippet that runs: a script (``asyncio.run(...)`` or
  ``run_until_complete``) runs to the end in ``python -X dev -W error::ResourceWarning`` and must print
  something and nothing on stderr; a file with ``make_app()`` is an aiohttp.web app, served and asked for
  each of its GET routes; a snippet with neither must at least import cleanly;
- a fence opened with ```{code-block} python is shown but not run (it needs pytest and the plugin, or a
  framework the test extra does not install): it must still compile;
- every snippet whose imports are installed is type-checked with ``mypy --strict``.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import runpy
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

ROOT = Path(__file__).parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
RUN = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
SHOWN = re.compile(r"^```\{code-block\} python\n(.*?)^```", re.S | re.M)
# Each public origin the snippets use is served by a loopback server of its own (one origin, one session).
SITES = (
    "https://api.github.com",
    "https://api.example.com",
    "https://weather.example.com",
    "https://shop.example.com",
)
SLOW_STEP = re.compile(r"Executing <.*> took \d+\.\d+ seconds$")


def snippets(path: Path, pattern: re.Pattern[str] = RUN) -> list[tuple[str, str]]:
    """(id, source) of each snippet of *path* matched by *pattern*, ids like ``quickstart.md:2``."""
    text = path.read_text()
    kind = "" if pattern is RUN else "shown "
    return [(f"{kind}{path.name}:{n}", source) for n, source in enumerate(pattern.findall(text), start=1)]


DOC_SNIPPETS = [snippet for page in PAGES for snippet in snippets(page)]
SHOWN_SNIPPETS = [snippet for page in PAGES for snippet in snippets(page, SHOWN)]
README_SNIPPETS = snippets(ROOT / "README.md")


# -- the fake APIs ---------------------------------------------------------------------------------------

USERS = {
    "octocat": ("The Octocat", 8),
    "torvalds": ("Linus Torvalds", 7),
    "gvanrossum": ("Guido van Rossum", 24),
}
WEATHER = {"lisbon": (19.5, "sunny"), "paris": (14.2, "light rain")}


async def github_user(request: web.Request) -> web.Response:
    login = request.match_info["login"]
    name, repos = USERS.get(login, (login.title(), 3))
    body = {"login": login, "id": 583231, "name": name, "public_repos": repos, "followers": 9000}
    return web.json_response(body)


async def github_repo(request: web.Request) -> web.Response:
    full_name = f"{request.match_info['owner']}/{request.match_info['repo']}"
    return web.json_response({"full_name": full_name, "stargazers_count": 15000, "open_issues_count": 200})


async def weather(request: web.Request) -> web.Response:
    city = request.query.get("city", "paris")
    temperature, conditions = WEATHER.get(city.lower(), (11.0, "cloudy"))
    return web.json_response({"city": city, "temperature_c": temperature, "conditions": conditions})


async def list_items(request: web.Request) -> web.Response:
    count = int(request.query.get("limit", "3"))
    return web.json_response([{"id": n, "name": f"item {n}", "price": 9.5 + n} for n in range(1, count + 1)])


async def get_item(request: web.Request) -> web.Response:
    number = int(request.match_info["number"])
    return web.json_response({"id": number, "name": f"item {number}", "price": 9.5 + number})


async def add_item(request: web.Request) -> web.Response:
    body = await request.json()
    return web.json_response({"id": 42, **body}, status=201)


async def login(request: web.Request) -> web.Response:
    user = (await request.json())["user"]
    resp = web.json_response({"user": user})
    resp.set_cookie("shop_session", user)
    return resp


async def cart(request: web.Request) -> web.Response:
    return web.json_response({"user": request.cookies.get("shop_session"), "items": []})


def fake_api() -> web.Application:
    app = web.Application()
    app.router.add_get("/users/{login}", github_user)
    app.router.add_get("/repos/{owner}/{repo}", github_repo)
    for prefix in ("", "/v1", "/v2"):
        app.router.add_get(f"{prefix}/current", weather)
        app.router.add_get(f"{prefix}/items", list_items)
        app.router.add_post(f"{prefix}/items", add_item)
        app.router.add_get(prefix + "/items/{number}", get_item)
    app.router.add_post("/login", login)
    app.router.add_get("/cart", cart)
    return app


@pytest.fixture
async def sites() -> AsyncIterator[dict[str, str]]:
    servers = [TestServer(fake_api(), host="127.0.0.1") for _ in SITES]
    for server in servers:
        await server.start_server()
    yield {
        public: str(server.make_url("")).rstrip("/") for public, server in zip(SITES, servers, strict=True)
    }
    for server in servers:
        await server.close()


def localise(source: str, sites: dict[str, str]) -> str:
    for public, local in sites.items():
        source = source.replace(public, local)
    return source


# -- running snippets ------------------------------------------------------------------------------------


async def run_python(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-X", "dev", "-W", "error::ResourceWarning", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode is not None
    # -X dev turns on asyncio's debug mode, which logs any step that takes over 100 ms: on a loaded
    # machine that is the machine, not the snippet. Everything else on stderr still fails the test.
    err_lines = [line for line in err.decode().splitlines(keepends=True) if not SLOW_STEP.match(line)]
    return proc.returncode, out.decode(), "".join(err_lines)


async def check_snippet(name: str, source: str, sites: dict[str, str], tmp_path: Path) -> None:
    """Run one snippet as its kind asks (see the module docstring)."""
    source = localise(source, sites)
    script = tmp_path / "snippet.py"
    script.write_text(source)
    if "def make_app(" in source:  # an aiohttp.web app: served, and each of its GET routes asked for
        app = runpy.run_path(str(script), run_name="docs_snippet")["make_app"]()
        async with TestClient(TestServer(app)) as client:
            paths = [
                re.sub(r"\{[^}]+\}", "paris", route.resource.canonical)
                for route in app.router.routes()
                if route.method == "GET" and route.resource is not None
            ]
            assert paths, f"{name}: the app serves nothing"
            for path in paths:
                resp = await client.get(path)
                assert resp.status == 200, f"{name}: GET {path} -> {resp.status}: {await resp.text()}"
                assert await resp.json()
    else:
        code, out, err = await run_python(str(script))
        assert code == 0, f"{name} failed:\n{err}"
        assert err == "", f"{name} wrote to stderr:\n{err}"
        if "asyncio.run(" in source or "run_until_complete(" in source:
            assert out.strip(), f"{name} printed nothing"


@pytest.mark.parametrize(("name", "source"), DOC_SNIPPETS, ids=[name for name, _ in DOC_SNIPPETS])
async def test_doc_snippet_runs(name: str, source: str, sites: dict[str, str], tmp_path: Path) -> None:
    await check_snippet(name, source, sites, tmp_path)


@pytest.mark.parametrize(("name", "source"), SHOWN_SNIPPETS, ids=[name for name, _ in SHOWN_SNIPPETS])
def test_shown_snippet_compiles(name: str, source: str) -> None:
    compile(source, name, "exec")


def imports_available(source: str) -> bool:
    modules = re.findall(r"^(?:from|import) ([\w.]+)", source, re.M)
    return all(importlib.util.find_spec(module.split(".")[0]) is not None for module in modules)


@pytest.mark.slow  # runs mypy
def test_snippets_type_check(tmp_path: Path) -> None:
    """Every snippet (docs and README) whose imports are installed passes mypy --strict."""
    files = []
    for name, source in [*DOC_SNIPPETS, *SHOWN_SNIPPETS, *README_SNIPPETS]:
        if not imports_available(source):
            continue
        path = tmp_path / (re.sub(r"\W", "_", name) + ".py")
        path.write_text(source)
        files.append(path)
    assert len(files) >= len(DOC_SNIPPETS) + len(README_SNIPPETS)
    cache = tmp_path / ".mypy_cache"
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(cache), *map(str, files)],
        cwd=tmp_path,
        # An editable install is an import hook mypy cannot follow: point it at the checkout.
        env={**os.environ, "MYPYPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# -- the site ----------------------------------------------------------------------------------------------


def test_every_page_is_covered() -> None:
    names = {page.stem for page in PAGES}
    assert names >= {
        "index", "quickstart", "containers", "registry", "policies", "recipes", "testing", "sharing", "idle",
        "loops", "leaks", "guarantees", "metrics", "performance", "migration", "api",
    }  # fmt: skip
    assert len(DOC_SNIPPETS) >= 15


@pytest.mark.slow  # runs sphinx-build
def test_the_build_is_warning_free(tmp_path: Path) -> None:
    """sphinx-build -W -n: a warning, a broken reference or a docstring reStructuredText rejects fails."""
    for module in ("sphinx", "myst_parser", "furo"):
        pytest.importorskip(module, reason="the docs extra is not installed: pip install -e '.[docs]'")
    out = tmp_path / "html"
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "-n", "--keep-going", "-q", "-b", "html", str(DOCS), str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    api = (out / "api.html").read_text()
    import asynctools

    for name in asynctools.__all__:  # every public name has its entry, and nothing private shows
        assert f'id="asynctools.{name}"' in api, name
    assert "SessionKey" not in api and "_decorators" not in api
    assert "asynctools.attach_session(method)" in re.sub(r"<[^>]+>", "", api)
    assert (out / "_images" / "latest.png").is_file()  # the benchmark chart


def test_readthedocs_configuration() -> None:
    config = (ROOT / ".readthedocs.yaml").read_text()
    assert re.search(r"^version: 2$", config, re.M)
    assert 'python: "3.12"' in config
    assert "configuration: docs/conf.py" in config
    assert "extra_requirements:" in config and "- docs" in config


def test_intersphinx_inventories_are_committed() -> None:
    for name in ("python", "aiohttp", "yarl"):
        inventory = (DOCS / "_intersphinx" / f"{name}.inv").read_bytes()
        assert inventory.startswith(b"# Sphinx inventory version 2"), name
