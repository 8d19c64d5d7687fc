"""The embedded math API's parser: a table, errors for malformed input, and agreement with Python."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from example.expression import ExpressionError, evaluate, format_number
from example.server import BadInput, parse_values


@pytest.mark.parametrize(
    ("expr", "printed"),
    [
        ("1^2", "1"),
        ("(10)^2", "100"),
        ("(-3)^2", "9"),
        ("-3^2", "-9"),
        ("2^3^2", "512"),
        ("2^-1", "0.5"),
        ("1 + 2 * 3", "7"),
        ("(1 + 2) * 3", "9"),
        ("10 / 4", "2.5"),
        ("8 / 2 / 2", "2"),
        ("7 - 2 - 1", "4"),
        ("0.1 + 0.2", "0.3"),
        (".5 * 4", "2"),
        ("1.5e3 + 1", "1501"),
        ("--2", "2"),
        ("+2", "2"),
        ("(0.5)^2", "0.25"),
        ("1/3", "0.33333333333333"),
        ("1/0", "Infinity"),
        ("-1/0", "-Infinity"),
        ("0/0", "NaN"),
        ("0^-1", "Infinity"),
        ("(-8)^(1/3)", "NaN"),
        ("10^400", "Infinity"),
        ("-0", "0"),
        ("123456789^2", "1.5241578750191e+16"),
    ],
)
def test_table(expr: str, printed: str) -> None:
    assert format_number(evaluate(expr)) == printed


@pytest.mark.parametrize(
    ("expr", "words"),
    [
        ("", "Empty expression"),
        ("   ", "Empty expression"),
        ("1 +", "Unexpected end"),
        ("(1 + 2", "Parenthesis ')' expected"),
        ("1 + 2)", "Unexpected ')'"),
        ("2 ** 3", "Value expected"),
        ("abs(2)", "Unexpected character 'a'"),
        ("__import__('os')", "Unexpected character '_'"),
        ("1_000", "Unexpected character '_'"),  # mathjs takes no digit separators
        # An Arabic-Indic 3: Python's float() takes it, mathjs does not.
        ("\u0663", "Unexpected character '\u0663'"),
        ("1 2", "Unexpected '2'"),
        ("()", "Value expected"),
        ("1" * 1001, "longer than 1000"),
    ],
)
def test_malformed_expressions_are_refused(expr: str, words: str) -> None:
    with pytest.raises(ExpressionError, match=re.escape(words)):
        evaluate(expr)


def python_value(op: str, a: float, b: float) -> float:
    """What mathjs computes, with Python's own operators."""
    if op == "/":
        if b == 0:
            return math.nan if a == 0 or math.isnan(a) else math.copysign(math.inf, a)
        return a / b
    if op == "^":
        try:
            result = a**b
        except (OverflowError, ZeroDivisionError):
            return math.inf
        return math.nan if isinstance(result, complex) else float(result)
    return {"+": a + b, "-": a - b, "*": a * b}[op]


numbers = st.integers(min_value=-50, max_value=50).map(float) | st.sampled_from([0.5, 1.25, 2.5])


@st.composite
def expressions(draw: st.DrawFn, depth: int = 3) -> tuple[str, float]:
    if depth == 0 or draw(st.booleans()):
        value = draw(numbers)
        return (f"({format(value, 'g')})" if value < 0 else format(value, "g")), value
    op = draw(st.sampled_from("+-*/^"))
    left_text, left = draw(expressions(depth=depth - 1))
    right_text, right = draw(expressions(depth=depth - 1))
    if op == "^":
        right_text, right = draw(st.sampled_from([("2", 2.0), ("3", 3.0), ("(-1)", -1.0), ("0.5", 0.5)]))
    return f"({left_text} {op} {right_text})", python_value(op, left, right)


@given(expressions())
def test_agrees_with_python_arithmetic(case: tuple[str, float]) -> None:
    text, expected = case
    got = evaluate(text)
    if math.isnan(expected):
        assert math.isnan(got)
    else:
        assert got == expected


@given(expressions())
def test_spacing_and_negation_do_not_change_the_result(case: tuple[str, float]) -> None:
    text, expected = case
    got = evaluate("-" + text.replace(" ", ""))
    assert math.isnan(got) if math.isnan(expected) else got == -expected


number_like = st.text(alphabet="0123456789_.eE+- \u0663\uff11infa", max_size=8)


@given(number_like)
@example("1_000")
@example("\u0663")
@example(" -1.5e3 ")
def test_the_front_end_passes_on_only_what_the_stand_in_evaluates(text: str) -> None:
    """What the maths server's front end accepts as a number, the embedded math API squares (no 502)."""
    try:
        (value,) = parse_values(text)
    except BadInput:
        return
    evaluate(f"({value})^2")  # raises ExpressionError (a 400 upstream, a 502 for the user) if refused
