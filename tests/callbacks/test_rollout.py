"""RolloutCallback: the text each reward scores (AutoCoA's: the decoded sequence, end of sequence included), what a
truncated episode trains on, and the engine put to sleep after each batch's rollouts, synced only when due."""

import lightning as L
import pytest
import torch

from coa.callbacks.rollout import RolloutCallback, for_truncation, score_rollouts
from coa.callbacks.weight_sync import WeightSync
from coa.datamodules.prompts import PromptDataModule, PromptItem
from coa.models.tokenizer import train_tokenizer
from coa.modules.grpo import GRPOModule
from coa.policy import Policy
from coa.rewards.autocoa import AutoCoAReward
from coa.rewards.em import ExactMatchReward
from coa.rollout.batch import collate_rollouts
from coa.rollout.engines.hf import HFEngine
from coa.rollout.environments import RealEnvironment
from coa.rollout.runner import Rollout, RolloutRunner, UnavailableTool

DEEPSEEK_EOS = "<｜end▁of▁sentence｜>"  # DeepSeek-R1-Distill-Qwen's, the paper's model

# (response before the end of sequence, what the release's compute_score gave for the decoded prompt + response,
# run unmodified: ADaM-BJTU/AutoCoA b8cb53f, RL_training/verl/utils/reward_score/hotpotqa.py, gold "Paris")
RELEASE_EOS_CASES = [
    ("<think> x </think> So, Paris", 0.0),  # "So," reads up to the first ".": "Paris<｜end▁of▁sentence｜>" contains the gold
    ("<think> x </think> The answer is Paris", 0.0),
    ("<think> x </think> Paris", 0.0),  # the last "sentence" is the whole tail, end of sequence included
    ("<think> x </think> Paris.", 1.0),
    ("<think> x </think> \\boxed{Paris}", 1.0),
]


@pytest.fixture(scope="module")
def deepseek_like_tokenizer():
    tok = train_tokenizer(["<think> x </think> So, Paris. The answer is \\boxed{Paris}. Question: Which city?"] * 4, 300)
    tok.add_special_tokens({"eos_token": DEEPSEEK_EOS})
    return tok


@pytest.mark.parametrize(("response", "release"), RELEASE_EOS_CASES)
def test_autocoa_scores_what_the_release_scores_end_of_sequence_included(deepseek_like_tokenizer, response, release):
    tok = deepseek_like_tokenizer
    runner = RolloutRunner(HFEngine(torch.nn.Linear(1, 1), tok), UnavailableTool(), tok)
    prompt = "Question: Which city? "
    rollout = Rollout(tok.encode(prompt, add_special_tokens=False))
    rollout.append(tok.encode(response, add_special_tokens=False) + [tok.eos_token_id], from_policy=True)
    item = PromptItem("q", rollout.prompt_ids, ["Paris"], prompt)
    text = runner.text(rollout)
    assert text == response  # what the other rewards read: no end-of-sequence text
    assert runner.decoded(rollout) == (prompt, response + DEEPSEEK_EOS)
    assert score_rollouts(AutoCoAReward(), runner, [rollout], [item], [text]) == [release]
    assert score_rollouts(ExactMatchReward(), runner, [rollout], [item], [text]) == [float("boxed" in response)]


def test_truncated_episodes_get_zero_reward_no_loss_or_their_score():
    rewards, truncated = [1.0, 1.0, 0.0, 0.5], [True, False, True, False]
    assert for_truncation(rewards, truncated, "zero") == ([0.0, 1.0, 0.0, 0.5], None)
    assert for_truncation(rewards, truncated, "reward") == (rewards, None)
    kept, trained = for_truncation(rewards, truncated, "no_loss")
    assert kept == rewards and trained == [False, True, False, True]
    episodes = [Rollout([5, 6], [7, 8], [1, 1]) for _ in rewards]
    batch = collate_rollouts(episodes, kept, 2, 0, trained=trained)
    assert batch.loss_mask.sum(-1).tolist() == [0, 2, 0, 2]  # the truncated rows carry no loss


def test_an_unknown_truncation_setting_is_named():
    with pytest.raises(ValueError, match="truncation='drop' must be one of zero, no_loss, reward"):
        RolloutCallback(RealEnvironment(UnavailableTool()), truncation="drop")


class RecordingEngine(HFEngine):
    """The HF engine, keeping its "own copy" of the weights as vLLM does, recording what the callbacks ask of it."""

    holds_own_weights = True

    def __init__(self, model, tokenizer, events: list[str]) -> None:
        super().__init__(model, tokenizer)
        self.events = events

    def generate(self, prompts, settings, generator=None):
        if prompts and (not self.events or self.events[-1] != "generate"):
            self.events.append("generate")
        return super().generate(prompts, settings, generator)

    def sync_weights(self, policy) -> None:
        self.events.append("sync")

    def sleep(self) -> None:
        self.events.append("sleep")


def fit(small_world, small_model_dir, callbacks_after, steps=4):
    policy = Policy(str(small_model_dir))
    events: list[str] = []
    rollout = RolloutCallback(RealEnvironment(UnavailableTool()), group_size=2, max_actions=1, max_turn_tokens=4,
                              max_response_tokens=8, samples_every_n_steps=0)
    rollout.engine = RecordingEngine(policy.model, policy.tokenizer, events)
    rollout.runner = RolloutRunner(rollout.engine, rollout.environment, policy.tokenizer, rollout.fmt, rollout.settings)
    data = PromptDataModule(str(small_world / "qa" / "train.jsonl"), tokenizer_path=str(small_model_dir), batch_size=2,
                            prompt="short")
    trainer = L.Trainer(max_steps=steps, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        limit_val_batches=0, callbacks=[rollout, *callbacks_after])
    trainer.fit(GRPOModule(policy, lr=1e-3, kl_coef=0.0), datamodule=data)
    return events


def test_the_engine_sleeps_after_each_rollout_and_syncs_every_n_steps(small_world, small_model_dir):
    events = fit(small_world, small_model_dir, [WeightSync(every_n_steps=2)])
    # before the first rollouts (the engine started from the disk), then after optimizer steps 2 and 4
    assert events == ["sync", "generate", "sleep", "generate", "sleep", "sync", "generate", "sleep", "generate",
                      "sleep", "sync"]


def test_an_engine_with_its_own_weights_and_no_weight_sync_is_refused(small_world, small_model_dir):
    with pytest.raises(ValueError, match="no coa.callbacks.weight_sync.WeightSync callback pushes the trained ones"):
        fit(small_world, small_model_dir, [], steps=1)
