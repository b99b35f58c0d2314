import pytest

from coa.tools import registry
from coa.tools.base import TOOLS, Tool
from coa.tools.calculator import Calculator


@pytest.fixture(autouse=True)
def private_registry(monkeypatch):
    """Classes defined by a test register into a copy, so the real registry stays as shipped."""
    monkeypatch.setattr(TOOLS, "classes", dict(TOOLS.registered()))


def test_a_subclass_registers_under_its_name():
    class Echo(Tool):
        name = "echo"

        def call(self, arguments: list[str]) -> list[str]:
            return arguments

    assert registry.registered_tools()["echo"] is Echo
    assert Echo().call(["a", "b"]) == ["a", "b"]


def test_a_subclass_without_its_own_name_is_not_registered():
    class StrictCalculator(Calculator):  # tweaks a tool; keeps "calculator" pointing at the original
        def __init__(self) -> None:
            super().__init__(max_length=10)

    assert registry.registered_tools()["calculator"] is Calculator
    assert StrictCalculator not in registry.registered_tools().values()


def test_a_duplicate_name_raises_naming_both_classes():
    with pytest.raises(ValueError) as e:

        class MyCalculator(Tool):
            name = "calculator"

            def call(self, arguments: list[str]) -> list[str]:
                return arguments

    message = str(e.value)
    assert "'calculator' is taken by coa.tools.calculator.Calculator" in message
    assert "test_a_duplicate_name_raises_naming_both_classes.<locals>.MyCalculator" in message


def test_the_name_must_be_a_non_empty_string():
    with pytest.raises(TypeError, match="name='' must be a non-empty string"):

        class Nameless(Tool):
            name = ""

            def call(self, arguments: list[str]) -> list[str]:
                return arguments


def test_call_is_abstract():
    with pytest.raises(TypeError, match="abstract"):
        Tool()
