"""HFEngine: stops on the action's close tag, batching and left padding never change what is generated."""

from coa.engines.base import SamplingSettings, cut_at_stop
from coa.engines.hf import HFEngine
from coa.policy import Policy


def test_cut_at_stop_keeps_the_stop_token_and_drops_padding():
    assert cut_at_stop([5, 6, 9, 7], (9,), 0) == [5, 6, 9]
    assert cut_at_stop([5, 6, 0, 0], (9,), 0) == [5, 6]


def test_batched_greedy_equals_one_by_one_and_stops_at_the_stop_token(small_model_dir):
    policy = Policy(str(small_model_dir))
    tok = policy.tokenizer
    prompts = [tok.encode(t, add_special_tokens=False) for t in ("What is", "Who was born earlier, a or b?", "x")]
    # Stop on whatever the model emits third for the first prompt, to see the cut happen.
    free = HFEngine(policy.model, tok.pad_token_id, batch_size=1).generate(prompts[:1], SamplingSettings(max_new_tokens=6))
    stop = free[0][2]
    settings = SamplingSettings(max_new_tokens=6, stop_token_ids=(stop,))
    one_by_one = HFEngine(policy.model, tok.pad_token_id, batch_size=1).generate(prompts, settings)
    batched = HFEngine(policy.model, tok.pad_token_id, batch_size=3).generate(prompts, settings)
    assert batched == one_by_one
    assert one_by_one[0] == free[0][: free[0].index(stop) + 1]
    assert all(len(out) <= 6 for out in batched)


def test_sampling_is_seeded(small_model_dir):
    policy = Policy(str(small_model_dir))
    engine = HFEngine(policy.model, policy.tokenizer.pad_token_id)
    prompts = [policy.tokenizer.encode("What is", add_special_tokens=False)] * 2
    settings = SamplingSettings(max_new_tokens=8, temperature=1.0, seed=3)
    assert engine.generate(prompts, settings) == engine.generate(prompts, settings)
