"""Which origin obeys which ``SitePolicy``, for one registry."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from ._keys import Origin, parse_origin
from ._policy import SitePolicy
from ._redact import redact_repr

__all__ = ("PolicyBook",)


class PolicyBook:
    """The policies stated for a registry's origins.

    A session is built with the policy middleware only while some policy exists, so a registry without
    any costs exactly what it did. Sessions built before a change are replaced at their next checkout
    (the registry tells each loop's pool of a change), so a policy applies to every request made after
    it was stated.
    """

    def __init__(self) -> None:
        self._policies: dict[Origin | None, SitePolicy] = {}  # None is never a key (see get)
        self._lock = threading.Lock()
        #: The policy of an origin (as ``parse_origin`` gives it), or ``None``: the dict's own ``get``
        #: (a method would be a Python call more). ``None`` is never a key, so an origin of ``None`` has
        #: no policy.
        self.get: Callable[[Origin | None], SitePolicy | None] = self._policies.get

    def __bool__(self) -> bool:
        return bool(self._policies)

    def state(self, url: Any, policy: object) -> bool:
        """Make *policy* the one of *url*'s origin; ``False`` when it already was (nothing changed).

        Raises ``TypeError`` for a *policy* that is not a ``SitePolicy``, what ``parse_origin`` raises for
        a bad *url*, and ``ValueError`` when the origin already has another policy; equal policies are
        one policy. Nothing changes when it raises.
        """
        if not isinstance(policy, SitePolicy):
            raise TypeError(f"a site policy must be a SitePolicy, not {policy!r}")
        origin = parse_origin(url)
        if origin is None:
            raise ValueError("a site policy needs the URL of the site it applies to, not None")
        with self._lock:
            current = self._policies.get(origin)
            if current == policy:
                return False
            if current is not None:
                raise ValueError(
                    f"{redact_repr(url)} already has the site policy {current!r}; one origin obeys one "
                    f"policy: state {policy!r} for it in one place, or make the two equal"
                )
            self._policies[origin] = policy
            return True
