"""The built-in ``calculator`` environment: the model may call ``<calc>347*28</calc>``.

A turn that contains a tool call gets the result as the observation (``9716``) and the
episode goes on; a turn without one is the final answer and ends the episode (its
correctness is the configured reward's to judge, e.g. ``reward=math``). Expressions are
integer and decimal arithmetic (``+ - * / // % **``, parentheses, unary minus), evaluated
from Python's AST -- never ``eval`` -- with limits on their length and on exponents.
"""

from __future__ import annotations

import ast
import operator
import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from rlkit.environments.base import Environment, EnvironmentConfig, ToolError, Turn
from rlkit.schema import at_least

_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
#: ``<name>arguments</name>``: any tag-shaped call, so an unknown tool is reported by name.
_CALL = re.compile(r"<([A-Za-z_][\w-]*)>(.*?)</\1>", re.DOTALL)
_OPEN = re.compile(r"<calc>")


@dataclass
class CalculatorConfig(EnvironmentConfig):
    """Arithmetic tool calls ``<calc>expression</calc>``; a turn without one is the final answer."""

    #: Longest expression accepted (characters).
    max_expression_chars: int = field(default=64, metadata=at_least(1))
    #: Largest exponent of ``**`` (larger ones are tool errors, not hangs).
    max_exponent: int = field(default=64, metadata=at_least(0))


class CalculatorEnvironment(Environment):
    """A calculator tool: each ``<calc>...</calc>`` in a turn is answered with its value."""

    Config = CalculatorConfig
    TOOL = "calc"

    def stop_strings(self) -> tuple[str, ...]:
        return (f"</{self.TOOL}>",)

    @classmethod
    def call(cls, expression: str) -> str:
        """The assistant text that calls the tool on ``expression`` (for demonstrations)."""
        return f"<{cls.TOOL}>{expression}</{cls.TOOL}>"

    def step(self, state: Any, assistant_text: str) -> Turn:
        calls = _CALL.findall(assistant_text)
        if not calls:
            if _OPEN.search(assistant_text):
                raise ToolError(f"unclosed tool call: <{self.TOOL}> without </{self.TOOL}>")
            return Turn(done=True)
        results = []
        for name, arguments in calls:
            if name != self.TOOL:
                raise ToolError(f"unknown tool {name!r}; tools: {self.TOOL}")
            results.append(format_number(self.evaluate(arguments.strip())))
        return Turn(observation="\n".join(results), tool_calls=len(calls))

    def evaluate(self, expression: str) -> Fraction:
        """The exact value of an arithmetic expression; ToolError when it is not one."""
        if len(expression) > self.config.max_expression_chars:
            raise ToolError(f"expression longer than {self.config.max_expression_chars} characters")
        try:
            tree = ast.parse(expression, mode="eval")
        except SyntaxError:
            raise ToolError(f"cannot parse {expression!r}: not an arithmetic expression") from None
        try:
            return self._value(tree.body, expression)
        except (ZeroDivisionError, OverflowError) as exc:
            raise ToolError(f"cannot evaluate {expression!r}: {exc}") from None

    def _value(self, node: ast.AST, expression: str) -> Fraction:
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            return Fraction(node.value)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            value = self._value(node.operand, expression)
            return -value if isinstance(node.op, ast.USub) else value
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            left, right = self._value(node.left, expression), self._value(node.right, expression)
            if isinstance(node.op, ast.Pow):
                if right.denominator != 1 or abs(right) > self.config.max_exponent:
                    raise ToolError(f"exponent {format_number(right)} in {expression!r}: only integers up to "
                                    f"{self.config.max_exponent}")
            elif isinstance(node.op, (ast.Div, ast.FloorDiv, ast.Mod)) and right == 0:
                raise ToolError(f"division by zero in {expression!r}")
            return Fraction(_BINARY[type(node.op)](left, right))
        raise ToolError(f"cannot evaluate {expression!r}: only numbers, + - * / // % ** and parentheses")


def format_number(value: Fraction) -> str:
    """An integer as digits, any other value as a decimal with at most 6 places."""
    if value.denominator == 1:
        return str(value.numerator)
    return f"{float(value):.6f}".rstrip("0").rstrip(".")
