"""``asynctools.helpers``, where aiohttp-asynctools 0.1.3 kept its names: ``import asynctools.helpers``
keeps working. New code imports from ``asynctools``.
"""

from ._container import AbstractSessionContainer
from ._decorators import attach_named_session, attach_session

__all__ = ("AbstractSessionContainer", "attach_named_session", "attach_session")
