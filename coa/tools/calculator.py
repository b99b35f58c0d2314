"""A safe arithmetic calculator: the expression is parsed with `ast` and walked, never `eval`ed."""

from __future__ import annotations

import ast
import math
import operator

from coa.tools.base import Tool

_BINARY = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos}
_ALLOWED = "numbers, + - * / // % **, unary minus and parentheses"


class CalculatorError(Exception):
    """An expression the calculator refuses; its message becomes the observation."""


class Calculator(Tool):
    """Evaluates arithmetic: numbers, + - * / // % **, unary minus, parentheses.

    Every failure is an observation text ("Calculator error: division by zero"), never an exception.
    Integer results print exactly; float results with 12 significant digits (0.1+0.2 -> 0.3).

    Args:
        max_length: longest expression accepted, in characters.
        max_exponent: largest |exponent| of `**`.
        max_digits: most decimal digits in the integer part of any number met (checked before computing a power).
    """

    name = "calculator"

    def __init__(self, max_length: int = 200, max_exponent: int = 1000, max_digits: int = 1000) -> None:
        for field, value in (("max_length", max_length), ("max_exponent", max_exponent), ("max_digits", max_digits)):
            if value < 1:
                raise ValueError(f"Calculator: {field}={value} must be >= 1")
        self.max_length = max_length
        self.max_exponent = max_exponent
        self.max_digits = max_digits
        self._too_large = 10**max_digits  # the smallest number with more than max_digits digits

    def call(self, arguments: list[str]) -> list[str]:
        return [self.evaluate(a) for a in arguments]

    def evaluate(self, expression: str) -> str:
        """The value of one expression as text, or "Calculator error: ..."."""
        try:
            return _format(self._value(expression))
        except CalculatorError as e:
            return f"Calculator error: {e}"
        except ZeroDivisionError:
            return "Calculator error: division by zero"
        except (OverflowError, MemoryError):
            return "Calculator error: result too large"
        except (RecursionError, ValueError, TypeError) as e:  # a deep or odd expression the walk cannot take
            return f"Calculator error: cannot evaluate ({type(e).__name__})"

    def _value(self, expression: str) -> int | float:
        if not isinstance(expression, str):
            raise CalculatorError(f"expected an expression text, got {type(expression).__name__}")
        text = expression.strip()
        if not text:
            raise CalculatorError("empty expression")
        if len(text) > self.max_length:
            raise CalculatorError(f"expression longer than {self.max_length} characters")
        try:
            tree = ast.parse(text, mode="eval")
        except SyntaxError:
            raise CalculatorError(f"invalid syntax; use {_ALLOWED}") from None
        return self._walk(tree.body)

    def _walk(self, node: ast.AST) -> int | float:
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            return self._checked(node.value)
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            return _UNARY[type(node.op)](self._walk(node.operand))
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            left, right = self._walk(node.left), self._walk(node.right)
            if isinstance(node.op, ast.Pow):
                self._check_power(left, right)
            return self._checked(_BINARY[type(node.op)](left, right))
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitXor):
            raise CalculatorError("'^' is not a power here; write ** (2**10)")
        raise CalculatorError(f"unsupported {_describe(node)}; only {_ALLOWED} are allowed")

    def _check_power(self, base: int | float, exponent: int | float) -> None:
        if abs(exponent) > self.max_exponent:
            raise CalculatorError(f"exponent {_format(exponent)} is beyond the limit of {self.max_exponent}")
        if abs(base) > 1 and exponent > 0 and exponent * math.log10(abs(base)) > self.max_digits:
            raise CalculatorError(f"result too large (more than {self.max_digits} digits)")

    def _checked(self, value: int | float | complex) -> int | float:
        if isinstance(value, complex):  # (-8) ** (1/3)
            raise CalculatorError("result is not a real number")
        if isinstance(value, float) and not math.isfinite(value):
            raise CalculatorError("result too large")
        if abs(value) >= self._too_large:
            raise CalculatorError(f"result too large (more than {self.max_digits} digits)")
        return value


def _format(value: int | float) -> str:
    if isinstance(value, int):
        return str(value)
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.12g}"


def _describe(node: ast.AST) -> str:
    """A reader's word for a refused node: 'function call', 'name x', 'operator <<'."""
    if isinstance(node, ast.Call):
        return "function call"
    if isinstance(node, ast.Name):
        return f"name {node.id!r}"
    if isinstance(node, ast.Constant):
        return f"constant {node.value!r}"
    if isinstance(node, (ast.BinOp, ast.UnaryOp)):
        return f"operator {type(node.op).__name__}"
    return f"syntax ({type(node).__name__})"
