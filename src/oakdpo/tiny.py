"""The built-in tiny policy of the demo (configs/tiny.yaml) and its tokenizer, built locally; nothing is downloaded.

`init_tiny_model` builds a small Llama-architecture causal LM (sizes from `ModelConfig`) and a byte-level BPE
tokenizer trained locally with `tokenizers` on our own corpus, and saves both as a standard Hugging Face folder
(safetensors) that `AutoModelForCausalLM` / `AutoTokenizer` load. Its pre-tokenizer and its initialisation are
shaped for the PrOntoQA lookup style (format.style: lookup) that the tiny model is trained on; none of it is
applied to any other checkpoint (docs/tiny-model.md says why each piece is there).
"""

from __future__ import annotations

import json
import math
import os
import re
import zlib
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from .config import ModelConfig
from .io import UserError
from .model import save_folder
from .trace import QUERY_TAG_NAME

PAD, BOS, EOS = "<pad>", "<s>", "</s>"

PAD, BOS, EOS = "<pad>", "<s>", "</s>"

# Pre-tokenization: GPT-2's pattern, plus pieces that make each lookup of the backward proof (formats.gold_trace)
# a one-token match for the tiny model. Every character lands in exactly one piece and ByteLevel maps bytes 1:1,
# so decoding round-trips exactly. The pieces, in order:
# - the query's last word with its period (" wooden." in "Query: ... Max is not wooden."): a token of its own,
#   so the bare word (" wooden") occurs only in the premises, where the proof looks it up;
# - a sentence's subject and verb fused ("Every vumpus is a", "Numpuses are not", "Max is a"): one token, so a
#   premise is tag, subject, object, and "what follows this tag" is one token;
# - formula tags "[12]" and the query's tag "[Q]" (never glued to a space: the same token in the prompt and in a
#   thought);
# - a plural concept split before "es" ("yumpus" + "es"), so a concept is the same token as object and as key;
# - words with underscores (MODUS_PONENS) and the fixed parts of an Action line.
PRETOKENIZE_PATTERN = (
    r" ?\p{Ll}+\.(?=\nPremises:)"
    r"| ?(?:(?:Each|Every) \p{Ll}+ is(?: not)?(?: an?)?|\p{Lu}\p{Ll}+ (?:are|is)(?: not)?(?: an?)?)(?=\s|\[|\{)"
    rf"|\[(?:\d+|{QUERY_TAG_NAME})\]|\{{\d+\}}"
    r'| ?\p{Ll}+pus(?=es\b)| ?<Option type="|" args="\[|\]" />| ?[\p{L}_]+| ?\p{N}+'
    rf"| ?(?!\[(?:\d|{QUERY_TAG_NAME}\])|\{{\d)"
    r"[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+")

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
        rope_parameters={"rope_type": "default", "rope_theta": model_cfg.rope_theta},
        # Tied unless the input embeddings are frozen (then the output matrix must be free to learn).
        tie_word_embeddings=not model_cfg.freeze_embeddings,
        initializer_range=model_cfg.initializer_range,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def prewire_previous_token_heads(model, offsets=(1, 2), n_freq: int = 6, scale: float = 30.0) -> None:
    """Make head h of layer 0 attend to the token `offsets[h]` positions back, from the start of training.

    One embedding dimension is set to a constant; each head's query and key read only that dimension, the key
    rotated by -offset * theta_f on the `n_freq` fastest rotary frequencies, so q.k peaks where RoPE has turned
    the key back by exactly `offset`. The previous tokens' identities then sit at every position, which the
    premise lookups of the backward proof need (see PRETOKENIZE_PATTERN). Training is free to change all of it.
    """
    cfg = model.config
    d, H = cfg.hidden_size, cfg.num_attention_heads
    hd = d // H
    theta = (getattr(cfg, "rope_parameters", None) or {}).get("rope_theta") or getattr(cfg, "rope_theta", 10000.0)
    inv_freq = [theta ** (-2 * f / hd) for f in range(hd // 2)]
    emb = model.get_input_embeddings().weight
    attn = model.model.layers[0].self_attn
    with torch.no_grad():
        # Every row gets RMS exactly 1 with dimension 0 at 1, so after RMSNorm that dimension is the same
        # constant for every token: otherwise a neighbour with a smaller norm can outscore the right offset.
        rest = emb[:, 1:]
        rest.mul_(torch.sqrt(torch.tensor(d - 1.0)) / rest.norm(dim=-1, keepdim=True).clamp_min(1e-6))
        emb[:, 0] = 1.0
        w = math.sqrt(scale * math.sqrt(hd) / n_freq)  # dimension 0 is exactly 1 after RMSNorm
        for h, off in enumerate(offsets[:H]):
            q = attn.q_proj.weight[h * hd:(h + 1) * hd]
            k = attn.k_proj.weight[h * hd:(h + 1) * hd]
            q.zero_()
            k.zero_()
            for f in range(n_freq):  # rotate_half pairs dims f and f + hd/2
                q[f, 0] = w
                k[f, 0] = w * math.cos(off * inv_freq[f])
                k[f + hd // 2, 0] = w * math.sin(off * inv_freq[f])


def mimetic_init(model, layer: int = 1, noise: float = 0.5, seed: int = 0) -> None:
    """Mimetic initialisation of one layer (Trockman & Kolter, 2023): W_Q W_K^T and W_V W_O close to a
    projection, so its heads start out attending to tokens like the current one and copying what they find.
    Only the slower half of the rotary dimensions carries the match. With RoPE base 10,000 that half of a head (of
    any width) still turns by up to 4 radians over 400 tokens (the longest row of the demo is 385), and the match
    falls to half its score there; with the tiny default's base (model.rope_theta: 500,000) it keeps 98%
    (tests/test_model.py)."""
    g = torch.Generator().manual_seed(seed)
    cfg = model.config
    d, H = cfg.hidden_size, cfg.num_attention_heads
    hd, half = d // H, d // H // 2
    attn = model.model.layers[layer].self_attn
    mask = torch.zeros(hd, 1)
    mask[half // 2:half] = 1
    mask[half + half // 2:] = 1
    with torch.no_grad():
        for h in range(H):
            rows = slice(h * hd, (h + 1) * hd)
            proj = _qr_rows(torch.randn(d, hd, generator=g))  # hd x d, orthonormal rows
            qk = proj * math.sqrt(math.sqrt(hd)) * mask
            attn.q_proj.weight[rows] = qk + noise * attn.q_proj.weight[rows]
            attn.k_proj.weight[rows] = qk + noise * attn.k_proj.weight[rows]
            attn.v_proj.weight[rows] = proj + noise * attn.v_proj.weight[rows]
            attn.o_proj.weight[:, rows] = proj.T + noise * attn.o_proj.weight[:, rows]


def _qr_rows(a: torch.Tensor) -> torch.Tensor:
    """The orthonormal rows of `a`'s QR factor Q, computed the same way on any number of CPU threads: MKL's QR rounds
    otherwise on one thread than on two or more (which all agree), so OMP_NUM_THREADS=1 drew another initial model
    from the same seed. Two threads keep the models built on multi-core machines as they were."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        return torch.linalg.qr(a)[0].T
    finally:
        torch.set_num_threads(threads)


# Fused subject-verb tokens (see PRETOKENIZE_PATTERN) that state a polarity: "Numpuses are (not)", "Each numpus
# is (not)", "Max is (not)"; not the "is a"/"is an" forms, which link concepts.
_POLARITY_TOKEN = re.compile(r"^ ?(?:(?:Each|Every) [a-z]+ is|[A-Z][a-z]+ (?:are|is))( not)?$")


def _random_direction(dim: int, seed: int) -> torch.Tensor:
    """One random unit-RMS direction with dimension 0 at zero (prewire_previous_token_heads sets that one)."""
    v = torch.randn(dim, generator=torch.Generator().manual_seed(seed))
    v[0] = 0.0
    return v * math.sqrt(dim - 1) / v.norm()


def add_polarity_direction(model, tokenizer, scale: float, seed: int = 1234) -> None:
    """Add +scale*v to the input embedding of every fused token ending in "not" and -scale*v to the positive
    ones, v one random unit-RMS direction. With random frozen embeddings, a token's polarity is otherwise a
    per-token fact the model has to memorise, and the tiny model copied the wrong polarity into about 40% of its
    first claims (docs/tiny-model.md). Dimension 0 is left alone (prewire_previous_token_heads sets it)."""
    emb = model.get_input_embeddings().weight
    v = _random_direction(emb.shape[1], seed)
    with torch.no_grad():
        for token, i in tokenizer.get_vocab().items():
            m = _POLARITY_TOKEN.match(tokenizer.convert_tokens_to_string([token]))
            if m:
                emb[i] += (scale if m.group(1) else -scale) * v


def add_group_directions(model, tokenizer, group_of, scale: float, seed: int) -> None:
    """Add scale*c_g to the input embedding of every token whose text `group_of` maps to a group g (an int or a
    string; None: left alone), c_g one random unit-RMS direction per group. Tokens of one group then share a
    component that a head can read linearly: the second-form tags ("{12}": is this the retry's rule?), or the
    forms of one subject ("Shumpuses are", "Every shumpus is not": a claim writes its cited premise's subject
    in another form), which with unrelated random embeddings are a table of tokens to memorise
    (docs/tiny-model.md)."""
    emb = model.get_input_embeddings().weight
    directions: dict = {}
    with torch.no_grad():
        for token, i in tokenizer.get_vocab().items():
            g = group_of(tokenizer.convert_tokens_to_string([token]))
            if g is None:
                continue
            if g not in directions:
                offset = g if isinstance(g, int) else zlib.crc32(g.encode())
                directions[g] = _random_direction(emb.shape[1], seed + offset)
            emb[i] += scale * directions[g]


# Fused subject-verb tokens (PRETOKENIZE_PATTERN), group 1 or 2 the subject word.
_SUBJECT_TOKEN = re.compile(r"^ ?(?:(?:Each|Every) ([a-z]+) is|([A-Z][a-z]+) (?:are|is))(?: not)?(?: an?)?$")
_SECOND_FORM_TAG = re.compile(r"^\{\d+\}$")


def subject_group(text: str) -> str | None:
    """'Shumpuses are', 'Every shumpus is not', 'Each shumpus is an' -> 'shumpus'; 'Max is a' -> 'max'."""
    from .tasks.prontoqa.generator import singular

    m = _SUBJECT_TOKEN.match(text)
    return singular((m.group(1) or m.group(2)).lower()) if m else None


def second_form_group(text: str) -> int | None:
    """'{12}' -> one group (0) for all second-form tags: the retry after a dead end looks up the rule whose tag
    has that form."""
    return 0 if _SECOND_FORM_TAG.match(text) else None


def build_tiny_model(model_cfg: ModelConfig, tokenizer, seed: int = 0) -> LlamaForCausalLM:
    """The randomly initialised tiny Llama. With `freeze_embeddings` its input embeddings are N(0, 1) and stay
    fixed in training (freeze_input_embeddings); with `induction_init` layer 0 starts with previous-token heads and
    layers 1..`mimetic_layers` mimetic (the two halves of an induction circuit). Why both: trained embeddings of
    interchangeable words (all adjectives, all concepts) collapse together, so attention can match a word's kind
    but not the word itself, and a premise lookup never forms in a CPU budget (docs/tiny-model.md)."""
    torch.manual_seed(seed)
    model = LlamaForCausalLM(tiny_llama_config(model_cfg, tokenizer))
    if model_cfg.freeze_embeddings:
        with torch.no_grad():
            model.get_input_embeddings().weight.normal_(0.0, 1.0)
        if model_cfg.polarity_direction:
            add_polarity_direction(model, tokenizer, model_cfg.polarity_direction)
        for group_of, scale, direction_seed in ((second_form_group, model_cfg.tag_form_direction, 4321),
                                                (subject_group, model_cfg.subject_direction, 2468)):
            if scale:
                add_group_directions(model, tokenizer, group_of, scale, direction_seed)
    if model_cfg.induction_init and model_cfg.num_layers >= 2:
        prewire_previous_token_heads(model)
        for layer in range(1, min(model_cfg.mimetic_layers, model_cfg.num_layers - 1) + 1):
            mimetic_init(model, layer=layer, seed=layer - 1)
    model.generation_config = GenerationConfig(bos_token_id=tokenizer.bos_token_id,
                                               eos_token_id=tokenizer.eos_token_id,
                                               pad_token_id=tokenizer.pad_token_id)
    return model


def init_tiny_model(model_cfg: ModelConfig, corpus: list[str], out_dir: str | os.PathLike, seed: int = 0) -> dict:
    """Train the tokenizer on `corpus` (prompts + gold traces), build a randomly initialised tiny Llama
    (build_tiny_model) and save both to `out_dir` (config.json, model.safetensors, generation_config.json,
    tokenizer files).

    Returns {"parameters", "vocab_size", "path"}. Deterministic for a fixed corpus and seed.
    """
    if not corpus:
        raise UserError("model init: empty tokenizer corpus")
    tokenizer = train_tokenizer(corpus, model_cfg.vocab_size)
    model = build_tiny_model(model_cfg, tokenizer, seed)
    out_dir = Path(out_dir)
    save_folder(out_dir, model, tokenizer)
    return {"parameters": sum(p.numel() for p in model.parameters()), "vocab_size": len(tokenizer),
            "path": str(out_dir)}


def build_corpus(problems, style: str = "lookup") -> list[str]:
    """Tokenizer corpus: each problem's prompt (as plain text, in `style`) + gold trace, plus every option name
    and label once."""
    from .tasks import get_task
    from .trace import LABELS, OPTION_TYPES, render_action

    corpus = []
    for p in problems:
        task = get_task(p.task)
        system, user = task.prompt(p, style)
        corpus.append((f"{system}\n\n{user}" if system else user) + (task.gold_trace(p, style) or ""))
    corpus += [render_action(o, [0, 1]) for o in OPTION_TYPES] + [f"Final Answer: {lab}" for lab in LABELS]
    return corpus


def corpus_problems(cfg, n: int | None = None) -> list:
    """The problems the tiny tokenizer is trained on: `model.corpus_problems` of PrOntoQA's generator (the demo's
    task), with the data section's generator settings."""
    from .tasks import get_task

    return get_task("prontoqa").generate(cfg.model.corpus_problems if n is None else n, seed=cfg.data.seed,
                                         hops=cfg.data.hops, remove_shortcut=cfg.data.remove_shortcut)


def cmd_init(args) -> int:
    from .config import load_config

    cfg = load_config(args.config, args.set)
    if args.train_data:  # the tokenizer learns the words of the task it will train on
        from .data import read_problem_file

        problems = read_problem_file(args.train_data, cfg.data.dataset)[: cfg.model.corpus_problems]
    else:
        problems = corpus_problems(cfg)
    info = init_tiny_model(cfg.model, build_corpus(problems, cfg.format.style), args.output, seed=cfg.sft.seed)
    print(json.dumps(info))
    return 0
