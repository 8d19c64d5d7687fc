"""Leak diagnostics: where an acquisition was made, and the report of those never released."""

from __future__ import annotations

import os
import traceback
import warnings

__all__ = ("caller_stack", "report_unreleased")

_PACKAGE = os.path.dirname(__file__)


def caller_stack() -> traceback.StackSummary:
    """The stack of whoever acquired, without asynctools' own frames."""
    frames = [frame for frame in traceback.extract_stack() if not frame.filename.startswith(_PACKAGE)]
    return traceback.StackSummary.from_list(frames[-12:])


def report_unreleased(
    origin: str | None, stacks: list[traceback.StackSummary], *, collected: bool = False
) -> None:
    """Warn (``ResourceWarning``) about acquisitions never released, with where they were made.

    *collected*: they were garbage-collected while the session was still open, and so released now
    (a container left attached, a ``registry.session()`` lease or a response dropped unread); otherwise
    the registry closed the session under them (``close()`` or the loop's shutdown).
    """
    if not stacks:
        return
    what = (
        "were garbage-collected without being released; released now"
        if collected
        else "were never released (the registry closed it instead)"
    )
    where = "\n".join("".join(stack.format()) for stack in stacks)
    message = (
        f"asynctools: {len(stacks)} acquisition(s) of the session for {origin} {what}; acquired at:\n{where}"
    )
    warnings.warn(message, ResourceWarning, stacklevel=2)
