"""The backbone every stage trains: a Hugging Face causal LM + tokenizer, optional LoRA / QLoRA, a reference."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from coa.models.action_tokens import (
    action_format_of, action_token_ids, add_tag_tokens, grow_embeddings, trainable_token_modules,
)
from coa.models.forward_args import body_and_head, position_ids_from_mask
from coa.models.loading import load_tokenizer
from coa.models.source import HOW_TO_BUILD, check_model_dir, hub_cache_only
from coa.shared_prefix import PromptGroups, shared_prefix_outputs, split_shared_prefix

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
NON_REENTRANT = {"use_reentrant": False}  # gradients reach LoRA weights behind frozen layers
ADAPTER_DIR = "adapter"  # the LoRA adapter's folder inside an export (a subfolder: transformers and vLLM ignore it)


@dataclass(frozen=True)
class LoraSettings:
    """Low-rank adapters (peft LoRA) on the attention projections; the base weights stay frozen.

    Args:
        r: rank of each adapter.
        alpha: scaling numerator; the update is (alpha / r) * B @ A.
        dropout: dropout on the adapter input.
        target_modules: module names that get an adapter; ("all-linear",) targets every linear layer.
    """

    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")

    def to_peft(self, trainable_tokens: dict[str, list[int]] | None = None) -> Any:
        """A peft LoraConfig; `trainable_tokens` ({layer name: token ids}) also trains those rows of those layers
        (peft's trainable tokens: the checkpoint holds the rows, not the whole embedding)."""
        from peft import LoraConfig

        targets: str | list[str] = list(self.target_modules)
        if targets == ["all-linear"]:
            targets = "all-linear"
        return LoraConfig(
            r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout, target_modules=targets, task_type="CAUSAL_LM",
            trainable_token_indices=trainable_tokens,
        )


@dataclass(frozen=True)
class SequenceLogprobs:
    """Log-probabilities of the loss tokens of a batch of sequences.

    Args:
        token: [B, T-1] log p(token t+1 | tokens <= t), 0 where the loss mask is 0.
        sum: [B] sum over loss tokens.
        mean: [B] sum / number of loss tokens (at least 1): the length-normalised log-prob.
    """

    token: Tensor
    sum: Tensor
    mean: Tensor


def gather_logprobs(logits: Tensor, input_ids: Tensor) -> Tensor:
    """log p(input_ids[:, t+1] | <= t) from the logits, computed in float32.

    Args:
        logits: [B, T, V] next-token logits.
        input_ids: [B, T] the tokens.
    Returns:
        [B, T-1]
    """
    logits = logits[:, :-1].float()  # (B, T-1, V)
    targets = input_ids[:, 1:].unsqueeze(-1)  # (B, T-1, 1)
    return logits.gather(-1, targets).squeeze(-1) - logits.logsumexp(-1)


def masked_sequence_logprobs(token_logprobs: Tensor, target_mask: Tensor) -> SequenceLogprobs:
    """Zeroes the non-loss positions and sums / averages the rest per sequence.

    Args:
        token_logprobs: [B, T-1] per-token log-probs.
        target_mask: [B, T-1] 1 where the target token carries loss.
    """
    mask = target_mask.bool()
    token = torch.where(mask, token_logprobs, torch.zeros_like(token_logprobs))
    total = token.sum(-1)
    return SequenceLogprobs(token=token, sum=total, mean=total / mask.sum(-1).clamp(min=1))


def scatter_sequence_logprobs(target_logprobs: Tensor, target_mask: Tensor) -> SequenceLogprobs:
    """`masked_sequence_logprobs` from the log-probs of the target tokens alone (`Policy.target_logprobs`).

    Args:
        target_logprobs: [N] log-probs of the target tokens, in row-major order of `target_mask`.
        target_mask: [B, T-1] 1 where token t+1 is a target; N ones in all.
    """
    mask = target_mask.bool()
    token = torch.zeros(mask.shape, dtype=target_logprobs.dtype, device=target_logprobs.device)
    return masked_sequence_logprobs(token.masked_scatter(mask, target_logprobs), target_mask)


class Policy(torch.nn.Module):
    """A causal LM and its tokenizer, with optional LoRA, 4/8-bit loading and gradient checkpointing.

    Args:
        model_name_or_path: a local directory with model + tokenizer (as `save_pretrained` writes) or a hub id
            (where the hub cannot be reached: one in the local hub cache, else it fails at once saying how to get it).
        dtype: weight dtype: "float32", "bfloat16" or "float16".
        lora: LoRA settings; None trains every weight.
        gradient_checkpointing: recompute activations in backward to save memory.
        load_in_bits: 4 or 8 to load the base weights quantised (QLoRA; needs CUDA, bitsandbytes and `lora`).
        trust_remote_code: passed to `from_pretrained` for models with custom code.
        attn_implementation: passed to `from_pretrained` ("sdpa", "eager", "flash_attention_2", ...).
        chat_template: a Jinja template or the path of a .jinja file, used instead of the tokenizer's own (and
            saved with the exported model); None keeps the tokenizer's (a plain one where it has none).
        add_action_tokens: adds the action tags as tokens of their own (plain, not special), grows the embeddings
            (each new row the mean of the rows of the pieces the tag was split into) and, with `lora`, trains
            those rows too. The datamodules must set it alike (the configs interpolate it).
    """

    def __init__(
        self,
        model_name_or_path: str,
        dtype: str = "float32",
        lora: LoraSettings | None = None,
        gradient_checkpointing: bool = False,
        load_in_bits: int | None = None,
        trust_remote_code: bool = False,
        attn_implementation: str | None = None,
        chat_template: str | None = None,
        add_action_tokens: bool = False,
    ) -> None:
        super().__init__()
        if dtype not in DTYPES:
            raise ValueError(f"policy.dtype={dtype!r} is not one of {', '.join(DTYPES)}")
        if load_in_bits not in (None, 4, 8):
            raise ValueError(f"policy.load_in_bits={load_in_bits} must be 4, 8 or null")
        if load_in_bits is not None and lora is None:
            raise ValueError(
                f"policy.load_in_bits={load_in_bits} needs policy.lora: quantised weights cannot be trained; "
                "set lora (e.g. `lora: {r: 16}`) or load_in_bits: null"
            )
        self.model_name_or_path = os.path.expanduser(str(model_name_or_path))
        self.dtype_name = dtype
        self.lora = lora
        self.load_in_bits = load_in_bits
        self.trust_remote_code = trust_remote_code
        self.attn_implementation = attn_implementation
        self.chat_template = chat_template
        self.add_action_tokens = add_action_tokens
        self._reference: torch.nn.Module | None = None  # set by object.__setattr__: not a submodule

        check_model_dir(self.model_name_or_path)
        self.local_files_only = not Path(self.model_name_or_path).exists() and hub_cache_only(self.model_name_or_path)
        self.tokenizer = load_tokenizer(self.model_name_or_path, trust_remote_code, self.local_files_only, chat_template)
        self.action_format = action_format_of(self.model_name_or_path)
        self.new_token_pieces = add_tag_tokens(self.tokenizer, self.action_format) if add_action_tokens else {}
        model = self._load_model(quantize=True)
        if load_in_bits is not None:  # freezes the base, upcasts norms, enables checkpointing if asked
            from peft import prepare_model_for_kbit_training

            model = prepare_model_for_kbit_training(
                model, use_gradient_checkpointing=gradient_checkpointing, gradient_checkpointing_kwargs=NON_REENTRANT
            )
        elif gradient_checkpointing:
            _enable_gradient_checkpointing(model)
        if lora is not None:
            from peft import get_peft_model

            model = get_peft_model(model, self._peft_config(model))
        self.model = model

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype_name]

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """Next-token logits.

        Args:
            input_ids: [B, T] token ids, left or right padded.
            attention_mask: [B, T] 1 for real tokens.
        Returns:
            [B, T, V]
        """
        return _logits(self.model, input_ids, attention_mask)

    def token_logprobs(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """[B, T-1] log p(token t+1 | tokens <= t) (unmasked; padding positions hold garbage).

        Args:
            input_ids: [B, T] token ids.
            attention_mask: [B, T] 1 for real tokens.
        """
        return gather_logprobs(self(input_ids, attention_mask), input_ids)

    def target_logprobs(
        self, input_ids: Tensor, attention_mask: Tensor, target_mask: Tensor, temperature: float = 1.0,
        prompts: PromptGroups | None = None, position_ids: Tensor | None = None,
    ) -> Tensor:
        """[N] log p of the N target tokens only: the output layer runs on those positions alone.

        With a large vocabulary and a loss on part of each sequence (SFT stage 2, GRPO), this skips most of
        the output layer's work. Models whose head is more than a linear map (logit soft-capping) take the
        full path.

        Args:
            input_ids: [B, T] token ids.
            attention_mask: [B, T] 1 for real tokens.
            target_mask: [B, T-1] 1 where token t+1 is a target.
            temperature: the logits are divided by it first: the distribution tokens were sampled from
                (GRPO scores rollouts under the sampling temperature, as TRL and verl do).
            prompts: the rows come in groups sharing their prompt: each group's prompt is run once
                (`coa.shared_prefix`); where they do not share it, the whole rows are run.
            position_ids: [B, T] of packed rows (`coa.data.packing`): positions restart with each example.
        """
        return target_logprobs(
            self.model, input_ids, attention_mask, target_mask, temperature=temperature, prompts=prompts,
            position_ids=position_ids,
        )[0]

    def target_logprobs_and_entropy(
        self, input_ids: Tensor, attention_mask: Tensor, target_mask: Tensor, temperature: float = 1.0,
        prompts: PromptGroups | None = None, entropy_grad: bool = False,
    ) -> tuple[Tensor, Tensor]:
        """`target_logprobs` and [N] the entropy of the next-token distribution there (with gradient only when
        `entropy_grad`: an entropy bonus in the loss)."""
        return target_logprobs(
            self.model, input_ids, attention_mask, target_mask, entropy="grad" if entropy_grad else True,
            temperature=temperature, prompts=prompts,
        )

    def reference_target_logprobs(
        self, input_ids: Tensor, attention_mask: Tensor, target_mask: Tensor, temperature: float = 1.0,
        prompts: PromptGroups | None = None,
    ) -> Tensor:
        """`target_logprobs` under the reference policy (see `reference_logprobs`), without gradients.

        Run in inference mode (less bookkeeping per operation than `no_grad`); the result is cloned out of it, so
        the loss may use it."""
        with torch.inference_mode():
            return self._reference_target_logprobs(input_ids, attention_mask, target_mask, temperature, prompts).clone()

    def _reference_target_logprobs(
        self, input_ids: Tensor, attention_mask: Tensor, target_mask: Tensor, temperature: float,
        prompts: PromptGroups | None,
    ) -> Tensor:
        if self.lora is None:
            model = self.reference_model(input_ids.device)
            return target_logprobs(
                model, input_ids, attention_mask, target_mask, temperature=temperature, prompts=prompts
            )[0]
        was_training = self.model.training
        self.model.eval()  # no dropout in the reference
        try:
            with self.model.disable_adapter():
                return target_logprobs(
                    self.model, input_ids, attention_mask, target_mask, temperature=temperature, prompts=prompts
                )[0]
        finally:
            self.model.train(was_training)

    def sequence_logprobs(self, input_ids: Tensor, attention_mask: Tensor, loss_mask: Tensor) -> SequenceLogprobs:
        """Per-token, summed and length-normalised log-probs of the loss tokens.

        Args:
            input_ids: [B, T] token ids.
            attention_mask: [B, T] 1 for real tokens.
            loss_mask: [B, T] aligned with input_ids, 1 where the token carries loss; position 0 has no
                prediction and is ignored. Padding never counts.
        """
        target_mask = loss_mask[:, 1:] * attention_mask[:, 1:]
        return scatter_sequence_logprobs(self.target_logprobs(input_ids, attention_mask, target_mask), target_mask)

    @torch.no_grad()
    def reference_logprobs(self, input_ids: Tensor, attention_mask: Tensor, loss_mask: Tensor) -> SequenceLogprobs:
        """`sequence_logprobs` under the reference policy (the weights as loaded), without gradients.

        With LoRA the reference is the base model (adapter disabled); otherwise a frozen copy loaded
        from `model_name_or_path` on first use, so it is the starting point whenever it is first asked for.
        """
        target_mask = loss_mask[:, 1:] * attention_mask[:, 1:]
        return scatter_sequence_logprobs(
            self.reference_target_logprobs(input_ids, attention_mask, target_mask), target_mask
        )

    def reference_model(self, device: torch.device) -> torch.nn.Module:
        """The frozen reference for full fine-tuning, loaded lazily and kept out of state_dict/parameters()."""
        if self._reference is None:
            reference = self._load_model(quantize=False).eval().requires_grad_(False)
            object.__setattr__(self, "_reference", reference)
        if next(self._reference.parameters()).device != device:  # `Module.to` walks every tensor even when it stays
            self._reference.to(device)
        return self._reference

    def offload_reference(self) -> None:
        """Moves the full fine-tuning reference to CPU memory until `reference_model` next needs it (saves its GPU
        memory during the update and the rollouts, at a copy each way per step)."""
        if self._reference is not None:
            self._reference.to("cpu")

    def save_pretrained(self, out_dir: str | Path) -> Path:
        """Writes a Hugging Face directory (full weights, LoRA merged in, + tokenizer) that loads as a Policy, in
        plain transformers and in vLLM; with LoRA, also the adapter alone in its `adapter/` folder (`save_adapter`).

        The merged weights are in the policy's dtype; a QLoRA adapter is merged into the base loaded unquantised.

        Args:
            out_dir: the directory; the next stage's `model_name_or_path`.
        """
        out = Path(out_dir)
        model = self._merged_copy() if self.lora is not None else self.model
        model.save_pretrained(out)
        self.tokenizer.save_pretrained(out)
        if self.lora is not None:
            self.save_adapter(out / ADAPTER_DIR)
        return out

    def save_adapter(self, out_dir: str | Path) -> Path | None:
        """Writes the LoRA adapter alone in peft's format (adapter_config.json + adapter_model.safetensors), which
        `peft.PeftModel.from_pretrained(base, out_dir)` loads onto the base at `model_name_or_path`.

        Returns None, writing nothing, where no base on disk fits it: `add_action_tokens` added the tags in this
        run, so their embedding rows exist only in the merged export (load that instead).

        Args:
            out_dir: the adapter's directory (it names the base as `base_model_name_or_path`, as given).
        """
        if self.lora is None:
            raise ValueError("save_adapter: this policy has no LoRA adapter (policy.lora is null); use save_pretrained")
        if self.new_token_pieces:
            warnings.warn(
                f"no adapter written to {out_dir}: add_action_tokens added {len(self.new_token_pieces)} tag tokens in "
                f"this run, which {self.model_name_or_path} lacks; the merged export beside it holds them",
                stacklevel=2,
            )
            return None
        out = Path(out_dir)
        self.model.save_pretrained(out, save_embedding_layers=False)  # trainable tag rows are adapter weights
        return out

    def _merged_copy(self) -> torch.nn.Module:
        """The base weights reloaded unquantised on CPU with this policy's adapter merged in; self stays as is."""
        from peft import get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict

        base = self._load_model(quantize=False)
        merged = get_peft_model(base, self._peft_config(base))
        set_peft_model_state_dict(merged, get_peft_model_state_dict(self.model, save_embedding_layers=False))
        return merged.merge_and_unload()

    def _load_model(self, quantize: bool) -> torch.nn.Module:
        from transformers import AutoModelForCausalLM

        kwargs: dict[str, Any] = {
            "dtype": self.torch_dtype, "trust_remote_code": self.trust_remote_code,
            "local_files_only": self.local_files_only,
        }
        if self.attn_implementation is not None:
            kwargs["attn_implementation"] = self.attn_implementation
        if quantize and self.load_in_bits is not None:
            kwargs["quantization_config"] = _bits_and_bytes_config(self.load_in_bits, self.torch_dtype)
            kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", 0))}
        try:
            model = AutoModelForCausalLM.from_pretrained(self.model_name_or_path, **kwargs)
        except OSError as err:
            if Path(self.model_name_or_path).exists():
                raise
            raise ValueError(
                f"policy.model_name_or_path={self.model_name_or_path!r} is no local directory and could not be "
                f"loaded from the hub ({err}); {HOW_TO_BUILD}"
            ) from err
        if self.add_action_tokens:
            grow_embeddings(model, len(self.tokenizer), self.new_token_pieces)
        return model

    def _peft_config(self, model: torch.nn.Module) -> Any:
        """The LoRA config; with `add_action_tokens`, the tags' rows of the embedding (and an untied head) train too."""
        if not self.add_action_tokens:
            return self.lora.to_peft()
        ids = action_token_ids(self.tokenizer, self.action_format)
        return self.lora.to_peft({name: ids for name in trainable_token_modules(model)})


def target_logprobs(
    model: torch.nn.Module, input_ids: Tensor, attention_mask: Tensor, target_mask: Tensor, entropy: bool | str = False,
    temperature: float = 1.0, prompts: PromptGroups | None = None, position_ids: Tensor | None = None,
) -> tuple[Tensor, Tensor | None]:
    """([N] log p of the target tokens, [N] entropy there or None), the output layer run on targets only;
    logits divided by `temperature` (> 0) first. With `prompts`, each group's shared prompt is run once. With
    `position_ids` (packed rows) no 2-D mask is passed: transformers then masks each packed example off from the
    others, by where its positions restart. The entropy has no gradient unless `entropy` is "grad"."""
    body, head = body_and_head(model)
    output = "logits" if head is None else "last_hidden_state"
    split = None if prompts is None else split_shared_prefix(input_ids, attention_mask, target_mask, prompts)
    outputs = None if split is None else shared_prefix_outputs(body, split, output)
    mask = target_mask.bool()
    if outputs is None:
        packed = position_ids is not None
        whole = body(
            input_ids=input_ids, attention_mask=None if packed else attention_mask,
            position_ids=position_ids if packed else position_ids_from_mask(attention_mask), use_cache=False,
        )
        outputs = getattr(whole, output)[:, :-1][mask]  # (N, H) after the final norm, or (N, V)
    logits = (outputs if head is None else head(outputs)).float()  # (N, V)
    if temperature != 1.0:
        logits = logits / temperature
    log_probs = torch.log_softmax(logits, dim=-1)
    chosen = log_probs.gather(-1, input_ids[:, 1:][mask][:, None])[:, 0]
    if not entropy:
        return chosen, None
    with torch.set_grad_enabled(entropy == "grad" and torch.is_grad_enabled()):
        return chosen, -(log_probs.exp() * log_probs).sum(-1)


def _logits(model: torch.nn.Module, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
    position_ids = position_ids_from_mask(attention_mask)
    out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False)
    return out.logits


def _enable_gradient_checkpointing(model: torch.nn.Module) -> None:
    """Non-reentrant activation checkpointing on every layer; the KV cache is off while training."""
    if hasattr(model, "activation_checkpointing_enable"):  # newer transformers 5.x; the old name warns there
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=NON_REENTRANT)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=NON_REENTRANT)
    model.config.use_cache = False


def _bits_and_bytes_config(bits: int, compute_dtype: torch.dtype) -> Any:
    """A transformers BitsAndBytesConfig (NF4 + double quantisation for 4 bits, LLM.int8 for 8)."""
    fix = "`pip install coa[qlora]` on a machine with a CUDA GPU, or set load_in_bits: null"
    if not torch.cuda.is_available():
        raise RuntimeError(f"policy.load_in_bits={bits} needs a CUDA GPU (bitsandbytes), none is visible; {fix}")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as err:
        raise RuntimeError(f"policy.load_in_bits={bits} needs bitsandbytes, which is not installed; {fix}") from err
    from transformers import BitsAndBytesConfig

    if bits == 4:
        return BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute_dtype,
        )
    return BitsAndBytesConfig(load_in_8bit=True)
