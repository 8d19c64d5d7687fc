"""attach_session and attach_named_session: give each call of a container's method a session."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import sys
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, Protocol, TypeVar, overload

from aiohttp import ClientSession

from ._container import ATTACHED_MARK, not_an_instance_method, not_initialised
from ._lease import Lease

__all__ = ("attach_named_session", "attach_session")

P = ParamSpec("P")
R = TypeVar("R")
Y = TypeVar("Y")
S = TypeVar("S")

# The session parameter is keyword-only (or taken by **kwargs): it is never found among positionals.
_KEYWORD_ONLY = sys.maxsize


class SessionDecorator(Protocol):
    """What ``attach_named_session(name)`` returns: a decorator that keeps the method's signature."""

    @overload
    def __call__(self, func: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]: ...

    @overload
    def __call__(self, func: Callable[P, AsyncGenerator[Y, S]]) -> Callable[P, AsyncGenerator[Y, S]]: ...

    @overload
    def __call__(self, func: Callable[P, AsyncIterator[Y]]) -> Callable[P, AsyncIterator[Y]]: ...


def attach_named_session(name: str) -> SessionDecorator:
    """Like ``attach_session``, but pass the session as the keyword argument *name*.

        @attach_named_session("http")
        async def fetch(self, url, http=None): ...

    Raises ``TypeError`` or ``ValueError`` for a *name* that is not a Python identifier.
    """
    if not isinstance(name, str):
        raise TypeError(f"attach_named_session() takes the parameter name as a str, not {name!r}")
    if not name.isidentifier():
        raise ValueError(f"attach_named_session() needs a parameter name, {name!r} is not an identifier")
    return functools.partial(_decorate, name=name)


@overload
def attach_session(func: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]: ...


@overload
def attach_session(func: Callable[P, AsyncGenerator[Y, S]]) -> Callable[P, AsyncGenerator[Y, S]]: ...


# An async generator method is often annotated ``-> AsyncIterator[T]``: it keeps that annotation.
@overload
def attach_session(func: Callable[P, AsyncIterator[Y]]) -> Callable[P, AsyncIterator[Y]]: ...


def attach_session(func: Callable[..., Any]) -> Callable[..., Any]:
    """Give each call of a container's async method (or async generator method) a ``session``.

    The session is resolved per call: a non-``None`` ``session=`` from the caller wins; else the
    container's attached session (inside ``async with container`` or after ``start_session()``);
    else one acquired from the container's registry for exactly that call (or that iteration, for an
    async generator) and released afterwards, also on error, cancellation, ``break`` or ``aclose()``.

    Raises ``TypeError`` at decoration time for anything but an ``async def`` function or async
    generator function (a ``classmethod`` or ``staticmethod`` included: sessions are attached to
    instances), and for one with no ``session`` parameter (nor ``**kwargs``); a container class that
    wraps a decorated method in ``@classmethod`` or ``@staticmethod`` gets ``TypeError`` when defined.

        class Api(AbstractSessionContainer):
            @attach_session
            async def status(self, url, session=None):
                async with session.get(url) as resp:
                    return resp.status
    """
    return _decorate(func, name="session")


def _decorate(func: Callable[..., Any], name: str) -> Callable[..., Any]:
    position = _session_position(func, name)
    if inspect.iscoroutinefunction(func):
        wrapper: Callable[..., Any] = _wrap_coroutine(func, name, position)
    else:
        wrapper = _wrap_async_generator(func, name, position)
    # Read by containers' __init_subclass__, which refuses a classmethod or staticmethod around it.
    setattr(wrapper, ATTACHED_MARK, True)
    return wrapper


def _session_position(func: Callable[..., Any], name: str) -> int:
    """Index of the *name* parameter among the positionals after ``self`` (``_KEYWORD_ONLY`` if none)."""
    if isinstance(func, (classmethod, staticmethod)):
        raise TypeError(not_an_instance_method(type(func).__name__, func.__func__.__qualname__))
    if not (inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func)):
        raise TypeError(
            f"@attach_session decorates async def methods and async generator methods, not {func!r}"
        )
    params = list(inspect.signature(func).parameters.values())
    for index, param in enumerate(params):
        if param.name != name:
            continue
        if param.kind is param.KEYWORD_ONLY:
            return _KEYWORD_ONLY
        if param.kind is param.POSITIONAL_OR_KEYWORD and index > 0:
            return index - 1
        break
    else:
        if any(param.kind is param.VAR_KEYWORD for param in params):
            return _KEYWORD_ONLY
    raise TypeError(
        f"{func.__qualname__}() has no parameter {name!r} that a session can be passed to; "
        f"add '{name}=None' to its signature"
    )


def _with_session(
    args: tuple[Any, ...], kwargs: dict[str, Any], name: str, position: int, session: ClientSession
) -> tuple[Any, ...]:
    """Put *session* where the caller left ``None`` (or nothing); return the new positionals."""
    if position < len(args):
        return (*args[:position], session, *args[position + 1 :])
    kwargs[name] = session
    return args


def _lease_for(obj: Any, func: Callable[..., Any]) -> Lease:
    """A lease from *obj*'s container for one call; ``TypeError`` if *obj* is not a container."""
    try:
        lease_for = obj._asynctools_lease
    except AttributeError:
        raise _not_a_container(obj, func) from None
    lease: Lease = lease_for()
    return lease


def _not_a_container(obj: Any, func: Callable[..., Any]) -> TypeError:
    return not_initialised(obj, f"{func.__qualname__}() (decorated with @attach_session)")


def _wrap_coroutine(
    func: Callable[..., Awaitable[Any]], name: str, position: int
) -> Callable[..., Coroutine[Any, Any, Any]]:
    # The hot path of the library: kept to one coroutine with no helper calls when a session is
    # attached, since users call decorated methods in tight asyncio.gather() loops.
    @functools.wraps(func)
    async def call_with_session(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            session = self.session  # attached on this loop, or borrowed
        except AttributeError:
            session = None  # not a container: only a session passed by the caller will do
        # The usual call fills every positional before the session and passes no keyword: the session's
        # slot is then empty, and the session is handed over positionally, since binding a keyword
        # argument costs the callee about a third of a call.
        bare = not kwargs and len(args) == position
        if bare:
            if session is not None:
                return await func(self, *args, session)
        else:
            filled = len(args) > position  # the caller passed the session's slot positionally
            if (args[position] if filled else kwargs.get(name)) is not None:
                return await func(self, *args, **kwargs)
            if session is not None:
                return await func(self, *_with_session(args, kwargs, name, position, session), **kwargs)
        try:
            lease_for = self._asynctools_lease
        except AttributeError:
            raise _not_a_container(self, func) from None
        lease = lease_for()
        session = lease.entry.session
        assert session is not None  # a fresh lease is never on a closed session
        try:
            if bare:
                return await func(self, *args, session)
            return await func(self, *_with_session(args, kwargs, name, position, session), **kwargs)
        finally:
            closing = lease.release()
            if closing is not None:
                await asyncio.shield(closing)

    return call_with_session


def _wrap_async_generator(
    func: Callable[..., AsyncGenerator[Any, Any]], name: str, position: int
) -> Callable[..., AsyncGenerator[Any, Any]]:
    @functools.wraps(func)
    async def iterate_with_session(self: Any, *args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
        given = args[position] if position < len(args) else kwargs.get(name)
        lease: Lease | None = None
        if given is None:
            try:
                session = self.session  # attached on this loop, or borrowed
            except AttributeError:
                session = None
            if session is None:
                lease = _lease_for(self, func)
                session = lease.entry.session
                assert session is not None
            args = _with_session(args, kwargs, name, position, session)
        try:
            async with contextlib.aclosing(func(self, *args, **kwargs)) as inner:
                first = _first_step(inner)
                try:
                    value = await first
                except StopAsyncIteration:
                    return
                while True:
                    try:
                        sent = yield value
                    except GeneratorExit:
                        raise
                    except BaseException as exc:  # thrown in with athrow(): hand it to the inner generator
                        step = inner.athrow(exc)
                    else:
                        step = inner.asend(sent)
                    try:
                        value = await step
                    except StopAsyncIteration:
                        return
        finally:
            if lease is not None:
                await lease.release_and_wait()

    return iterate_with_session


def _first_step(inner: AsyncGenerator[Any, Any]) -> Awaitable[Any]:
    """Start *inner* without registering it with the loop's async-generator hooks.

    The loop's first-iteration hook would add it to the set that ``loop.shutdown_asyncgens()`` closes
    concurrently with our wrapper; our wrapper's ``aclose()`` would then close it a second time while it
    is still running its ``finally`` ("aclose(): asynchronous generator is already running"). The
    wrapper owns the inner generator, so only the wrapper is left for the loop to track. The hooks are
    read when the first ``__anext__()`` awaitable is created, so they are restored right after.
    """
    hooks = sys.get_asyncgen_hooks()
    sys.set_asyncgen_hooks(firstiter=None)
    try:
        return inner.__anext__()
    finally:
        sys.set_asyncgen_hooks(firstiter=hooks.firstiter)
