"""A hook that runs when a loop shuts down, after the last task is done."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable

__all__ = ("ShutdownHook",)


class ShutdownHook:
    """Calls *on_shutdown* when its loop finalises async generators (``loop.shutdown_asyncgens()``).

    ``asyncio.run()``, ``asyncio.Runner``, aiohttp's ``run_app`` and pytest-asyncio all end a loop the
    same way: cancel the tasks left and wait for them (``run_app`` and pytest-asyncio < 0.24 skip this),
    then ``shutdown_asyncgens()``, then close it. A task waiting for the shutdown would be cancelled in
    the first step, together with the tasks whose ``finally:`` still needs the sessions, and would make
    code that waits for "every other task" hang. A paused async generator is neither: the loop tracks
    it through its first-iteration hook and closes it in the second step, once every task is done. It
    is started here, from the constructor, so it holds no caller's context; ``cancel()`` unhooks it.
    """

    __slots__ = ("_armed", "_generator", "_running")

    def __init__(self, on_shutdown: Callable[[], Awaitable[None]]) -> None:
        self._armed = True
        self._running = False
        self._generator = self._wait(on_shutdown)
        # The first step registers the generator with the running loop and pauses it at its yield.
        with contextlib.suppress(StopIteration):
            self._generator.asend(None).send(None)

    async def _wait(self, on_shutdown: Callable[[], Awaitable[None]]) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            if self._armed:
                self._armed = False
                self._running = True
                await on_shutdown()

    def disarm(self) -> None:
        """*on_shutdown* will not be called (the generator is left for the loop to finalise)."""
        self._armed = False

    async def cancel(self) -> None:
        """Unhook: *on_shutdown* will not be called. Does nothing when called from *on_shutdown* itself."""
        self._armed = False
        if not self._running:
            await self._generator.aclose()
