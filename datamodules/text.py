"""Plain texts (JSONL with `contents` or `text`, the corpus format) -> packed next-token-loss batches, to pretrain."""

from __future__ import annotations

from coa.data.jsonl import iter_jsonl
from coa.data.packing import batch_examples
from coa.datamodules.tokenized import TokenizedDataModule
from coa.masking import TokenizedExample

TEXT_FIELDS = ("contents", "text")


class TextDataModule(TokenizedDataModule):
    """Each line's text, then EOS, is one example with loss on every token; examples are packed into rows.

    With `SFTModule` it pretrains a model on texts: `configs/pretrain.yaml` teaches a tiny model to read (the
    reading texts of `coa.world.reading`), as a real base model already can before agent training.

    Args:
        train_path: JSONL, one text per line in `contents` (a corpus file) or `text`.
        val_path: the same, for validation (optional).
        tokenizer_path: directory or hub id of the tokenizer (usually the policy's).
        trust_remote_code, chat_template, add_action_tokens: the policy's tokenizer settings.
        batch_size: texts per batch and process.
        max_length: texts longer than this many tokens are left out (with a warning).
        seed: seeds the shuffle.
        pack: several texts per row (`coa.data.packing`), each masked off from the others.
        row_width: packed rows are at least this many tokens wide (texts of similar lengths share rows too).
    """

    def __init__(
        self,
        train_path: str,
        val_path: str | None = None,
        tokenizer_path: str = "",
        trust_remote_code: bool = False,
        chat_template: str | None = None,
        add_action_tokens: bool = False,
        batch_size: int = 32,
        max_length: int = 1024,
        seed: int = 0,
        pack: bool = True,
        row_width: int = 256,
    ) -> None:
        super().__init__(batch_size)
        self.save_hyperparameters()

    def read(self, path: str):
        for where, record in iter_jsonl(path, "text JSONL"):
            text = next((record[f] for f in TEXT_FIELDS if isinstance(record, dict) and f in record), None)
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"{where}: needs a non-empty string in one of {list(TEXT_FIELDS)}")
            yield where, self.tokenize(text)

    def tokenize(self, text: str) -> TokenizedExample:
        ids = self.tokenizer.encode(" " + text, add_special_tokens=False)
        if self.tokenizer.eos_token_id is not None:
            ids.append(self.tokenizer.eos_token_id)
        return TokenizedExample(ids, [0] + [1] * (len(ids) - 1))

    def num_tokens(self, example: TokenizedExample) -> int:
        return len(example.input_ids)

    def _collate(self, examples: list[TokenizedExample]):
        return batch_examples(examples, self.tokenizer.pad_token_id, self.hparams.pack, self.hparams.row_width)
