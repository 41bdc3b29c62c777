"""Throughput of trace generation: batched across problems x samples vs one sequence at a time.

Same model, problems and sampling settings for both runs; prints traces/s, tokens/s and the speed-up.
By default the model is a fresh tiny model with the sizes of configs/tiny.yaml (random weights, so every trace
runs to max_new_tokens and both runs generate the same number of tokens); pass --model DIR for a trained one.

    python benchmarks/generation.py [--model DIR] [--problems 32] [--samples 2] [--batch-size 64]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from oakdpo.config import load_config  # noqa: E402
from oakdpo.tasks.prontoqa.generator import generate_problems  # noqa: E402
from oakdpo.generation import generate_traces  # noqa: E402
from oakdpo.tiny import build_corpus, init_tiny_model  # noqa: E402
from oakdpo.model import load_policy  # noqa: E402


def run(model, tok, problems, samples, gen_cfg) -> dict:
    t0 = time.perf_counter()
    traces = generate_traces(model, tok, problems, samples, gen_cfg, do_sample=True, progress=False)
    wall = time.perf_counter() - t0
    tokens = sum(t["num_tokens"] for t in traces)
    return {"traces": len(traces), "tokens": tokens, "wall_s": wall, "traces_per_s": len(traces) / wall,
            "tokens_per_s": tokens / wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "tiny.yaml"))
    ap.add_argument("--model", default=None, help="Model folder (default: a fresh tiny model).")
    ap.add_argument("--problems", type=int, default=32)
    ap.add_argument("--samples", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    args = ap.parse_args()

    cfg = load_config(args.config)
    problems = generate_problems(args.problems, (1, 5), seed=123)
    with tempfile.TemporaryDirectory() as tmp:
        path = args.model
        if path is None:
            path = Path(tmp) / "tiny"
            init_tiny_model(cfg.model, build_corpus(generate_problems(300, (1, 5), seed=0)), path)
        model, tok = load_policy(path, cfg.model)
    gen = cfg.generation
    gen.max_new_tokens, gen.temperature, gen.top_p, gen.seed = args.max_new_tokens, 1.0, 1.0, 0
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params / 1e6:.2f}M parameters; {args.problems} problems x {args.samples} samples; "
          f"temperature 1.0, top_p 1.0, max_new_tokens {gen.max_new_tokens}")
    gen.batch_size = 1
    one = run(model, tok, problems, args.samples, gen)
    gen.batch_size = args.batch_size
    batched = run(model, tok, problems, args.samples, gen)
    for name, r in ((f"batched (batch_size={args.batch_size})", batched), ("one at a time", one)):
        print(f"{name:28s} {r['traces']:5d} traces {r['tokens']:7d} tokens {r['wall_s']:8.2f} s "
              f"{r['traces_per_s']:8.2f} traces/s {r['tokens_per_s']:9.1f} tokens/s")
    print(f"speed-up (tokens/s, batched / one at a time): {batched['tokens_per_s'] / one['tokens_per_s']:.1f}x")


if __name__ == "__main__":
    main()
