#!/usr/bin/env python3
"""Peak RSS of SFT and of one DPO iteration on the tiny model (configs/tiny.yaml), each in a fresh process.

DPO should need at most ~1.1x the memory of SFT: the reference log-probs are precomputed with the policy itself,
so no second full model is held in memory.

    python benchmarks/memory.py [--problems 256] [--config configs/tiny.yaml]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def child(stage: str, work: Path, config: str) -> None:
    """Run one stage in this process and print its peak RSS (MiB) as JSON."""
    from oakdpo.config import load_config
    from oakdpo.data import read_problems

    cfg = load_config(config)
    cfg.knowledge.enabled = False
    problems = read_problems(work / "problems.jsonl")
    if stage == "sft":
        from oakdpo.training import run_sft

        run_sft(cfg, problems, work / "init", work / "sft")
    else:
        from oakdpo.dpo import base_dpo_args, iteration_args, run_dpo
        from oakdpo.tasks.prontoqa.prompt import build_lookup_prompt as build_prompt
        from oakdpo.tasks.prontoqa.gold import gold_trace
        from oakdpo.model import load_policy

        pairs = []
        for p in problems:  # chosen: the gold trace; rejected: the same trace with the wrong final answer
            gold = gold_trace(p)
            wrong = "FALSE" if p.label == "TRUE" else "TRUE"
            pairs.append({"prompt": build_prompt(p), "chosen": gold,
                          "rejected": gold.rsplit("Final Answer:", 1)[0] + f"Final Answer: {wrong}"})
        model, tok = load_policy(work / "sft", cfg.model, for_training=True)
        args = iteration_args(base_dpo_args(cfg, work / "oak"), work / "oak", 0)
        run_dpo(model, tok, pairs, args, cfg, dataset_dir=work / "pairs_dataset")
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    print(json.dumps({"stage": stage, "peak_rss_mib": round(peak_mib, 1)}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--problems", type=int, default=256)
    ap.add_argument("--config", default=str(ROOT / "configs" / "tiny.yaml"))
    ap.add_argument("--child", choices=("sft", "dpo"))
    ap.add_argument("--work")
    a = ap.parse_args()
    if a.child:
        child(a.child, Path(a.work), a.config)
        return
    from oakdpo.config import load_config
    from oakdpo.tasks.prontoqa.generator import generate_problems
    from oakdpo.data import write_problems
    from oakdpo.tiny import build_corpus, init_tiny_model

    cfg = load_config(a.config)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        problems = generate_problems(a.problems, hops=(1, 5), seed=7)
        write_problems(work / "problems.jsonl", problems)
        init_tiny_model(cfg.model, build_corpus(problems), work / "init")
        peaks = {}
        for stage in ("sft", "dpo"):
            proc = subprocess.run([sys.executable, __file__, "--child", stage, "--work", str(work),
                                   "--config", a.config], capture_output=True, text=True)
            if proc.returncode != 0:
                sys.exit(f"{stage} failed:\n{proc.stderr[-3000:]}")
            peaks[stage] = json.loads(proc.stdout.strip().splitlines()[-1])["peak_rss_mib"]
    ratio = peaks["dpo"] / peaks["sft"]
    print(f"problems: {a.problems} (SFT on gold traces; DPO on as many pairs), config {a.config}")
    print(f"peak RSS  SFT: {peaks['sft']:.0f} MiB   DPO iteration: {peaks['dpo']:.0f} MiB   DPO/SFT: {ratio:.2f}x")
    print(json.dumps({"sft_peak_rss_mib": peaks["sft"], "dpo_peak_rss_mib": peaks["dpo"],
                      "dpo_over_sft": round(ratio, 3)}))


if __name__ == "__main__":
    main()
