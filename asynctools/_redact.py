"""Passwords (and tokens given as a lone user name) out of what the library prints: reprs, error
messages and log records."""

from __future__ import annotations

import re
from typing import Final

from yarl import URL

__all__ = ("MASK", "redact", "redact_repr")

#: What a password is shown as.
MASK: Final = "***"

# Conservative on purpose, and applied to the text as written: from the first ':' of the user info
# after '//' (or at the very start: 'user:pass@host', the scheme forgotten) to the last '@' before the
# path, whatever the text is (parseable or not). A password in a query (redis-py reads
# ``?password=...``) goes too.
_USERINFO: Final = re.compile(r"(//[^/?#:@]*:|^[^/?#:@\s]+:)[^/?#]*@")
_QUERY_PASSWORD: Final = re.compile(r"([?&]password=)[^&#]*", re.IGNORECASE)
# User info without a password is often a token itself (https://TOKEN@github.com): masked whole.
_LONE_USER: Final = re.compile(r"//[^/?#:@\s]+@")


def redact(text: str) -> str:
    """*text* with every URL password in it replaced by ``***`` (``http://user:***@host``), and user
    info without a password replaced whole (``https://***@host``)."""
    if "@" in text:
        text = _USERINFO.sub(rf"\1{MASK}@", text)
        text = _LONE_USER.sub(f"//{MASK}@", text)
    if "=" in text:
        text = _QUERY_PASSWORD.sub(rf"\1{MASK}", text)
    return text


def redact_repr(value: object) -> str:
    """``repr(value)`` with its passwords shown as ``***``, for any object formatted into a message.

    A ``yarl.URL`` keeps its kind (``URL('http://user:***@host')``, through ``URL.with_password``); a
    ``str`` is masked as written, so that an error still shows the text it refuses.
    """
    if isinstance(value, URL):
        try:
            if value.raw_password is not None:
                value = value.with_password(MASK)
            elif value.raw_user is not None:
                value = value.with_user(MASK)
        except ValueError:  # a URL yarl cannot rebuild: mask its text
            pass
        return redact(repr(value))
    if isinstance(value, str):
        return repr(redact(value))
    return redact(repr(value))
