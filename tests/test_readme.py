"""The README's code runs: its Python snippets against a loopback server, its commands as CI runs them."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()
SNIPPETS = re.findall(r"```python\n(.*?)```", README, re.S)
SITE = "https://api.example.com"


def test_the_readme_has_the_three_uses():
    assert any("AbstractSessionContainer" in s and "attach_session" in s for s in SNIPPETS)
    assert any("default_registry.session(" in s for s in SNIPPETS)
    assert any("registry.acquire(" in s and "registry.release(" in s for s in SNIPPETS)


def test_ci_runs_the_readmes_test_command():
    commands = re.search(r"```bash\n(.*?)```", README, re.S)
    assert commands is not None
    test_command = commands.group(1).splitlines()[1]
    ci_lines = (ROOT / ".ci/run").read_text().splitlines()
    assert test_command in ci_lines
    assert "pytest" in test_command


@pytest.fixture
async def site():
    async def echo(request: web.Request) -> web.Response:
        return web.json_response({"path": request.path, "method": request.method})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url("")).rstrip("/")
    await server.close()


@pytest.mark.parametrize("index", range(len(SNIPPETS)))
async def test_snippet_runs(index, site, tmp_path):
    source = SNIPPETS[index]
    if "asyncio.run(" not in source:
        compile(source, f"README snippet {index}", "exec")
        return
    script = tmp_path / "snippet.py"
    script.write_text(source.replace(SITE, site))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-X", "dev", "-W", "error::ResourceWarning", str(script),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert err.decode() == ""
    assert out.decode().strip()  # every snippet prints what it got
