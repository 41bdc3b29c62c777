"""Trace generation: the policy writes a trace after each problem's prompt.

The work is one item per (problem, sample). Every item draws its randomness from its own stream, seeded from
(seed, problem id, sample) by a stable hash, so a fixed seed gives the same texts whatever the batch size, the
order items run in, the number of ranks the problems are split over, or where a resumed run picks up. (Batch
shapes change floating-point rounding in the model's matmuls by ~1e-6; that decides a token only at an exact tie
between two choices, which the tests and benchmarks/generation.py have not met.)

Decoding settings are ours, built into a transformers `GenerationConfig` by `decoding_config`: temperature and
top_p when sampling, plain argmax when greedy. The checkpoint's generation_config.json (a repetition_penalty,
top_k, temperature...) applies only with `generation.use_model_defaults: true`; only its eos ids are always used.
A trace ends at any stop token (every eos the model declares, the tokenizer's eos, the chat template's end of
turn: Framing.stop_token_ids), at the end of its "Final Answer:" line (the label, or a line break), or at
max_new_tokens, and then its record says `"truncated": true`.

HF backend, two decoders over the same sampler and stop check:
- slots (models whose attention reads a standard KV cache through sdpa or eager attention, without sliding
  windows: Llama, Qwen2, Mistral, Phi-3, ...): continuous batching in a compact loop over the model's forward.
  `batch_size` slots each hold one sequence's keys and values at its own positions; a prompt is prefilled once per
  problem and copied into the slot of each of its samples; a sequence that stops frees its slot for the next
  waiting item at once, so no row waits for the longest of a batch and no padding is computed.
- padded (any other model, e.g. flash-attention or sliding-window layers): transformers `generate` on
  left-padded batches, the sampler as a logits processor and the stop check as a stopping criterion.
With the lookup style's decoding options (DECODING_OPTIONS: format.lookup_decoding, citation_decoding,
numbering_decoding, dead_end_decoding; the tiny model's configs/tiny.yaml), the slot decoder also does the premise
lookups the trace asks for, keeps an Action's arguments to what its Thought cited, writes the tags its bookkeeping
fixes and ends a lookup that finds nothing (LookupDecoding).
The vLLM backend (generation.backend=vllm; vLLM installed and a GPU) sends one request per item with the item's
seed.

With `partial_path`, finished traces are appended to that JSONL file as they complete (flushed and fsynced), and
a rerun keeps them and generates only the items not yet there; the result equals an uninterrupted run's.

Traces come back in problem order, `samples` per problem, as {problem_id, sample, text, num_tokens, truncated}.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import sys
from collections import deque
from pathlib import Path

import torch

from .config import FormatConfig, GenerationConfig
from .dist import fault_point
from .io import UserError
from .prompting import Framing
from .tasks import get_task
from .trace import LABELS, Problem, trace_record

STOP_STRINGS = [f"Final Answer: {label}" for label in LABELS]
_FINAL_LINE = re.compile(r"Final Answer:[^\n]*")
_MARK = "Final Answer:"
_PARTIAL_HEADER = "oakdpo_partial_generation"


def is_main() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def cut_after_final_answer(text: str) -> str:
    """Keep the text up to the end of its first 'Final Answer:' line (everything after it is dropped)."""
    m = _FINAL_LINE.search(text)
    return text[: m.end()].rstrip() if m else text


def item_seed(seed: int, problem_id: str, sample: int) -> int:
    """The seed of one item's random stream: a stable hash of (seed, problem id, sample), the same in every
    process and on every rank."""
    digest = hashlib.blake2b(f"{seed}\x1f{problem_id}\x1f{sample}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def item_uniforms(seed: int, problem_id: str, sample: int, n: int) -> torch.Tensor:
    """The item's n uniforms in (0, 1], one per generated token (sampling reads the t-th for the t-th token)."""
    g = torch.Generator().manual_seed(item_seed(seed, problem_id, sample))
    return 1.0 - torch.rand(n, generator=g)


# ------------------------------------------------------------------------------------------ settings

def validate_generation(gen_cfg: GenerationConfig, *, do_sample: bool = True, temperature: float | None = None,
                        section: str = "generation") -> None:
    """One-line UserError naming the config key of a setting generation cannot run with."""
    def bad(key: str, what: str, value) -> UserError:
        return UserError(f"{section}.{key}: {what}, got {value!r}")

    if not isinstance(gen_cfg.batch_size, int) or gen_cfg.batch_size < 1:
        raise bad("batch_size", "must be at least 1", gen_cfg.batch_size)
    if not isinstance(gen_cfg.max_new_tokens, int) or gen_cfg.max_new_tokens < 0:
        raise bad("max_new_tokens", "must be 0 or more", gen_cfg.max_new_tokens)
    t = gen_cfg.temperature if temperature is None else temperature
    if do_sample and not (isinstance(t, (int, float)) and t > 0):
        raise (bad("temperature", "must be > 0 when sampling (use greedy decoding for 0)", t) if temperature is None
               else UserError(f"--temperature: must be > 0 when sampling (use --greedy for 0), got {t!r}"))
    if not (isinstance(gen_cfg.top_p, (int, float)) and 0 < gen_cfg.top_p <= 1):
        raise bad("top_p", "must be in (0, 1]", gen_cfg.top_p)


_MODEL_SAMPLING_FIELDS = ("temperature", "top_k", "top_p", "min_p", "repetition_penalty")


def decoding_config(model, gen_cfg: GenerationConfig, *, do_sample: bool, temperature: float | None,
                    stop_ids: list[int], pad_id: int | None):
    """The transformers GenerationConfig generation runs with, built from our settings alone.

    Greedy is plain argmax; sampling uses generation.temperature (or `temperature`) and top_p, no top_k. With
    generation.use_model_defaults the checkpoint's own temperature, top_k, top_p, min_p and repetition_penalty
    (its generation_config.json) replace ours where it sets them (an explicit `temperature` still wins), and its
    repetition_penalty applies to greedy decoding too."""
    from transformers import GenerationConfig as HFGenerationConfig

    fields = dict(temperature=float(gen_cfg.temperature if temperature is None else temperature),
                  top_p=float(gen_cfg.top_p), top_k=0, min_p=0.0, repetition_penalty=1.0)
    if getattr(gen_cfg, "use_model_defaults", False):
        ckpt = getattr(model, "generation_config", None)
        for key in _MODEL_SAMPLING_FIELDS:
            value = getattr(ckpt, key, None) if ckpt is not None else None
            if value is not None and not (key == "temperature" and temperature is not None):
                fields[key] = type(fields[key])(value)
    if not do_sample:
        fields.update(temperature=1.0, top_p=1.0, top_k=0, min_p=0.0)
    sampling_only = {k: fields.pop(k) for k in ("top_k", "min_p")} if not do_sample else {}
    gc = HFGenerationConfig(  # (transformers takes no max_new_tokens=0: generate_traces writes those itself)
        do_sample=do_sample, max_new_tokens=max(gen_cfg.max_new_tokens, 1), eos_token_id=list(stop_ids),
        pad_token_id=pad_id, num_beams=1, **fields)
    for key, value in sampling_only.items():  # set after validation: greedy with them given is a warning line
        setattr(gc, key, value)
    return gc


def choose_tokens(logits: torch.Tensor, u: torch.Tensor, gc, history: list[list[int]] | None = None) -> torch.Tensor:
    """Next token per row from its logits [rows, vocab] and its uniform u in (0, 1] (inverse CDF sampling, so a
    row's token depends on its own logits and uniform only). Greedy: argmax."""
    logits = logits.float()
    if gc.repetition_penalty != 1.0 and history is not None:
        logits = logits.clone()
        for r, seen in enumerate(history):  # as transformers' RepetitionPenaltyLogitsProcessor, per row
            idx = torch.tensor(sorted(set(seen)), dtype=torch.long, device=logits.device)
            s = logits[r, idx]
            logits[r, idx] = torch.where(s < 0, s * gc.repetition_penalty, s / gc.repetition_penalty)
    if not gc.do_sample:
        return logits.argmax(-1)
    logits = logits / gc.temperature
    if gc.top_k and gc.top_k < logits.shape[-1]:
        kth = logits.topk(gc.top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = logits.softmax(-1)
    if gc.min_p:
        probs = probs * (probs >= gc.min_p * probs.amax(-1, keepdim=True))
    order = None
    if gc.top_p < 1.0:  # keep the most likely tokens until their mass reaches top_p (at least one)
        probs, order = probs.sort(-1, descending=True)
        probs = probs * ((probs.cumsum(-1) - probs) < gc.top_p)
    cdf = probs.cumsum(-1)
    target = u.to(cdf.device, cdf.dtype).unsqueeze(1) * cdf[:, -1:]
    idx = (cdf < target).sum(-1).clamp_(max=probs.shape[-1] - 1)
    return idx if order is None else order.gather(1, idx.unsqueeze(1)).squeeze(1)


# ------------------------------------------------------------------------------------------ stopping

class StopCheck:
    """Where a row ends: a stop token, or the end of its "Final Answer:" line (a label right after it, as the
    verifier reads it, or a line break).

    Checked on token ids once per row per step: each token id is decoded alone the first time it is seen, and a
    row's recent tokens are decoded together only after a token with a ':' in it (which can complete "Final
    Answer:") and, once the marker is there, until the line ends."""

    def __init__(self, tokenizer, stop_ids):
        self.tokenizer, self.stop_ids = tokenizer, set(stop_ids)
        self._colon: dict[int, bool] = {}

    def new_row(self) -> dict:
        return {"answer_from": None}

    def done(self, state: dict, tokens: list[int]) -> bool:
        """Whether the row whose generated tokens are `tokens` (the last one just sampled) ends here."""
        t = tokens[-1]
        if t in self.stop_ids:
            return True
        start = state["answer_from"]
        if start is None:
            colon = self._colon.get(t)
            if colon is None:
                colon = self._colon[t] = ":" in self.tokenizer.decode([t])
            if not colon:
                return False
            start = max(0, len(tokens) - 8)  # "Final Answer:" is a few tokens in any tokenizer
            text = self.tokenizer.decode(tokens[start:])
            if _MARK not in text:
                return False
            state["answer_from"] = start
        else:
            text = self.tokenizer.decode(tokens[start:])
        after = text.split(_MARK, 1)[1]
        return "\n" in after or after.lstrip(" \t").startswith(LABELS)


# the lookup style's decoding options (FormatConfig fields), which LookupDecoding does
DECODING_OPTIONS = ("lookup_decoding", "citation_decoding", "numbering_decoding", "dead_end_decoding")
_TAG_TEXT = re.compile(r"^[\[{]\d+[\]}]$")
# an Action line being written, its args list open, and the Thought line above it
_OPEN_ARGS = re.compile(r'(?:^|\n)Thought:([^\n]*)\nAction:\s*<Option\s+type\s*=\s*"([^"]*)"\s+args\s*=\s*"\['
                        r'([\d,\s]*)$')
_CITED = re.compile(r"[\[{](\d+)[\]}]")
_DERIVED = re.compile(r" So \[(\d+)\]")  # a derived formula's tag
# a tag's first token, whole or in part: "[8]", "{12}", "[Q]", "[3" (of "[35]"), "["
_TAG_START = re.compile(r"^[\[{](?:\d+[\]}]?|Q\])?$")


class LookupDecoding:
    """What the decoder does for a lookup-style trace (problems whose task has `lookups`).

    format.lookup_decoding (`lookups`): a tag written right after a word ("wumpus[28]"), or the dead end's "?", is
    a lookup by that word: when premises end in the word, the tag is chosen, by the model's own scores, among
    theirs, and the premise's sentence then follows as written instead of being sampled.
    format.citation_decoding (`citations`): a reasoning step's Action argument is chosen, by the model's scores,
    among the formulas its Thought cited (the tags before "So") that the Action has not passed yet; a number of
    several tokens is finished as cited.
    format.numbering_decoding (`numbering`): a tag the trace's bookkeeping fixes is that one: a derived formula's
    ("So [12]") is the next number (the prompt's `Next:` number, the premise count, then one more each time) or
    the query's [Q], chosen by the model's scores; a restated tag is the one it restates, that of the premise
    just looked up ("... rompus. [5] rompus") or, at the start of a Thought, of the formula derived last.
    format.dead_end_decoding (`dead_ends`): a lookup by a whole word no premise ends in finds nothing, so its tag
    is the dead end's "?"; a lookup by a word this Thought already looked up (the retry after a dead end) is
    chosen among the premises it has not tried yet.
    The model still chooses every word it looks up, every derived formula, when it answers the query, every option
    and which cited formulas it passes."""

    def __init__(self, tokenizer, problems: list[Problem], style: str, *, lookups: bool = True,
                 citations: bool = False, numbering: bool = False, dead_ends: bool = False):
        self.tokenizer = tokenizer
        self.lookups, self.citations, self.numbering, self.dead_ends = lookups, citations, numbering, dead_ends
        self._lookups = [get_task(p.task).lookups(p, style) or {} for p in problems]
        self._tables: dict[int, dict[str, dict[int, list[int]]]] = {}
        self._words: dict[int, str] = {}
        self._tags: dict[int, bool] = {}
        self._single: dict[str, int | None] = {}
        self._digits: dict[int, str | None] = {}  # token id -> the space before its number, None: not a number
        self._whole: dict[int, str | None] = {}  # token id -> its word when it is a whole word, else None
        self._ids: dict[str, list[int]] = {}  # text ("[35]", " 28") -> its token ids

    def _table(self, i: int) -> dict[str, dict[int, list[int]]]:
        """Problem i's lookups as {word: {tag token id: sentence token ids}} (tags that are one token)."""
        table = self._tables.get(i)
        if table is None:
            table = {}
            for word, entries in self._lookups[i].items():
                for tag, text in entries:
                    t = self._single.get(tag, -1)
                    if t == -1:
                        ids = self.tokenizer(tag, add_special_tokens=False)["input_ids"]
                        t = self._single[tag] = ids[0] if len(ids) == 1 else None
                    if t is not None:
                        ids = self.tokenizer(" " + text, add_special_tokens=False)["input_ids"]
                        table.setdefault(word, {})[t] = ids
            self._tables[i] = table
        return table

    def has_lookups(self) -> bool:
        """Whether any problem has lookups in this style (other styles and tasks generate as without them)."""
        return any(self._lookups)

    def _text(self, t: int) -> str:
        text = self._words.get(t)
        if text is None:
            text = self._words[t] = self.tokenizer.decode([t]).strip()
        return text

    def _is_tag(self, t: int) -> bool:
        tag = self._tags.get(t)
        if tag is None:
            tag = self._tags[t] = bool(_TAG_TEXT.match(self._text(t)))
        return tag

    def _entries(self, i: int, word_token: int) -> dict[int, list[int]] | None:
        word = self._text(word_token)
        return self._table(i).get(word) if word else None

    def _number(self, t: int) -> str | None:
        """The whitespace before token t's number when t is one ("29", " 28"), else None."""
        if t not in self._digits:
            raw = self.tokenizer.decode([t])
            self._digits[t] = raw[:len(raw) - len(raw.lstrip())] if raw.strip().isdigit() else None
        return self._digits[t]

    def _cited(self, i: int, tokens: list[int], space: str) -> list[list[int]]:
        """The token ids (each number written after `space`) of the formulas the Thought above cited and the
        Action has not passed yet, when `tokens` end where an argument of a reasoning step's Action starts; else
        []."""
        if not self._lookups[i]:
            return []
        m = _OPEN_ARGS.search(self.tokenizer.decode(tokens))
        if m is None or m.group(2) == "CONCLUDE":  # CONCLUDE's argument is the answer's code, not a formula
            return []
        args = m.group(3)
        if args.strip() and not args.rstrip().endswith(","):  # inside a number: its first token was checked
            return []
        passed = set(re.findall(r"\d+", args))
        cited = []
        for n in dict.fromkeys(_CITED.findall(m.group(1).rsplit(" So ", 1)[0])):
            if n not in passed:
                cited.append(self._token_ids(space + n))
        return cited

    def _token_ids(self, text: str) -> list[int]:
        ids = self._ids.get(text)
        if ids is None:
            ids = self._ids[text] = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return ids

    def _is_tag_start(self, t: int) -> bool:
        return bool(_TAG_START.match(self._text(t)))

    def _premise_count(self, i: int) -> int:
        """Problem i's premise count, which the prompt's `Next:` line names: the premise tags are 0..count-1."""
        return 1 + max((int(tag[1:-1]) for entries in self._lookups[i].values() for tag, _ in entries
                        if tag[1:-1].isdigit()), default=-1)

    def _bookkept(self, i: int, tokens: list[int]) -> list[list[int]]:
        """The token ids of the tags the trace's bookkeeping allows right after `tokens` (which end in a space):
        the next derived number or [Q] after "So", the tag just looked up after its premise's sentence, the formula
        derived last at the start of a later Thought; [] where no tag is fixed."""
        if not self._lookups[i] or not tokens or self._text(tokens[-1]) != "":
            return []
        text = self.tokenizer.decode(tokens)
        line = text.rsplit("\n", 1)[-1]
        if not line.startswith("Thought:"):
            return []
        derived = _DERIVED.findall(text)
        if line.endswith(" So "):
            n = int(derived[-1]) + 1 if derived else self._premise_count(i)
            return [self._token_ids(f"[{n}]"), self._token_ids("[Q]")]
        if line == "Thought: ":
            return [self._token_ids(f"[{derived[-1]}]")] if derived else []
        if line.endswith(". ") and " So " not in line:
            cited = [m.group(0) for m in _CITED.finditer(line)]
            return [self._token_ids(cited[-1])] if cited else []
        return []

    def _untried(self, tokens: list[int], entries: dict[int, list[int]]) -> list[int]:
        """The tags of `entries` (the lookups by the word `tokens` end in) that the Thought line being written has
        not looked up by that word yet; all of them when it has tried every one."""
        line = self.tokenizer.decode(tokens).rsplit("\n", 1)[-1]
        word = self._text(tokens[-1])
        tried = set(re.findall(rf"(?<!\w){re.escape(word)}([\[{{]\d+[\]}}])", line))
        return [t for t in entries if self._text(t) not in tried] or list(entries)

    def _whole_word(self, t: int) -> str | None:
        """Token t's word when t is a whole word (a space, then letters only: not the piece of a longer word),
        else None."""
        if t not in self._whole:
            raw = self.tokenizer.decode([t])
            self._whole[t] = raw.strip() if raw.startswith(" ") and raw.strip().isalpha() else None
        return self._whole[t]

    def _dead_end(self, i: int, word_token: int) -> int | None:
        """The "?" token when `word_token` is a whole word no premise of problem i ends in (a lookup that finds
        nothing), else None."""
        word = self._whole_word(word_token)
        if word is None or word in self._lookups[i]:
            return None
        ids = self._token_ids("?")
        return ids[0] if len(ids) == 1 else None

    def allowed(self, i: int, tokens: list[int], new: int) -> list[int] | None:
        """The tokens a row of problem i with tokens `tokens` may write next, when it chose `new`: a tag or "?"
        that the word it ends in does not look up, an Action argument its Thought did not cite, or a tag the
        bookkeeping fixes otherwise; None: keep `new`."""
        if not tokens:
            return None
        if self.numbering and self._is_tag_start(new):
            firsts = list(dict.fromkeys(ids[0] for ids in self._bookkept(i, tokens)))
            if firsts:
                return firsts if new not in firsts else None
        space = self._number(new) if self.citations else None
        if space is not None:
            firsts = list(dict.fromkeys(ids[0] for ids in self._cited(i, tokens, space)))
            return firsts if firsts and new not in firsts else None
        if not (self.lookups or self.dead_ends) or not (self._is_tag(new) or self._text(new) == "?"):
            return None
        if self.dead_ends and self._lookups[i]:
            dead = self._dead_end(i, tokens[-1])
            if dead is not None:
                return [dead] if new != dead else None
        entries = self._entries(i, tokens[-1]) if self.lookups else None
        if not entries:
            return None
        choices = self._untried(tokens, entries) if self.dead_ends else list(entries)
        return choices if new not in choices else None

    def after(self, i: int, tokens: list[int]) -> list[int]:
        """What to write after row tokens `tokens` of problem i: the sentence when they end in a lookup, the rest
        of a cited formula's number when they end in its first token (a number of several tokens); else []."""
        if len(tokens) < 2:
            return []
        if self.numbering and self._is_tag_start(tokens[-1]):
            rest = [ids[1:] for ids in self._bookkept(i, tokens[:-1]) if ids[0] == tokens[-1] and len(ids) > 1]
            if rest:
                return rest[0]
        space = self._number(tokens[-1]) if self.citations else None
        if space is not None:
            cited = self._cited(i, tokens[:-1], space)
            if [tokens[-1]] in cited:  # a whole number already
                return []
            rest = [ids[1:] for ids in cited if ids[0] == tokens[-1]]
            return rest[0] if len(rest) == 1 else []
        if not self.lookups or not self._is_tag(tokens[-1]):
            return []
        entries = self._entries(i, tokens[-2])
        return (entries or {}).get(tokens[-1], [])


def _finish(tokenizer, tokens: list[int], stopped: bool, stop_ids) -> tuple[str, int, bool]:
    """(text, num_tokens, truncated) of one row's generated tokens; stop tokens are not text."""
    n = len(tokens)
    text = tokenizer.decode([t for t in tokens if t not in stop_ids], skip_special_tokens=True)
    return cut_after_final_answer(text), n, not stopped


# ------------------------------------------------------------------------------------------ entry point

def generate_traces(model, tokenizer, problems: list[Problem], samples: int, gen_cfg: GenerationConfig, *,
                    fmt: FormatConfig | None = None, do_sample: bool = True, temperature: float | None = None,
                    seed: int | None = None, progress: bool = True,
                    partial_path: str | os.PathLike | None = None) -> list[dict]:
    """Generate `samples` traces per problem; returns trace dicts in problem order (sample 0..samples-1).

    do_sample=False is greedy decoding (then every sample of a problem is the same text). `temperature` and
    `seed` default to gen_cfg's; pass every rank the same seed (each item's stream is derived from it).
    `partial_path`: append finished traces there and resume from it (see the module docstring). Assumes the
    tokenizer has a pad token or an eos (load_policy sets one).
    """
    if samples < 1:
        raise UserError(f"samples must be at least 1, got {samples}")
    validate_generation(gen_cfg, do_sample=do_sample, temperature=temperature)
    lookup = option = None
    options = [name for name in DECODING_OPTIONS if fmt is not None and getattr(fmt, name)]
    if options:
        lookup = LookupDecoding(tokenizer, problems, fmt.style, lookups=fmt.lookup_decoding,
                                citations=fmt.citation_decoding, numbering=fmt.numbering_decoding,
                                dead_ends=fmt.dead_end_decoding)
        option = f"format.{options[0]}"
        if not lookup.has_lookups():
            lookup = None
    if lookup is not None and gen_cfg.backend != "hf":
        raise UserError(f"{option}: only generation.backend hf does it, got {gen_cfg.backend!r}")
    seed = gen_cfg.seed if seed is None else seed
    framing = Framing(tokenizer, fmt)
    prompts = [framing.prompt(p).text for p in problems]
    stop_ids = framing.stop_token_ids(model)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    gc = decoding_config(model, gen_cfg, do_sample=do_sample, temperature=temperature, stop_ids=stop_ids,
                         pad_id=pad_id)
    items = [(i, s) for i in range(len(problems)) for s in range(samples)]
    key_of = {(p.id, s): (i, s) for i, p in enumerate(problems) for s in range(samples)}

    partial = _Partial(partial_path, _fingerprint(model, gen_cfg, gc, seed, fmt)) if partial_path else None
    done: dict[tuple[int, int], dict] = {}
    if partial is not None:
        for rec in partial.read():
            key = key_of.get((rec.get("problem_id"), rec.get("sample")))
            if key is not None:
                done[key] = rec
        if done and is_main():
            print(f"resuming generation: {len(done)} of {len(items)} traces already in {partial.path}",
                  file=sys.stderr)
        partial.start(list(done.values()))
    todo = [it for it in items if it not in done]

    if todo and gen_cfg.max_new_tokens == 0:
        for i, s in todo:
            done[(i, s)] = trace_record(problems[i].id, s, "", num_tokens=0, truncated=True)
    elif todo and gen_cfg.backend == "vllm":
        new = _generate_vllm(model, tokenizer, problems, [framing.encode(t) for t in prompts], todo, gen_cfg, gc,
                             seed, progress)
        done.update(new)
        if partial is not None:
            partial.append(list(new.values()))
    elif todo:
        if gen_cfg.backend != "hf":
            raise UserError(f"generation.backend: expected hf or vllm, got {gen_cfg.backend!r}")
        from tqdm.auto import tqdm

        bar = tqdm(total=len(items), initial=len(done), unit="trace", desc="generate",
                   disable=not (progress and is_main()), file=sys.stderr)
        pending: list[dict] = []

        def finished(key, tokens, stopped):
            i, s = key
            text, n, truncated = _finish(tokenizer, tokens, stopped, gc.eos_token_id)
            rec = trace_record(problems[i].id, s, text, num_tokens=n, truncated=truncated)
            done[key] = rec
            bar.update(1)
            if partial is not None:
                pending.append(rec)
                if len(pending) >= gen_cfg.batch_size:
                    partial.append(pending)
                    pending.clear()
                    fault_point("generate/partial")  # the kill tests: some traces appended, not all

        prompt_ids = {}
        for i, _ in todo:
            if i not in prompt_ids:
                prompt_ids[i] = framing.encode(prompts[i])
        def uniforms(key):
            return item_uniforms(seed, problems[key[0]].id, key[1], gen_cfg.max_new_tokens)

        was_training = model.training
        model.eval()
        try:
            with torch.inference_mode():
                decoder = _decode_slots if _slots_supported(model, prompt_ids, gc) else _decode_padded
                if lookup is not None:
                    if decoder is not _decode_slots:
                        raise UserError(f"{option}: needs the slot decoder, which model type "
                                        f"{getattr(model.config, 'model_type', None)!r} with its attention "
                                        f"settings cannot use")
                    decoder = functools.partial(_decode_slots, lookup=lookup)
                decoder(model, tokenizer, todo, prompt_ids, uniforms, gc, gen_cfg.batch_size, finished)
        finally:
            bar.close()
            model.train(was_training)
            if partial is not None and pending:
                partial.append(pending)
    return [done[key] for key in items]


# ------------------------------------------------------------------------------------------ slots decoder

# Architectures whose attention reads the cache through `cache.update(keys, values, layer)`, applies rotary
# positions from position_ids and takes a 4D mask as given; any other model goes to the padded decoder.
SLOT_MODEL_TYPES = ("llama", "mistral", "qwen2", "qwen3", "phi3", "gemma")


def _slots_supported(model, prompt_ids: dict, gc) -> bool:
    """The slot decoder takes the architectures of SLOT_MODEL_TYPES with sdpa or eager attention, and no
    sliding window shorter than the longest sequence."""
    cfg = getattr(model, "config", None)
    if cfg is None or getattr(cfg, "model_type", None) not in SLOT_MODEL_TYPES:
        return False
    if getattr(cfg, "_attn_implementation", None) not in ("sdpa", "eager"):
        return False
    types = getattr(cfg, "layer_types", None)
    if types and any(t != "full_attention" for t in types):
        return False
    window = getattr(cfg, "sliding_window", None)
    longest = max(len(p) for p in prompt_ids.values()) + gc.max_new_tokens
    if window and getattr(cfg, "use_sliding_window", True) is not False and longest > window:
        return False
    return True


class _SlotCache:
    """A KV cache of fixed slots, [slots, heads, capacity, head_dim] per layer, each sequence at its own positions.

    The model's attention calls `update(keys, values, layer)` with the new token's keys and values. In prefill
    mode (one prompt) they are kept as they are for copying into slots; in decode mode each active row's are
    written at its own position and the attention gets rows 0..n-1 up to the longest row."""

    def __init__(self, slots: int, capacity: int):
        self.slots, self.capacity = slots, capacity
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []
        self.prefill: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        self.flat = None
        self.n = self.width = 0

    # Cache-like methods the model may call.
    def get_seq_length(self, layer_idx: int = 0) -> int:
        return 0

    def update(self, key_states, value_states, layer_idx, *args, **kwargs):
        if self.prefill is not None:
            self.prefill.append((key_states, value_states))
            return key_states, value_states
        k, v = self.keys[layer_idx], self.values[layer_idx]
        d = k.shape[-1]  # one index_copy_ per tensor: row r, head h at position pos[r]
        k.view(-1, d).index_copy_(0, self.flat, key_states.reshape(-1, d))
        v.view(-1, d).index_copy_(0, self.flat, value_states.reshape(-1, d))
        return k[: self.n, :, : self.width], v[: self.n, :, : self.width]

    def set_step(self, pos: torch.Tensor) -> None:
        """Decode mode for rows 0..n-1 whose new token goes at positions `pos`."""
        heads = self.keys[0].shape[1]
        self.n, self.width = pos.shape[0], int(pos.max()) + 1
        rows = torch.arange(self.n, device=pos.device).unsqueeze(1) * heads
        self.flat = ((rows + torch.arange(heads, device=pos.device)) * self.capacity + pos.unsqueeze(1)).reshape(-1)

    def start_prefill(self):
        self.prefill = []

    def end_prefill(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        kv, self.prefill = self.prefill, None
        if not self.keys:
            for k, v in kv:
                shape = (self.slots, k.shape[1], self.capacity, k.shape[3])
                self.keys.append(torch.zeros(shape, dtype=k.dtype, device=k.device))
                self.values.append(torch.zeros((self.slots, v.shape[1], self.capacity, v.shape[3]), dtype=v.dtype,
                                               device=v.device))
        return kv

    def put(self, slot: int, kv: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        n = kv[0][0].shape[2]
        for layer, (k, v) in enumerate(kv):
            self.keys[layer][slot, :, :n] = k[0]
            self.values[layer][slot, :, :n] = v[0]

    def move(self, src: int, dst: int, length: int) -> None:
        for k, v in zip(self.keys, self.values):
            k[dst, :, :length] = k[src, :, :length]
            v[dst, :, :length] = v[src, :, :length]


def _mask(allowed: torch.Tensor, model) -> torch.Tensor:
    """A 4D attention mask from a bool [rows, q, kv] (True: attend) in the form the model's attention takes."""
    allowed = allowed.unsqueeze(1)
    if model.config._attn_implementation == "sdpa":
        return allowed
    dtype = next(model.parameters()).dtype
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill_(~allowed,
                                                                                      torch.finfo(dtype).min)


def _forward_kwargs(model, cache) -> dict:
    """The slot cache under the name the model's forward takes (`cache` from transformers 5.24 on,
    `past_key_values` before), and logits_to_keep=1 where it takes that: the prefill then projects only each row's
    last position onto the vocabulary (128k columns on Llama 3). A PEFT model's forward passes both on to its base
    model's."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    params = {}
    for cls in type(base).__mro__:  # past a subclass's forward(*args, **kwargs) to the one that names them
        try:
            params = inspect.signature(cls.__dict__["forward"]).parameters
        except (KeyError, TypeError, ValueError):
            continue
        if "cache" in params or "past_key_values" in params:
            break
    extra = {"past_key_values" if "past_key_values" in params else "cache": cache}
    if "logits_to_keep" in params:
        extra["logits_to_keep"] = 1
    return extra


def _decode_slots(model, tokenizer, todo, prompt_ids, uniforms, gc, batch_size, finished, lookup=None):
    """Continuous batching over `batch_size` slots (see the module docstring). Calls finished(key, tokens,
    stopped) as each item ends."""
    device = next(model.parameters()).device
    longest = max(len(prompt_ids[i]) for i, _ in todo)
    cache = _SlotCache(min(batch_size, len(todo)), longest + gc.max_new_tokens)
    stop = StopCheck(tokenizer, gc.eos_token_id)
    extra = _forward_kwargs(model, cache)
    penalty = gc.repetition_penalty != 1.0
    waiting = deque(todo)  # problem by problem: a problem's samples share one prefill
    rows: list[dict] = []  # active rows; row r lives in slot r
    last = {"problem": None}

    def prefill(i):
        ids = torch.tensor([prompt_ids[i]], device=device)
        n = ids.shape[1]
        allowed = torch.ones(n, n, dtype=torch.bool, device=device).tril_().unsqueeze(0)
        cache.start_prefill()
        out = model(input_ids=ids, position_ids=torch.arange(n, device=device).unsqueeze(0),
                    attention_mask=_mask(allowed, model), use_cache=True, **extra)
        kv = cache.end_prefill()
        if len(kv) != len(cache.keys) or not kv:
            raise RuntimeError("the model did not use the slot KV cache")
        last.update(problem=i, kv=kv, logits=out.logits[:, -1, :])

    def start(key, slot):
        """Put item `key` in `slot`; returns its row, or None when its first token already ends it."""
        i, _ = key
        if last["problem"] != i:
            prefill(i)
        u = uniforms(key)
        tok = int(choose_tokens(last["logits"], u[:1], gc, [prompt_ids[i]] if penalty else None)[0])
        row = {"key": key, "tokens": [tok], "pos": len(prompt_ids[i]), "stop": stop.new_row(), "u": u.tolist(),
               "forced": deque()}
        stopped = stop.done(row["stop"], row["tokens"])
        if stopped or gc.max_new_tokens == 1:
            finished(key, row["tokens"], stopped)
            return None
        cache.put(slot, last["kv"])
        return row

    def fill():
        while waiting and len(rows) < cache.slots:
            row = start(waiting.popleft(), len(rows))
            if row is not None:
                rows.append(row)

    fill()
    while rows:
        pos = torch.tensor([r["pos"] for r in rows], device=device)
        cache.set_step(pos)
        allowed = (torch.arange(cache.width, device=device).unsqueeze(0) <= pos.unsqueeze(1)).unsqueeze(1)
        ids = torch.tensor([[r["tokens"][-1]] for r in rows], device=device)
        out = model(input_ids=ids, position_ids=pos.unsqueeze(1), attention_mask=_mask(allowed, model),
                    use_cache=True, **extra)
        u = torch.tensor([r["u"][len(r["tokens"])] for r in rows])
        history = [prompt_ids[r["key"][0]] + r["tokens"] for r in rows] if penalty else None
        logits = out.logits[:, -1, :]
        new = choose_tokens(logits, u, gc, history).tolist()
        if lookup is not None:  # a lookup the word does not allow: choose again among the allowed tags
            for slot, r in enumerate(rows):
                tags = None if r["forced"] else lookup.allowed(r["key"][0], r["tokens"], new[slot])
                if tags:
                    masked = torch.full_like(logits[slot:slot + 1], float("-inf"))
                    masked[0, tags] = logits[slot, tags]
                    new[slot] = int(choose_tokens(masked, u[slot:slot + 1], gc,
                                                  history[slot:slot + 1] if history else None)[0])
        ended = []
        for slot, (r, tok) in enumerate(zip(rows, new)):
            if r["forced"]:  # a looked-up premise's sentence, written as the prompt has it
                tok = r["forced"].popleft()
            r["tokens"].append(tok)
            r["pos"] += 1
            if lookup is not None and not r["forced"]:
                r["forced"].extend(lookup.after(r["key"][0], r["tokens"]))
            stopped = stop.done(r["stop"], r["tokens"])
            if stopped or len(r["tokens"]) >= gc.max_new_tokens:
                finished(r["key"], r["tokens"], stopped)
                ended.append(slot)
        for slot in reversed(ended):  # refill a freed slot, else move the last row into it (rows stay 0..n-1)
            row = None
            while waiting and row is None:
                row = start(waiting.popleft(), slot)
            if row is not None:
                rows[slot] = row
            else:
                tail = rows.pop()
                if slot < len(rows):
                    cache.move(len(rows), slot, tail["pos"])
                    rows[slot] = tail
        fill()


# ------------------------------------------------------------------------------------------ padded decoder

def _decode_padded(model, tokenizer, todo, prompt_ids, uniforms, gc, batch_size, finished):
    """transformers `generate` on left-padded batches of items (longest prompts first), with the checkpoint's own
    generation_config swapped out for ours, the per-item sampler as a logits processor and StopCheck as a
    stopping criterion."""
    from transformers import LogitsProcessor, LogitsProcessorList, StoppingCriteria, StoppingCriteriaList

    device = next(model.parameters()).device
    stop = StopCheck(tokenizer, gc.eos_token_id)
    order = sorted(todo, key=lambda it: (-len(prompt_ids[it[0]]), it))

    class Sampler(LogitsProcessor):
        def __init__(self, u, width):
            self.u, self.width = u, width

        def __call__(self, input_ids, scores):
            t = input_ids.shape[1] - self.width
            history = input_ids.tolist() if gc.repetition_penalty != 1.0 else None
            tok = choose_tokens(scores, self.u[:, t], gc, history)
            return torch.full_like(scores, float("-inf")).scatter_(1, tok.unsqueeze(1), 0.0)

    class Stop(StoppingCriteria):
        def __init__(self, width, rows):
            self.width, self.states = width, [stop.new_row() for _ in range(rows)]
            self.ended = [False] * rows

        def __call__(self, input_ids, scores, **kwargs):
            new = input_ids[:, self.width:].tolist()
            for r, toks in enumerate(new):
                if not self.ended[r] and toks:
                    self.ended[r] = stop.done(self.states[r], toks)
            return torch.tensor(self.ended, device=input_ids.device)

    from transformers import GenerationConfig as HFGenerationConfig

    # Greedy over the sampler's choice; nothing of the checkpoint's own generation_config is read.
    greedy = HFGenerationConfig(do_sample=False, num_beams=1, max_new_tokens=gc.max_new_tokens,
                                eos_token_id=list(gc.eos_token_id), pad_token_id=gc.pad_token_id)
    own, model.generation_config = model.generation_config, greedy
    try:
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            width = max(len(prompt_ids[i]) for i, _ in batch)
            ids = torch.full((len(batch), width), gc.pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, (i, _) in enumerate(batch):
                n = len(prompt_ids[i])
                ids[row, width - n:] = torch.tensor(prompt_ids[i])
                mask[row, width - n:] = 1
            u = torch.stack([uniforms(key) for key in batch]).to(device)
            criteria = Stop(width, len(batch))
            out = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), generation_config=greedy,
                                 logits_processor=LogitsProcessorList([Sampler(u, width)]),
                                 stopping_criteria=StoppingCriteriaList([criteria]))
            for row, (key, toks) in enumerate(zip(batch, out[:, width:].tolist())):
                states, tokens, stopped = stop.new_row(), [], False
                for t in toks:  # replay the stop check: where this row ended, before any padding
                    tokens.append(t)
                    if stop.done(states, tokens):
                        stopped = True
                        break
                    if len(tokens) >= gc.max_new_tokens:
                        break
                finished(key, tokens, stopped)
    finally:
        model.generation_config = own


# ------------------------------------------------------------------------------------------ partial file

def _fingerprint(model, gen_cfg, gc, seed, fmt) -> dict:
    """What a partial file's traces depend on; a partial file written under other settings is not reused."""
    return {"seed": seed, "do_sample": gc.do_sample, "temperature": gc.temperature, "top_p": gc.top_p,
            "top_k": gc.top_k, "min_p": gc.min_p, "repetition_penalty": gc.repetition_penalty,
            "max_new_tokens": gc.max_new_tokens, "backend": gen_cfg.backend,
            "format": None if fmt is None else [fmt.style, fmt.chat_template,
                                                *(getattr(fmt, name) for name in DECODING_OPTIONS)],
            "model": getattr(model, "oakdpo_path", None)}


class _Partial:
    """The partial traces file: a header line with the settings' fingerprint, then one trace per line. Each rank
    of a multi-rank run writes its own file (`<name>.rank<r>.jsonl`) and reads every rank's."""

    def __init__(self, path, fingerprint: dict):
        path = Path(path)
        world, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
        self.base = path
        self.path = path if world <= 1 else path.with_name(f"{path.stem}.rank{rank}{path.suffix}")
        self.header = {_PARTIAL_HEADER: fingerprint}

    def files(self) -> list[Path]:
        return [self.base] + sorted(self.base.parent.glob(f"{self.base.stem}.rank*{self.base.suffix}"))

    def read(self) -> list[dict]:
        """The traces in every partial file whose header matches; a line cut by a kill is skipped."""
        records = []
        for path in self.files():
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError):
                continue
            if not lines or self._load(lines[0]) != self.header:
                continue
            for line in lines[1:]:
                rec = self._load(line)
                if isinstance(rec, dict) and "text" in rec and "problem_id" in rec and "sample" in rec:
                    records.append(rec)
        return records

    @staticmethod
    def _load(line: str):
        try:
            return json.loads(line)
        except ValueError:
            return None

    def start(self, kept: list[dict]) -> None:
        """Rewrite this rank's file atomically with the header and the traces kept (dropping a cut line)."""
        from .io import write_jsonl

        write_jsonl(self.path, [self.header] + kept)

    def append(self, records: list[dict]) -> None:
        if not records:
            return
        data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def partial_files(path: str | os.PathLike) -> list[Path]:
    """Every partial file generate_traces(partial_path=path) may have written (one per rank), to delete once the
    final traces are written."""
    return [p for p in _Partial(path, {}).files() if p.exists()]


# ------------------------------------------------------------------------------------------ vLLM backend

def _generate_vllm(model, tokenizer, problems, prompt_ids, todo, gen_cfg, gc, seed, progress) -> dict:
    """generation.backend=vllm: one request per item, seeded with the item's seed (the engine's lifecycle, LoRA
    and GPU hand-over live in vllm_backend). The prompts go as token ids, encoded as the HF path encodes them, so
    a chat template that writes its own BOS does not get a second one. Stops where the HF path stops: the Final
    Answer line or an end token."""
    from . import vllm_backend

    sampling = dict(temperature=gc.temperature if gc.do_sample else 0.0, top_p=gc.top_p, min_p=gc.min_p,
                    repetition_penalty=gc.repetition_penalty, max_tokens=gc.max_new_tokens, stop=STOP_STRINGS,
                    include_stop_str_in_output=True, stop_token_ids=list(gc.eos_token_id))
    if gc.top_k:
        sampling["top_k"] = gc.top_k
    requests = [(prompt_ids[i], item_seed(seed, problems[i].id, s)) for i, s in todo]
    outs = vllm_backend.generate(model, requests, sampling, gen_cfg, progress=progress)
    records = {}
    for (i, s), (text, n, truncated) in zip(todo, outs):
        cut = cut_after_final_answer(text)
        if cut != text:  # the stop string may end inside a token: count what is kept
            n = len(tokenizer(cut, add_special_tokens=False)["input_ids"])
        records[(i, s)] = trace_record(problems[i].id, s, cut, num_tokens=n, truncated=truncated)
    return records


# ------------------------------------------------------------------------------------------ CLI

def cmd_generate(args) -> int:
    """`oakdpo generate`; under torchrun each rank generates a shard of the problems and rank 0 writes them all
    (the same traces as one process: every item's sampling stream depends on (seed, problem id, sample) only)."""
    from . import dist
    from .config import load_config
    from .data import read_problem_file
    from .io import write_jsonl
    from .model import load_policy

    cfg = load_config(args.config, args.set)
    problems = read_problem_file(args.problems, cfg.data.dataset)
    if args.limit:
        problems = problems[: args.limit]
    validate_generation(cfg.generation, do_sample=not args.greedy, temperature=args.temperature)
    with dist.job():
        model, tokenizer = load_policy(args.model, cfg.model)
        local = dist.shard(problems)
        traces = generate_traces(model, tokenizer, local, args.samples, cfg.generation, fmt=cfg.format,
                                 do_sample=not args.greedy, temperature=args.temperature,
                                 seed=args.seed) if local else []
        traces = dist.gather_lists(traces)
        if dist.is_main():
            write_jsonl(args.output, traces)
            print(f"wrote {len(traces)} traces to {args.output}", file=sys.stderr)
    return 0
