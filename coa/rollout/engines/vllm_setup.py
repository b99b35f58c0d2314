"""How the colocated vLLM engine is built: its settings, and the process environment vLLM's launcher reads."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import Any

import torch

DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass(frozen=True)
class VLLMSettings:
    """How the colocated vLLM engine is built.

    Args:
        gpu_memory_utilization: fraction of the GPU's memory vLLM may take (weights + KV cache); the rest is
            the trainer's, so it stays well under vLLM's serving default of 0.9.
        tensor_parallel_size: GPUs one engine spans; above 1 it needs torch.distributed (torchrun / DDP)
            over a multiple of it, and the ranks of a group generate their prompts together.
        dtype: weight and activation dtype ("auto", "float32", "bfloat16", "float16"); None takes the
            policy's dtype in `from_policy` and "auto" otherwise (vLLM's "auto" runs float32 configs in float16).
        max_model_len: longest prompt + continuation in tokens; None takes the model's.
        enable_sleep_mode: lets `sleep()` free the GPU memory vLLM holds while the trainer steps (the
            RolloutCallback puts the engine to sleep after each batch's rollouts): colocated with training, a
            7B model fits one 80 GB GPU only so (docs/gpu_memory.md).
        sleep_level: 1 copies vLLM's weights to CPU memory while asleep (they come back as they were); 2 drops
            them, saving the copy both ways, and needs a weight sync after every optimizer step (WeightSync's
            every_n_steps: 1), since the weights are gone until the next sync.
        seed: vLLM's engine seed (each request also carries its own seed, drawn per call).
        enforce_eager: no CUDA graphs: slower decoding, faster start and less memory.
    """

    gpu_memory_utilization: float = 0.3
    tensor_parallel_size: int = 1
    dtype: str | None = None
    max_model_len: int | None = None
    enable_sleep_mode: bool = True
    sleep_level: int = 1
    seed: int = 0
    enforce_eager: bool = False

    def __post_init__(self) -> None:
        if not 0.0 < self.gpu_memory_utilization <= 1.0:
            raise ValueError(
                f"vllm.gpu_memory_utilization={self.gpu_memory_utilization} must be in (0, 1]; "
                "colocated with training, 0.2-0.5 leaves the trainer room"
            )
        if self.tensor_parallel_size < 1:
            raise ValueError(f"vllm.tensor_parallel_size={self.tensor_parallel_size} must be at least 1")
        if self.dtype is not None and self.dtype not in DTYPES:
            raise ValueError(f"vllm.dtype={self.dtype!r} is not one of {', '.join(DTYPES)} (or null for the policy's)")
        if self.sleep_level not in (1, 2):
            raise ValueError(f"vllm.sleep_level={self.sleep_level} must be 1 (weights kept on CPU) or 2 (dropped)")
        if self.max_model_len is not None and self.max_model_len < 1:
            raise ValueError(f"vllm.max_model_len={self.max_model_len} must be positive, or null for the model's")


def _settings(given: dict[str, Any]) -> VLLMSettings:
    """`VLLMSettings` from keyword arguments; an unknown one is named with the known ones."""
    known = [f.name for f in fields(VLLMSettings)]
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise ValueError(f"VLLMEngine: unknown setting(s) {', '.join(unknown)}; the settings are {', '.join(known)}")
    return VLLMSettings(**given)


@contextmanager
def _launcher_env() -> Iterator[None]:
    """The torchrun variables vLLM's external launcher reads while it starts, restored afterwards.

    Under DDP they describe this rank (vLLM then reuses the running process group); alone, a world of one.
    The device is the one this process trains on.
    """
    import torch.distributed as dist

    running = dist.is_available() and dist.is_initialized()
    wanted = {
        "RANK": str(dist.get_rank() if running else 0),
        "WORLD_SIZE": str(dist.get_world_size() if running else 1),
        "LOCAL_RANK": str(torch.cuda.current_device()),
    }
    if not running:  # vLLM starts a process group of one over these
        wanted["MASTER_ADDR"] = os.environ.get("MASTER_ADDR") or "127.0.0.1"
        wanted["MASTER_PORT"] = os.environ.get("MASTER_PORT") or str(_free_port())
    before = {k: os.environ.get(k) for k in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
