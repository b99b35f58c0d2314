"""PrefixCache: a prompt finds the cached row that begins it; the HF engine's session reuses it exactly."""

import torch

from coa.formats.action_format import AUTOCOA
from coa.policy import Policy
from coa.prompts import PromptTemplate
from coa.rollout.engines.base import SamplingSettings
from coa.rollout.engines.hf import HFEngine
from coa.rollout.engines.prefix_cache import CachedBatch, PrefixCache, holes_after
from coa.rollout.environments import RealEnvironment
from coa.rollout.runner import RolloutRunner, RolloutSettings
from coa.tools.bm25 import BM25Search

QUESTION = "Where was Ada Vell born?"
RESPONSE = (
    "<think> I need Ada Vell's birthplace. <begin_search> Ada Vell </end_search> <search_result> "
    "(1) Ada Vell was born in Orlin. She wrote The Glass Harbor. </search_result> I need Orlin's river. "
    "<begin_search> Orlin </end_search> <search_result> (1) Orlin is a city. </search_result> "
    "</think> \\boxed{ Orlin }"
)


def batch(rows: list[list[int]], layers: int = 1) -> CachedBatch:
    width = max(len(r) for r in rows)
    cache = [(torch.zeros(len(rows), 1, width, 2), torch.zeros(len(rows), 1, width, 2)) for _ in range(layers)]
    return CachedBatch(cache, torch.zeros(len(rows), width, dtype=torch.long), torch.ones(len(rows), width), rows)


def test_a_prompt_continues_the_longest_cached_row_that_begins_it_and_each_row_serves_once():
    cache = PrefixCache(max_bytes=1 << 20)
    cache.add(batch([[1, 2, 3], [1, 2, 3, 4, 5], [9, 9]]))
    a, b, c, d = cache.match([[1, 2, 3, 4, 5, 6], [1, 2, 3, 7], [1, 2, 3, 8], [5, 5, 5]])
    assert (a.batch_id, a.row, a.reused) == (0, 1, 5)
    assert (b.row, b.reused) == (0, 3)
    assert c is None  # row 0 already serves the second prompt
    assert d is None


def test_a_prompt_equal_to_a_cached_row_still_reads_its_last_token():
    cache = PrefixCache(max_bytes=1 << 20)
    cache.add(batch([[1, 2, 3]]))
    (m,) = cache.match([[1, 2, 3]])
    assert m.reused == 2


def test_taken_batches_are_no_longer_matched_and_old_batches_go_past_the_byte_budget():
    one_batch_bytes = batch([[1, 2]]).nbytes()
    cache = PrefixCache(max_bytes=one_batch_bytes)
    cache.add(batch([[1, 2]]))
    cache.add(batch([[3, 4]]))
    assert list(cache.batches) == [1]  # the first was dropped
    assert cache.match([[1, 2, 5]]) == [None]
    cache.take(1)
    assert cache.match([[3, 4, 5]]) == [None]


def test_holes_after_keeps_only_the_first_valid_slots_of_each_row():
    mask = torch.tensor([[0, 1, 1, 1, 1], [1, 1, 1, 1, 0]])
    assert holes_after(mask, [2, 4]).tolist() == [[0, 1, 1, 0, 0], [1, 1, 1, 1, 0]]


def _prompt_ids(tok, question: str) -> list[int]:
    text = tok.apply_chat_template(PromptTemplate("short").messages(question), add_generation_prompt=True, tokenize=False)
    return tok(text, add_special_tokens=False)["input_ids"]


def _read_tokens(model: torch.nn.Module) -> list[int]:
    """Counts the input tokens of every forward (what the model had to read)."""
    seen: list[int] = []
    model.register_forward_pre_hook(lambda m, args, kwargs: seen.append(kwargs["input_ids"].numel()), with_kwargs=True)
    return seen


def test_greedy_rollouts_with_the_session_cache_equal_those_without_and_read_fewer_tokens(
    multi_token_model_dir, tiny_corpus, tmp_path, teach
):
    model_dir = teach(multi_token_model_dir, QUESTION, RESPONSE, tmp_path / "taught", steps=250)
    policy = Policy(str(model_dir))
    tok = policy.tokenizer
    # rows of different lengths that act differently: the taught question and others, two of each
    questions = [QUESTION, "Where was Ada Vell born? Tell me.", "Who wrote The Glass Harbor?", QUESTION]
    prompts = [_prompt_ids(tok, q) for q in questions]
    settings = RolloutSettings(max_actions=3, max_turn_tokens=48, max_response_tokens=200)
    results, reads = {}, {}
    for budget in (0, 1 << 30):
        read = _read_tokens(policy.model)
        engine = HFEngine(policy.model, tok, batch_size=3, session_cache_bytes=budget)
        runner = RolloutRunner(engine, RealEnvironment(BM25Search(str(tiny_corpus), topk=1)), tok, AUTOCOA, settings)
        results[budget] = runner.run(prompts)
        reads[budget] = sum(read)
        policy.model._forward_pre_hooks.clear()
    assert results[0][0].tool_calls >= 2  # the taught episode really takes several turns
    for plain, cached in zip(results[0], results[1 << 30]):
        assert cached.response_ids == plain.response_ids and cached.policy_mask == plain.policy_mask
    assert reads[1 << 30] < reads[0]


def test_outside_a_session_nothing_is_cached(small_model_dir):
    policy = Policy(str(small_model_dir))
    engine = HFEngine(policy.model, policy.tokenizer)
    engine.generate([[5, 6, 7]], SamplingSettings(max_new_tokens=3))
    assert engine._cache is None
    with engine.session():
        engine.generate([[5, 6, 7]], SamplingSettings(max_new_tokens=3))
        assert len(engine._cache.batches) == 1
    assert engine._cache is None
