"""GRPO math against numbers worked out by hand."""

import math

import pytest
import torch

from coa.losses.grpo import grpo_token_loss, group_advantages, k3_kl, token_weights


def test_advantages_are_reward_minus_group_mean():
    # group 1: mean 1/3 -> [2/3, -1/3, -1/3]; group 2: all equal -> 0
    adv = group_advantages(torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0]), group_size=3)
    assert adv.tolist() == pytest.approx([2 / 3, -1 / 3, -1 / 3, 0.0, 0.0, 0.0])


def test_scaled_advantages_divide_by_the_unbiased_group_std():
    # std([1, 0, 0], unbiased) = sqrt((4/9 + 1/9 + 1/9) / 2) = sqrt(1/3)
    adv = group_advantages(torch.tensor([1.0, 0.0, 0.0, 0.5, 0.5, 0.5]), group_size=3, scale_by_std=True)
    s = math.sqrt(1 / 3)
    assert adv.tolist() == pytest.approx([(2 / 3) / s, (-1 / 3) / s, (-1 / 3) / s, 0.0, 0.0, 0.0], rel=1e-5)


def test_groups_must_divide_the_batch():
    with pytest.raises(ValueError, match="groups of 4"):
        group_advantages(torch.zeros(6), group_size=4)


@pytest.mark.parametrize(
    "ratio, advantage, expected, clipped",
    [
        (1.5, 1.0, -1.2, True),    # max(-1.5, -1.2): the gain is capped at 1 + eps
        (1.5, -1.0, 1.5, False),   # max(1.5, 1.2): a worse ratio is never clipped away
        (0.5, 1.0, -0.5, False),   # max(-0.5, -0.8)
        (0.5, -1.0, 0.8, True),    # max(0.5, 0.8)
        (1.0, 2.0, -2.0, False),   # on-policy: -A
    ],
)
def test_clipped_loss_for_fixed_logprobs(ratio, advantage, expected, clipped):
    out = grpo_token_loss(
        torch.tensor([math.log(ratio)]), torch.tensor([0.0]), torch.tensor([advantage]), clip_eps=0.2
    )
    assert out.loss.item() == pytest.approx(expected, abs=1e-6)
    assert out.clipped.item() is clipped


def test_k3_kl_is_zero_when_policy_equals_reference_and_positive_otherwise():
    logp = torch.tensor([-1.0, -2.0])
    assert k3_kl(logp, logp).tolist() == [0.0, 0.0]
    # logp = 0, ref = log 0.5: exp(log 0.5) - log 0.5 - 1 = 0.5 + 0.693147 - 1
    assert k3_kl(torch.tensor([0.0]), torch.tensor([math.log(0.5)])).item() == pytest.approx(0.193147, abs=1e-6)


def test_kl_term_adds_beta_times_k3():
    logp, ref = torch.tensor([0.0]), torch.tensor([math.log(0.5)])
    out = grpo_token_loss(logp, logp, torch.tensor([0.0]), ref_logprobs=ref, kl_coef=0.1)
    assert out.loss.item() == pytest.approx(0.0193147, abs=1e-6)


def test_both_aggregations():
    # sequence 0 has three loss tokens (losses 1, 2, 3), sequence 1 one (loss 10)
    seq, losses = torch.tensor([0, 0, 0, 1]), torch.tensor([1.0, 2.0, 3.0, 10.0])
    assert (token_weights(seq, 2, "token_mean") * losses).sum().item() == pytest.approx(16 / 4)
    assert (token_weights(seq, 2, "sequence_mean") * losses).sum().item() == pytest.approx((6 / 3 + 10) / 2)
    with pytest.raises(ValueError, match="token_mean"):
        token_weights(seq, 2, "sum")


def test_micro_batches_add_up_to_the_batch_loss():
    seq, losses = torch.tensor([0, 0, 1, 2, 2, 2]), torch.tensor([1.0, 3.0, 2.0, 4.0, 0.0, 5.0])
    for aggregation in ("token_mean", "sequence_mean"):
        w = token_weights(seq, 3, aggregation)
        whole = (w * losses).sum()
        parts = (w[:3] * losses[:3]).sum() + (w[3:] * losses[3:]).sum()
        assert parts.item() == pytest.approx(whole.item())


def test_observation_positions_get_zero_gradient():
    # logits for 5 next-token positions; positions 1 and 2 predict observation tokens (mask 0)
    logits = torch.randn(1, 5, 7, requires_grad=True)
    targets = torch.tensor([[3, 1, 4, 1, 5]])
    mask = torch.tensor([[1, 0, 0, 1, 1]]).bool()
    logp = torch.log_softmax(logits, -1).gather(-1, targets[..., None])[..., 0][mask]
    seq = torch.zeros(3, dtype=torch.long)
    out = grpo_token_loss(logp, logp.detach(), torch.tensor([1.0, 1.0, 1.0]), ref_logprobs=logp.detach() - 0.1, kl_coef=0.5)
    (token_weights(seq, 1, "token_mean") * out.loss).sum().backward()
    assert logits.grad[0, 1].abs().sum() == 0 and logits.grad[0, 2].abs().sum() == 0
    assert logits.grad[0, 0].abs().sum() > 0 and logits.grad[0, 4].abs().sum() > 0


def test_the_kl_estimate_is_clamped_at_ten_as_the_releases_low_var_kl():
    # ref - logp = 12: exp(12) - 12 - 1 = 162741.79 unclamped; verl's low_var_kl (AutoCoA's) clamps it to 10
    logp, ref = torch.tensor([0.0, 0.0], requires_grad=True), torch.tensor([12.0, math.log(0.5)])
    assert k3_kl(logp, ref)[0].item() == pytest.approx(math.exp(12) - 13, rel=1e-6)
    out = grpo_token_loss(logp, logp.detach(), torch.zeros(2), ref_logprobs=ref, kl_coef=0.1, kl_clamp=10.0)
    assert out.kl.tolist() == pytest.approx([10.0, 0.193147], abs=1e-6)
    out.loss.sum().backward()
    assert logp.grad[0].item() == 0.0 and logp.grad[1].item() != 0.0  # past the clamp the estimate has no gradient


def test_the_entropy_bonus_subtracts_its_coefficient_times_the_entropy():
    # on-policy, A = 1: pg = -1; entropy 2.0 with c = 0.001 -> -1 - 0.002
    logp = torch.tensor([-0.5])
    out = grpo_token_loss(logp, logp, torch.tensor([1.0]), entropy=torch.tensor([2.0]), entropy_coef=0.001)
    assert out.loss.item() == pytest.approx(-1.002, abs=1e-7)
    assert grpo_token_loss(logp, logp, torch.tensor([1.0]), entropy=torch.tensor([2.0])).loss.item() == -1.0
