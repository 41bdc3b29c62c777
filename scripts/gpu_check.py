#!/usr/bin/env python3
"""The GPU check (scripts/gpu_check.sh runs it): what a researcher's first run on a GPU machine exercises, on a
random-init stand-in of about Qwen2-0.5B's shapes, in bf16, with nothing downloaded.

Steps, each timed, with peak GPU memory (torch.cuda.max_memory_allocated, reset per stage):
  1. environment: torch, CUDA, the GPU, bf16 support, whether vLLM imports
  2. NCCL: a 1-rank NCCL process group and an all_reduce on the GPU (initialised or not, and why)
  3. the stand-in: Qwen2 shapes (24 layers, hidden 896, 14 heads, 2 KV heads), a locally trained tokenizer with a
     ChatML template, bf16 (oakdpo.standin)
  4. SFT with LoRA (configs/training.yaml's settings, a short schedule) on our generator's problems
  5. one OaK iteration with the HF backend: generation (traces/s, tokens/s), verification, pairs, q-hat, DPO,
     evaluation
  6. when vLLM imports: the same generation with generation.backend=vllm, traces/s side by side with HF
It prints each row as its step ends (OUT/gpu_check.json is rewritten each time, so a run cut short keeps them).
`--smoke` runs the same steps on the CPU with a tiny stand-in (to check the script itself; figures meaningless). Budget: under 8 minutes on one H200.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def _mem_reset():
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def _mem_peak_gib() -> float | None:
    import torch

    if not torch.cuda.is_available():
        return None
    torch.cuda.synchronize()
    return round(torch.cuda.max_memory_allocated() / 2**30, 2)


def _nccl() -> dict:
    import torch
    import torch.distributed as tdist

    if not torch.cuda.is_available():
        return {"nccl": "no CUDA"}
    t0 = time.time()
    try:
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", "29533")
        tdist.init_process_group("nccl", rank=0, world_size=1)
        x = torch.ones(1024, device="cuda")
        tdist.all_reduce(x)
        torch.cuda.synchronize()
        ok = bool(x[0].item() == 1.0)
        tdist.destroy_process_group()
        return {"nccl": "initialised" if ok else "all_reduce gave a wrong value", "nccl_s": round(time.time() - t0, 2)}
    except Exception as e:  # report it: the check goes on
        return {"nccl": f"failed: {type(e).__name__}: {str(e).splitlines()[0][:160]}"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/gpu_check")
    ap.add_argument("--smoke", action="store_true", help="CPU, tiny stand-in: checks the script, not the GPU")
    ap.add_argument("--problems", type=int, default=100, help="training problems of the OaK iteration")
    ap.add_argument("--samples", type=int, default=2)
    args = ap.parse_args()

    import torch

    from oakdpo.config import load_config
    from oakdpo.data import write_problems
    from oakdpo.evaluation import evaluate
    from oakdpo.generation import generate_traces
    from oakdpo.loop import run_oak
    from oakdpo.model import load_policy
    from oakdpo.standin import build_standin
    from oakdpo.tasks import get_task
    from oakdpo.training import run_sft

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows: dict[str, dict] = {}

    def record(name: str, vals: dict) -> None:
        """Print a row as soon as its step ends and rewrite OUT/gpu_check.json: a run cut short keeps its rows."""
        rows[name] = vals
        print(f"{name:18s} {json.dumps(vals)}", flush=True)
        (out / "gpu_check.json").write_text(json.dumps(rows, indent=2) + "\n")
    cuda = torch.cuda.is_available()
    try:
        import vllm  # noqa: F401
        has_vllm = True
    except Exception as e:  # ImportError, or a CUDA/driver mismatch inside vllm
        has_vllm = f"not importable: {type(e).__name__}"
    record("environment", {"torch": torch.__version__, "cuda": torch.version.cuda,
                           "gpu": torch.cuda.get_device_name(0) if cuda else None,
                           "bf16": bool(cuda and torch.cuda.is_bf16_supported()), "vllm": has_vllm})
    record("nccl", _nccl())
    if not cuda and not args.smoke:
        print("no CUDA GPU visible; run with --smoke to check the script on the CPU", file=sys.stderr)
        return 2

    size, dtype = ("tiny", "float32") if args.smoke else ("0.5b", "bfloat16")
    t0 = time.time()
    # Qwen2-0.5B's embedding rows (151,936), a 4,096-token local tokenizer: 0.49B parameters, tied embeddings.
    model_dir = build_standin("qwen2", out / "standin", size=size, dtype=dtype, vocab_size=4096,
                              model_vocab=151936 if not args.smoke else 4096 + 64)
    n_params = sum(p.numel() for p in load_policy(model_dir)[0].parameters())
    record("standin", {"parameters": n_params, "s": round(time.time() - t0, 1)})

    overrides = [f"model.dtype={dtype}", "sft.report_to=none", "dpo.report_to=none", "sft.epochs=1",
                 "sft.save_steps=0", "dpo.save_steps=0", "oak.train_problems_per_iter=0", "oak.val_problems=0",
                 "generation.max_new_tokens=256", "eval.max_new_tokens=256", "generation.batch_size=64",
                 "eval.batch_size=64", "knowledge.max_traces=200"]
    if args.smoke:
        overrides += ["generation.max_new_tokens=16", "eval.max_new_tokens=16", "sft.activation_checkpointing=false",
                      "dpo.activation_checkpointing=false"]
    cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / "training.yaml", overrides)
    task = get_task("prontoqa")
    n_train = 16 if args.smoke else args.problems
    train = task.generate(max(n_train, 64 if not args.smoke else 8), seed=101, hops=(1, 3))
    val = task.generate(8 if args.smoke else 50, seed=102, hops=(1, 3))
    write_problems(out / "train.jsonl", train)

    _mem_reset()
    t0 = time.time()
    sft = run_sft(cfg, train, model_dir, out / "sft", log_dir=out / "logs" / "sft")
    record("sft_lora", {"steps": sft["steps"], "s": round(time.time() - t0, 1), "peak_gib": _mem_peak_gib()})

    def gen_figures(backend: str) -> dict:
        import dataclasses

        gen = dataclasses.replace(cfg.generation, backend=backend)
        model, tok = load_policy(out / "sft", cfg.model)
        # One trace first, outside the timing: vLLM builds its engine (weights, profiling, CUDA graphs) there,
        # and both backends load their kernels.
        t = time.time()
        generate_traces(model, tok, train[:1], 1, gen, fmt=cfg.format, progress=False)
        warmup = time.time() - t
        _mem_reset()
        t = time.time()
        traces = generate_traces(model, tok, train[:n_train], args.samples, gen, fmt=cfg.format, progress=False)
        wall = time.time() - t
        tokens = sum(x.get("num_tokens", 0) for x in traces)
        del model
        row = {"traces": len(traces), "traces_per_s": round(len(traces) / wall, 2),
               "tokens_per_s": round(tokens / wall, 1), "s": round(wall, 1), "warmup_s": round(warmup, 1)}
        if backend == "hf":
            row["peak_gib"] = _mem_peak_gib()
        else:  # vLLM's engine allocates outside this process's PyTorch allocator: its share is what it was given
            row["gpu_memory_utilization"] = gen.vllm_gpu_memory_utilization
        return row

    record("generate_hf", gen_figures("hf"))
    if has_vllm is True:
        try:
            vl = gen_figures("vllm")
            record("generate_vllm", {**vl, "vs_hf": round(vl["traces_per_s"] / rows["generate_hf"]["traces_per_s"], 2)})
        except Exception as e:
            record("generate_vllm", {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"})
        finally:
            from oakdpo import vllm_backend

            vllm_backend.shutdown()

    _mem_reset()
    t0 = time.time()
    metrics = run_oak(cfg, sft_model=out / "sft", train=train[:n_train], eval_sets={"val": val},
                      output_dir=out / "oak", iterations=1, samples=args.samples)[0]
    st = metrics["stages"]
    stages = {k: v for k, v in st.items() if isinstance(v, dict)}
    record("oak_iteration_hf", {"s": round(time.time() - t0, 1), "peak_gib": _mem_peak_gib(),
                                **{f"{k}_s": v.get("wall_s") for k, v in stages.items()},
                                **{f"{k}_peak_gib": v.get("peak_gpu_gib") for k, v in stages.items()},
                                "pairs": st.get("pairs", {}).get("pairs"), "dpo_steps": st.get("dpo", {}).get("steps"),
                                "val_trace_validity": metrics["eval"]["val"]["trace_validity"]})
    _mem_reset()
    model, tok = load_policy(out / "oak" / "dpo" / "iter_0", cfg.model)
    t0 = time.time()
    ev = evaluate(model, tok, val, cfg, out_dir=out / "eval", progress=False)
    record("eval", {"traces": ev["traces"], "s": round(time.time() - t0, 1), "peak_gib": _mem_peak_gib()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
