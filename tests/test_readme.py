"""The README is a manual that cannot rot: every Python snippet in it runs here, against loopback servers."""

from __future__ import annotations

import asyncio
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()
SNIPPETS = re.findall(r"```python\n(.*?)```", README, re.S)
SITES = ("https://api.example.com", "https://api.github.com")  # each replaced by a loopback server
SLOW_STEP = re.compile(r"Executing <.*> took \d+\.\d+ seconds$")


def test_the_readme_has_the_three_uses():
    assert any("AbstractSessionContainer" in s and "attach_session" in s for s in SNIPPETS)
    assert any("default_registry.session(" in s for s in SNIPPETS)
    assert any("registry.acquire(" in s and "registry.release(" in s for s in SNIPPETS)


def test_every_file_the_readme_links_to_is_in_the_repository():
    links = re.findall(r"\]\(([^)#\s]+)\)", README)
    local = sorted({link for link in links if "://" not in link and not link.startswith("mailto:")})
    assert "benchmarks/results/latest.png" in local and "docs/example-page.png" in local
    if (ROOT / ".git").exists():  # committed, not just present here: a fresh clone must show them
        tracked = subprocess.run(
            ["git", "ls-files", "--", *local], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.split()
        assert sorted(tracked) == local
    assert all((ROOT / link).is_file() for link in local), local


def test_ci_runs_the_readmes_test_command():
    commands = re.search(r"```bash\n(.*?)```", README, re.S)
    assert commands is not None
    test_command = commands.group(1).splitlines()[1]
    ci_lines = (ROOT / ".ci/run").read_text().splitlines()
    assert test_command in ci_lines
    assert "pytest" in test_command


def test_the_api_reference_is_current():
    result = runpy.run_path(str(ROOT / "docs/api_reference.py"), run_name="api_reference")
    old_argv = sys.argv
    sys.argv = ["api_reference.py", "--check"]
    try:
        assert result["main"]() == 0, "run: python docs/api_reference.py"
    finally:
        sys.argv = old_argv
    assert (
        "### `class SessionRegistry(" in README and "#### `SessionRegistry.acquire(url: Any = None" in README
    )


async def echo(request: web.Request) -> web.Response:
    return web.json_response({"path": request.path, "method": request.method})


@pytest.fixture
async def sites():
    servers = []
    for _ in SITES:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", echo)
        servers.append(TestServer(app, host="127.0.0.1"))
        await servers[-1].start_server()
    yield [str(server.make_url("")).rstrip("/") for server in servers]
    for server in servers:
        await server.close()


def localise(source: str, sites: list[str]) -> str:
    for public, local in zip(SITES, sites, strict=True):
        source = source.replace(public, local)
    return source


async def run(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-X", "dev", "-W", "error::ResourceWarning", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode is not None
    # -X dev turns on asyncio's debug mode, which logs any step that takes over 100 ms: on a loaded
    # machine that is the machine, not the snippet. Everything else on stderr still fails the test.
    err_lines = [line for line in err.decode().splitlines(keepends=True) if not SLOW_STEP.match(line)]
    return proc.returncode, out.decode(), "".join(err_lines)


@pytest.mark.parametrize("index", range(len(SNIPPETS)))
async def test_snippet_runs(index, sites, tmp_path):
    source = localise(SNIPPETS[index], sites)
    script = tmp_path / "snippet.py"
    script.write_text(source)
    if "asyncio.run(" in source:  # a script: runs to the end, prints what it got, leaks nothing
        code, out, err = await run(str(script))
        assert code == 0, err
        assert err == ""
        assert out.strip()
    elif "def test_" in source:  # tests of the reader's own: pytest runs and passes them
        code, out, err = await run(
            "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "asyncio_mode=auto", str(script)
        )
        assert code == 0, out + err
        assert re.search(r"\d+ passed", out) and "failed" not in out
    elif "def make_app(" in source:  # a web application: served and asked for what it serves
        app = runpy.run_path(str(script), run_name="readme_snippet")["make_app"]()
        async with TestClient(TestServer(app)) as client:
            resp = await client.get("/forecast/paris")
            assert resp.status == 200
            assert (await resp.json())["path"] == "/weather/paris"
    else:
        pytest.fail(f"README snippet {index} is neither a script, a test file nor an app: make it runnable")
