"""How a session is named: the URL origin plus the ``ClientSession`` keyword arguments."""

from __future__ import annotations

import functools
import inspect
import ipaddress
import re
from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from typing import Any, Final

from aiohttp import ClientSession
from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy
from yarl import URL

from ._redact import redact, redact_repr

__all__ = (
    "CookieIsolation",
    "Origin",
    "SessionKey",
    "check_session_kwargs",
    "make_key",
    "origin_text",
    "parse_origin",
    "parse_url",
)

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

# What a host name may be made of (IDNA names arrive here already encoded to ASCII by yarl).
_HOST_NAME: Final = re.compile(r"[A-Za-z0-9_.-]+")

# What yarl strips (TAB, CR, LF anywhere) or keeps, maps or encodes where no host may have it: control
# characters anywhere, whitespace at either end or in the authority (between '//' and the path).
_REFUSED_CHARACTER: Final = re.compile(r"[\x00-\x1f\x7f]|^\s|\s$|^[^/?#]*//[^/?#]*?\s")

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


def _copy(value: Any) -> Any:
    """A copy of *value* that shares no container with it: dicts, multidicts, lists and sets are copied
    all the way down; every other object (a connector, a ``ClientTimeout``, a function) is kept as it is.
    """
    if isinstance(value, (CIMultiDict, CIMultiDictProxy)):
        return CIMultiDict((name, _copy(item)) for name, item in value.items())
    if isinstance(value, (MultiDict, MultiDictProxy)):
        return MultiDict((name, _copy(item)) for name, item in value.items())
    if isinstance(value, Mapping):
        return {name: _copy(item) for name, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    if isinstance(value, tuple) and type(value) is tuple:
        return tuple(_copy(item) for item in value)
    if isinstance(value, (set, frozenset)):
        return type(value)(_copy(item) for item in value)
    return value


def _by_identity(frozen: Any) -> bool:
    """Whether a frozen option is compared by identity: an object without value semantics."""
    if isinstance(frozen, _Identity):
        return True
    if frozen is None or isinstance(frozen, (str, bytes, int, float)):
        return False
    if isinstance(frozen, (tuple, frozenset)):  # a frozen container: by identity if anything in it is
        return any(_by_identity(item) for item in frozen)
    return type(frozen).__eq__ is object.__eq__  # type: ignore[comparison-overlap]


def _refuse_characters(url: str, found: re.Match[str]) -> None:
    """Raise the ``ValueError`` for a *url* with a character no URL to a host may have (*found*)."""
    at = found.end() - 1
    try:
        parsed = URL(url)
        would = f"read it as {redact_repr(str(parsed))}, host {parsed.raw_host!r}"
    except (TypeError, ValueError) as exc:
        would = f"refuse it ({redact(str(exc))})"
    raise ValueError(
        f"url {redact_repr(url)} has {url[at]!r} at position {at}, which no URL to a host may have "
        f"(control characters anywhere, whitespace at either end or in the host); yarl would {would}. "
        "Check the URL for stray characters"
    )


def _check_host(url: object, host: str) -> None:
    if _HOST_NAME.fullmatch(host):
        return
    try:
        ipaddress.ip_address(host.partition("%")[0] if ":" in host else host)
    except ValueError:
        raise ValueError(
            f"url {redact_repr(url)} has host {host!r}, which is not a valid host name (letters, digits, "
            "'-', '.' and '_') nor an IP address; check the URL for stray characters"
        ) from None


def parse_url(url: object) -> URL | None:
    """Check that *url* may name a pooled site and return it as a ``URL`` (``None`` stays ``None``).

    Raises ``TypeError`` for anything but ``str``, ``yarl.URL`` or ``None``, and ``ValueError`` for a URL
    that has no host or a scheme other than http, https, ws or wss.
    """
    if url is None:
        return None
    parsed: URL  # typed here: yarl 1.17's URL() is typed as returning Any
    if isinstance(url, str):
        found = _REFUSED_CHARACTER.search(url)
        if found is not None:
            _refuse_characters(url, found)
        try:
            parsed = URL(url)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"url {redact_repr(url)} is not a valid URL: {redact(str(exc))}") from None
    elif isinstance(url, URL):
        parsed = url
    else:
        raise TypeError(f"url must be a str or a yarl.URL, not {type(url).__name__}: {redact_repr(url)}")
    if not parsed.is_absolute() or not parsed.raw_host:
        raise ValueError(
            f"url {redact_repr(url)} has no host; pass an absolute URL such as 'https://api.example.com'"
        )
    if parsed.scheme not in POOLED_SCHEMES:
        raise ValueError(
            f"url {redact_repr(url)} has scheme {parsed.scheme!r}; "
            "asynctools pools http, https, ws and wss URLs only"
        )
    _check_host(url, parsed.raw_host)
    return parsed


def parse_origin(url: object) -> Origin | None:
    """Return the normalised origin of *url* (see ``origin_of``): scheme, host and effective port.

    ``URL("http://a:80").origin()`` and ``URL("http://a").origin()`` compare unequal in yarl, so the
    origin is rebuilt here from ``URL.port``, which fills in the scheme's default port.
    Raises what ``parse_url`` raises.
    """
    parsed = parse_url(url)
    if parsed is None:
        return None
    assert parsed.raw_host is not None and parsed.port is not None  # parse_url checked the host
    # raw_host: the ASCII (IDNA-encoded) form; URL.host would decode IDNA on every call.
    return origin_of(parsed.scheme, parsed.raw_host, parsed.port)


def origin_of(scheme: str, raw_host: str, port: int) -> Origin:
    """The origin of a URL's scheme, raw (ASCII) host and effective port: the host lower-cased and
    without the trailing dot of a fully qualified name (``example.com.``), since both spellings reach
    one server, which sees one ``Host``. Keys, policies, metrics and Redis keys all use this one form.
    """
    host = raw_host.lower()
    if host.endswith("."):
        host = host[:-1]
    return (scheme.lower(), host, port)


def check_session_kwargs(session_kwargs: Mapping[str, object]) -> None:
    """Raise ``TypeError`` naming the first keyword that ``aiohttp.ClientSession`` does not accept."""
    for name in session_kwargs:
        if name not in _SESSION_PARAMETERS:
            hint = " (the registry always uses the running loop)" if name == "loop" else ""
            raise TypeError(
                f"aiohttp.ClientSession() does not accept the keyword argument {name!r}{hint}; "
                f"pass only ClientSession's own options, such as headers=, timeout= or raise_for_status="
            )


class CookieIsolation:
    """The token that makes a container's key its own, and the cookie jar that lives as long as it does.

    The jar is made on first use (aiohttp wants a running loop for it) and then kept here, so it
    outlives any one session: idle expiry, eviction or ``registry.close()`` never log the user out.
    """

    __slots__ = ("_jar",)

    def __init__(self) -> None:
        self._jar: Any = None

    def cookie_jar(self, make: Callable[[], Any]) -> Any:
        """The container's cookie jar, made with *make* the first time."""
        if self._jar is None:
            self._jar = make()
        return self._jar


class SessionKey(tuple[Any, ...]):
    """The identity of one shared session on a loop: origin and frozen ``ClientSession`` kwargs.

    It keeps its own deep copy of the keyword arguments, taken when the key is made, and every session
    is built from a fresh copy of that (``build_kwargs()``): what is keyed on is exactly what is sent,
    whatever the caller does to their dicts afterwards. An *isolation* token (one per container that
    asks for its own cookies) makes the key unique to its owner; ``shared`` is then the key its
    connection pool is shared under.

    A tuple of (origin, frozen options, the token's id), so that dicts hash and compare it in C: it is
    looked up twice on every call made without an attached session. (The id stands for the token:
    the key holds the token, so the id cannot be reused while the key exists.)
    """

    origin: Origin | None
    session_kwargs: dict[str, Any]
    frozen: frozenset[tuple[str, Any]]
    identity_options: tuple[tuple[str, Any], ...]
    isolation: CookieIsolation | None
    shared: SessionKey

    def __new__(
        cls,
        origin: Origin | None,
        session_kwargs: Mapping[str, Any],
        isolation: CookieIsolation | None = None,
    ) -> SessionKey:
        kwargs: dict[str, Any] = _copy(dict(session_kwargs))
        frozen = {name: _freeze(value) for name, value in kwargs.items()}
        frozen_items = frozenset(frozen.items())
        key = super().__new__(cls, (origin, frozen_items, id(isolation)))
        key.origin = origin
        key.session_kwargs = kwargs
        key.frozen = frozen_items
        # Options compared by identity (a lambda, a TraceConfig, a connector): a new object, a new key.
        key.identity_options = tuple(
            (name, value)
            for name, value in frozen.items()
            if name not in ("connector_owner",) and value is not None and _by_identity(value)
        )
        key.isolation = isolation
        key.shared = key if isolation is None else SessionKey(origin, kwargs)
        return key

    # Immutable: a copy is the key itself; pickled, it is made again from what it was made from.
    def __copy__(self) -> SessionKey:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> SessionKey:
        return self

    def __reduce__(self) -> tuple[type[SessionKey], tuple[Any, ...]]:
        return (SessionKey, (self.origin, self.session_kwargs, self.isolation))

    def build_kwargs(self) -> dict[str, Any]:
        """A fresh copy of the keyword arguments, for aiohttp to build one session from."""
        return _copy(self.session_kwargs)  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return f"<SessionKey {self.origin_text()} {sorted(self.session_kwargs)}>"

    def origin_text(self) -> str | None:
        """The origin as ``origin_text`` spells it, or ``None`` for the key without a URL."""
        return None if self.origin is None else origin_text(self.origin)


@functools.lru_cache(maxsize=4096)  # stats() and reports ask for every session's: yarl builds a URL
def origin_text(origin: Origin) -> str:
    """*origin* as ``scheme://host[:port]``, the port shown only when it is not the scheme's default."""
    scheme, host, port = origin
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
        return SessionKey(origin, kwargs, isolation=CookieIsolation())
    if kwargs.get("connector") is not None:
        kwargs.setdefault("connector_owner", False)
    return SessionKey(origin, kwargs)
