"""Leak diagnostics: in debug mode, acquisitions never released are reported with where they were made."""

from __future__ import annotations

import asyncio
import gc
import warnings

import aiohttp
import pytest

from asynctools import SessionRegistry


async def leaky(registry: SessionRegistry) -> aiohttp.ClientSession:
    return await registry.acquire("http://a.example")


async def test_close_reports_an_acquisition_never_released_with_its_traceback() -> None:
    registry = SessionRegistry(debug=True)
    session = await leaky(registry)
    with pytest.warns(
        ResourceWarning, match=r"1 acquisition\(s\) of the session for http://a\.example were never released"
    ) as caught:
        await registry.close()
        del session
        gc.collect()
    message = str(caught[0].message)
    assert "in leaky" in message and "test_debug.py" in message
    assert "_pool.py" not in message  # asynctools' own frames are left out


async def test_an_acquisition_released_after_close_is_not_reported() -> None:
    registry = SessionRegistry(debug=True)
    session = await leaky(registry)
    await registry.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        await registry.release(session)
        del session
        gc.collect()


async def test_released_acquisitions_leave_nothing_to_report() -> None:
    registry = SessionRegistry(debug=True)
    for _ in range(3):
        async with registry.session("http://a.example"):
            pass
    assert registry._pools[asyncio.get_running_loop()]._entries  # idle, not in use
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        await registry.close()
        gc.collect()


async def test_asyncio_debug_mode_turns_it_on_and_no_debug_keeps_it_off() -> None:
    loop = asyncio.get_running_loop()
    loop.set_debug(True)
    try:
        registry = SessionRegistry()
        await registry.acquire()
        assert registry._pools[loop].debug
    finally:
        loop.set_debug(False)
    with pytest.warns(ResourceWarning, match="never released"):
        await registry.close()
        gc.collect()
    quiet = SessionRegistry()
    session = await quiet.acquire()
    assert not quiet._pools[loop].debug
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        await quiet.close()
        del session
        gc.collect()
