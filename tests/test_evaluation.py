"""Evaluation on real parts: grouping and scores by hand; a taught tiny model searches the real BM25 index;
naive RAG puts the passages in the prompt and calls the tool only to retrieve them."""

import json

from coa.commands.evaluate import evaluate_model
from coa.data.messages import read_messages
from coa.data.qa import QAExample
from coa.evaluation import Prediction, markdown_table, run_mode, score_rollout, summarize
from coa.formats.action_format import AUTOCOA, SEARCH_R1
from coa.naive_rag import retrieve_for_questions
from coa.policy import Policy
from coa.prompts import PromptTemplate
from coa.rollout.engines.hf import HFEngine
from coa.rollout.runner import Rollout, RolloutRunner, RolloutSettings, UnavailableTool
from coa.tools.bm25 import BM25Search


def prediction(mode, em, kind, hops, searches=1, errors=()):
    return Prediction("q", mode, "Q?", ["a"], "a", em, em, searches, list(errors), "", {"hops": hops, "kind": kind})


def test_summary_groups_by_mode_chain_hops_and_kind():
    ps = [
        prediction("search", 1.0, "single", 1),
        prediction("search", 0.0, "chain2", 2, errors=["no_answer"]),
        prediction("search", 1.0, "comparison", 2, searches=2),
        prediction("search", 1.0, "no_search", 0, searches=0),
        prediction("closed_book", 0.0, "single", 1, 0),
    ]
    s = summarize(ps)
    assert s["search/all"] == {"n": 4, "em": 0.75, "f1": 0.75, "lenient": None, "searches": 1.0, "format_error_rate": 0.25}
    assert s["search/needs_search"]["n"] == 3
    assert s["search/hops=1"]["em"] == 1.0 and s["closed_book/hops=1"]["em"] == 0.0
    assert s["search/hops=2"]["n"] == 1  # the comparison's two searches are not a 2-hop chain
    assert s["search/kind=comparison"]["em"] == 1.0
    table = markdown_table(s)
    assert "| all | search | 4 | 0.750 | 0.750 | - | 1.00 | 25.0% |" in table
    assert "| all | closed_book | 1 | 0.000 | 0.000 | - | 0.00 | 0.0% |" in table
    assert table.index("| all | search ") < table.index("| all | closed_book ") < table.index("| needs_search ")
    assert table.index("| needs_search ") < table.index("| hops=1 ") < table.index("| kind=chain2 ")


def test_benchmark_rows_and_lenient_score():
    def p(mode, source, em, lenient):
        return Prediction("q", mode, "Q?", ["a"], "a", em, em, 1, [], "", {"source_file": source}, lenient=lenient)

    ps = [p("search", "NQ_dev.json", 1.0, 1.0), p("search", "NQ_dev.json", 0.0, 1.0), p("search", "2WIKI_dev.json", 0.0, 0.0),
          p("naive_rag", "NQ_dev.json", 1.0, 1.0)]
    s = summarize(ps)
    assert (s["search/source=NQ"]["n"], s["search/source=NQ"]["em"], s["search/source=NQ"]["lenient"]) == (2, 0.5, 1.0)
    assert s["search/all"]["lenient"] == 2 / 3 and s["naive_rag/source=NQ"]["em"] == 1.0
    table = markdown_table(s)
    assert "| source=NQ | search | 2 | 0.500 | 0.500 | 1.000 | 1.00 | 0.0% |" in table
    assert table.index("| source=NQ | search ") < table.index("| source=NQ | naive_rag ")
    assert table.index("| all ") < table.index("| source=2WIKI ") < table.index("| source=NQ ")


def test_lenient_is_the_release_kinder_rule_and_only_for_autocoa_tags():
    example = QAExample("q", "Who?", ["Ada Vell"])
    text = "<think> She wrote it. </think> The answer is Ada Vell."  # no box: EM 0, lenient reads the phrase
    scored = score_rollout(example, "search", Rollout([1]), text, AUTOCOA)
    assert (scored.em, scored.lenient) == (0.0, 1.0)
    assert score_rollout(example, "search", Rollout([1]), "<think> x </think> <answer> Ada Vell </answer>", SEARCH_R1).lenient is None



def test_taught_model_searches_reads_and_answers(small_world, small_model_dir, tmp_path, teach):
    trajectory = next(t for t in read_messages(small_world / "sft" / "train.jsonl") if t.response.count("<begin_search>") == 2)
    model_dir = teach(small_model_dir, trajectory.question, trajectory.response, tmp_path / "taught")
    qa = tmp_path / "qa.jsonl"
    row = next(json.loads(line) for line in open(small_world / "qa" / "train.jsonl") if json.loads(line)["question"] == trajectory.question)
    qa.write_text(json.dumps(row) + "\n")
    report = evaluate_model(
        str(model_dir), str(qa), str(small_world / "corpus.jsonl"), topk=1, prompt="short", out_dir=str(tmp_path / "eval")
    )
    rows = {r["mode"]: r for r in map(json.loads, open(tmp_path / "eval" / "predictions.jsonl"))}
    result, closed = rows["search"], rows["closed_book"]
    assert result["output"] == trajectory.response  # the real BM25 results were appended, token for token
    assert report.metrics["search/all"]["em"] == 1.0 and report.metrics["search/all"]["searches"] == 2.0
    # Closed-book, the same first action is answered with a refusal instead of the passage.
    assert closed["output"].startswith(result["output"].split("<search_result>")[0] + "<search_result> Search is not available.")
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["metrics"] == report.metrics
    assert (tmp_path / "eval" / "table.md").read_text().startswith("| group |")


class RecordingEngine(HFEngine):
    """The real engine; keeps every token sequence the model was asked to continue."""

    def generate(self, prompts, settings, generator=None):
        self.seen = getattr(self, "seen", []) + [list(p) for p in prompts]
        return super().generate(prompts, settings, generator)


class CountingSearch(BM25Search):
    def call(self, arguments):
        self.calls = getattr(self, "calls", []) + [list(arguments)]
        return super().call(arguments)


def test_naive_rag_passages_in_the_prompt_no_tool_call_while_generating(small_world, small_model_dir):
    trajectory = next(t for t in read_messages(small_world / "sft" / "train.jsonl") if "<begin_search>" in t.response)
    tool = CountingSearch(str(small_world / "corpus.jsonl"), topk=1)
    policy = Policy(str(small_model_dir))
    engine = RecordingEngine(policy.model, policy.tokenizer)
    runner = RolloutRunner(engine, UnavailableTool(), policy.tokenizer, AUTOCOA, RolloutSettings(max_actions=2))
    examples = [QAExample("a", trajectory.question, ["x"]), QAExample("b", "Where was Ada Vell born?", ["Orlin"])]
    passages = retrieve_for_questions(tool, [e.question for e in examples], AUTOCOA)
    predictions = run_mode(examples, runner, PromptTemplate("short"), "naive_rag", passages)
    assert tool.calls == [[e.question for e in examples]]  # one retrieval; the rollouts never reached the tool
    for p, text, prompt in zip(predictions, passages, engine.seen[:2]):
        assert p.passages == text and text.startswith("(1) ")
        seen = policy.tokenizer.decode(prompt, skip_special_tokens=False)
        assert f"Passages retrieved for the question:\n{text}\n\n" in seen and p.question in seen
        # Whatever search the model still writes is refused, as closed-book.
        assert p.output.count("<search_result>") == p.output.count("<search_result> Search is not available.") == p.searches
