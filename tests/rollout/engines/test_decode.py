"""The lean decoding loop: greedy equals transformers' `generate`; sampling follows the same distribution rules."""

import pytest
import torch

from coa.policy import Policy
from coa.rollout.engines.base import SamplingSettings
from coa.rollout.engines.decode import decodes_leanly, sample
from coa.rollout.engines.hf import HFEngine, _Batch


def _sharpened(model_dir) -> Policy:
    """A freshly built tiny model is nearly uniform; bigger weights make greedy choices that mean something."""
    policy = Policy(str(model_dir))
    torch.manual_seed(0)
    with torch.no_grad():
        for p in policy.model.parameters():
            p.normal_(0, 0.3)
    return policy


def _both_paths(engine: HFEngine, prompts: list[list[int]], settings: SamplingSettings):
    batch = _Batch.build(prompts, None, engine.pad_token_id)
    lean, _ = engine._decode(batch, settings, torch.Generator().manual_seed(0))
    hf, _ = engine._hf_generate(batch, settings)
    return lean, hf


def test_greedy_decoding_equals_transformers_generate_on_left_padded_rows(multi_token_model_dir):
    policy = _sharpened(multi_token_model_dir)
    tok = policy.tokenizer
    prompts = [tok.encode(t, add_special_tokens=False) for t in ("What is", "Who was born earlier, a or b?", "x")]
    engine = HFEngine(policy.model, tok)
    lean, hf = _both_paths(engine, prompts, SamplingSettings(max_new_tokens=12))
    assert lean.shape == hf.shape and torch.equal(lean, hf)


def test_rows_stop_on_stop_tokens_and_are_padded_after(multi_token_model_dir):
    policy = _sharpened(multi_token_model_dir)
    tok = policy.tokenizer
    prompts = [tok.encode(t, add_special_tokens=False) for t in ("What is", "Who was born earlier, a or b?")]
    engine = HFEngine(policy.model, tok)
    free, _ = _both_paths(engine, prompts, SamplingSettings(max_new_tokens=6))
    width = free.shape[1] - 6
    new = free[0, width:].tolist()
    at = next(i for i in range(1, 6) if new[i] not in new[:i])  # the first row's first new token not seen before it
    stop_id = new[at]
    lean, hf = _both_paths(engine, prompts, SamplingSettings(max_new_tokens=6, stop_token_ids=(stop_id,)))
    assert torch.equal(lean, hf)
    row = lean[0, width:].tolist()
    assert row[: at + 1] == new[: at + 1] and set(row[at + 1:]) <= {engine.pad_token_id}


def test_a_row_stopping_in_an_unpadded_batch_gets_a_mask_from_then_on(multi_token_model_dir):
    """No padding at first (no mask is built), then one row stops: the rest must decode as `generate` does."""
    policy = _sharpened(multi_token_model_dir)
    tok = policy.tokenizer
    first, second = (tok.encode(t, add_special_tokens=False) for t in ("What is", "Who was born earlier, a or b?"))
    prompts = [first, second[: len(first)]]  # equal lengths: no left padding
    engine = HFEngine(policy.model, tok)
    free, _ = _both_paths(engine, prompts, SamplingSettings(max_new_tokens=8))
    width = free.shape[1] - 8
    new, other = free[0, width:].tolist(), free[1, width:].tolist()
    at = next(i for i in range(1, 7) if new[i] not in new[:i] and new[i] not in other)  # stops row 0 alone
    lean, hf = _both_paths(engine, prompts, SamplingSettings(max_new_tokens=8, stop_token_ids=(new[at],)))
    assert torch.equal(lean, hf)
    assert lean[0, width + at + 1:].tolist() == [engine.pad_token_id] * (7 - at)
    assert lean[1, width:].tolist() == other  # the other row went on, unchanged by the first one's stop


def test_suppressed_tokens_of_the_generation_config_are_never_sampled(small_model_dir):
    policy = Policy(str(small_model_dir))
    engine = HFEngine(policy.model, policy.tokenizer)
    prompts = [policy.tokenizer.encode("What is", add_special_tokens=False)] * 8
    settings = SamplingSettings(max_new_tokens=16, temperature=1.0)
    drawn = {t for g in engine.generate(prompts, settings, torch.Generator().manual_seed(0)) for t in g.token_ids}
    policy.model.generation_config.suppress_tokens = sorted(drawn)
    again = {t for g in engine.generate(prompts, settings, torch.Generator().manual_seed(0)) for t in g.token_ids}
    assert again and not again & drawn


@pytest.mark.parametrize("field, value", [("bad_words_ids", [[5]]), ("min_new_tokens", 3), ("typical_p", 0.9)])
def test_a_generation_config_asking_for_more_goes_through_generate(small_model_dir, field, value):
    policy = Policy(str(small_model_dir))
    assert decodes_leanly(policy.model)
    setattr(policy.model.generation_config, field, value)
    assert not decodes_leanly(policy.model)


def test_sampling_follows_the_probabilities_and_never_draws_a_zero_probability_token():
    probs = torch.tensor([[0.0, 0.2, 0.0, 0.8], [0.5, 0.0, 0.5, 0.0]]).repeat(4000, 1)
    drawn = sample(probs, torch.rand(8000, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)).view(4000, 2)
    first, second = drawn[:, 0], drawn[:, 1]
    assert set(first.tolist()) == {1, 3} and set(second.tolist()) == {0, 2}
    assert abs((first == 3).float().mean().item() - 0.8) < 0.03
    assert abs((second == 0).float().mean().item() - 0.5) < 0.03


def test_sampling_inverts_the_cumulative_distribution_at_the_given_uniform():
    probs = torch.tensor([[0.1, 0.2, 0.3, 0.4]] * 5)
    uniform = torch.tensor([[0.0], [0.0999], [0.1001], [0.65], [0.9999]], dtype=torch.float64)
    # cumulative 0.1, 0.3, 0.6, 1.0: the first token whose cumulative sum passes u
    assert sample(probs, uniform).tolist() == [0, 0, 1, 3, 3]


def test_a_prompt_repeated_over_rows_is_read_once_and_gives_the_same_rows(multi_token_model_dir):
    policy = _sharpened(multi_token_model_dir)
    tok = policy.tokenizer
    a, b = (tok.encode(t, add_special_tokens=False) for t in ("Who was born earlier, a or b?", "What is"))
    engine = HFEngine(policy.model, tok)
    settings = SamplingSettings(max_new_tokens=6)
    alone = engine.generate([a, b], settings)
    read: list[int] = []
    hook = policy.model.register_forward_pre_hook(lambda m, args, kw: read.append(kw["input_ids"].numel()), with_kwargs=True)
    grouped = engine.generate([a, a, a, b, b], settings)
    hook.remove()
    assert grouped == [alone[0]] * 3 + [alone[1]] * 2
    assert read[0] == 2 * (len(a) - 1)  # the two distinct prompts, left-padded to the longer, minus the last token


def test_a_beginning_every_prompt_shares_is_read_once_and_gives_the_same_rows(multi_token_model_dir):
    policy = _sharpened(multi_token_model_dir)
    tok = policy.tokenizer
    instruction = tok.encode("Search with <begin_search> query </end_search> when needed. Question:", add_special_tokens=False)
    questions = [tok.encode(t, add_special_tokens=False) for t in (" Who was born earlier, a or b?", " What is", " x")]
    prompts = [instruction + q for q in questions] + [instruction + questions[1]]  # a repeat too (a group)
    settings = SamplingSettings(max_new_tokens=6)
    whole = HFEngine(policy.model, tok, shared_prefix_min_tokens=10_000).generate(prompts, settings)
    read: list[int] = []
    hook = policy.model.register_forward_pre_hook(lambda m, args, kw: read.append(kw["input_ids"].shape), with_kwargs=True)
    shared = HFEngine(policy.model, tok, shared_prefix_min_tokens=8).generate(prompts, settings)
    hook.remove()
    assert [g.token_ids for g in shared] == [g.token_ids for g in whole]
    common = next(n for n in range(len(instruction) + 1, 0, -1) if len({tuple(p[:n]) for p in prompts}) == 1)
    assert common >= len(instruction) >= 8
    assert read[0] == (1, common)  # the instruction once
    assert read[1] == (3, max(len(p) for p in prompts) - common - 1)  # then each distinct question but its last token
    assert all(shape[1] == 1 for shape in read[2:])  # then one token per row and step


def test_suppressed_tokens_match_transformers_processor():
    from transformers import SuppressTokensLogitsProcessor

    from coa.rollout.engines.decode import SuppressedTokens

    scores = torch.randn(3, 50, generator=torch.Generator().manual_seed(0))
    ids = torch.zeros(3, 4, dtype=torch.long)
    ours = SuppressedTokens([1, 7, 49, 99])  # 99 lies outside the vocabulary: ignored, as transformers does
    theirs = SuppressTokensLogitsProcessor([1, 7, 49, 99])
    for _ in range(2):  # the second call reuses the mask
        assert torch.equal(ours(ids, scores.clone()), theirs(ids, scores.clone()))


def test_compiled_decoding_gives_the_tokens_eager_decoding_gives(multi_token_model_dir):
    """HFEngine(compile=True): left-padded rows that stop at different steps (the masked path) and a sampled group
    sharing a prompt (GRPO's case), each equal to the eager engine's, finish reasons included."""
    policy = _sharpened(multi_token_model_dir)
    tok = policy.tokenizer
    prompts = [tok.encode(t, add_special_tokens=False) for t in ("What is", "Who was born earlier, a or b?", "x")]
    eager, compiled = HFEngine(policy.model, tok), HFEngine(policy.model, tok, compile=True)
    free = eager.generate(prompts, SamplingSettings(max_new_tokens=8))
    stop_id = free[0].token_ids[2]  # the first row stops at its third token; the others later or never
    greedy = SamplingSettings(max_new_tokens=8, stop_token_ids=(stop_id,))
    assert compiled.generate(prompts, greedy) == eager.generate(prompts, greedy)
    group, sampled = [prompts[1]] * 4, SamplingSettings(max_new_tokens=8, temperature=1.0)
    assert (compiled.generate(group, sampled, torch.Generator().manual_seed(3))
            == eager.generate(group, sampled, torch.Generator().manual_seed(3)))
    assert compiled._forward().forward is not compiled._forward().body  # it did run compiled
