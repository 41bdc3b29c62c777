#!/usr/bin/env python3
"""Time of one SFT step of the tiny model (configs/tiny.yaml) in float32 and under bf16 autocast, on this CPU.

Whether bf16 autocast pays on a CPU depends on its hardware: with AVX512-BF16 or AMX it runs the tiny model's
steps faster than float32; without (AVX2 only) torch emulates bf16 and the steps run many times slower. This is
why `model.mixed_precision: bf16` autocasts only where trainers.native_bf16 finds bf16 hardware.

One step: a batch of random token rows of one length, forward, cross-entropy on every position, backward and an
AdamW step, the weights in float32, with each attention kernel (tiny.yaml uses eager). The median of --steps steps
after one warm-up step, for each row length. --compile also times each kind under torch.compile (dynamic shapes; the
compilation happens in the warm-up step and is not counted). Two runs at once with --batch 4 --threads 1 show what
two data-parallel processes would do on a 2-core CPU.

    python benchmarks/sft_step.py [--lengths 200,400,700] [--batch 8] [--steps 5] [--threads 2] [--attention eager,sdpa]
                                  [--precision float32,bf16] [--compile]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402


def step_seconds(model, rows: torch.Tensor, bf16: bool, steps: int) -> float:
    """Median seconds of one training step after a warm-up step."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext():
            loss = model(input_ids=rows, labels=rows).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "tiny.yaml"))
    ap.add_argument("--lengths", default="200,400,700", help="Row lengths in tokens, comma-separated.")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--attention", default="eager,sdpa", help="transformers attention kernels, comma-separated.")
    ap.add_argument("--precision", default="float32,bf16", help="float32 and/or bf16 (autocast), comma-separated.")
    ap.add_argument("--compile", action="store_true", help="Also time each kind under torch.compile.")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from oakdpo.config import load_config
    from oakdpo.model import attention
    from oakdpo.tasks import get_task
    from oakdpo.tiny import build_corpus, build_tiny_model, train_tokenizer
    from oakdpo.trainers import native_bf16

    cfg = load_config(args.config)
    tok = train_tokenizer(build_corpus(get_task("prontoqa").generate(300, seed=0, hops=(1, 5))), cfg.model.vocab_size)
    print(f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}, bf16 hardware: "
          f"{native_bf16(False)}; batch {args.batch}, {args.threads} threads, median of {args.steps} steps")
    precisions = args.precision.split(",")
    if not set(precisions) <= {"float32", "bf16"}:
        ap.error(f"--precision: float32 and/or bf16, not {args.precision!r}")
    kinds = [(attn, p == "bf16", compiled) for attn in args.attention.split(",") for p in precisions
             for compiled in ((False, True) if args.compile else (False,))]
    print("| longest row | " + " | ".join(f"{attn}, {'bf16' if bf16 else 'float32'}{', compiled' if compiled else ''}"
                                         for attn, bf16, compiled in kinds) + " |")
    print("|---" * (len(kinds) + 1) + "|")
    for length in (int(x) for x in args.lengths.split(",")):
        rows = torch.randint(0, len(tok), (args.batch, length), generator=torch.Generator().manual_seed(0))
        seconds = []
        for attn, bf16, compiled in kinds:
            model = build_tiny_model(cfg.model, tok, seed=0).train()
            with attention(model, attn):
                seconds.append(step_seconds(torch.compile(model, dynamic=True) if compiled else model, rows, bf16,
                                            args.steps))
        print(f"| {length} tokens | " + " | ".join(f"{x:.3f} s" for x in seconds) + " |")

if __name__ == "__main__":
    main()
