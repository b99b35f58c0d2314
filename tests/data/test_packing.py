"""Packed rows: fewer, as wide as the longest example, and every example's loss exactly what it is alone."""

import torch

from coa.data.batch import collate_examples
from coa.data.packing import pack_examples, pack_rows
from coa.masking import TokenizedExample
from coa.policy import Policy


def _examples(lengths: list[int], vocab: int) -> list[TokenizedExample]:
    g = torch.Generator().manual_seed(0)
    out = []
    for n in lengths:
        ids = torch.randint(5, vocab, (n,), generator=g).tolist()
        loss = [0] * (n // 3) + [1] * (n - n // 3)  # a prompt without loss, then targets
        out.append(TokenizedExample(ids, loss))
    return out


def test_rows_are_filled_first_fit_longest_first():
    assert pack_rows([9, 3, 5, 4, 1], width=9) == [[0], [2, 3], [1, 4]]
    assert pack_rows([2, 2, 2], width=2) == [[0], [1], [2]]


def test_packed_rows_hold_every_token_once_with_positions_from_zero_per_example():
    examples = _examples([12, 5, 7, 3, 9], vocab=50)
    batch = pack_examples(examples, pad_id=0)
    assert batch.input_ids.shape == (3, 12)  # [12], [9, 3], [7, 5]
    assert int(batch.attention_mask.sum()) == sum(len(e.input_ids) for e in examples)
    assert batch.position_ids[1].tolist() == list(range(9)) + list(range(3))
    assert batch.position_ids[2].tolist() == list(range(7)) + list(range(5))
    starts = [0, 9]  # no example's first token is a target (it would be predicted from its row-mate)
    assert all(batch.loss_mask[1, s] == 0 for s in starts)


def test_weighted_loss_masks_stay_weights_packed_or_not():
    examples = [TokenizedExample([5, 6, 7], [0.0, 1.0, 0.5]), TokenizedExample([8, 9], [0, 1])]
    for batch in (pack_examples(examples, pad_id=0), collate_examples(examples, pad_id=0)):
        assert batch.loss_mask.dtype == torch.float32
        assert sorted(batch.loss_mask[batch.loss_mask > 0].tolist()) == [0.5, 1.0, 1.0]
    assert collate_examples(examples[1:], pad_id=0).loss_mask.dtype == torch.long  # plain 0/1 masks stay long


def test_a_packed_example_has_the_logprobs_it_has_alone(small_model_dir):
    policy = Policy(str(small_model_dir))
    examples = _examples([40, 11, 23, 17, 30, 9], vocab=len(policy.tokenizer))
    packed = pack_examples(examples, pad_id=0)
    padded = collate_examples(examples, pad_id=0)
    assert packed.input_ids.numel() < padded.input_ids.numel()
    with torch.no_grad():
        mine = policy.target_logprobs(
            packed.input_ids, packed.attention_mask, packed.loss_mask[:, 1:] * packed.attention_mask[:, 1:],
            position_ids=packed.position_ids,
        )
        alone = policy.target_logprobs(
            padded.input_ids, padded.attention_mask, padded.loss_mask[:, 1:] * padded.attention_mask[:, 1:],
        )
    # the same targets in another order (rows hold examples longest first): compare as sorted multisets, and the mean
    assert mine.shape == alone.shape
    assert torch.allclose(mine.sort().values, alone.sort().values, atol=1e-5)
    assert torch.allclose(mine.mean(), alone.mean(), atol=1e-6)


def test_packing_is_refused_for_a_model_whose_attention_ignores_position_restarts(small_model_dir):
    import pytest

    from coa.data.packing import check_packing_isolates

    policy = Policy(str(small_model_dir))
    check_packing_isolates(policy.model, len(policy.tokenizer))  # transformers' Llama, sdpa: isolated
    forward = policy.model.forward
    policy.model.forward = lambda **kw: forward(**{**kw, "position_ids": None})  # positions ignored: one long sequence
    with pytest.raises(ValueError, match="data.pack: false"):
        check_packing_isolates(policy.model, len(policy.tokenizer))


def test_packing_is_allowed_in_bfloat16_and_a_leak_still_refused(small_model_dir):
    import pytest

    from coa.data.packing import check_packing_isolates

    # (a real model's bfloat16 rounding, which the old fixed tolerance refused: tests/models/test_from_pypi.py)
    policy = Policy(str(small_model_dir), dtype="bfloat16")
    check_packing_isolates(policy.model, len(policy.tokenizer))
    forward = policy.model.forward
    policy.model.forward = lambda **kw: forward(**{**kw, "position_ids": None})
    with pytest.raises(ValueError, match="data.pack: false"):
        check_packing_isolates(policy.model, len(policy.tokenizer))
