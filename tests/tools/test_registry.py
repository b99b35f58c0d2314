import importlib
import subprocess
import sys
import textwrap

import pytest

from coa.tools.base import TOOLS, Tool
from coa.tools.bm25 import BM25Search
from coa.tools.calculator import Calculator
from coa.tools.registry import registered_tools, tool_class, tool_from_config

USER_TOOL = """
from coa.tools.base import Tool


class Shout(Tool):
    name = "shout"

    def __init__(self, suffix: str = "!") -> None:
        self.suffix = suffix

    def call(self, arguments: list[str]) -> list[str]:
        return [a.upper() + self.suffix for a in arguments]
"""


@pytest.fixture(autouse=True)
def private_registry(monkeypatch):
    """Tools defined by a test register into a copy, so the real registry stays as shipped."""
    monkeypatch.setattr(TOOLS, "classes", dict(registered_tools()))


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """A tool package outside coa, importable as `my_tools.shout`."""
    (tmp_path / "my_tools").mkdir()
    (tmp_path / "my_tools" / "__init__.py").write_text("")
    (tmp_path / "my_tools" / "shout.py").write_text(textwrap.dedent(USER_TOOL))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "my_tools.shout"
    for name in ("my_tools.shout", "my_tools"):
        sys.modules.pop(name, None)


def test_the_tool_base_does_not_import_the_tool_registry():
    """The mechanism lives in coa.registry; base -> coa.registry <- tools.registry, no circle."""
    code = "import sys, coa.tools.base; print(sorted(m for m in sys.modules if m.startswith('coa')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['coa', 'coa.registry', 'coa.tools', 'coa.tools.base']"


def test_shipped_tools_are_registered_by_name():
    tools = registered_tools()
    assert tools["calculator"] is Calculator
    assert tools["search"] is BM25Search
    with pytest.raises(ValueError, match="use one of them, or a class path") as e:
        tool_class("calculater")
    assert "calculator" in str(e.value) and "search" in str(e.value)


def test_build_by_name_or_class_path():
    assert isinstance(tool_from_config("calculator"), Calculator)
    calc = tool_from_config({"class_path": "coa.tools.calculator.Calculator", "init_args": {"max_length": 3}})
    assert calc.call(["1+1", "1+1+1"]) == ["2", "Calculator error: expression longer than 3 characters"]
    assert tool_from_config({"class_path": "calculator", "init_args": None}).max_length == 200
    assert tool_from_config(calc) is calc


def test_bm25_from_config(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    people = {"Ada": "Lisbon", "Bob": "Oslo", "Cy": "Rome", "Di": "Kyiv"}  # BM25's idf needs a few passages
    corpus.write_text("".join(f'{{"id": "{i}", "contents": "{p} lives in {c}."}}\n' for i, (p, c) in enumerate(people.items())))
    tool = tool_from_config({"class_path": "search", "init_args": {"corpus_path": str(corpus), "topk": 1}})
    assert tool.call(["Bob"]) == ["(1) Bob lives in Oslo."]


def test_a_tool_outside_the_package_by_class_path_then_by_name(user_module):
    shout = tool_from_config({"class_path": f"{user_module}.Shout", "init_args": {"suffix": "?"}})
    assert shout.call(["hi", "ok"]) == ["HI?", "OK?"]
    assert tool_from_config("shout").call(["a"]) == ["A!"]  # importing the module registered it


def test_reimporting_a_module_redefines_its_tool_without_error(user_module):
    first = tool_class(f"{user_module}.Shout")
    second = importlib.reload(sys.modules[user_module]).Shout  # same qualified name: not a duplicate
    assert second is not first
    assert registered_tools()["shout"] is second


def test_jsonargparse_builds_a_tool_from_class_path():
    """LightningCLI's way: a `Tool`-typed argument takes class_path + init_args, no registry involved."""
    jsonargparse = pytest.importorskip("jsonargparse")
    parser = jsonargparse.ArgumentParser()
    parser.add_argument("--tool", type=Tool)
    cfg = parser.parse_object({"tool": {"class_path": "coa.tools.calculator.Calculator", "init_args": {"max_length": 50}}})
    instantiate = getattr(parser, "instantiate", None) or parser.instantiate_classes
    tool = instantiate(cfg).tool
    assert isinstance(tool, Calculator) and tool.max_length == 50


@pytest.mark.parametrize(
    ("spec", "error", "message"),
    [
        ("nope", ValueError, "tool 'nope' is not a registered name ("),
        ("no_such_pkg.Tool", ValueError, "cannot import module 'no_such_pkg'"),
        ("coa.tools.calculator.Calculater", ValueError, "module 'coa.tools.calculator' has no attribute 'Calculater'"),
        ("collections.OrderedDict", TypeError, "is not a subclass of coa.tools.base.Tool"),
        ("coa.tools.base.Tool", TypeError, "is abstract; implement call"),
        ({"name": "calculator"}, ValueError, "unknown key(s) name; expected class_path and optional init_args"),
        ({"init_args": {}}, ValueError, "'class_path' (a tool name or 'pkg.mod.Class') is missing"),
        ({"class_path": "calculator", "init_args": [1]}, TypeError, "init_args must be a mapping, got list"),
        ({"class_path": "calculator", "init_args": {"max_len": 9}}, ValueError,
         "init_args {'max_len': 9} do not fit: Calculator accepts max_length=200, max_exponent=1000, max_digits=1000"),
        (42, TypeError, "tool spec must be a name, a class path or a mapping"),
    ],
)
def test_clear_errors(spec, error, message):
    with pytest.raises(error) as e:
        tool_from_config(spec)
    assert message in str(e.value)


def test_an_error_inside_the_tool_keeps_its_type_and_says_which_config():
    with pytest.raises(ValueError, match="max_length=0 must be >= 1") as e:
        tool_from_config({"class_path": "calculator", "init_args": {"max_length": 0}})
    assert "while building tool coa.tools.calculator.Calculator from init_args {'max_length': 0}" in e.value.__notes__
