"""Loading and saving of any local policy checkpoint (the tiny demo model is built in oakdpo.tiny).

`load_policy` loads what every stage takes as a model path: a local HF checkpoint folder, or a LoRA adapter
folder (PEFT; its base model is resolved from `adapter_config.json`). Hub ids are never fetched: there is no
network, and a policy path must be a local folder.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from . import dist
from .config import ModelConfig
from .io import UserError, atomic_folder
from .trainers import quiet_library_warnings

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

def freeze_input_embeddings(model, model_cfg: ModelConfig) -> None:
    """Keep the input embeddings fixed in training when the config says so (model.freeze_embeddings)."""
    if model_cfg.freeze_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)


def _first_line(e: Exception) -> str:
    """An exception's first line (its type's name when it has no text), for one-line errors."""
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


@contextmanager
def attention(model, implementation: str | None, field: str = "attn_implementation"):
    """Run `model` with transformers' attention kernel `implementation` inside the block (None: its own); its own
    kernel is back on exit. A pass without gradients over whole traces can want another kernel than training."""
    own = model.config._attn_implementation
    if implementation is None or implementation == own:
        yield model
        return
    try:
        model.set_attn_implementation(implementation)
    except (ValueError, ImportError) as e:
        first = _first_line(e)
        raise UserError(f"{field}: {implementation!r} cannot run this model ({first[:200]})") from None
    try:
        yield model
    finally:
        model.set_attn_implementation(own)


def save_folder(out_dir: Path, model, tokenizer, extra: dict[str, str] | None = None) -> None:
    """Save model + tokenizer (safetensors) as an HF folder, plus `extra` {file name: text}. The folder is written
    under a temporary name and moved into place whole (an existing folder is replaced, never written into), so a
    killed run never leaves a half-written checkpoint where a finished one is expected."""
    with atomic_folder(out_dir) as tmp:
        tokenizer.save_pretrained(tmp)
        model.save_pretrained(tmp, safe_serialization=True)
        for name, text in (extra or {}).items():
            (tmp / name).write_text(text, encoding="utf-8")


def placement(model_cfg: ModelConfig) -> torch.device:
    """Where a stage runs the model (model.device): 'auto' is this rank's GPU when there is one, else the CPU."""
    want = model_cfg.device
    if want not in ("auto", "cpu", "cuda"):
        raise UserError(f"model.device: expected auto, cpu or cuda, got {want!r}")
    if want == "cuda" and not torch.cuda.is_available():
        raise UserError("model.device=cuda: no CUDA GPU is visible (set model.device=auto or cpu)")
    if want == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))


def _weights(folder: Path) -> tuple[bool, bool]:
    """(has safetensors weights, has pickle weights) in a checkpoint or adapter folder."""
    names = [p.name for p in folder.iterdir()]
    safe = any(n.endswith(".safetensors") or n.endswith(".safetensors.index.json") for n in names)
    pickle = any(n.endswith((".bin", ".pt", ".pth", ".ckpt")) or n.endswith(".bin.index.json") for n in names
                 if n not in ("training_args.bin",))
    return safe, pickle


def _check_weights(folder: Path, model_cfg: ModelConfig) -> None:
    safe, pickle = _weights(folder)
    if pickle and not safe and not model_cfg.allow_pickle:
        raise UserError(f"{folder}: holds only pickle weights (.bin/.pt), which can run code when loaded; convert "
                        "them to safetensors, or set model.allow_pickle=true if you trust the file")


def _not_local(path: str) -> UserError:
    return UserError(f"{path}: not a local model folder; expected a local Hugging Face checkpoint folder "
                     "(config.json) or LoRA adapter folder (adapter_config.json) — hub ids are not downloaded")


def resolve_model_path(path: str | os.PathLike) -> tuple[Path, Path | None]:
    """Check a policy path. Returns (folder, base folder of a LoRA adapter or None), both absolute (so an adapter
    trained from here records a base path that works from anywhere); UserError when not a local model folder."""
    given = Path(path)
    if not given.is_dir():
        raise _not_local(str(path))
    p = given.resolve()
    if (p / "adapter_config.json").is_file():
        where = given / "adapter_config.json"
        try:
            base = json.loads((p / "adapter_config.json").read_text(encoding="utf-8"))["base_model_name_or_path"]
            base_path = Path(base)
        except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError):
            raise UserError(f"{where}: missing or unreadable 'base_model_name_or_path'") from None
        # A relative base may be written relative to where training ran or to the adapter folder itself.
        if not base_path.is_absolute() and not base_path.is_dir() and (p / base_path).is_dir():
            base_path = p / base_path
        if not (base_path / "config.json").is_file():
            raise UserError(f"{where}: base model '{base}' is not a local model folder with config.json "
                            "(hub ids are not downloaded)")
        return p, base_path.resolve()
    if not (p / "config.json").is_file():
        raise UserError(f"{given}: no config.json or adapter_config.json; expected a local Hugging Face checkpoint "
                        "folder or LoRA adapter folder")
    return p, None


def load_policy(path: str | os.PathLike, model_cfg: ModelConfig | None = None, *, for_training: bool = False):
    """Load (model, tokenizer) from a local checkpoint folder or a LoRA adapter folder.

    Always local_files_only; remote code only when `model_cfg.trust_remote_code`. The tokenizer comes from the
    folder itself, else (adapter without tokenizer files) from the base. With for_training=False the model is in
    eval mode, a LoRA adapter is merged into its base (faster generation) and the tokenizer pads on the left, as
    batched generation needs; with for_training=True an adapter stays a trainable PeftModel and padding is right.
    A missing tokenizer pad token falls back to eos.
    """
    model_cfg = model_cfg or ModelConfig()
    folder, base = resolve_model_path(path)
    kwargs = dict(local_files_only=True, trust_remote_code=model_cfg.trust_remote_code)
    if model_cfg.attn_implementation != "auto":
        kwargs["attn_implementation"] = model_cfg.attn_implementation
    dtype = DTYPES.get(model_cfg.dtype)
    if dtype is None:
        raise UserError(f"model.dtype: expected one of {', '.join(DTYPES)}, got {model_cfg.dtype!r}")
    for f in (folder, base):
        if f is not None:
            _check_weights(f, model_cfg)
    tokenizer = load_tokenizer(path, model_cfg)
    try:
        model = AutoModelForCausalLM.from_pretrained(base or folder, dtype=dtype,
                                                     use_safetensors=None if model_cfg.allow_pickle else True,
                                                     **kwargs)
        if base is not None:
            from peft import PeftModel

            # ZeRO-3 gathers parameters in the dtype of the first one: PEFT's float32 adapter on a bf16 base fails
            # at the first optimizer step (TRL does the same for a new adapter; trl#6089, DeepSpeed#8072).
            with quiet_library_warnings():
                model = PeftModel.from_pretrained(model, folder, is_trainable=for_training, local_files_only=True,
                                                  autocast_adapter_dtype=not (for_training and dist.zero3()))
            if not for_training:
                model = model.merge_and_unload()
    except Exception as e:  # OSError, ValueError, SafetensorError (a truncated file), ...: one line naming the folder
        first = _first_line(e)
        key = "model.attn_implementation: " if "attn_implementation" in first else ""
        raise UserError(f"{key}{path}: could not load the model ({type(e).__name__}: {first[:200]})") from None
    # Where the weights came from, for backends that load from disk (vLLM).
    model.oakdpo_path = str(folder)
    model.oakdpo_base = str(base or folder)
    model.oakdpo_adapter = str(folder) if base is not None else None
    tokenizer.padding_side = "right" if for_training else "left"
    if not for_training:
        model.eval()
        model.to(placement(model_cfg))  # training stages leave placement to the trainer (accelerate)
    return model, tokenizer


def load_tokenizer(path: str | os.PathLike, model_cfg: ModelConfig | None = None):
    """The tokenizer of a checkpoint or adapter folder (an adapter without tokenizer files: its base's). A missing
    pad token falls back to eos."""
    model_cfg = model_cfg or ModelConfig()
    folder, base = resolve_model_path(path)
    has_tokenizer = (folder / "tokenizer_config.json").is_file() or (folder / "tokenizer.json").is_file()
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder if has_tokenizer or base is None else base,
                                                  local_files_only=True, trust_remote_code=model_cfg.trust_remote_code)
    except Exception as e:
        first = _first_line(e)
        raise UserError(f"{path}: could not load the tokenizer ({type(e).__name__}: {first[:200]})") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


