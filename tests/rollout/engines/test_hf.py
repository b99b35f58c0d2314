"""HFEngine: stop strings of any token length cut token-exact; batching never changes output; seeded per call."""

import torch

from coa.rollout.engines.base import SamplingSettings
from coa.rollout.engines.hf import HFEngine, finish
from coa.rollout.engines.stop import cut_ids_at_text, first_stop
from coa.models.tokenizer import train_tokenizer
from coa.policy import Policy

CLOSE = "</end_search>"


def _straddling_tokenizer():
    """A BPE without the tags as tokens, trained so that '>.' is one token: it runs past the close tag."""
    texts = ["I look <begin_search> Ada Vell </end_search>. Then more." for _ in range(50)]
    texts += ["ok>. fine>. ok>."] * 50
    return train_tokenizer(texts, vocab_size=300, tags_as_tokens=False)


def test_first_stop_is_the_earliest_end():
    assert first_stop("a </x> b </y>", ("</y>", "</x>")) == (6, "</x>")
    assert first_stop("nothing", ("</x>",)) is None


def test_a_token_running_past_the_close_tag_is_cut_and_only_its_remainder_re_encoded():
    tok = _straddling_tokenizer()
    straddler = tok.convert_tokens_to_ids(">.")
    assert isinstance(straddler, int) and straddler != tok.unk_token_id
    head = tok.encode("I look <begin_search> Ada Vell </end_search", add_special_tokens=False)
    ids = head + [straddler] + tok.encode(" Then", add_special_tokens=False)
    assert len(tok.encode(CLOSE, add_special_tokens=False)) > 1
    g = finish(tok, ids, SamplingSettings(stop_strings=(CLOSE,)))
    assert g.finish_reason == "stop" and g.stop == CLOSE
    assert g.text == "I look <begin_search> Ada Vell </end_search>"
    assert tok.decode(g.token_ids) == g.text
    assert g.token_ids[: len(head)] == head  # the prefix is kept as generated, never re-tokenised
    assert g.token_ids[len(head):] == tok.encode(">", add_special_tokens=False)
    assert g.unsampled == 1  # ">" is the re-encoded remainder: the model sampled ">.", never ">"


def test_cut_ids_at_text_on_a_token_boundary_keeps_the_ids():
    tok = _straddling_tokenizer()
    ids = tok.encode("Then more.", add_special_tokens=False)
    text = tok.decode(ids)
    assert cut_ids_at_text(tok, ids, len(text)) == (ids, 0)


def test_finish_prefers_the_earlier_of_stop_token_and_stop_string():
    tok = _straddling_tokenizer()
    ids = tok.encode("Then", add_special_tokens=False) + [tok.eos_token_id] + tok.encode(f" {CLOSE}", add_special_tokens=False)
    g = finish(tok, ids, SamplingSettings(stop_strings=(CLOSE,), stop_token_ids=(tok.eos_token_id,)))
    assert g.finish_reason == "eos" and g.token_ids[-1] == tok.eos_token_id and g.text == "Then"
    g = finish(tok, ids[:2], SamplingSettings(stop_strings=(CLOSE,), stop_token_ids=(tok.eos_token_id,)))
    assert g.finish_reason == "length"


def test_batched_greedy_equals_one_by_one_and_stops_at_a_stop_string(multi_token_model_dir):
    policy = Policy(str(multi_token_model_dir))
    tok = policy.tokenizer
    prompts = [tok.encode(t, add_special_tokens=False) for t in ("What is", "Who was born earlier, a or b?", "x")]
    free = HFEngine(policy.model, tok, batch_size=1).generate(prompts[:1], SamplingSettings(max_new_tokens=8))[0]
    stop = free.text[2:5]  # whatever the model writes first, as a multi-character stop string
    settings = SamplingSettings(max_new_tokens=8, stop_strings=(stop,))
    one_by_one = HFEngine(policy.model, tok, batch_size=1).generate(prompts, settings)
    batched = HFEngine(policy.model, tok, batch_size=3).generate(prompts, settings)
    assert batched == one_by_one
    first = one_by_one[0]
    assert first.finish_reason == "stop" and first.text.endswith(stop) and first.text == free.text[: free.text.index(stop) + len(stop)]
    for g in batched:
        assert tok.decode(g.token_ids) == g.text and len(g.token_ids) <= 8


def test_sampling_draws_from_the_call_generator_and_leaves_the_global_rng_alone(small_model_dir):
    policy = Policy(str(small_model_dir))
    engine = HFEngine(policy.model, policy.tokenizer)
    prompts = [policy.tokenizer.encode("What is", add_special_tokens=False)] * 4
    settings = SamplingSettings(max_new_tokens=8, temperature=1.0)
    state = torch.random.get_rng_state()
    a = engine.generate(prompts, settings, torch.Generator().manual_seed(3))
    assert torch.equal(torch.random.get_rng_state(), state)
    assert a == engine.generate(prompts, settings, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    first, second = engine.generate(prompts, settings, g), engine.generate(prompts, settings, g)
    assert first == a and second != first  # the generator advances: the next step samples anew


def test_a_rows_sample_depends_on_its_own_stream_not_on_the_rows_beside_it(small_model_dir):
    from coa.rollout.engines.streams import RowStreams

    policy = Policy(str(small_model_dir))
    tok = policy.tokenizer
    prompts = [tok.encode(t, add_special_tokens=False) for t in ("What is", "Who was born earlier, a or b?", "x", "What is")]
    settings = SamplingSettings(max_new_tokens=8, temperature=1.0)
    seeds = [11, 12, 13, 14]
    together = HFEngine(policy.model, tok, batch_size=4).generate(prompts, settings, RowStreams.from_seeds(seeds))
    apart = [HFEngine(policy.model, tok, batch_size=2).generate(prompts[i:i + 2], settings, RowStreams.from_seeds(seeds[i:i + 2]))
             for i in (0, 2)]
    reversed_ = HFEngine(policy.model, tok).generate(prompts[::-1], settings, RowStreams.from_seeds(seeds[::-1]))
    assert together == apart[0] + apart[1] == reversed_[::-1]
    assert together[0] != together[3]  # the same prompt, another stream: another sample


def test_train_mode_comes_back_even_when_generation_raises(small_model_dir):
    policy = Policy(str(small_model_dir))
    policy.model.train()
    engine = HFEngine(policy.model, policy.tokenizer)
    try:
        engine.generate([[10**9]], SamplingSettings(max_new_tokens=2))  # an id past the vocabulary
    except Exception:
        pass
    else:
        raise AssertionError("an out-of-vocabulary id should fail")
    assert policy.model.training


def test_a_repetition_penalty_in_the_models_generation_config_is_not_applied(small_model_dir):
    policy = Policy(str(small_model_dir))
    engine = HFEngine(policy.model, policy.tokenizer)
    prompts = [policy.tokenizer.encode("What is", add_special_tokens=False)]
    plain = engine.generate(prompts, SamplingSettings(max_new_tokens=12))
    policy.model.generation_config.repetition_penalty = 5.0
    assert engine.generate(prompts, SamplingSettings(max_new_tokens=12)) == plain
    # the penalty does change plain `generate` on this model: the check above can fail
    penalised = policy.model.generate(torch.tensor(prompts), max_new_tokens=12, do_sample=False)[0, len(prompts[0]):]
    assert penalised.tolist() != plain[0].token_ids[:12]


def test_a_sampled_id_past_the_tokenizer_does_not_break_the_stop_watch(small_model_dir):
    from coa.rollout.engines.hf import StopStringWatch

    tok = Policy(str(small_model_dir)).tokenizer
    watch = StopStringWatch(tok, ("</end_search>",), prompt_width=1, rows=2)
    closing = tok.encode(" </end_search>", add_special_tokens=False)
    ids = torch.tensor([[5] + closing, [5] * (len(closing) - 1) + [5, len(tok) + 7]])  # row 1 ends past the vocabulary
    assert watch(ids, None).tolist() == [True, False]
