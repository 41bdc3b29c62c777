"""The built-in tiny policy and loading of any local policy checkpoint.

`init_tiny_model` builds a small Llama-architecture causal LM (sizes from `ModelConfig`) and a byte-level BPE
tokenizer trained locally with `tokenizers` on our own corpus, and saves both as a standard Hugging Face folder
(safetensors) that `AutoModelForCausalLM` / `AutoTokenizer` load. Nothing is downloaded.

`load_policy` loads what every stage takes as a model path: a local HF checkpoint folder, or a LoRA adapter
folder (PEFT; its base model is resolved from `adapter_config.json`). Hub ids are never fetched: there is no
network, and a policy path must be a local folder.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (AutoModelForCausalLM, AutoTokenizer, GenerationConfig, LlamaConfig, LlamaForCausalLM,
                          PreTrainedTokenizerFast)

from .config import ModelConfig
from .io import UserError

PAD, BOS, EOS = "<pad>", "<s>", "</s>"

# Pre-tokenization: GPT-2's pattern, plus pieces that keep our formats short (one token each once BPE merges
# them): formula tags "[12]" (never glued to a space, so a tag is the same token in the prompt, where it starts
# a line, and in a thought, where it follows a space: copying it is copying one token), words with underscores
# (MODUS_PONENS) and the fixed parts of an Action line. Every character lands in exactly one piece and ByteLevel
# maps bytes 1:1, so decoding round-trips exactly.
PRETOKENIZE_PATTERN = (r'\[\d+\]| ?<Option type="|" args="\[|\]" />| ?[\p{L}_]+| ?\p{N}+| ?(?!\[\d)[^\s\p{L}\p{N}]+'
                       r"|\s+(?!\S)|\s+")

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def train_tokenizer(corpus: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on `corpus`; bos is prepended on encoding, pad/bos/eos are ids 0/1/2.

    Any text encodes (all 256 bytes are in the base alphabet) and `decode(encode(t), skip_special_tokens=True)`
    returns `t` exactly.
    """
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_PATTERN), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[PAD, BOS, EOS], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus, trainer)
    bos_id = tok.token_to_id(BOS)
    tok.post_processor = processors.TemplateProcessing(single=f"{BOS} $A", pair=f"{BOS} $A $B:1",
                                                       special_tokens=[(BOS, bos_id)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD,
                                   clean_up_tokenization_spaces=False, model_max_length=1_000_000)


def tiny_llama_config(model_cfg: ModelConfig, tokenizer) -> LlamaConfig:
    """LlamaConfig of the tiny policy: sizes from `model_cfg`, vocabulary and special ids from `tokenizer`."""
    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=model_cfg.hidden_size,
        num_hidden_layers=model_cfg.num_layers,
        num_attention_heads=model_cfg.num_heads,
        num_key_value_heads=model_cfg.num_heads,
        intermediate_size=model_cfg.intermediate_size,
        max_position_embeddings=model_cfg.max_position_embeddings,
        tie_word_embeddings=True,  # a third of a tiny model's weights would otherwise be the output matrix
        initializer_range=model_cfg.initializer_range,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def init_tiny_model(model_cfg: ModelConfig, corpus: list[str], out_dir: str | os.PathLike, seed: int = 0) -> dict:
    """Train the tokenizer on `corpus` (prompts + gold traces), build a randomly initialised tiny Llama and save
    both to `out_dir` (config.json, model.safetensors, generation_config.json, tokenizer files).

    Returns {"parameters", "vocab_size", "path"}. Deterministic for a fixed corpus and seed.
    """
    if not corpus:
        raise UserError("model init: empty tokenizer corpus")
    tokenizer = train_tokenizer(corpus, model_cfg.vocab_size)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(tiny_llama_config(model_cfg, tokenizer))
    model.generation_config = GenerationConfig(bos_token_id=tokenizer.bos_token_id,
                                               eos_token_id=tokenizer.eos_token_id,
                                               pad_token_id=tokenizer.pad_token_id)
    out_dir = Path(out_dir)
    save_folder(out_dir, model, tokenizer)
    return {"parameters": sum(p.numel() for p in model.parameters()), "vocab_size": len(tokenizer),
            "path": str(out_dir)}


def save_folder(out_dir: Path, model, tokenizer) -> None:
    """Save model + tokenizer as an HF folder. A new folder is written under a temporary name and renamed, so a
    killed run never leaves a half-written checkpoint where a finished one is expected."""
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        target = out_dir  # an existing, non-empty folder: write in place
    else:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        target = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    tokenizer.save_pretrained(target)
    model.save_pretrained(target, safe_serialization=True)
    if target != out_dir:
        if out_dir.exists():
            out_dir.rmdir()
        os.replace(target, out_dir)


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
    dtype = DTYPES.get(model_cfg.dtype)
    if dtype is None:
        raise UserError(f"model.dtype: expected one of {', '.join(DTYPES)}, got {model_cfg.dtype!r}")
    has_tokenizer = (folder / "tokenizer_config.json").is_file() or (folder / "tokenizer.json").is_file()
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder if has_tokenizer or base is None else base, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(base or folder, dtype=dtype, **kwargs)
        if base is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, folder, is_trainable=for_training, local_files_only=True)
            if not for_training:
                model = model.merge_and_unload()
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"{path}: could not load the model ({first})") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    # Where the weights came from, for backends that load from disk (vLLM).
    model.oakdpo_path = str(folder)
    model.oakdpo_base = str(base or folder)
    model.oakdpo_adapter = str(folder) if base is not None else None
    tokenizer.padding_side = "right" if for_training else "left"
    if not for_training:
        model.eval()
    return model, tokenizer


def build_corpus(problems) -> list[str]:
    """Tokenizer corpus: each problem's prompt + gold trace, plus every option name and label once."""
    from .formats import LABELS, OPTION_TYPES, build_prompt, render_action
    from .formats import gold_trace

    corpus = [build_prompt(p) + (gold_trace(p) or "") for p in problems]
    corpus += [render_action(o, [0, 1]) for o in OPTION_TYPES] + [f"Final Answer: {lab}" for lab in LABELS]
    return corpus


def cmd_init(args) -> int:
    from .config import load_config
    from .data import generate_problems

    cfg = load_config(args.config, args.set)
    problems = generate_problems(cfg.model.corpus_problems, hops=cfg.data.hops, seed=cfg.data.seed,
                                 remove_shortcut=cfg.data.remove_shortcut)
    info = init_tiny_model(cfg.model, build_corpus(problems), args.output, seed=cfg.sft.seed)
    print(json.dumps(info))
    return 0


def add_cli(sub) -> None:
    p = sub.add_parser("model", help="Built-in tiny model.")
    msub = p.add_subparsers(dest="model_command", required=True)
    q = msub.add_parser("init", help="Train a tokenizer on generated problems and save a fresh tiny Llama.")
    q.add_argument("--config", default=None, help="YAML config (model section sets the sizes).")
    q.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="Config override.")
    q.add_argument("-o", "--output", required=True, help="Output folder.")
    q.set_defaults(func=cmd_init)
