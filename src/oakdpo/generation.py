"""Batched trace generation: the policy writes a trace after each problem's prompt.

The HF backend uses transformers `generate` on batches drawn across problems x samples: prompts sorted by
length (so a batch holds prompts of about the same length and little padding), left padding, the KV cache, a
stop on the Final Answer line (or EOS), max_new_tokens, temperature/top_p. Each batch is seeded from
(seed, batch index), so a fixed seed reproduces every text. An optional vLLM backend (generation.backend=vllm)
is used only when vLLM is installed and a GPU is present.

Traces come back in problem order, `samples` per problem, in the foundation format
{problem_id, sample, text} (plus num_tokens, the number of generated tokens).
"""

from __future__ import annotations

import os
import re
import sys

import torch
from tqdm.auto import tqdm

from .config import FormatConfig, GenerationConfig
from .io import UserError
from .prompting import Framing
from .trace import LABELS, Problem, trace_record

STOP_STRINGS = [f"Final Answer: {label}" for label in LABELS]
_FINAL_LINE = re.compile(r"Final Answer:[^\n]*")


def is_main() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def cut_after_final_answer(text: str) -> str:
    """Keep the text up to the end of its first 'Final Answer:' line (everything after it is dropped)."""
    m = _FINAL_LINE.search(text)
    return text[: m.end()].rstrip() if m else text


def _generated_length(row: list[int], stop_ids, pad_id: int | None) -> int:
    """Number of generated tokens in one row of new tokens: up to and including the first stop token (EOS, end
    of turn), else the non-pad ones."""
    stops = [row.index(s) for s in stop_ids if s in row]
    if stops:
        return min(stops) + 1
    n = len(row)
    while n and row[n - 1] == pad_id:
        n -= 1
    return n


def generate_traces(model, tokenizer, problems: list[Problem], samples: int, gen_cfg: GenerationConfig, *,
                    fmt: FormatConfig | None = None, do_sample: bool = True, temperature: float | None = None,
                    seed: int | None = None, progress: bool = True) -> list[dict]:
    """Generate `samples` traces per problem; returns trace dicts in problem order (sample 0..samples-1).

    do_sample=False is greedy decoding (then every sample of a problem is the same text). `temperature` and
    `seed` default to gen_cfg's. Assumes the tokenizer has a pad token (load_policy sets one).
    """
    if samples < 1:
        raise UserError(f"samples must be at least 1, got {samples}")
    temperature = gen_cfg.temperature if temperature is None else temperature
    seed = gen_cfg.seed if seed is None else seed
    framing = Framing(tokenizer, fmt)
    prompts = [framing.prompt(p).text for p in problems]
    if gen_cfg.backend == "vllm":
        return _generate_vllm(model, tokenizer, problems, prompts, samples, gen_cfg, do_sample, temperature, seed,
                              progress)
    if gen_cfg.backend != "hf":
        raise UserError(f"generation.backend: expected hf or vllm, got {gen_cfg.backend!r}")

    prompt_ids = [framing.encode(p) for p in prompts]
    # One item per (problem, sample); longest prompts first so lengths within a batch match and memory peaks early.
    items = sorted(((i, s) for i in range(len(problems)) for s in range(samples)),
                   key=lambda it: (-len(prompt_ids[it[0]]), it[0], it[1]))
    texts: dict[tuple[int, int], tuple[str, int]] = {}
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    stop_ids = framing.stop_token_ids(model)
    device = next(model.parameters()).device
    sampling = dict(do_sample=True, temperature=temperature, top_p=gen_cfg.top_p, top_k=0) if do_sample else \
        dict(do_sample=False, temperature=None, top_p=None, top_k=None)
    was_training = model.training
    model.eval()
    bar = tqdm(total=len(items), unit="trace", desc="generate", disable=not (progress and is_main()),
               file=sys.stderr)
    try:
        for b, start in enumerate(range(0, len(items), gen_cfg.batch_size)):
            batch = items[start:start + gen_cfg.batch_size]
            width = max(len(prompt_ids[i]) for i, _ in batch)
            ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, (i, _) in enumerate(batch):  # left padding: the prompt ends where generation begins
                n = len(prompt_ids[i])
                ids[row, width - n:] = torch.tensor(prompt_ids[i])
                mask[row, width - n:] = 1
            torch.manual_seed(seed * 1_000_003 + b)  # per-batch seed: reproducible whatever ran before
            with torch.inference_mode():
                out = model.generate(
                    input_ids=ids.to(device), attention_mask=mask.to(device), max_new_tokens=gen_cfg.max_new_tokens,
                    stop_strings=STOP_STRINGS, tokenizer=tokenizer, pad_token_id=pad_id,
                    eos_token_id=stop_ids, use_cache=True, **sampling)
            new = out[:, width:].tolist()
            for row, key in enumerate(batch):
                n = _generated_length(new[row], stop_ids, pad_id)
                text = tokenizer.decode(new[row][:n], skip_special_tokens=True)
                texts[key] = (cut_after_final_answer(text), n)
            bar.update(len(batch))
    finally:
        bar.close()
        model.train(was_training)
    return [trace_record(p.id, s, texts[(i, s)][0], num_tokens=texts[(i, s)][1])
            for i, p in enumerate(problems) for s in range(samples)]


_VLLM_ENGINES: dict = {}
_VLLM_LORA_IDS: dict = {}


def _generate_vllm(model, tokenizer, problems, prompts, samples, gen_cfg, do_sample, temperature, seed, progress):
    """vLLM backend: the engine loads the checkpoint folder the policy came from (a LoRA adapter is applied as a
    LoRARequest). Imported lazily; needs vLLM and a CUDA GPU."""
    try:
        import vllm
        from vllm.lora.request import LoRARequest
    except ImportError:
        raise UserError("generation.backend=vllm: vllm is not installed; install it or set generation.backend=hf") \
            from None
    if not torch.cuda.is_available():
        raise UserError("generation.backend=vllm needs a CUDA GPU; set generation.backend=hf on CPU")
    path = getattr(model, "oakdpo_path", None) or getattr(model, "name_or_path", None)
    adapter = getattr(model, "oakdpo_adapter", None)
    base = getattr(model, "oakdpo_base", None) or path
    if not path or not os.path.isdir(str(base)):
        raise UserError("generation.backend=vllm: the policy must be loaded from a local folder (load_policy)")
    key = (str(base), adapter is not None)
    if key not in _VLLM_ENGINES:
        tok_path = path if os.path.isfile(os.path.join(str(path), "tokenizer_config.json")) else base
        lora_kwargs = dict(enable_lora=True, max_lora_rank=64) if adapter else {}
        _VLLM_ENGINES[key] = vllm.LLM(model=str(base), tokenizer=str(tok_path), seed=seed,
                                      gpu_memory_utilization=gen_cfg.vllm_gpu_memory_utilization, **lora_kwargs)
    llm = _VLLM_ENGINES[key]
    params = vllm.SamplingParams(
        n=samples, temperature=temperature if do_sample else 0.0, top_p=gen_cfg.top_p if do_sample else 1.0,
        max_tokens=gen_cfg.max_new_tokens, seed=seed, stop=STOP_STRINGS, include_stop_str_in_output=True)
    lora = None
    if adapter:  # vLLM caches adapters by id: a new adapter folder (a new iteration) needs a new id
        lora_id = _VLLM_LORA_IDS.setdefault(str(adapter), len(_VLLM_LORA_IDS) + 1)
        lora = LoRARequest(f"policy-{lora_id}", lora_id, str(adapter))
    outs = llm.generate(prompts, params, lora_request=lora,
                        use_tqdm=progress and is_main())
    return [trace_record(p.id, s, cut_after_final_answer(o.outputs[s].text), num_tokens=len(o.outputs[s].token_ids))
            for p, o in zip(problems, outs) for s in range(samples)]


def cmd_generate(args) -> int:
    from .config import load_config
    from .data import read_problem_file
    from .io import write_jsonl
    from .model import load_policy

    cfg = load_config(args.config, args.set)
    problems = read_problem_file(args.problems, cfg.data.dataset)
    if args.limit:
        problems = problems[: args.limit]
    model, tokenizer = load_policy(args.model, cfg.model)
    traces = generate_traces(model, tokenizer, problems, args.samples, cfg.generation, fmt=cfg.format,
                             do_sample=not args.greedy,
                             temperature=args.temperature, seed=args.seed)
    write_jsonl(args.output, traces)
    print(f"wrote {len(traces)} traces to {args.output}", file=sys.stderr)
    return 0


def add_cli(sub) -> None:
    p = sub.add_parser("generate", help="Sample traces from a policy for each problem.")
    p.add_argument("--model", required=True, help="Local HF checkpoint folder or LoRA adapter folder.")
    p.add_argument("--problems", required=True, help="problems.jsonl or an original PrOntoQA .json file.")
    p.add_argument("--samples", type=int, default=1, help="Traces per problem.")
    p.add_argument("-o", "--output", required=True, help="traces.jsonl to write.")
    p.add_argument("--config", default=None, help="YAML config (generation section).")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="Config override.")
    p.add_argument("--seed", type=int, default=None, help="Sampling seed (default: generation.seed).")
    p.add_argument("--temperature", type=float, default=None, help="Default: generation.temperature.")
    p.add_argument("--greedy", action="store_true", help="Greedy decoding instead of sampling.")
    p.add_argument("--limit", type=int, default=0, help="Only the first N problems (0: all).")
    p.set_defaults(func=cmd_generate)
