"""Peak memory and checkpoint size of SFT stages 1 and 2, LoRA and full fine-tuning, before and after a change.

    python bench/memory_lora.py                      # 4 of the 30 layers, 2 steps, 10 runs: ~5-6 min on 2 cores
    python bench/memory_lora.py --layers 30 --steps 1 --runs sft1:lora --checkpointing   # the whole 135M model

The model has SmolLM-135M's shape (hidden 576, 9 heads / 3 kv heads, MLP 1536, 49,152-token vocabulary,
tied embeddings), random weights, built here; `--layers` cuts the depth, so activations (which grow
with the layers) are smaller than the real model's by layers/30 while the embedding is as big. Its
tokenizer is a small byte-level BPE (only `pad` and `eos` matter: the batches are random ids over the
whole vocabulary). Batches are those of the runs in the issue: SFT1 4 pairs = [8, 384] with loss on the
last 48 tokens of each row (the continuation), SFT2 batch 2 = [2, 512] with loss on 212 of 512
positions (assistant text, an observation span masked). LoRA is r=16, alpha=32 on q, k, v, o.

Each run is a subprocess (`--child`): a Lightning fit of `--steps` steps that writes one checkpoint,
so its peak RSS (os.wait4's ru_maxrss of that child alone) covers the optimizer step and the save;
"peak before the save" is the child's own ru_maxrss at the end of the last step, before Lightning's
ModelCheckpoint (which runs after every other callback) writes the checkpoint.
"before" runs the committed tree of `--before REV` (git archive, put first on PYTHONPATH, laid out
as the installed package), "after" the working tree; `--before none` skips it. "+ckpt" rows run the
working tree with `policy.gradient_checkpointing: true`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIRS = {"coa": "coa", "modules": "coa/modules", "datamodules": "coa/datamodules", "callbacks": "coa/callbacks"}
VOCAB, HIDDEN, HEADS, KV_HEADS, MLP = 49152, 576, 9, 3, 1536


@dataclass(frozen=True)
class Stage:
    """A batch shape and where its loss is; `module` is the LightningModule's class path."""

    module: str
    rows: int
    length: int
    loss_spans: tuple[tuple[int, int], ...]  # [start, end) positions of loss tokens in every row
    reference: bool = False  # SFT1's DPO-style margins: one more forward pass, under the reference


STAGES = {
    "sft1": Stage("coa.modules.sft1.TriggerModule", 8, 384, ((336, 384),)),  # 4 pairs: chosen then rejected
    "sft1-ref": Stage("coa.modules.sft1.TriggerModule", 8, 384, ((336, 384),), reference=True),
    "sft2": Stage("coa.modules.sft.SFTModule", 2, 512, ((200, 300), (400, 512))),  # 300..399: an observation
}
RUNS = "sft1:lora,sft1:full,sft1-ref:lora,sft2:lora,sft2:full"


def build_model(out: Path, layers: int) -> Path:
    """A random SmolLM-135M-shaped Llama with `layers` layers and a small BPE tokenizer, saved to `out`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from coa.models.tokenizer import train_tokenizer

    texts = [f"step {i}: search for fact {i * 7 % 101} in passage {i % 13}" for i in range(2000)]
    tokenizer = train_tokenizer(texts, vocab_size=512)
    config = LlamaConfig(
        vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=layers, num_attention_heads=HEADS,
        num_key_value_heads=KV_HEADS, intermediate_size=MLP, max_position_embeddings=2048, tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, bos_token_id=None,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def checkout(rev: str, out: Path) -> Path:
    """The tree of `rev` laid out as the installed package (modules/ -> coa/modules, ...), for PYTHONPATH."""
    tree, overlay = out / "tree", out / "overlay"
    tree.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, *PACKAGE_DIRS], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    for src, dst in PACKAGE_DIRS.items():  # "coa" first: the others move into it
        (overlay / dst).parent.mkdir(parents=True, exist_ok=True)
        (tree / src).rename(overlay / dst)
    return overlay


def run_child(args: list[str], pythonpath: Path | None) -> dict:
    """Runs this script with `--child args` and returns its JSON report plus its own peak RSS."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", "TOKENIZERS_PARALLELISM": "false"}
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"child {args} exited with {proc.returncode}")
    return {**json.loads(out.decode().strip().splitlines()[-1]), "peak_rss_mb": usage.ru_maxrss / 1024}


def child(stage_name: str, tuning: str, checkpointing: bool, model_dir: str, steps: int, threads: int) -> None:
    """One fit: prints {"train_peak_mb", "ckpt_bytes", "seconds", "code"} as JSON."""
    import importlib
    import resource

    import lightning as L
    import torch
    from lightning.pytorch.callbacks import ModelCheckpoint

    import coa.policy
    from coa.data.batch import SFTBatch
    from coa.policy import LoraSettings, Policy

    torch.set_num_threads(threads)
    stage = STAGES[stage_name]
    lora = LoraSettings(r=16, alpha=32) if tuning == "lora" else None
    module_path, name = stage.module.rsplit(".", 1)
    policy = Policy(model_dir, lora=lora, gradient_checkpointing=checkpointing)
    kwargs = {"reference": True} if stage.reference else {}
    module = getattr(importlib.import_module(module_path), name)(policy, lr=1e-4, **kwargs)
    torch.manual_seed(0)
    mask = torch.zeros(stage.rows, stage.length, dtype=torch.long)
    for start, end in stage.loss_spans:
        mask[:, start:end] = 1
    batches = [
        SFTBatch(torch.randint(0, VOCAB, (stage.rows, stage.length)), torch.ones_like(mask), mask) for _ in range(steps)
    ]
    class PeakBeforeSave(L.Callback):  # Lightning runs ModelCheckpoint after every other callback
        def on_train_batch_end(self, *args) -> None:
            self.mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    before_save = PeakBeforeSave()
    with tempfile.TemporaryDirectory() as tmp:
        trainer = L.Trainer(
            accelerator="cpu", devices=1, max_steps=steps, logger=False, enable_progress_bar=False,
            enable_model_summary=False, default_root_dir=tmp, num_sanity_val_steps=0,
            callbacks=[before_save, ModelCheckpoint(dirpath=tmp, every_n_train_steps=steps, save_top_k=-1)],
        )
        start = time.perf_counter()
        trainer.fit(module, train_dataloaders=torch.utils.data.DataLoader(batches, batch_size=None))
        seconds = time.perf_counter() - start
        ckpt_bytes = sum(p.stat().st_size for p in Path(tmp).glob("*.ckpt"))
    code = str(Path(coa.policy.__file__).parent)
    print(json.dumps({"train_peak_mb": before_save.mb, "ckpt_bytes": ckpt_bytes, "seconds": seconds, "code": code}))


def table(rows: list[dict]) -> str:
    lines = [
        "| stage | tuning | code | peak RSS (MB) | peak before the save (MB) | checkpoint (MB) | fit (s) |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['stage']} | {r['tuning']} | {r['label']} | {r['peak_rss_mb']:.0f} | {r['train_peak_mb']:.0f} "
            f"| {r['ckpt_bytes'] / 2**20:.1f} | {r['seconds']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=4, help="of SmolLM-135M's 30")
    parser.add_argument("--steps", type=int, default=2, help="optimizer steps per run")
    parser.add_argument("--before", default="ea4be07", help="git revision of 'before'; none skips it")
    parser.add_argument("--runs", default=RUNS, help="STAGE:TUNING,... (stages: " + ", ".join(STAGES) + ")")
    parser.add_argument("--checkpointing", action="store_true", help="add rows with gradient checkpointing on")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", nargs=5, metavar=("STAGE", "TUNING", "CHECKPOINTING", "MODEL_DIR", "STEPS"))
    args = parser.parse_args(argv)
    if args.child:
        stage, tuning, checkpointing, model_dir, steps = args.child
        return child(stage, tuning, checkpointing == "1", model_dir, int(steps), args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model_dir = build_model(work / "model", args.layers)
        codes: list[tuple[str, Path | None, str]] = [("after", None, "0")]
        if args.before != "none":
            codes.insert(0, (f"before ({args.before})", checkout(args.before, work / "before"), "0"))
        if args.checkpointing:
            codes.append(("after +ckpt", None, "1"))
        rows = []
        for run in args.runs.split(","):
            stage, tuning = run.split(":")
            for label, pythonpath, checkpointing in codes:
                child_args = [stage, tuning, checkpointing, str(model_dir), str(args.steps)]
                report = run_child([*child_args, "--threads", str(args.threads)], pythonpath)
                rows.append({"stage": stage, "tuning": tuning, "label": label, **report})
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print(f"SmolLM-135M shape, {args.layers} of 30 layers, {args.steps} steps per run, {args.threads} threads\n")
    print(table(rows))


if __name__ == "__main__":
    main()
