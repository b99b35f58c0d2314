"""A tokenizer in which every tag is several tokens (as in every real model): rollouts, masks and `coa eval`."""

import json

import torch

from coa.cli import main
from coa.rollout.engines.hf import HFEngine
from coa.policy import Policy
from coa.prompts import PromptTemplate
from coa.rollout.batch import collate_rollouts
from coa.rollout.runner import RolloutRunner, RolloutSettings
from coa.tools.bm25 import BM25Search

QUESTION = "Where was Ada Vell born?"
RESPONSE = (
    "<think> I need Ada Vell's birthplace. <begin_search> Ada Vell </end_search> <search_result> "
    "(1) Ada Vell was born in Orlin. She wrote The Glass Harbor. </search_result> Ada Vell was born in Orlin. "
    "</think> \\boxed{ Orlin }"
)


def test_rollout_stops_exactly_after_the_close_tag_and_masks_line_up(multi_token_model_dir, tiny_corpus, tmp_path, teach):
    model_dir = teach(multi_token_model_dir, QUESTION, RESPONSE, tmp_path / "taught", steps=200)
    policy = Policy(str(model_dir))
    tok = policy.tokenizer
    assert len(tok.encode("</end_search>", add_special_tokens=False)) > 1
    assert len(tok.encode("<search_result>", add_special_tokens=False)) > 1
    prompt = tok.apply_chat_template(PromptTemplate("short").messages(QUESTION), add_generation_prompt=True, tokenize=False)
    prompt_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    runner = RolloutRunner(HFEngine(policy.model, tok), BM25Search(str(tiny_corpus), topk=1), tok,
                           settings=RolloutSettings(max_turn_tokens=64, max_response_tokens=256))
    (r,) = runner.run([prompt_ids])
    assert r.actions == ["Ada Vell"] and r.tool_calls == 1 and not r.truncated
    # the policy's first turn ends exactly with the close tag: the next ids are the environment's
    first_obs = r.policy_mask.index(0)
    assert tok.decode(r.response_ids[:first_obs]).endswith("</end_search>")
    observation = tok.decode([t for t, m in zip(r.response_ids, r.policy_mask) if m == 0])
    assert observation == " <search_result> (1) Ada Vell was born in Orlin. She wrote The Glass Harbor. </search_result>"
    assert runner.text(r).endswith("\\boxed{ Orlin }")
    batch = collate_rollouts([r], [1.0], 1, tok.pad_token_id)
    n = len(prompt_ids) + len(r.response_ids)
    assert batch.loss_mask.shape == batch.input_ids.shape and int(batch.attention_mask.sum()) == n
    assert batch.loss_mask[0, : len(prompt_ids)].sum() == 0
    assert batch.loss_mask[0, len(prompt_ids):n].tolist() == r.policy_mask


def test_coa_eval_runs_on_the_multi_token_model(multi_token_model_dir, tiny_corpus, tmp_path, teach):
    model_dir = teach(multi_token_model_dir, QUESTION, RESPONSE, tmp_path / "taught", steps=200)
    qa = tmp_path / "qa.jsonl"
    qa.write_text(json.dumps({"id": "q1", "question": QUESTION, "golden_answers": ["Orlin"]}) + "\n")
    out = tmp_path / "eval"
    main(["eval", "--model", str(model_dir), "--qa", str(qa), "--corpus", str(tiny_corpus), "--topk", "1",
          "--prompt", "short", "--out", str(out)])
    (search, closed) = [json.loads(line) for line in open(out / "predictions.jsonl")]
    assert search["mode"] == "search" and search["searches"] == 1 and search["em"] == 1.0
    assert "</end_search> <search_result> (1) Ada Vell was born in Orlin." in search["output"]
    assert search["format_errors"] == []
    assert closed["searches"] == 1 and "Search is not available." in closed["output"]
