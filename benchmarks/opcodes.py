"""``python -m benchmarks.opcodes``: Python bytecodes per request, function by function, against handheld.

Callgrind counts a run's instructions but cannot tell which Python function spent them: to the CPU
every function is the interpreter's loop. ``sys.monitoring``'s instruction events (Python 3.12+;
before, ``sys.settrace`` with ``f_trace_opcodes``) count each bytecode every Python function executes,
and the count is the same run after run, however busy the machine (C code, aiohttp's parsers and the
dict operations inside one bytecode, is not counted). The shapes are the callgrind ones
(``benchmarks.callgrind.CASES``); each strategy runs once to warm up, then once counted, against the
usual upstream (its own process, untraced).

python -m benchmarks.opcodes --case sites                  # HTTP; the 25 functions that differ most
python -m benchmarks.opcodes --case entered --top 40 --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import sys
from collections.abc import Callable
from pathlib import Path
from types import CodeType, FrameType
from typing import Any

from .callgrind import CASES, SITES, STRATEGY_NAMES, case_run
from .strategies import Tally

Function = tuple[str, str]  # (file, relative to site-packages or the checkout; qualified name)
ROOT = str(Path(__file__).parent.parent) + "/"


def where(code: CodeType) -> Function:
    name = getattr(code, "co_qualname", code.co_name)  # co_qualname: 3.11+
    return code.co_filename.split("site-packages/")[-1].replace(ROOT, ""), name


def count(case: str, name: str, bases: list[str], scale: float) -> tuple[collections.Counter[Function], int]:
    """Bytecodes executed by each Python function in one run of *name* on *case* (after a warm-up),
    and the requests the run made."""
    run, requests = case_run(case, name, bases, None, scale)
    warm_up, _ = case_run(case, name, bases, None, scale)
    loop = asyncio.new_event_loop()  # by hand: asyncio.Runner is 3.11+
    try:
        loop.run_until_complete(warm_up(Tally()))
        counts = counted(lambda: loop.run_until_complete(run(Tally())))
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
    return counts, requests


def counted(call: Callable[[], object]) -> collections.Counter[Function]:
    """The bytecodes each Python function executes during *call()* in this thread."""
    counts: collections.Counter[Function] = collections.Counter()
    if sys.version_info >= (3, 12):  # sys.settrace no longer sees the frames an event loop runs
        monitoring = sys.monitoring
        tool, instruction = monitoring.PROFILER_ID, monitoring.events.INSTRUCTION
        names: dict[CodeType, Function] = {}

        def on_instruction(code: CodeType, offset: int) -> None:
            function = names.get(code)
            if function is None:
                function = names[code] = where(code)
            counts[function] += 1

        monitoring.use_tool_id(tool, "benchmarks.opcodes")
        monitoring.register_callback(tool, instruction, on_instruction)
        monitoring.set_events(tool, instruction)
        try:
            call()
        finally:
            monitoring.set_events(tool, 0)
            monitoring.register_callback(tool, instruction, None)
            monitoring.free_tool_id(tool)
        return counts

    def trace(frame: FrameType, event: str, arg: Any) -> Any:
        frame.f_trace_opcodes = True
        function = where(frame.f_code)  # once per call (and per resumption of a coroutine)

        def each(frame: FrameType, event: str, arg: Any) -> Any:
            if event == "opcode":
                counts[function] += 1
            return each

        return each

    sys.settrace(trace)
    try:
        call()
    finally:
        sys.settrace(None)
    return counts


def compare(case: str, scale: float = 1.0) -> dict[str, Any]:
    """Every strategy on *case* over HTTP: bytecodes per request, in all and per ``file:function``."""
    from .endtoend import upstream

    per_request: dict[str, dict[str, float]] = {}
    with upstream(None, ports=SITES) as server:
        for name in STRATEGY_NAMES:
            counts, requests = count(case, name, server.bases, scale)
            per_request[name] = {f"{file}:{function}": n / requests for (file, function), n in counts.items()}
    return {
        "case": CASES[case],
        "totals": {name: sum(functions.values()) for name, functions in per_request.items()},
        "per_request": per_request,
    }


def report(results: dict[str, Any], top: int) -> str:
    """The totals against handheld, then for each strategy the *top* functions that differ most."""
    totals, per_request = results["totals"], results["per_request"]
    lines = [f"{results['case']}: bytecodes per request"]
    lines += [f"  {name:<11} {n:10,.0f}  {n / totals['handheld']:.3f}x" for name, n in totals.items()]
    handheld = per_request["handheld"]
    for name, functions in per_request.items():
        if name == "handheld":
            continue
        extra = {f: functions.get(f, 0.0) - handheld.get(f, 0.0) for f in functions.keys() | handheld.keys()}
        lines.append(f"{name}: the {top} functions that differ most from handheld")
        lines += [f"  {d:+9.1f}  {f}" for f, d in sorted(extra.items(), key=lambda item: -abs(item[1]))[:top]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.opcodes",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--case", default="sites", choices=sorted(CASES))
    parser.add_argument("--top", type=int, default=25, help="functions listed per strategy")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the request counts")
    parser.add_argument("--json", type=Path, help="also write the full counts here")
    args = parser.parse_args(argv)
    results = compare(args.case, args.scale)
    print(report(results, args.top))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
