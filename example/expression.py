"""A small, safe evaluator for the arithmetic the math API answers: + - * / ^, parentheses, decimals.

No ``eval``: the text is tokenised and parsed by recursive descent, with mathjs's precedence
(``^`` binds tighter than unary minus and is right-associative: ``-3^2`` is -9, ``2^3^2`` is 512).
"""

from __future__ import annotations

import math
import re

__all__ = ("NUMBER", "ExpressionError", "evaluate", "format_number")

# A number as mathjs reads one: ASCII digits, an optional decimal point and exponent, no underscores
# (Python's float() also takes "1_000" and non-ASCII digits such as "\u0663"; mathjs takes neither).
NUMBER = r"(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
_TOKEN = re.compile(rf"\s*(?:({NUMBER})|(.))")
MAX_LENGTH = 1000


class ExpressionError(ValueError):
    """The expression cannot be parsed; the message says where."""


def _tokens(text: str) -> list[str]:
    tokens: list[str] = []
    for number, other in _TOKEN.findall(text):
        if number:
            tokens.append(number)
        elif other.strip():
            if other not in "+-*/^()":
                raise ExpressionError(f"Unexpected character {other!r} in {text!r}")
            tokens.append(other)
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.pos = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str:
        token = self.peek()
        if token is None:
            raise ExpressionError(f"Unexpected end of expression {self.text!r}")
        self.pos += 1
        return token

    def expression(self) -> float:  # sum := product (("+" | "-") product)*
        value = self.product()
        while self.peek() in ("+", "-"):
            value = value + self.product() if self.take() == "+" else value - self.product()
        return value

    def product(self) -> float:  # product := unary (("*" | "/") unary)*
        value = self.unary()
        while self.peek() in ("*", "/"):
            if self.take() == "*":
                value *= self.unary()
            else:
                divisor = self.unary()
                if divisor:
                    value = value / divisor
                else:  # as IEEE 754 (and mathjs) have it: x/0 is ±inf, 0/0 and nan/0 are nan
                    value = math.nan if value == 0 or math.isnan(value) else math.copysign(math.inf, value)
        return value

    def unary(self) -> float:  # unary := ("-" | "+") unary | power
        if self.peek() in ("-", "+"):
            sign = self.take()
            value = self.unary()
            return -value if sign == "-" else value
        return self.power()

    def power(self) -> float:  # power := atom ("^" unary)?   (right-associative)
        base = self.atom()
        if self.peek() == "^":
            self.take()
            exponent = self.unary()
            try:
                result = base**exponent
            except OverflowError:
                return math.inf
            except ZeroDivisionError:
                return math.inf
            return math.nan if isinstance(result, complex) else float(result)
        return base

    def atom(self) -> float:  # atom := number | "(" sum ")"
        token = self.take()
        if token == "(":
            value = self.expression()
            if self.peek() != ")":
                raise ExpressionError(f"Parenthesis ')' expected in {self.text!r}")
            self.take()
            return value
        if token[0].isdigit() or token[0] == ".":
            return float(token)
        raise ExpressionError(f"Value expected, got {token!r} in {self.text!r}")


def evaluate(text: str) -> float:
    """Evaluate *text*; raises ``ExpressionError`` for anything that is not well-formed arithmetic."""
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"Expression longer than {MAX_LENGTH} characters")
    parser = _Parser(text)
    if not parser.tokens:
        raise ExpressionError("Empty expression")
    value = parser.expression()
    if parser.peek() is not None:
        raise ExpressionError(f"Unexpected {parser.peek()!r} in {text!r}")
    return value


def format_number(value: float) -> str:
    """Print a number as mathjs does by default: up to 14 significant digits, no trailing zeros."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    text = format(value, ".14g")
    return "0" if text == "-0" else text
