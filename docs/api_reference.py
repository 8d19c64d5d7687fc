"""Write the README's API reference from the docstrings, so that it lives in one place: the code.

python docs/api_reference.py          # rewrite the section in README.md
python docs/api_reference.py --check  # exit 1 if README.md is out of date (a test runs this)
"""

from __future__ import annotations

import inspect
import re
import sys
from pathlib import Path

import asynctools

README = Path(__file__).parent.parent / "README.md"
START, END = "<!-- api:start -->", "<!-- api:end -->"
# Names a reader needs; private helpers of the public classes are left out.
MEMBERS = {
    "SessionRegistry": (
        "acquire", "release", "session", "close", "cleanup_ctx", "stats", "idle_timeout", "max_idle",
    ),
    "AbstractSessionContainer": (
        "session", "registry", "start_session", "close_session", "request", "get", "post", "put",
        "patch", "delete", "head", "options",
    ),
}  # fmt: skip


def signature(obj: object, name: str) -> str:
    if isinstance(obj, property):
        return name
    try:
        text = str(inspect.signature(obj))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return name
    return f"{name}{text}".replace("(self, ", "(").replace("(self)", "()").replace("'", "")


def doc(obj: object) -> str:
    return inspect.cleandoc(inspect.getdoc(obj) or "").strip()


def section() -> str:
    lines = [START]
    for name in asynctools.__all__:
        obj = getattr(asynctools, name)
        if isinstance(obj, asynctools.SessionRegistry):
            lines += [f"### `{name}`", "", "The process-wide `SessionRegistry` (default options) that "
                      "containers use unless they are given another.", ""]  # fmt: skip
            continue
        kind = "class " if inspect.isclass(obj) else ""
        lines += [f"### `{kind}{signature(obj, name)}`", "", doc(obj), ""]
        for member in MEMBERS.get(name, ()):
            attr = inspect.getattr_static(obj, member)
            lines += [f"#### `{name}.{signature(attr, member)}`", "", doc(attr), ""]
    lines.append(END)
    return "\n".join(lines)


def main() -> int:
    text = README.read_text()
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        print(f"README.md has no {START} ... {END} markers", file=sys.stderr)
        return 1
    fresh = pattern.sub(lambda _: section(), text, count=1)
    if "--check" in sys.argv:
        if fresh != text:
            print(
                "README.md's API reference is out of date: run python docs/api_reference.py", file=sys.stderr
            )
            return 1
        return 0
    README.write_text(fresh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
