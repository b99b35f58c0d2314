"""Questions with gold answers -> prompt batches for GRPO: world / FlashRAG QA JSONL or verl parquet (AutoCoA's RL files)."""

from __future__ import annotations

from dataclasses import dataclass, field
from coa.data.qa import QAExample
from coa.data.questions import read_questions
from coa.datamodules.tokenized import TokenizedDataModule
from coa.models.agent_card import resolve_prompt
from coa.prompts import PromptTemplate

@dataclass
class PromptItem:
    """One question, ready to roll out.

    Args:
        id: the question's id.
        prompt_ids: [P] the chat prompt with the assistant turn opened.
        golds: accepted answers.
        prompt_text: the prompt as text (rewards that score prompt + response, like AutoCoA's, read it).
        meta: the row's other fields.
    """

    id: str
    prompt_ids: list[int]
    golds: list[str]
    prompt_text: str
    meta: dict = field(default_factory=dict)


class PromptDataModule(TokenizedDataModule):
    """Batches of questions for RL; the RolloutCallback turns each batch into groups of rollouts.

    Args:
        train_path: questions for training (.jsonl or .parquet).
        val_path: questions for validation (optional).
        tokenizer_path: directory or hub id of the tokenizer (usually the policy's).
        trust_remote_code: for tokenizers with custom code (the policy's setting).
        chat_template: a Jinja template or .jinja file instead of the tokenizer's own (the policy's setting).
        add_action_tokens: the action tags as tokens of their own, as the policy adds them (the policy's setting).
        batch_size: questions per step and process (each rolled out `group_size` times by the callback; a DDP
            run's global batch is batch_size x processes).
        max_length: prompts longer than this many tokens are left out (with a warning).
        prompt: instruction template ("autocoa", "short", or a text with `{question}`); None takes the
            model's own (`coa_agent.json` beside the tokenizer), else "autocoa".
        seed: seeds the shuffle.
        kinds: train (and validate) on the questions of these kinds only: the `kind` field of the embedded
            world's QA files (single, chain2..chain4, comparison, no_search); None takes every question. coa's
            own variant, not the paper's: RL on the kind the SFT model fails at most (see configs/pipeline.yaml).
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
        kinds: list[str] | None = None,
    ) -> None:
        super().__init__(batch_size)
        self.save_hyperparameters()
        self.template = PromptTemplate(resolve_prompt(prompt, tokenizer_path, "data.prompt"))

    def read(self, path: str):
        kinds = self.hparams.kinds
        found: set[str] = set()
        for q in read_questions(path):
            kind = q.meta.get("kind")
            found.add(str(kind))
            if kinds is None or kind in kinds:
                yield q.id, self.encode(q)
        if kinds is not None and not found.intersection(kinds):
            raise ValueError(f"{path}: no question of the kinds {list(kinds)} (data.kinds); the file's kinds: "
                             f"{sorted(found)}")

    def encode(self, q: QAExample) -> PromptItem:
        messages = self.template.messages(q.question)
        text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return PromptItem(q.id, list(ids), list(q.golds), text, dict(q.meta))

    def num_tokens(self, item: PromptItem) -> int:
        return len(item.prompt_ids)

    def batches_done(self) -> int:
        """With several optimizer updates per rollout batch, steps / updates batches were consumed."""
        updates = getattr(self.trainer.lightning_module, "updates_per_batch", 1)
        return self.trainer.global_step // updates

    def _collate(self, items: list[PromptItem]) -> list[PromptItem]:
        return items

    def transfer_batch_to_device(self, batch: list[PromptItem], device, dataloader_idx: int) -> list[PromptItem]:
        return batch  # token-id lists for the rollout engine; the GRPO step moves its tensors itself
