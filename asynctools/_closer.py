"""Closing sessions and connectors in tasks that are always run to the end, even at shutdown."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable

__all__ = ("Closer",)

Close = Callable[[], Awaitable[object]]


class Closer:
    """Runs closes (``session.close``, ``connector.close``) in tasks on *loop*, and waits for them.

    ``asyncio.run()`` cancels every task left when the main coroutine returns, a close started in the
    last tick included, possibly before it ran at all: what it was closing would then be reported
    "Unclosed". So a close whose task was cancelled is remembered and run again by ``wait()``, which the
    pool's shutdown awaits after every other task is done.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._running: dict[asyncio.Task[None], Close] = {}
        self._cancelled: list[Close] = []

    def close(self, close: Close) -> asyncio.Task[None] | None:
        """Run *close* in a task; return it (``None`` when the loop is closed: nothing can run)."""
        if self._loop.is_closed():
            return None
        # Made in a context of its own: the caller's (and what its ContextVars hold) is not kept alive.
        task = contextvars.Context().run(self._loop.create_task, _run(close))
        self._running[task] = close
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[None]) -> None:
        close = self._running.pop(task)
        if task.cancelled():
            self._cancelled.append(close)
        elif task.exception() is not None:
            message = "asynctools could not close a session"
            self._loop.call_exception_handler(
                {"message": message, "exception": task.exception(), "task": task}
            )

    async def wait(self) -> None:
        """Wait until every close has run to the end, running again those that were cancelled.

        Cancelling the wait does not cancel the closes.
        """
        while self._running or self._cancelled:
            retry, self._cancelled = self._cancelled, []
            for close in retry:
                self.close(close)
            await asyncio.shield(asyncio.gather(*self._running, return_exceptions=True))


async def _run(close: Close) -> None:
    await close()
