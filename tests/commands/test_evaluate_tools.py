"""`coa eval` with a tool named only in config: the built-in calculator, and a tool written outside the package."""

import json
import textwrap

from coa.cli import main

QUESTION = "What is 2*(3+4)?"
RESPONSE = "<think> Compute it. <begin_search> 2*(3+4) </end_search> <search_result> 14 </search_result> It is 14. </think> \\boxed{14}"


def run_eval(model_dir, tmp_path, tool_yaml):
    qa = tmp_path / "qa.jsonl"
    qa.write_text(json.dumps({"id": "c1", "question": QUESTION, "golden_answers": ["14"]}) + "\n")
    out = tmp_path / "eval"
    main(["eval", "--model", str(model_dir), "--qa", str(qa), "--prompt", "short", "--modes", "search",
          "--tool", tool_yaml, "--out", str(out)])
    return [json.loads(line) for line in open(out / "predictions.jsonl")][0]


def test_calculator_from_config_alone(small_model_dir, tmp_path, teach):
    model_dir = teach(small_model_dir, QUESTION, RESPONSE, tmp_path / "taught")
    result = run_eval(model_dir, tmp_path, "{class_path: calculator, init_args: {max_length: 50}}")
    assert "<search_result> 14 </search_result>" in result["output"]
    assert (result["answer"], result["em"], result["searches"]) == ("14", 1.0, 1)


def test_a_tool_written_outside_the_package(small_model_dir, tmp_path, monkeypatch, teach):
    package = tmp_path / "user_tools"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "echo.py").write_text(textwrap.dedent('''
        from coa.tools.base import Tool

        class Echo(Tool):
            name = "user_echo"

            def __init__(self, prefix: str = "") -> None:
                self.prefix = prefix

            def call(self, arguments):
                return [self.prefix + a for a in arguments]
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    model_dir = teach(small_model_dir, QUESTION, RESPONSE, tmp_path / "taught")
    result = run_eval(model_dir, tmp_path, "{class_path: user_tools.echo.Echo, init_args: {prefix: 'echo: '}}")
    assert "<search_result> echo: 2*(3+4) </search_result>" in result["output"]
    assert result["searches"] == 1
