"""TriggerModule (SFT stage 1): loss by hand from sequence_logprobs, no loss on the prefix, a 3-step CLI run."""

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM

from coa.datamodules.sft1 import PairDataModule
from coa.lightning_cli import run_lightning_cli
from coa.losses.trigger import trigger_loss
from coa.modules.sft1 import TriggerModule
from coa.policy import Policy, masked_sequence_logprobs

ROOT = Path(__file__).resolve().parents[2]


def fixed_batch(world: Path, model_dir: Path, pairs: int = 3):
    path = str(world / "pairs" / "train.json")
    data = PairDataModule(path, tokenizer_path=str(model_dir), batch_size=pairs, prompt="short")
    data.setup("fit")
    return data._collate(data.train_set[:pairs])


def test_loss_equals_the_formula_on_sequence_logprobs(small_world, small_model_dir):
    module = TriggerModule(Policy(str(small_model_dir)), alpha=0.5, beta=2.0)
    batch = fixed_batch(small_world, small_model_dir)
    p = module.policy.sequence_logprobs(batch.input_ids, batch.attention_mask, batch.loss_mask).mean
    chosen, rejected = p[:3], p[3:]  # rows: 3 chosen, then the 3 rejected in the same order
    # L = mean_i[-log σ(β (P(c_i) - P(r_i)))] + α mean_i[-P(c_i)]
    contrastive = -F.logsigmoid(2.0 * (chosen - rejected)).mean()
    expected = contrastive + 0.5 * -chosen.mean()
    out = module.loss(batch)
    assert out.loss.item() == pytest.approx(expected.item(), abs=1e-5)
    assert out.contrastive.item() == pytest.approx(contrastive.item(), abs=1e-5)
    assert out.accuracy.item() == pytest.approx((chosen > rejected).float().mean().item())
    assert 0.5 < out.nll.item() < 20  # a random model: -P(c) near log(vocab) = log 400 = 6.0


def test_prefix_tokens_carry_no_loss_and_get_zero_gradient(small_world, small_model_dir):
    module = TriggerModule(Policy(str(small_model_dir)))
    batch = fixed_batch(small_world, small_model_dir)
    targets = batch.loss_mask[:, 1:] * batch.attention_mask[:, 1:]
    for i in range(3):  # chosen row i and rejected row 3+i share the prefix token for token, without loss
        start = int(batch.loss_mask[i].argmax())
        assert start == int(batch.loss_mask[3 + i].argmax()) > 10
        assert torch.equal(batch.input_ids[i, :start], batch.input_ids[3 + i, :start])
        assert batch.loss_mask[i, :start].sum() == 0 and batch.loss_mask[3 + i, :start].sum() == 0

    # d loss / d log p(token) is exactly 0 at every prefix and padding position, and not at the continuation.
    token = module.policy.token_logprobs(batch.input_ids, batch.attention_mask)  # (2B, T-1)
    token.retain_grad()
    p = masked_sequence_logprobs(token, targets).mean
    trigger_loss(p[:3], p[3:]).loss.backward()
    assert torch.all(token.grad[targets == 0] == 0)
    assert torch.all(token.grad[targets == 1] != 0)

    # The module's fast path runs the output layer on continuation positions only.
    seen = []
    head = module.policy.model.get_output_embeddings()
    handle = head.register_forward_hook(lambda m, args, out: seen.append(args[0].shape))
    module.loss(batch).loss.backward()
    handle.remove()
    assert seen[-1][0] == int(targets.sum())


def test_reference_variant_starts_at_log_two(small_world, small_model_dir):
    # At the start the policy is its own reference: every relative margin is 0, so L = -log σ(0) = log 2.
    module = TriggerModule(Policy(str(small_model_dir)), alpha=0.0, reference=True)
    out = module.loss(fixed_batch(small_world, small_model_dir))
    assert out.loss.item() == pytest.approx(math.log(2), abs=1e-5)
    assert out.margin.item() != 0  # the policy's own margin is not relative


def fit_args(world: Path, model_dir: Path, root: Path, max_steps: int) -> list[str]:
    return [
        "fit", "--config", str(ROOT / "configs" / "sft1.yaml"),
        f"--trainer.default_root_dir={root}",
        f"--trainer.max_steps={max_steps}",
        f"--trainer.val_check_interval={max_steps}",
        "--trainer.limit_val_batches=2",
        "--trainer.enable_progress_bar=false",
        "--trainer.callbacks.init_args.every_n_train_steps=4",  # the last callback: ModelCheckpoint
        f"--model.init_args.policy.init_args.model_name_or_path={model_dir}",
        "--model.init_args.warmup_steps=1",
        f"--data.init_args.train_path={world / 'pairs' / 'train.json'}",
        f"--data.init_args.val_path={world / 'pairs' / 'dev.json'}",
        "--data.init_args.batch_size=4",
    ]


def test_three_step_fit_logs_every_metric_and_exports_a_policy(small_world, small_model_dir, tmp_path):
    cli = run_lightning_cli(fit_args(small_world, small_model_dir, tmp_path, 3))
    metrics = {k: float(v) for k, v in cli.trainer.callback_metrics.items()}
    assert cli.trainer.global_step == 3
    for stage in ("train", "val"):
        for name in ("loss", "loss_contrastive", "loss_nll", "pair_accuracy", "margin"):
            assert f"{stage}/{name}" in metrics, f"{stage}/{name}"
    parts = metrics["train/loss_contrastive"] + metrics["train/loss_nll"]  # alpha = 1
    assert metrics["train/loss"] == pytest.approx(parts, abs=1e-5)
    assert 0 < metrics["train/lr"] <= 3e-3
    assert {"val/trigger_precision", "val/trigger_recall", "val/trigger_f1"} <= set(metrics)
    assert all(0.0 <= metrics[f"val/trigger_{n}"] <= 1.0 for n in ("precision", "recall", "f1"))

    exported = Policy(str(tmp_path / "model"))  # stage 2 loads it the same way
    before = AutoModelForCausalLM.from_pretrained(small_model_dir).state_dict()
    after = exported.model.state_dict()
    assert set(before) == set(after) and any(not torch.equal(before[k], after[k]) for k in before)
