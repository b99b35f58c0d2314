"""Evaluation end to end on real parts: a tiny model taught one trajectory searches the real BM25 index."""

import json

import torch

from coa.commands.evaluate import evaluate_model
from coa.data.messages import read_messages
from coa.evaluation import Prediction, markdown_table, summarize
from coa.masking import tokenize_chat
from coa.policy import Policy
from coa.prompts import PromptTemplate


def prediction(mode, em, hops, searches=1, errors=()):
    return Prediction("q", mode, "Q?", ["a"], "a", em, em, searches, list(errors), "", {"hops": hops, "kind": "k"})


def test_summary_groups_by_mode_and_hops():
    ps = [prediction("search", 1.0, 1), prediction("search", 0.0, 2, errors=["no_answer"]), prediction("closed_book", 0.0, 1, 0)]
    s = summarize(ps)
    assert s["search/all"] == {"n": 2, "em": 0.5, "f1": 0.5, "searches": 1.0, "format_error_rate": 0.5}
    assert s["search/hops=1"]["em"] == 1.0 and s["closed_book/hops=1"]["em"] == 0.0
    table = markdown_table(s)
    assert "| all | 2 | 0.500 | 0.500 | 0.000 | 1.00 | 50.0% |" in table
    assert table.index("| hops=1 ") < table.index("| kind=k ")


def overfit_one(model_dir, trajectory, out_dir, steps=150):
    policy = Policy(str(model_dir))
    example = tokenize_chat(policy.tokenizer, PromptTemplate("short").messages(trajectory.question), trajectory.response, True)
    ids = torch.tensor([example.input_ids])
    target = torch.tensor([example.loss_mask])[:, 1:].float()
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(policy.parameters(), lr=1e-2)
    for _ in range(steps):
        loss = -(policy.token_logprobs(ids, torch.ones_like(ids)) * target).sum() / target.sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return policy.save_pretrained(out_dir)


def test_taught_model_searches_reads_and_answers(small_world, small_model_dir, tmp_path):
    trajectory = next(t for t in read_messages(small_world / "sft" / "train.jsonl") if t.response.count("<begin_search>") == 2)
    model_dir = overfit_one(small_model_dir, trajectory, tmp_path / "taught")
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
