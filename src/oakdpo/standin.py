"""Stand-in checkpoints: a randomly initialised model of a real architecture (Qwen2, Llama) with a tokenizer
trained locally, saved with save_pretrained. They stand in for a user's checkpoint wherever the real one cannot be
downloaded (tests, CI, a GPU smoke check): same config class, same tokenizer plumbing (special tokens, chat
template, eos / pad), random weights. `oakdpo model standin` builds one.

- qwen2: a ChatML chat template (<|im_start|> / <|im_end|>), eos <|im_end|>, pad <|endoftext|>, no BOS, as
  Qwen2-Instruct checkpoints have.
- llama: a BOS <s> prepended by the tokenizer, eos </s>, no pad token and no chat template, as a base Llama
  checkpoint has.
"""

from __future__ import annotations

from pathlib import Path

from .io import UserError

CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + "
          "'<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")

SIZES = {  # hidden, layers, heads, kv heads, intermediate
    "tiny": (64, 2, 4, 2, 128),       # ~0.3M parameters besides the embeddings: fast tests
    "small": (256, 4, 4, 2, 704),     # a few M: end-to-end runs on a CPU
    "0.5b": (896, 24, 14, 2, 4864),   # Qwen2-0.5B's shapes: the GPU check
}


def _corpus(n: int = 300) -> list[str]:
    """Text the stand-in tokenizer is trained on: problems of every built-in style and their gold traces."""
    from .tasks import get_task
    from .tiny import build_corpus

    problems = get_task("prontoqa").generate(n, seed=9, hops=(1, 5))
    return build_corpus(problems, "natural") + build_corpus(problems[: n // 3], "lookup")


def build_standin(arch: str, out_dir: str | Path, size: str = "tiny", vocab_size: int = 2048, seed: int = 0,
                  dtype: str = "float32", model_vocab: int | None = None) -> Path:
    """Write a random-init `arch` checkpoint (config, safetensors, generation_config, tokenizer) to out_dir.

    `vocab_size` is the tokenizer's (trained locally); `model_vocab` the embedding rows, when larger: real
    checkpoints pad them (Qwen2-0.5B: 151,936 rows for 151,646 tokens), which matters for memory and speed."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import (GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast,
                              Qwen2Config, Qwen2ForCausalLM)

    if arch not in ("qwen2", "llama"):
        raise UserError(f"--arch: expected qwen2 or llama, got {arch!r}")
    if size not in SIZES:
        raise UserError(f"--size: expected one of {', '.join(SIZES)}, got {size!r}")
    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] if arch == "qwen2" else ["<unk>", "<s>", "</s>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(_corpus(), trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special,
                                                           initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                                           show_progress=False))
    if arch == "qwen2":
        tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                            additional_special_tokens=["<|im_start|>", "<|im_end|>"],
                                            clean_up_tokenization_spaces=False)
        tokenizer.chat_template = CHATML
    else:
        tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A $B:1",
                                                           special_tokens=[("<s>", tok.token_to_id("<s>"))])
        tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                            unk_token="<unk>", clean_up_tokenization_spaces=False)
    hidden, layers, heads, kv, inter = SIZES[size]
    common = dict(vocab_size=max(len(tokenizer), model_vocab or 0), hidden_size=hidden, num_hidden_layers=layers,
                  num_attention_heads=heads, num_key_value_heads=kv, intermediate_size=inter,
                  max_position_embeddings=4096, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(seed)
    if arch == "qwen2":
        config = Qwen2Config(**common, pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True)
        model = Qwen2ForCausalLM(config)
    else:
        config = LlamaConfig(**common, bos_token_id=tokenizer.bos_token_id, tie_word_embeddings=False)
        model = LlamaForCausalLM(config)
    model = model.to({"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype])
    # Sampling defaults of the kind real checkpoints ship; generation must ignore them unless asked.
    model.generation_config = GenerationConfig(eos_token_id=tokenizer.eos_token_id, do_sample=True,
                                               temperature=0.7, top_p=0.8, top_k=20, repetition_penalty=1.05,
                                               **({"bos_token_id": tokenizer.bos_token_id} if arch == "llama" else
                                                  {"pad_token_id": tokenizer.pad_token_id}))
    from .model import save_folder

    save_folder(Path(out_dir), model, tokenizer)
    return Path(out_dir)


def cmd_standin(args) -> int:
    path = build_standin(args.arch, args.output, size=args.size, seed=args.seed, dtype=args.dtype)
    print(f"wrote a random-init {args.arch} stand-in ({args.size}) to {path}")
    return 0
