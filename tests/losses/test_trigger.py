"""The trigger loss (SFT stage 1) against numbers worked out by hand."""

import pytest
import torch

from coa.losses.trigger import sequence_means, trigger_loss


def test_loss_parts_equal_the_hand_computed_values():
    chosen, rejected = torch.tensor([-1.0, -2.0]), torch.tensor([-3.0, -1.0])
    out = trigger_loss(chosen, rejected, alpha=0.5, beta=2.0)
    # margins [2, -1]; beta * margin = [4, -2]
    # -log σ(4) = log(1 + e^-4) = 0.0181499, -log σ(-2) = log(1 + e^2) = 2.1269280 -> mean 1.0725390
    # nll = -mean(P(c)) = 1.5; loss = 1.0725390 + 0.5 * 1.5 = 1.8225390
    assert out.contrastive.item() == pytest.approx(1.0725390, abs=1e-6)
    assert out.nll.item() == pytest.approx(1.5)
    assert out.loss.item() == pytest.approx(1.8225390, abs=1e-6)
    assert out.accuracy.item() == 0.5  # only the first pair prefers chosen
    assert out.margin.item() == pytest.approx(0.5)  # mean of [2, -1]


def test_reference_variant_takes_margins_relative_to_the_reference():
    chosen, rejected = torch.tensor([-1.0, -2.0]), torch.tensor([-3.0, -1.0])
    ref_chosen, ref_rejected = torch.tensor([-1.5, -2.0]), torch.tensor([-2.0, -1.5])
    out = trigger_loss(chosen, rejected, alpha=0.0, beta=1.0, ref_chosen=ref_chosen, ref_rejected=ref_rejected)
    # reference margins [0.5, -0.5]; relative margins [2 - 0.5, -1 + 0.5] = [1.5, -0.5]
    # log(1 + e^-1.5) = 0.2014133, log(1 + e^0.5) = 0.9740770 -> mean 0.5877451
    assert out.loss.item() == pytest.approx(0.5877451, abs=1e-6)
    assert out.margin.item() == pytest.approx(0.5)  # the policy's own margin, logged as is


def test_equal_sides_give_log_two_and_gradients_push_chosen_up_rejected_down():
    chosen = torch.tensor([-2.0], requires_grad=True)
    rejected = torch.tensor([-2.0], requires_grad=True)
    out = trigger_loss(chosen, rejected, alpha=1.0, beta=1.0)
    out.loss.backward()
    # d/dPc [-log σ(Pc - Pr) - Pc] = -(1 - σ(0)) - 1 = -1.5; d/dPr = 1 - σ(0) = 0.5
    assert out.loss.item() == pytest.approx(0.6931472 + 2.0, abs=1e-6)
    assert chosen.grad.item() == pytest.approx(-1.5) and rejected.grad.item() == pytest.approx(0.5)


def test_sequence_means_average_each_rows_targets():
    flat = torch.tensor([-1.0, -3.0, -0.5, -2.0, -4.0])
    mask = torch.tensor([[0, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0], [0, 1, 0, 1]])
    # row 0: (-1 - 3) / 2; row 1: -0.5; row 2: no targets -> 0; row 3: (-2 - 4) / 2
    assert sequence_means(flat, mask).tolist() == [-2.0, -0.5, 0.0, -3.0]


def test_one_reference_side_alone_is_refused():
    with pytest.raises(ValueError, match="both ref_chosen and ref_rejected"):
        trigger_loss(torch.zeros(1), torch.zeros(1), ref_chosen=torch.zeros(1))
