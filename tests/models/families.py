"""Tokenizers shaped like the real model families, a tiny model on each, and one real SFT2 -> export -> `coa eval` run.

Shared by tests/models/test_families.py and scripts/tokenizer_matrix.py (which prints the table quoted in issue 9).
Each family is the multi-token tokenizer `train_tokenizer(tags_as_tokens=False)` changed the way a real one differs:

| family | like | what differs |
|---|---|---|
| multi_token_tags | every real tokenizer | each tag is several BPE tokens |
| no_pad | Llama-3, Mistral | no pad token |
| no_chat_template | base models | no chat template |
| eos_not_end_of_turn | base Qwen2.5 | turns close with `<|im_end|>`, eos is `<|endoftext|>` |
| special_tags | the usual HF recipe | tags added with `special_tokens=True` |
| added_tags_lora | coa's `add_action_tokens` | tags several tokens; SFT2 adds them as tokens and trains them under LoRA |

LoRA cannot teach a random 32-wide model anything: its embeddings (std 0.02) and norms stay frozen, which caps every
logit near +-0.6. So `added_tags_lora` starts, like a real user, from a "pretrained" model: one fully trained first on
the trajectory with every tag cut out (it knows the words, never saw a tag); the LoRA run must teach where the new
tag tokens go, and a search in the eval shows it did.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from transformers import PreTrainedTokenizerFast

from coa.cli import main
from coa.formats.action_format import AUTOCOA
from coa.lightning_cli import run_lightning_cli
from coa.models.tiny import TinyModelConfig, build_tiny_model
from coa.models.tokenizer import train_tokenizer
from coa.prompts import INSTRUCTIONS
from coa.tools.bm25 import Passage, write_corpus

REPO = Path(__file__).resolve().parents[2]
FAMILIES = (
    "multi_token_tags", "no_pad", "no_chat_template", "eos_not_end_of_turn", "special_tags", "added_tags_lora",
)
QUESTION = "Where was Ada Vell born?"
GOLD = "Orlin"
RESPONSE = (
    "<think> I need Ada Vell's birthplace. <begin_search> Ada Vell </end_search> <search_result> "
    "(1) Ada Vell was born in Orlin. She wrote The Glass Harbor. </search_result> Ada Vell was born in Orlin. "
    "</think> \\boxed{ Orlin }"
)
PASSAGES = {
    "p0": "Ada Vell was born in Orlin. She wrote The Glass Harbor.",
    "p1": "Orlin is a city in Mereth, on the river Sael.",
    "p2": "Mereth is a country whose capital is Calder.",
}
QWEN_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
TINY = TinyModelConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, max_position_embeddings=512)
LORA = "{r: 8, alpha: 16}"


@dataclass(frozen=True)
class FamilyRun:
    """What one family's SFT2 + `coa eval` gave.

    Args:
        family: a name in FAMILIES.
        searches: search calls in the evaluated trajectory.
        em: exact match of its answer.
        trajectory: the evaluated response text.
        format_errors: what the action-format parser found wrong with it ("truncated" too).
        traceback: the traceback of an exception in the fit or the eval ("" when none).
        seconds: wall time of tokenizer + model + fit + eval.
    """

    family: str
    searches: int
    em: float
    trajectory: str
    format_errors: list[str]
    traceback: str
    seconds: float


def family_tokenizer(family: str) -> PreTrainedTokenizerFast:
    """The multi-token-tag tokenizer, changed as `family`'s real tokenizers are."""
    texts = [*PASSAGES.values(), RESPONSE, QUESTION, *INSTRUCTIONS.values()] * 4
    tokenizer = train_tokenizer(texts, vocab_size=320, tags_as_tokens=False)
    if family == "no_pad":
        tokenizer.pad_token = None
    elif family == "no_chat_template":
        tokenizer.chat_template = None
    elif family == "eos_not_end_of_turn":
        tokenizer.add_tokens(["<|im_start|>", "<|im_end|>"], special_tokens=True)
        tokenizer.add_special_tokens({"eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>"})
        tokenizer.chat_template = QWEN_TEMPLATE
    elif family == "special_tags":
        tokenizer.add_tokens(AUTOCOA.tags, special_tokens=True)
    elif family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; choose from {FAMILIES}")
    return tokenizer


def policy_overrides(family: str) -> list[str]:
    """The SFT2 settings a user of that family sets: `add_action_tokens` with LoRA for the last one."""
    if family != "added_tags_lora":
        return []
    policy = "--model.init_args.policy.init_args"
    return [f"{policy}.add_action_tokens=true", f"{policy}.lora={LORA}"]


def tagless(response: str) -> str:
    """`response` with every AutoCoA tag (and the space after it) cut out."""
    for tag in AUTOCOA.tags:
        response = response.replace(f"{tag} ", "").replace(f" {tag}", "")
    return response


def write_task(out: Path, response: str = RESPONSE, copies: int = 8) -> tuple[Path, Path, Path]:
    """(SFT2 trajectories: `response` `copies` times, its question with the gold, the corpus) under `out`."""
    out.mkdir(parents=True, exist_ok=True)
    row = {"messages": [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": response}]}
    train, qa, corpus = out / "train.jsonl", out / "qa.jsonl", out / "corpus.jsonl"
    train.write_text("".join(json.dumps({"id": f"t{i}", **row}) + "\n" for i in range(copies)))
    qa.write_text(json.dumps({"id": "q1", "question": QUESTION, "golden_answers": [GOLD]}) + "\n")
    write_corpus(corpus, [Passage(i, text) for i, text in PASSAGES.items()])
    return train, qa, corpus


def sft2_args(model_dir: Path, train: Path, root: Path, steps: int) -> list[str]:
    """`coa fit --config configs/sft2.yaml` on the trajectories: no validation, no logger, lr 1e-2."""
    return [
        "fit", "--config", str(REPO / "configs" / "sft2.yaml"),
        f"--trainer.default_root_dir={root}", f"--trainer.max_steps={steps}", "--trainer.logger=false",
        "--trainer.enable_progress_bar=false", f"--trainer.callbacks.init_args.every_n_train_steps={steps}",
        f"--model.init_args.policy.init_args.model_name_or_path={model_dir}",
        "--model.init_args.lr=1e-2", "--model.init_args.warmup_steps=0",
        f"--data.init_args.train_path={train}", "--data.init_args.val_path=null", "--data.init_args.batch_size=2",
    ]


def run_family(family: str, work: Path, steps: int = 150) -> FamilyRun:
    """Builds the family's tokenizer and tiny model, trains SFT2 on the one trajectory, exports it and runs
    `coa eval` with search on its question; an exception anywhere is caught and its traceback returned."""
    start = time.perf_counter()
    train, qa, corpus = write_task(work / "task")
    model_dir = build_tiny_model(family_tokenizer(family), TINY, work / "init")
    try:
        if family == "added_tags_lora":
            model_dir = pretrain(model_dir, work / "pretrain", steps)
        run_lightning_cli(sft2_args(model_dir, train, work / "sft2", steps) + policy_overrides(family))
        out = work / "eval"
        with contextlib.redirect_stdout(io.StringIO()):
            main(["eval", "--model", str(work / "sft2" / "model"), "--qa", str(qa), "--corpus", str(corpus),
                  "--topk", "1", "--modes", "search", "--out", str(out)])
    except Exception:
        return FamilyRun(family, 0, 0.0, "", [], traceback.format_exc(), time.perf_counter() - start)
    (row,) = [json.loads(line) for line in open(out / "predictions.jsonl")]
    seconds = time.perf_counter() - start
    return FamilyRun(family, row["searches"], row["em"], row["output"], row["format_errors"], "", seconds)


def pretrain(model_dir: Path, work: Path, steps: int) -> Path:
    """The model fully trained (SFT2 code path, no LoRA) on the trajectory without its tags; its export."""
    train, _, _ = write_task(work / "task", tagless(RESPONSE))
    run_lightning_cli(sft2_args(model_dir, train, work, steps))
    return work / "model"
