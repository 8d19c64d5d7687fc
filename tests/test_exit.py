"""Scripts that never close the registry exit clean under `python -X dev -W error::ResourceWarning`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent / "scripts" / "exit_without_closing.py"
FORBIDDEN = (
    "Unclosed client session",
    "Unclosed connector",
    "Unclosed connection",
    "ResourceWarning",
    "Task was destroyed",
    "Exception ignored",
    "Traceback",
)


def run(mode: str, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-X", "dev", *options, str(SCRIPT), mode],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize("mode", ["idle", "paused-generator", "in-flight"])
def test_exit_without_closing_anything_is_clean(mode: str) -> None:
    result = run(mode, "-W", "error::ResourceWarning")
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.split()[0]) >= 2  # the script really left sessions for the registry to close
    assert "pools left: 0" in result.stdout
    for text in FORBIDDEN:
        assert text not in result.stderr, result.stderr


def test_main_raising_reports_only_its_own_error() -> None:
    result = run("raises", "-W", "error::ResourceWarning")
    assert result.returncode == 1
    assert result.stderr.rstrip().endswith("ValueError: boom")
    assert "pools left: 0" in result.stdout
    for text in FORBIDDEN[:-1]:
        assert text not in result.stderr, result.stderr


def test_an_acquisition_never_released_is_reported_with_where_it_was_made() -> None:
    result = run("attached")  # -X dev turns on asyncio's debug mode, and so the registry's
    assert result.returncode == 0, result.stderr
    assert (
        "ResourceWarning: asynctools: 1 acquisition(s) of the session for http://127.0.0.1:" in result.stderr
    )
    assert 'exit_without_closing.py", line' in result.stderr and "api.start_session()" in result.stderr
    assert "pools left: 0" in result.stdout
    for text in ("Unclosed client session", "Unclosed connector", "Task was destroyed", "Exception ignored"):
        assert text not in result.stderr, result.stderr


LATE_ACQUIRE = """
import asyncio
from aiohttp import web
from asynctools import SessionRegistry

registry = SessionRegistry()
kept = []


async def main() -> None:
    app = web.Application()
    app.router.add_get("/", lambda request: web.Response(text="hi"))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/"
    async with registry.session(url) as session, session.get(url) as resp:  # the pool exists
        await resp.read()

    async def late():
        try:
            yield
        finally:
            await asyncio.sleep(0.05)  # by now the registry's shutdown hook has run: nobody held a session
            async with registry.session(url) as session, session.get(url) as resp:
                print("late request:", resp.status, flush=True)
            await runner.cleanup()

    generator = late()
    await generator.__anext__()
    kept.append(generator)


asyncio.run(main())
"""


def test_a_session_acquired_after_the_shutdown_hook_ran_is_closed_with_its_connector(tmp_path: Path) -> None:
    script = tmp_path / "late_acquire.py"
    script.write_text(LATE_ACQUIRE)
    result = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error::ResourceWarning", str(script)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "late request: 200" in result.stdout
    for text in FORBIDDEN:
        assert text not in result.stderr, result.stderr
