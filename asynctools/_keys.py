"""How a session is named: the URL origin plus the ``ClientSession`` keyword arguments."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from typing import Any, Final

from aiohttp import ClientSession
from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy
from yarl import URL

__all__ = ("Origin", "SessionKey", "check_session_kwargs", "make_key", "parse_origin", "parse_url")

#: ``(scheme, host, effective port)``; ``None`` stands for "no URL at all".
Origin = tuple[str, str, int]

_DEFAULT_PORTS: Final = {"http": 80, "https": 443, "ws": 80, "wss": 443}
POOLED_SCHEMES: Final = frozenset(_DEFAULT_PORTS)

# ``loop`` is deprecated in aiohttp and the registry always uses the running loop.
_SESSION_PARAMETERS: Final = frozenset(
    name
    for name, param in inspect.signature(ClientSession).parameters.items()
    if param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY)
) - {"loop"}

# Tags keep a frozen mapping, sequence or multidict from ever equalling a frozen value of another kind.
_MAPPING: Final = "mapping"
_SEQUENCE: Final = "sequence"


class _Identity:
    """Wraps an unhashable object so that it is compared by identity (and kept alive by the key)."""

    __slots__ = ("obj",)

    def __init__(self, obj: object) -> None:
        self.obj = obj

    def __hash__(self) -> int:
        return id(self.obj)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Identity) and other.obj is self.obj


def _freeze(value: Any) -> Any:
    """Return a hashable stand-in for *value* that is equal for equal values.

    Containers are compared by content; other hashable objects by their own ``==`` (value types such as
    ``ClientTimeout`` or ``BasicAuth``) or identity (connectors, cookie jars, functions); unhashable
    objects that are not containers by identity.
    """
    if value is None or isinstance(value, (str, bytes, int, float)):
        return value
    if isinstance(value, Mapping):
        # Every mapping as a multi-valued one, so that a dict and a MultiDict of the same items are one
        # key; case-insensitive multidicts (headers) compare their names case-insensitively.
        fold = isinstance(value, (CIMultiDict, CIMultiDictProxy))
        if isinstance(value, (MultiDict, MultiDictProxy, CIMultiDict, CIMultiDictProxy)):
            names = {name.lower() if fold else name for name in value}
            items = ((name, value.getall(name)) for name in names)
        else:
            items = ((name, [item]) for name, item in value.items())
        return (_MAPPING, frozenset((_freeze(n), tuple(_freeze(v) for v in vs)) for n, vs in items))
    if isinstance(value, (list, tuple)):
        return (_SEQUENCE, tuple(_freeze(v) for v in value))
    if isinstance(value, AbstractSet):
        return frozenset(_freeze(v) for v in value)
    try:
        hash(value)
    except TypeError:
        return _Identity(value)
    return value


def parse_url(url: object) -> URL | None:
    """Check that *url* may name a pooled site and return it as a ``URL`` (``None`` stays ``None``).

    Raises ``TypeError`` for anything but ``str``, ``yarl.URL`` or ``None``, and ``ValueError`` for a URL
    that has no host or a scheme other than http, https, ws or wss.
    """
    if url is None:
        return None
    if isinstance(url, str):
        try:
            parsed = URL(url)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"url {url!r} is not a valid URL: {exc}") from None
    elif isinstance(url, URL):
        parsed = url
    else:
        raise TypeError(f"url must be a str or a yarl.URL, not {type(url).__name__}: {url!r}")
    if not parsed.is_absolute() or not parsed.raw_host:
        raise ValueError(f"url {url!r} has no host; pass an absolute URL such as 'https://api.example.com'")
    if parsed.scheme not in POOLED_SCHEMES:
        raise ValueError(
            f"url {url!r} has scheme {parsed.scheme!r}; asynctools pools http, https, ws and wss URLs only"
        )
    return parsed


def parse_origin(url: object) -> Origin | None:
    """Return the normalised origin of *url*: scheme, lower-cased host and effective port.

    ``URL("http://a:80").origin()`` and ``URL("http://a").origin()`` compare unequal in yarl, so the
    origin is rebuilt here from ``URL.port``, which fills in the scheme's default port.
    Raises what ``parse_url`` raises.
    """
    parsed = parse_url(url)
    if parsed is None:
        return None
    assert parsed.raw_host is not None and parsed.port is not None  # parse_url checked the host
    # raw_host: the ASCII (IDNA-encoded) form; URL.host would decode IDNA on every call.
    return (parsed.scheme, parsed.raw_host.lower(), parsed.port)


def check_session_kwargs(session_kwargs: Mapping[str, object]) -> None:
    """Raise ``TypeError`` naming the first keyword that ``aiohttp.ClientSession`` does not accept."""
    for name in session_kwargs:
        if name not in _SESSION_PARAMETERS:
            hint = " (the registry always uses the running loop)" if name == "loop" else ""
            raise TypeError(
                f"aiohttp.ClientSession() does not accept the keyword argument {name!r}{hint}; "
                f"pass only ClientSession's own options, such as headers=, timeout= or raise_for_status="
            )


class SessionKey:
    """The identity of one shared session on a loop: origin and frozen ``ClientSession`` kwargs.

    It also keeps the keyword arguments the session is created with. Worked out once per container,
    so the hot path only hashes a cached integer. An *isolation* token (one per container that asks
    for its own cookies) makes the key unique to its owner; ``shared`` is then the key its connection
    pool is shared under.
    """

    __slots__ = ("_hash", "frozen", "isolation", "origin", "session_kwargs", "shared")

    def __init__(
        self, origin: Origin | None, session_kwargs: dict[str, Any], isolation: object = None
    ) -> None:
        self.origin = origin
        self.session_kwargs = session_kwargs
        self.frozen = frozenset((name, _freeze(value)) for name, value in session_kwargs.items())
        self.isolation = isolation
        self.shared = self if isolation is None else SessionKey(origin, session_kwargs)
        self._hash = hash((origin, self.frozen, id(isolation)))

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SessionKey):
            return NotImplemented
        return (
            self.origin == other.origin and self.frozen == other.frozen and self.isolation is other.isolation
        )

    def __repr__(self) -> str:
        return f"<SessionKey {self.origin_text()} {sorted(self.session_kwargs)}>"

    def origin_text(self) -> str | None:
        """The origin as ``scheme://host:port``, or ``None`` for the key without a URL."""
        if self.origin is None:
            return None
        scheme, host, port = self.origin
        shown = None if port == _DEFAULT_PORTS[scheme] else port  # as every yarl version prints it
        return str(URL.build(scheme=scheme, host=host, port=shown))


def make_key(url: object, session_kwargs: Mapping[str, Any], *, isolate_cookies: bool = False) -> SessionKey:
    """Validate *url* and *session_kwargs* and return their ``SessionKey``.

    A user's own ``connector`` is never closed by us: unless ``connector_owner`` is given, the session
    is created with ``connector_owner=False``. With *isolate_cookies*, the key is unique to its caller.
    Raises ``TypeError`` or ``ValueError`` (see ``parse_url`` and ``check_session_kwargs``), and
    ``ValueError`` for *isolate_cookies* with a ``cookie_jar``, ``cookies`` or ``connector`` of the user's.
    """
    origin = parse_origin(url)
    check_session_kwargs(session_kwargs)
    kwargs = dict(session_kwargs)
    if isolate_cookies:
        clash = sorted({"cookie_jar", "cookies", "connector", "connector_owner"} & kwargs.keys())
        if clash:
            raise ValueError(
                f"isolate_cookies=True gives each container a cookie jar of its own on the registry's shared "
                f"connection pool; it cannot be combined with {', '.join(clash)}: drop one or the other"
            )
        return SessionKey(origin, kwargs, isolation=object())
    if kwargs.get("connector") is not None:
        kwargs.setdefault("connector_owner", False)
    return SessionKey(origin, kwargs)
