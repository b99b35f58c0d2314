"""Shared-prompt passes: the split by hand, and log-probs, entropy and gradients equal to the whole-row path."""

import pytest
import torch

from coa.policy import LoraSettings, Policy
from coa.shared_prefix import PromptGroups, split_shared_prefix

PAD = 0


def right_padded(rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.tensor([r + [PAD] * (width - len(r)) for r in rows])
    attention = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    return ids, attention


def grouped_batch(prompt_lengths=(5, 8), completion_lengths=((4, 7, 2), (6, 1, 3)), share=True, vocab=400):
    """Two groups of three rows; prompts and completions of different lengths; one observation token unscored.

    Returns ids [6, T], attention [6, T], target mask [6, T-1] and the groups.
    """
    gen = torch.Generator().manual_seed(0)
    rows, lengths = [], []
    for p, completions in zip(prompt_lengths, completion_lengths):
        prompt = torch.randint(3, vocab, (p,), generator=gen).tolist()
        for c in completions:
            if not share:
                prompt = torch.randint(3, vocab, (p,), generator=gen).tolist()
            rows.append(prompt + torch.randint(3, vocab, (c,), generator=gen).tolist())
            lengths.append(p)
    ids, attention = right_padded(rows)
    loss = torch.zeros_like(ids)
    for row, (p, n) in enumerate(zip(lengths, attention.sum(-1).tolist())):
        loss[row, p:n] = 1
    loss[1, lengths[1] + 3] = 0  # an observation token inside a completion
    return ids, attention, loss[:, 1:] * attention[:, 1:], PromptGroups(torch.tensor(lengths), 3)


def sharpen(*models: torch.nn.Module) -> None:
    """Larger random weights: at init the logits are near uniform, so a wrong position or mask would go unseen."""
    torch.manual_seed(0)
    with torch.no_grad():
        for model in models:
            for weight in model.parameters():
                if weight.dim() == 2:
                    torch.nn.init.normal_(weight, std=0.3)


def batch_sizes_seen(policy: Policy) -> list[tuple[int, int]]:
    """The [rows, tokens] of every forward the model makes from here on."""
    seen = []
    policy.model.get_input_embeddings().register_forward_hook(lambda m, inputs, out: seen.append(tuple(inputs[0].shape)))
    return seen


def test_split_by_hand():
    # group 1: prompt [5, 6], completions [7, 8] and [9]; group 2: prompt [1, 2, 3], completions [4, 5] and [6]
    ids, attention = right_padded([[5, 6, 7, 8], [5, 6, 9], [1, 2, 3, 4, 5], [1, 2, 3, 6]])
    loss = torch.tensor([[0, 0, 1, 1, 0], [0, 0, 1, 0, 0], [0, 0, 0, 0, 1], [0, 0, 0, 1, 0]])  # the 4 unscored
    split = split_shared_prefix(ids, attention, loss[:, 1:], PromptGroups(torch.tensor([2, 2, 3, 3]), 2))
    assert split.prompt_ids.tolist() == [[5, 6, 0], [1, 2, 3]]
    assert split.prompt_mask.tolist() == [[1, 1, 0], [1, 1, 1]]
    assert split.completion_ids.tolist() == [[7, 8], [9, 0], [4, 5], [6, 0]]
    assert split.completion_mask.tolist() == [[1, 1], [1, 0], [1, 1], [1, 0]]
    assert split.targets.tolist() == [[True, True], [True, False], [False, True], [True, False]]


def test_split_refuses_groups_that_do_not_share_the_prompt_and_targets_inside_it():
    ids, attention = right_padded([[5, 6, 7], [5, 4, 9]])
    targets = torch.tensor([[0, 1], [0, 1]])
    assert split_shared_prefix(ids, attention, targets, PromptGroups(torch.tensor([2, 2]), 2)) is None
    ids, attention = right_padded([[5, 6, 7], [5, 6, 9]])
    assert split_shared_prefix(ids, attention, torch.tensor([[1, 1], [0, 1]]), PromptGroups(torch.tensor([2, 2]), 2)) is None


@pytest.mark.parametrize("temperature", [1.0, 0.6])
def test_shared_path_gives_the_whole_row_logprobs_and_entropy(small_model_dir, temperature):
    policy = Policy(str(small_model_dir))
    sharpen(policy.model)
    ids, attention, targets, groups = grouped_batch()
    plain, plain_entropy = policy.target_logprobs_and_entropy(ids, attention, targets, temperature)
    seen = batch_sizes_seen(policy)
    shared, shared_entropy = policy.target_logprobs_and_entropy(ids, attention, targets, temperature, groups)
    assert seen == [(2, 8), (6, 7)]  # the two prompts once, then the six completions (at most 7 tokens)
    assert shared.shape == plain.shape == (int(targets.sum()),)
    torch.testing.assert_close(shared, plain, atol=1e-5, rtol=0)
    torch.testing.assert_close(shared_entropy, plain_entropy, atol=1e-5, rtol=0)
    assert plain.std() > 0.5  # sharpened: the log-probs differ from token to token


def parameter_gradients(policy: Policy, ids, attention, targets, groups: PromptGroups | None) -> dict[str, torch.Tensor]:
    policy.zero_grad()
    logp = policy.target_logprobs(ids, attention, targets, 0.6, groups)
    weights = torch.linspace(-1.0, 2.0, logp.shape[0])  # every token counts differently
    (weights * logp).sum().backward()
    return {name: p.grad.clone() for name, p in policy.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("lora", [None, LoraSettings(r=4)], ids=["full", "lora"])
def test_shared_path_gives_the_whole_row_gradients(small_model_dir, lora):
    policy = Policy(str(small_model_dir), lora=lora)
    sharpen(policy.model)  # LoRA's B starts at zero: sharpened, the adapter takes part
    policy.train()
    ids, attention, targets, groups = grouped_batch()
    plain = parameter_gradients(policy, ids, attention, targets, None)
    shared = parameter_gradients(policy, ids, attention, targets, groups)
    assert plain.keys() == shared.keys() and (lora is None or all("lora_" in name for name in plain))
    for name, grad in plain.items():  # float32 sums in another order: 1e-5 of the tensor's largest gradient
        torch.testing.assert_close(shared[name], grad, atol=1e-5 * float(grad.abs().max()), rtol=0, msg=name)


@pytest.mark.parametrize("lora", [None, LoraSettings(r=4)], ids=["full", "lora"])
def test_shared_path_gives_the_whole_row_reference_logprobs(small_model_dir, lora):
    policy = Policy(str(small_model_dir), lora=lora)
    reference = policy.model if lora is not None else policy.reference_model(torch.device("cpu"))
    sharpen(reference)  # with LoRA the reference is the base model, adapter off
    ids, attention, targets, groups = grouped_batch()
    plain = policy.reference_target_logprobs(ids, attention, targets, 0.6)
    shared = policy.reference_target_logprobs(ids, attention, targets, 0.6, groups)
    torch.testing.assert_close(shared, plain, atol=1e-5, rtol=0)


def test_groups_that_do_not_share_the_prompt_take_the_whole_rows(small_model_dir):
    policy = Policy(str(small_model_dir))
    sharpen(policy.model)
    ids, attention, targets, groups = grouped_batch(share=False)
    plain = policy.target_logprobs(ids, attention, targets)
    seen = batch_sizes_seen(policy)
    torch.testing.assert_close(policy.target_logprobs(ids, attention, targets, prompts=groups), plain, atol=0, rtol=0)
    assert seen == [tuple(ids.shape)]  # one pass over the whole rows


def test_gradient_checkpointing_in_training_takes_the_whole_rows(small_model_dir):
    policy = Policy(str(small_model_dir), gradient_checkpointing=True)
    policy.train()
    ids, attention, targets, groups = grouped_batch()
    seen = batch_sizes_seen(policy)
    policy.target_logprobs(ids, attention, targets, prompts=groups).sum().backward()
    assert seen[0] == tuple(ids.shape)  # no cache under checkpointing: the whole rows (then recomputed in backward)
