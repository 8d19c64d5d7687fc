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


def report_unreleased(origin: str | None, stacks: list[traceback.StackSummary]) -> None:
    """Warn (``ResourceWarning``) about the acquisitions *stacks* still holds, if any."""
    if stacks:
        where = "\n".join("".join(stack.format()) for stack in stacks)
        message = (
            f"asynctools: {len(stacks)} acquisition(s) of the session for {origin} were never released "
            f"(the registry closed it instead); acquired at:\n{where}"
        )
        warnings.warn(message, ResourceWarning, stacklevel=2)
