"""Throughput of trace generation: one sequence at a time, the padded batches of transformers `generate`, and
oakdpo's continuous batching, on the same model, problems and settings, with each path's peak memory.

Problems: N five-hop problems of our generator (get_task("prontoqa").generate(N, seed, hops=5)), S samples each,
temperature 0.7, top_p 1, T torch threads. Each path runs in a fresh subprocess (so each peak RSS is its own);
the timed part is generate_traces alone (model loaded, prompts framed inside it as in every caller).

- one at a time: the padded path below with batch_size 1 (on the first --one-problems problems: it is slow).
- padded: the HF path as it was before continuous batching, reimplemented here as it ran: items sorted by
  prompt length, left-padded batches of batch_size, `model.generate` with stop_strings on the Final Answer line,
  one torch seed per batch.
- continuous: oakdpo.generation.generate_traces.
- continuous + lookup decoding: the same with the lookup style's decoding options (format.lookup_decoding,
  citation_decoding, numbering_decoding, dead_end_decoding) as the config sets them (configs/tiny.yaml: on), which
  the padded path cannot do; the three rows above run without them, so they compare the same work.

A trained model gives realistic trace lengths: pass --model DIR (a tiny SFT model of configs/tiny.yaml's format).
Without one, a fresh tiny model (random weights) is built and max_new_tokens is set to the gold traces' median
length, so every trace runs that long; the output says which.

    python benchmarks/generation.py [--model DIR] [--problems 100] [--samples 2] [--threads 2]
        [--batch-size 64] [--sweep 16,32,64,128]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def padded_generate(model, tokenizer, problems, samples, gen_cfg, *, fmt, do_sample=True, temperature=None,
                    seed=None):
    """The HF path before continuous batching, as it ran (stop_strings, one seed per batch, left padding)."""
    import torch

    from oakdpo.generation import STOP_STRINGS, cut_after_final_answer
    from oakdpo.prompting import Framing
    from oakdpo.trace import trace_record

    def generated_length(row, stop_ids, pad_id):
        stops = [row.index(s) for s in stop_ids if s in row]
        if stops:
            return min(stops) + 1
        n = len(row)
        while n and row[n - 1] == pad_id:
            n -= 1
        return n

    temperature = gen_cfg.temperature if temperature is None else temperature
    seed = gen_cfg.seed if seed is None else seed
    framing = Framing(tokenizer, fmt)
    prompts = [framing.prompt(p).text for p in problems]
    prompt_ids = [framing.encode(p) for p in prompts]
    items = sorted(((i, s) for i in range(len(problems)) for s in range(samples)),
                   key=lambda it: (-len(prompt_ids[it[0]]), it[0], it[1]))
    texts = {}
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    stop_ids = framing.stop_token_ids(model)
    sampling = dict(do_sample=True, temperature=temperature, top_p=gen_cfg.top_p, top_k=0) if do_sample else \
        dict(do_sample=False, temperature=None, top_p=None, top_k=None)
    model.eval()
    for b, start in enumerate(range(0, len(items), gen_cfg.batch_size)):
        batch = items[start:start + gen_cfg.batch_size]
        width = max(len(prompt_ids[i]) for i, _ in batch)
        ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, (i, _) in enumerate(batch):
            n = len(prompt_ids[i])
            ids[row, width - n:] = torch.tensor(prompt_ids[i])
            mask[row, width - n:] = 1
        torch.manual_seed(seed * 1_000_003 + b)
        with torch.inference_mode():
            out = model.generate(
                input_ids=ids, attention_mask=mask, max_new_tokens=gen_cfg.max_new_tokens,
                stop_strings=STOP_STRINGS, tokenizer=tokenizer, pad_token_id=pad_id,
                eos_token_id=stop_ids, use_cache=True, **sampling)
        new = out[:, width:].tolist()
        for row, key in enumerate(batch):
            n = generated_length(new[row], stop_ids, pad_id)
            texts[key] = (cut_after_final_answer(tokenizer.decode(new[row][:n], skip_special_tokens=True)), n)
    return [trace_record(p.id, s, texts[(i, s)][0], num_tokens=texts[(i, s)][1])
            for i, p in enumerate(problems) for s in range(samples)]


def worker(args) -> None:
    """One timed run in this process; prints one JSON line."""
    import resource

    import torch

    torch.set_num_threads(args.threads)
    from oakdpo.config import load_config
    from oakdpo.data import read_problem_file
    from oakdpo.generation import DECODING_OPTIONS, generate_traces
    from oakdpo.model import load_policy

    cfg = load_config(args.config)
    problems = read_problem_file(args.problem_file, "prontoqa")[: args.limit or None]
    model, tok = load_policy(args.model, cfg.model)
    gen = cfg.generation
    gen.max_new_tokens, gen.temperature, gen.top_p, gen.seed = args.max_new_tokens, args.temperature, 1.0, 0
    gen.batch_size = args.batch_size
    for name in DECODING_OPTIONS:
        setattr(cfg.format, name, getattr(cfg.format, name) and args.worker == "lookup")
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    if args.worker in ("continuous", "lookup"):
        traces = generate_traces(model, tok, problems, args.samples, gen, fmt=cfg.format, progress=False)
    else:
        traces = padded_generate(model, tok, problems, args.samples, gen, fmt=cfg.format)
    wall = time.perf_counter() - t0
    print(json.dumps({"traces": len(traces), "tokens": sum(t["num_tokens"] for t in traces), "wall_s": wall,
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "rss_before_mib": rss_before / 1024,
                      "truncated": sum(bool(t.get("truncated")) for t in traces),
                      "answered": sum("Final Answer:" in t["text"] for t in traces)}))


def run_worker(mode, args, model, problem_file, batch_size, max_new_tokens, limit=0) -> dict:
    cmd = [sys.executable, __file__, "--worker", mode, "--model", str(model), "--problem-file", str(problem_file),
           "--samples", str(args.samples), "--threads", str(args.threads), "--batch-size", str(batch_size),
           "--max-new-tokens", str(max_new_tokens), "--temperature", str(args.temperature), "--config", args.config,
           "--limit", str(limit)]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        sys.exit(f"{mode} failed:\n{out.stderr[-3000:]}")
    r = json.loads(out.stdout.strip().splitlines()[-1])
    r["traces_per_s"], r["tokens_per_s"] = r["traces"] / r["wall_s"], r["tokens"] / r["wall_s"]
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "tiny.yaml"))
    ap.add_argument("--model", default=None, help="Trained model folder (default: a fresh tiny model).")
    ap.add_argument("--problems", type=int, default=100)
    ap.add_argument("--hops", type=int, default=5)
    ap.add_argument("--samples", type=int, default=2)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64, help="Batch size of the padded and continuous paths.")
    ap.add_argument("--sweep", default="", help="Also time the continuous path at these batch sizes, e.g. 16,32,128.")
    ap.add_argument("--one-problems", type=int, default=10, help="Problems timed one sequence at a time.")
    ap.add_argument("--max-new-tokens", type=int, default=None, help="Default: the config's (trained model), the "
                    "gold traces' median length (fresh model).")
    ap.add_argument("--seed", type=int, default=123, help="Seed of the problem generator.")
    # worker-only
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--problem-file", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--limit", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)

    from oakdpo.config import load_config
    from oakdpo.data import write_problems
    from oakdpo.generation import DECODING_OPTIONS
    from oakdpo.model import load_policy
    from oakdpo.tasks import get_task

    cfg = load_config(args.config)
    task = get_task("prontoqa")
    problems = task.generate(args.problems, seed=args.seed, hops=args.hops)
    with tempfile.TemporaryDirectory() as tmp:
        problem_file = Path(tmp) / "problems.jsonl"
        write_problems(problem_file, problems)
        model = args.model
        if model is None:
            from oakdpo.tiny import build_corpus, init_tiny_model

            model = Path(tmp) / "tiny"
            init_tiny_model(cfg.model, build_corpus(task.generate(300, seed=0, hops=(1, 5))), model)
        _, tok = load_policy(model, cfg.model)
        gold = [len(tok(task.gold_trace(p, cfg.format.style), add_special_tokens=False)["input_ids"]) for p in problems]
        if args.max_new_tokens is not None:
            max_new = args.max_new_tokens
        elif args.model is None:
            max_new = int(statistics.median(gold))
        else:
            max_new = cfg.generation.max_new_tokens
        which = f"trained model {args.model}" if args.model else \
            f"fresh tiny model (random weights; max_new_tokens = the gold traces' median, {max_new})"
        print(f"model: {which}")
        print(f"{args.problems} {args.hops}-hop problems x {args.samples} samples, temperature {args.temperature}, "
              f"top_p 1.0, max_new_tokens {max_new}, {args.threads} threads; gold traces {min(gold)}-{max(gold)} "
              f"tokens (median {statistics.median(gold):.0f})")
        rows = []
        one = run_worker("padded", args, model, problem_file, 1, max_new, limit=args.one_problems)
        rows.append((f"one at a time ({args.one_problems} problems)", one))
        padded = run_worker("padded", args, model, problem_file, args.batch_size, max_new)
        rows.append((f"padded batches (batch_size={args.batch_size})", padded))
        cont = run_worker("continuous", args, model, problem_file, args.batch_size, max_new)
        rows.append((f"continuous (batch_size={args.batch_size})", cont))
        if any(getattr(cfg.format, name) for name in DECODING_OPTIONS):
            rows.append(("continuous + lookup decoding", run_worker("lookup", args, model, problem_file,
                                                                    args.batch_size, max_new)))
        for b in [int(x) for x in args.sweep.split(",") if x.strip()]:
            if b != args.batch_size:
                rows.append((f"continuous (batch_size={b})", run_worker("continuous", args, model, problem_file, b,
                                                                        max_new)))
    print(f"{'path':38s} {'traces':>6s} {'tokens':>7s} {'wall s':>7s} {'traces/s':>9s} {'tokens/s':>9s} "
          f"{'peak RSS MiB':>12s} {'answered':>8s}")
    for name, r in rows:
        print(f"{name:38s} {r['traces']:6d} {r['tokens']:7d} {r['wall_s']:7.2f} {r['traces_per_s']:9.2f} "
              f"{r['tokens_per_s']:9.1f} {r['peak_rss_mib']:12.0f} {r['answered']:8d}")
    print(f"continuous / padded batches: {cont['traces_per_s'] / padded['traces_per_s']:.2f}x traces/s, "
          f"{cont['tokens_per_s'] / padded['tokens_per_s']:.2f}x tokens/s")


if __name__ == "__main__":
    main()
