"""Evaluation end to end on real parts: a tiny model taught one trajectory searches the real BM25 index."""

import json

from coa.commands.evaluate import evaluate_model
from coa.data.messages import read_messages
from coa.evaluation import Prediction, markdown_table, summarize


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
    assert s["search/all"] == {"n": 4, "em": 0.75, "f1": 0.75, "searches": 1.0, "format_error_rate": 0.25}
    assert s["search/needs_search"]["n"] == 3
    assert s["search/hops=1"]["em"] == 1.0 and s["closed_book/hops=1"]["em"] == 0.0
    assert s["search/hops=2"]["n"] == 1  # the comparison's two searches are not a 2-hop chain
    assert s["search/kind=comparison"]["em"] == 1.0
    table = markdown_table(s)
    assert "| all | 4 | 0.750 | 0.750 | 0.000 | 1.00 | 25.0% |" in table
    assert table.index("| needs_search ") < table.index("| hops=1 ") < table.index("| kind=chain2 ")


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
