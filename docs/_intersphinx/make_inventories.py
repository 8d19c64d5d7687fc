"""Write the intersphinx inventories the docs build reads offline (python.inv, aiohttp.inv, yarl.inv).

The build machines have no internet, so ``intersphinx_mapping`` in ``docs/conf.py`` points at these
committed files. They are generated, not downloaded: each lists the public names of the installed
packages (and the standard-library modules the docs mention), with the page of the project's own
documentation site that documents each one, so links go where the real inventory would send them.
Regenerate after upgrading aiohttp or yarl:

    .venv/bin/python docs/_intersphinx/make_inventories.py
"""

from __future__ import annotations

import builtins
import inspect
import io
import sys
import types
import zlib
from collections.abc import Iterator
from importlib import import_module
from pathlib import Path

from sphinx.util.inventory import InventoryFile

HERE = Path(__file__).parent

# Which page of docs.python.org documents each asyncio name (the others: library/asyncio.html).
ASYNCIO_PAGES = {
    "asyncio-runner": ("run", "Runner"),
    "asyncio-task": (
        "Task", "create_task", "gather", "sleep", "wait", "wait_for", "timeout", "Timeout", "TaskGroup",
        "shield", "current_task", "all_tasks", "as_completed", "run_coroutine_threadsafe",
    ),
    "asyncio-eventloop": (
        "AbstractEventLoop", "get_running_loop", "get_event_loop", "new_event_loop", "set_event_loop",
    ),
    "asyncio-exceptions": ("CancelledError", "TimeoutError", "InvalidStateError"),
    "asyncio-sync": ("Event", "Lock", "Semaphore", "BoundedSemaphore", "Condition", "Barrier"),
    "asyncio-queue": ("Queue", "PriorityQueue", "LifoQueue", "QueueEmpty", "QueueFull"),
    "asyncio-future": ("Future", "ensure_future", "isfuture", "wrap_future"),
}  # fmt: skip
STDLIB = ("asyncio", "contextlib", "collections.abc", "typing", "os", "warnings", "inspect", "threading")
# aiohttp documents its client, server and tracing names on one reference page each.
AIOHTTP_PAGES = {"aiohttp": "client_reference", "aiohttp.web": "web_reference"}
AIOHTTP_TRACING = ("TraceConfig", "TraceRequestStartParams", "TraceRequestEndParams")

Entry = tuple[str, str, str]  # (name, role, page#anchor)


def role_of(obj: object, in_class: bool = False) -> str:
    if inspect.isclass(obj):
        return "py:exception" if issubclass(obj, BaseException) else "py:class"
    if isinstance(obj, property):
        return "py:attribute"
    if callable(obj):
        return "py:method" if in_class else "py:function"
    return "py:attribute" if in_class else "py:data"


def public_names(module: types.ModuleType) -> Iterator[tuple[str, object]]:
    names = getattr(module, "__all__", None) or [n for n in vars(module) if not n.startswith("_")]
    for name in names:
        obj = getattr(module, name, None)
        if obj is None or isinstance(obj, types.ModuleType):
            continue
        yield name, obj


def entries(module_name: str, page_of: dict[str, str], default_page: str) -> Iterator[Entry]:
    module = import_module(module_name)
    yield module_name, "py:module", f"{default_page}#module-{module_name}"
    for name, obj in public_names(module):
        full = f"{module_name}.{name}"
        page = page_of.get(name, default_page)
        yield full, role_of(obj), f"{page}#{full}"
        defined_in = f"{getattr(obj, '__module__', module_name)}.{getattr(obj, '__qualname__', name)}"
        if inspect.isclass(obj) and defined_in != full:  # what annotations name: aiohttp.client.ClientSession
            yield defined_in, role_of(obj), f"{page}#{full}"
        if inspect.isclass(obj):
            for member, value in vars(obj).items():
                if not member.startswith("_"):
                    yield f"{full}.{member}", role_of(value, in_class=True), f"{page}#{full}.{member}"


def python() -> Iterator[Entry]:
    for name in dir(builtins):
        obj = getattr(builtins, name)
        if name.startswith("_"):
            continue
        if inspect.isclass(obj) and issubclass(obj, BaseException):
            yield name, "py:exception", f"library/exceptions.html#{name}"
        elif inspect.isclass(obj):
            yield name, "py:class", f"library/functions.html#{name}"
        elif callable(obj):
            yield name, "py:function", f"library/functions.html#{name}"
    asyncio_pages = {name: f"library/{page}.html" for page, names in ASYNCIO_PAGES.items() for name in names}
    for module in STDLIB:
        pages = asyncio_pages if module == "asyncio" else {}
        yield from entries(module, pages, f"library/{module}.html")
    yield "os.fork", "py:function", "library/os.html#os.fork"
    yield "devmode", "std:label", "library/devmode.html#devmode"


def aiohttp() -> Iterator[Entry]:
    for module, page in AIOHTTP_PAGES.items():
        pages = {name: "tracing_reference.html" for name in AIOHTTP_TRACING} if module == "aiohttp" else {}
        yield from entries(module, pages, f"{page}.html")


def yarl() -> Iterator[Entry]:
    yield from entries("yarl", {}, "api.html")


def write(path: Path, project: str, version: str, found: Iterator[Entry]) -> None:
    seen: dict[tuple[str, str], str] = {}
    for name, role, uri in found:
        seen.setdefault((name, role), uri)
    lines = [f"# Sphinx inventory version 2\n# Project: {project}\n# Version: {version}\n"]
    lines.append("# The remainder of this file is compressed using zlib.\n")
    body = "".join(
        f"{name} {role} 1 {uri.replace(f'#{name}', '#$') if uri.endswith(f'#{name}') else uri} -\n"
        for (name, role), uri in sorted(seen.items())
    )
    path.write_bytes("".join(lines).encode() + zlib.compress(body.encode()))
    with path.open("rb") as stream:  # the file must load as Sphinx loads it
        InventoryFile.load(io.BytesIO(stream.read()), "", lambda base, uri: uri)


def main() -> None:
    import aiohttp as aiohttp_module
    import yarl as yarl_module

    write(HERE / "python.inv", "Python", f"{sys.version_info[0]}.{sys.version_info[1]}", python())
    write(HERE / "aiohttp.inv", "aiohttp", aiohttp_module.__version__, aiohttp())
    write(HERE / "yarl.inv", "yarl", yarl_module.__version__, yarl())


if __name__ == "__main__":
    main()
