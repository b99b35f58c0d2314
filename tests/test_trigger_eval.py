"""Trigger precision/recall/F1 by generation: hand-counted scores, and a model taught to always search."""

from pathlib import Path

import pytest
import torch

from coa.data.batch import collate_examples
from coa.data.cota_pairs import THINK_OPEN, pair_messages, read_cota_pairs
from coa.rollout.engines.hf import HFEngine
from coa.masking import tokenize_continuation
from coa.policy import Policy
from coa.prompts import PromptTemplate
from coa.trigger_eval import fixed_subset, needs_search, opens_search, trigger_eval, trigger_scores


@pytest.mark.parametrize(
    "text, opened",
    [
        (" I need A's age. <begin_search> A </end_search>", True),
        (" A's age 30. </think> \\boxed{ 30 }", False),
        (" </think> \\boxed{ x } <begin_search> A </end_search>", False),  # after the answer: too late
        (" \\boxed{ x } <begin_search> A", False),
        (" <begin_search> A", True),  # opened within the budget, unclosed: still a decision to search
        ("", False),
    ],
)
def test_opens_search_only_before_the_thinking_ends(text, opened):
    assert opens_search(text) is opened


def test_scores_count_search_as_the_positive_class():
    searched = [True, True, True, False, False, False, True]
    needed = [True, True, False, True, False, False, True]
    s = trigger_scores(searched, needed)
    # TP 3, FP 1, FN 1, TN 2: precision 3/4, recall 3/4, F1 3/4
    assert (s.true_positive, s.false_positive, s.false_negative, s.true_negative) == (3, 1, 1, 2)
    assert (s.precision, s.recall, s.f1) == (0.75, 0.75, 0.75)
    never = trigger_scores([False, False], [True, False])
    assert (never.precision, never.recall, never.f1) == (0.0, 0.0, 0.0)


def test_fixed_subset_is_the_same_every_time(small_world):
    pairs = read_cota_pairs(small_world / "pairs" / "dev.json")
    assert fixed_subset(pairs, 5, seed=3) == fixed_subset(pairs, 5, seed=3) != fixed_subset(pairs, 5, seed=4)
    assert fixed_subset(pairs, 10**6) == pairs


def teach_always_search(model_dir: Path, world: Path, out_dir: Path, steps: int = 25) -> Path:
    """Overfits the tiny model to open a search right after any decision-point prefix, needed or not."""
    policy = Policy(str(model_dir))
    template = PromptTemplate("short")
    pairs = read_cota_pairs(world / "pairs" / "train.json")[:8]
    examples = [
        tokenize_continuation(policy.tokenizer, pair_messages(p, template), THINK_OPEN + p.prefix, " <begin_search>")
        for p in pairs
    ]
    batch = collate_examples(examples, policy.tokenizer.pad_token_id)
    targets = batch.loss_mask[:, 1:] * batch.attention_mask[:, 1:]
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(policy.parameters(), lr=1e-2)
    for _ in range(steps):
        loss = -policy.target_logprobs(batch.input_ids, batch.attention_mask, targets).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return policy.save_pretrained(out_dir)


def test_a_model_taught_to_always_search_has_recall_one(small_world, small_model_dir, tmp_path):
    policy = Policy(str(teach_always_search(small_model_dir, small_world, tmp_path / "always")))
    points = read_cota_pairs(small_world / "pairs" / "dev.json")
    engine = HFEngine(policy.model, policy.tokenizer)
    scores = trigger_eval(engine, policy.tokenizer, points, PromptTemplate("short"), max_new_tokens=8)
    positives = sum(needs_search(p) for p in points)
    assert 0 < positives < len(points)
    assert scores.recall == 1.0
    assert scores.precision == pytest.approx(positives / len(points))  # it searches everywhere
    assert scores.true_negative == 0
