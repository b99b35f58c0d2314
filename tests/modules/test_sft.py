"""SFTModule through the real CLI: loss by hand, determinism, SIGKILL + resume from `last`, LoRA by config, export."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from coa.lightning_cli import run_lightning_cli

ROOT = Path(__file__).resolve().parents[2]
from coa.data.batch import collate_examples  # noqa: E402
from coa.masking import TokenizedExample  # noqa: E402
from coa.modules.sft import SFTModule  # noqa: E402
from coa.policy import Policy  # noqa: E402


def test_loss_is_the_mean_nll_of_the_target_tokens_only(small_model_dir):
    module = SFTModule(Policy(str(small_model_dir)))
    pad = module.policy.tokenizer.pad_token_id
    batch = collate_examples([TokenizedExample([5, 6, 7, 8], [0, 1, 0, 1]), TokenizedExample([9, 10, 11], [0, 0, 1])], pad)
    logprobs = module.policy.token_logprobs(batch.input_ids, batch.attention_mask)
    # targets: row 0 predicts tokens 6 and 8 (positions 0 and 2); row 1 predicts 11 (position 1)
    expected = -(logprobs[0, 0] + logprobs[0, 2] + logprobs[1, 1]) / 3
    assert module.loss(batch).item() == pytest.approx(expected.item(), abs=1e-5)


def test_weighted_loss_mask_gives_the_weighted_mean_nll(small_model_dir):
    module = SFTModule(Policy(str(small_model_dir)))
    pad = module.policy.tokenizer.pad_token_id
    examples = [TokenizedExample([5, 6, 7, 8], [0.0, 1.0, 0.0, 0.25]), TokenizedExample([9, 10, 11], [0.0, 0.0, 1.0])]
    batch = collate_examples(examples, pad)
    logprobs = module.policy.token_logprobs(batch.input_ids, batch.attention_mask)
    expected = -(logprobs[0, 0] + 0.25 * logprobs[0, 2] + logprobs[1, 1]) / 2.25
    assert module.loss(batch).item() == pytest.approx(expected.item(), abs=1e-5)


def final_loss(cli) -> float:
    return float(cli.trainer.callback_metrics["train/loss"])


def weights(model_dir: Path) -> dict[str, torch.Tensor]:
    return AutoModelForCausalLM.from_pretrained(model_dir).state_dict()


def test_same_seed_same_loss_and_export_loads(small_world, small_model_dir, tmp_path, sft_fit_args):
    a = run_lightning_cli(sft_fit_args(small_world, small_model_dir, tmp_path / "a", 6))
    b = run_lightning_cli(sft_fit_args(small_world, small_model_dir, tmp_path / "b", 6))
    assert final_loss(a) == final_loss(b)
    assert 0 < final_loss(a) < 10
    exported = weights(tmp_path / "a" / "model")
    assert all(torch.equal(v, weights(tmp_path / "b" / "model")[k]) for k, v in exported.items())
    assert not (tmp_path / "a" / ".model.tmp").exists()


def test_sigkill_mid_fit_then_resume_from_last_ends_with_the_same_loss(small_world, small_model_dir, tmp_path, sft_fit_args):
    steps = 60  # 200 examples / 4 per batch = 50 batches per epoch: the run crosses an epoch boundary
    reference = run_lightning_cli(sft_fit_args(small_world, small_model_dir, tmp_path / "ref", steps))

    root = tmp_path / "crash"
    args = sft_fit_args(small_world, small_model_dir, root, steps)
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "coa.cli", *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    checkpoints = root / "checkpoints"
    deadline = time.time() + 120
    while time.time() < deadline and not any(checkpoints.glob("*step=8*.ckpt")):
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (root / "model").exists()  # the run died before exporting

    resumed = run_lightning_cli(args + ["--ckpt_path", "last"])
    assert resumed.trainer.global_step == steps
    assert final_loss(resumed) == pytest.approx(final_loss(reference), abs=1e-6)
    ref_w, res_w = weights(tmp_path / "ref" / "model"), weights(root / "model")
    assert all(torch.allclose(v, res_w[k], atol=1e-6) for k, v in ref_w.items())


@pytest.mark.parametrize("lora, trainable_share", [(None, 1.0), ("{r: 4, alpha: 8}", 0.2)], ids=["full", "lora"])
def test_lora_switches_on_and_off_by_config(small_world, small_model_dir, tmp_path, lora, trainable_share, sft_fit_args):
    args = sft_fit_args(small_world, small_model_dir, tmp_path / "l", 2)
    if lora is not None:  # the config's default is `lora: null`
        args.append(f"--model.init_args.policy.init_args.lora={lora}")
    cli = run_lightning_cli(args)
    params = list(cli.model.policy.parameters())
    share = sum(p.numel() for p in params if p.requires_grad) / sum(p.numel() for p in params)
    assert share == pytest.approx(1.0) if trainable_share == 1.0 else share < trainable_share
    assert (tmp_path / "l" / "model" / "config.json").exists()


def test_the_exported_model_says_its_prompt_and_eval_uses_it_unasked(small_world, small_model_dir, tmp_path, sft_fit_args):
    import json

    from coa.cli import main

    run_lightning_cli(sft_fit_args(small_world, small_model_dir, tmp_path / "s", 2))  # configs/sft2.yaml: prompt short
    card = json.loads((tmp_path / "s" / "model" / "coa_agent.json").read_text())
    assert card["prompt"] == "short" and card["stop_strings"] == ["</end_search>"]
    out = tmp_path / "eval"
    main(["eval", "--model", str(tmp_path / "s" / "model"), "--qa", str(small_world / "qa" / "test.jsonl"),
          "--corpus", str(small_world / "corpus.jsonl"), "--limit", "2", "--max_new_tokens", "4", "--modes", "search",
          "--out", str(out)])
    assert json.loads((out / "metrics.json").read_text())["prompt"] == "short"


def test_packed_batches_train_as_padded_ones_do(small_world, small_model_dir, tmp_path, sft_fit_args):
    """data.pack=true: the same examples per step and each example's loss as alone, so the same run up to float
    rounding, on fewer padded tokens."""
    padded = run_lightning_cli(
        sft_fit_args(small_world, small_model_dir, tmp_path / "padded", 6) + ["--data.init_args.pack=false"]
    )
    packed = run_lightning_cli(
        sft_fit_args(small_world, small_model_dir, tmp_path / "packed", 6) + ["--data.init_args.pack=true"]
    )
    assert final_loss(packed) == pytest.approx(final_loss(padded), abs=1e-4)
    w_padded, w_packed = weights(tmp_path / "padded" / "model"), weights(tmp_path / "packed" / "model")
    assert all(torch.allclose(v, w_packed[k], atol=1e-4) for k, v in w_padded.items())


def test_bf16_mixed_precision_trains_with_gradient_clipping(small_world, small_model_dir, tmp_path, sft_fit_args):
    # the configs clip gradients (1.0); Lightning's mixed-precision plugin refuses that with a fused AdamW
    cli = run_lightning_cli(sft_fit_args(small_world, small_model_dir, tmp_path, 2)
                            + ["--trainer.precision=bf16-mixed", "--trainer.logger=false"])
    assert cli.trainer.global_step == 2
    assert not cli.trainer.optimizers[0].defaults["fused"]
    assert torch.isfinite(cli.trainer.callback_metrics["train/loss"])
