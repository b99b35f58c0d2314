"""CoT+A pair files -> batches of chosen and rejected continuations for SFT stage 1 (the trigger module)."""

from __future__ import annotations

from dataclasses import dataclass

from coa.data.batch import SFTBatch, collate_examples
from coa.data.cota_pairs import THINK_OPEN, ContrastivePair, pair_messages, read_cota_pairs
from coa.datamodules.tokenized import TokenizedDataModule
from coa.masking import TokenizedExample, tokenize_continuation
from coa.prompts import PromptTemplate


@dataclass(frozen=True)
class TokenizedPair:
    """One decision point, both ways: the same prompt + prefix tokens, then each continuation (loss on it only)."""

    chosen: TokenizedExample
    rejected: TokenizedExample


def collate_pairs(pairs: list[TokenizedPair], pad_id: int) -> SFTBatch:
    """[2B, T] right-padded: rows 0..B-1 hold the chosen continuations, rows B..2B-1 the rejected (pair i: i, B+i)."""
    return collate_examples([p.chosen for p in pairs] + [p.rejected for p in pairs], pad_id)


class PairDataModule(TokenizedDataModule):
    """Reads CoT+A pairs (AutoCoA's `conversation`/`chosen`/`rejected` JSON), tokenises both sides, batches them.

    The assistant turn is opened with `<think>` + the pair's prefix; only the continuation carries loss.

    Args:
        train_path: pair file (JSON array or JSONL) for training.
        val_path: pair file for validation (optional).
        tokenizer_path: directory or hub id of the tokenizer (usually the policy's).
        trust_remote_code: for tokenizers with custom code (the policy's setting).
        chat_template: a Jinja template or .jinja file instead of the tokenizer's own (the policy's setting).
        add_action_tokens: the action tags as tokens of their own, as the policy adds them (the policy's setting).
        batch_size: pairs per batch (the step sees 2 * batch_size sequences).
        max_length: pairs whose longer side exceeds this many tokens are left out (with a warning).
        prompt: None keeps each pair's own prompt; a template name ("autocoa", "short") or a text with
            `{question}` rebuilds it from the question (use the same one as SFT stage 2).
        seed: seeds the shuffle.
    """

    def __init__(
        self,
        train_path: str,
        val_path: str | None = None,
        tokenizer_path: str = "",
        trust_remote_code: bool = False,
        chat_template: str | None = None,
        add_action_tokens: bool = False,
        batch_size: int = 8,
        max_length: int = 1024,
        prompt: str | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size)
        self.save_hyperparameters()
        self.template = PromptTemplate(prompt) if prompt is not None else None

    def tokenize(self, pair: ContrastivePair, where: str = "") -> TokenizedPair:
        messages = pair_messages(pair, self.template)
        sides = {
            name: tokenize_continuation(self.tokenizer, messages, THINK_OPEN + pair.prefix, text)
            for name, text in (("chosen", pair.chosen), ("rejected", pair.rejected))
        }
        for name, example in sides.items():
            if not any(example.loss_mask):
                raise ValueError(f"{where}pair {pair.id}: field '{name}' has no token of its own after the prefix")
        return TokenizedPair(sides["chosen"], sides["rejected"])

    def read(self, path: str):
        for pair in read_cota_pairs(path):
            yield pair.id, self.tokenize(pair, f"{path}: ")

    def num_tokens(self, pair: TokenizedPair) -> int:
        return max(len(pair.chosen.input_ids), len(pair.rejected.input_ids))

    def _collate(self, pairs: list[TokenizedPair]) -> SFTBatch:
        return collate_pairs(pairs, self.tokenizer.pad_token_id)
