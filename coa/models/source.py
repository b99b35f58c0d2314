"""Where a policy's model comes from: a local directory (checked for its files) or a hub id, offline-aware.

Without a network a hub id fails at once with the download command (transformers would retry for ~1 min),
unless the model is in the local hub cache.
"""

from __future__ import annotations

import re
from pathlib import Path

WEIGHT_FILES = (
    "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json",
)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
HUB_CONNECT_TIMEOUT_S = 2.0  # a reachable hub answers in well under a second; no network fails at once or here
HOW_TO_BUILD = (
    "build a local model with `coa quickstart` (or `coa world build`, which trains a tokenizer and saves a tiny "
    "model), or pass a directory written by `save_pretrained` (model + tokenizer) or a Hugging Face hub id"
)


def check_model_dir(path: str) -> None:
    """Raises a ValueError naming the missing files when `path` is meant as a local directory."""
    local = Path(path)
    if not local.exists():
        if HUB_ID.match(path) and not path.startswith("."):
            return  # a hub id: from_pretrained resolves it
        raise ValueError(f"policy.model_name_or_path={path!r}: no such directory; {HOW_TO_BUILD}")
    if not local.is_dir():
        raise ValueError(f"policy.model_name_or_path={path!r} is a file, not a model directory; {HOW_TO_BUILD}")
    missing = []
    if not (local / "config.json").exists():
        missing.append("config.json")
    if not any((local / name).exists() for name in WEIGHT_FILES):
        missing.append(" or ".join(WEIGHT_FILES))
    if not any((local / name).exists() for name in TOKENIZER_FILES):
        missing.append(" or ".join(TOKENIZER_FILES))
    if missing:
        raise ValueError(f"policy.model_name_or_path={path!r} is missing {'; '.join(missing)}; {HOW_TO_BUILD}")


def hub_reachable(timeout_s: float = HUB_CONNECT_TIMEOUT_S) -> bool:
    """False in huggingface_hub's offline mode (HF_HUB_OFFLINE=1) or when its endpoint gives no answer in `timeout_s`.

    The probe is one HEAD request through huggingface_hub's own session (its proxies and headers), without retries.
    """
    from huggingface_hub import constants, get_session, is_offline_mode

    if is_offline_mode():
        return False
    try:
        get_session().head(constants.ENDPOINT, timeout=timeout_s)
    except Exception:  # no DNS, refused, timed out, proxy error: whichever it is, the hub cannot be reached
        return False
    return True


def hub_cache_only(model_id: str) -> bool:
    """True when the hub cannot be reached but `model_id` is in the local hub cache (load it from there, no retries).

    Raises a ValueError with the download command when it can neither be reached nor found in the cache.
    """
    from huggingface_hub import try_to_load_from_cache

    if hub_reachable():
        return False
    if isinstance(try_to_load_from_cache(model_id, "config.json"), str):
        return True
    raise ValueError(
        f"policy.model_name_or_path={model_id!r} is no local directory and the Hugging Face hub cannot be reached "
        f"(offline); download it on a machine with a network (hf download {model_id} --local-dir DIR) and pass DIR"
    )
