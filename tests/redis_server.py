"""A real ``redis-server`` for tests: started on a free loopback port in a temporary directory, then stopped.

Skipped with the reason when Debian's ``redis-server`` is not installed, except under ``CI=true``, where a
missing server is a failure (``.ci/run`` installs it). ``running_redis`` is the start-up alone, without
pytest: ``benchmarks/policies.py`` starts its server with it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pytest

__all__ = ("free_port", "redis_server_url", "running_redis")


def free_port() -> int:
    """A loopback TCP port nothing listens on right now (the OS's choice)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(binary: str, directory: Path) -> tuple[subprocess.Popen[str], int]:
    """Start redis-server and return it once it accepts connections; a port taken meanwhile is retried."""
    for _ in range(5):
        port = free_port()
        process = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(directory),
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--loglevel",
                "notice",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert process.stdout is not None
        output = []
        # Redis says when it is ready; reading its log waits exactly as long as it takes.
        for line in process.stdout:
            output.append(line)
            if "Ready to accept connections" in line:
                return process, port
        process.wait()
        if not any("Address already in use" in line for line in output):
            raise RuntimeError(f"redis-server exited with {process.returncode}:\n{''.join(output)}")
    raise RuntimeError("redis-server found no free port in 5 tries")


@contextmanager
def running_redis(directory: Path, binary: str | None = None) -> Iterator[str]:
    """Yield ``redis://127.0.0.1:<port>/0`` of a redis-server working in *directory*; stop it on exit.

    Raises ``RuntimeError`` when *binary* (default: ``redis-server`` on the PATH) is not installed.
    """
    binary = binary or shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed (Debian: apt-get install redis-server)")
    process, port = _start(binary, directory)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait()
        assert process.stdout is not None
        process.stdout.close()


def redis_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Yield ``redis://127.0.0.1:<port>/0`` of a redis-server, and stop it when resumed (a fixture's body).

    Skips the test when ``redis-server`` is not installed; fails it instead under ``CI=true``.
    """
    import pytest  # here, so that the benchmarks can import running_redis without pytest installed

    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail(
                "redis-server is not installed and CI=true: .ci/run must install Debian's redis-server"
            )
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server)")
    with running_redis(tmp_path_factory.mktemp("redis"), binary) as url:
        yield url
