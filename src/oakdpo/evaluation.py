"""Evaluation: greedy traces (sampling optional), strict verification, metrics overall and by hop count.

`evaluate` writes, when given an output folder (each file atomically):
    metrics.json     {accuracy, step_validity, trace_validity, conclude_support, traces, reasoning_steps,
                      problems, invalid_ids, by_hops: {"1": {...same keys...}, ...}, generation: {...}}
    traces.jsonl     {problem_id, sample, text, num_tokens}
    verdicts.jsonl   one strict verdict per trace (verify.verify_traces)
    summary.md       the same figures as a table
"""

from __future__ import annotations

import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import dataclasses

from .config import Config
from .io import UserError, write_json, write_jsonl, write_text
from .trace import Problem

METRIC_KEYS = ("accuracy", "step_validity", "trace_validity", "conclude_support")


def metrics_by_hops(problems: list[Problem], verdicts: list[dict]) -> dict:
    """verify.summarize per hop count ("unknown" when a problem has no hops), keys sorted numerically."""
    from .verify import summarize

    hops = {p.id: p.hops for p in problems}
    groups: dict[str, list[dict]] = defaultdict(list)
    for v in verdicts:
        h = hops.get(v["problem_id"])
        groups["unknown" if h is None else str(h)].append(v)
    order = sorted(groups, key=lambda k: (k == "unknown", int(k) if k != "unknown" else 0))
    return {k: summarize(groups[k]) for k in order}


def summary_markdown(metrics: dict) -> str:
    """A small markdown table: overall and per hop count."""
    cols = ("traces", *METRIC_KEYS)
    lines = ["# Evaluation", "", "| hops | " + " | ".join(cols) + " |", "|" + "---|" * (len(cols) + 1)]

    def row(name, m):
        cells = [str(m["traces"])] + [f"{100 * m[k]:.1f}%" for k in METRIC_KEYS]
        return f"| {name} | " + " | ".join(cells) + " |"

    lines.append(row("all", metrics))
    for h, m in metrics["by_hops"].items():
        lines.append(row(h, m))
    g = metrics.get("generation", {})
    if g:
        lines += ["", f"Generation: {g['traces']} traces in {g['wall_s']:.1f} s "
                  f"({g['traces_per_s']:.2f} traces/s, {g['tokens_per_s']:.1f} tokens/s), "
                  f"{'sampled' if g['do_sample'] else 'greedy'}."]
    return "\n".join(lines) + "\n"


def _eval_generation(cfg: Config):
    """The generation settings evaluation uses: the run's backend, the eval section's batch and sampling."""
    e = cfg.eval
    return dataclasses.replace(cfg.generation, batch_size=e.batch_size, max_new_tokens=e.max_new_tokens,
                               temperature=e.temperature, seed=e.seed)


def evaluate(model, tokenizer, problems: list[Problem], cfg: Config, out_dir: str | Path | None = None,
             progress: bool = True) -> dict:
    """Generate one trace per problem (greedy unless eval_cfg.do_sample), verify strictly and return metrics.

    The metrics dict has accuracy, step_validity, trace_validity, conclude_support, traces, reasoning_steps
    (verify.summarize), problems, by_hops and generation (timing). With out_dir, writes the four files above.
    Under torch.distributed each rank generates a shard of the problems; rank 0 verifies and writes, and every
    rank returns the same metrics.
    """
    from . import dist
    from .generation import generate_traces

    if not problems:
        raise UserError("eval: no problems to evaluate")
    eval_cfg = cfg.eval
    t0 = time.time()
    local = dist.shard(problems)
    traces = generate_traces(model, tokenizer, local, 1, _eval_generation(cfg), fmt=cfg.format,
                             do_sample=eval_cfg.do_sample, seed=eval_cfg.seed,
                             progress=progress) if local else []
    traces = dist.gather_lists(traces)
    metrics = None
    if dist.is_main():
        metrics = evaluate_traces(problems, traces, time.time() - t0, eval_cfg.do_sample, cfg, out_dir,
                                  progress=progress)
    return dist.broadcast_object(metrics)


def evaluate_traces(problems: list[Problem], traces: list[dict], wall: float, do_sample: bool, cfg: Config,
                    out_dir: str | Path | None = None, progress: bool = True) -> dict:
    """Verify `traces` strictly, compute the metrics (overall, by hops, generation timing) and, with out_dir,
    write metrics.json, traces.jsonl, verdicts.jsonl and summary.md."""
    from .verify import summarize, verify_traces

    verdicts = verify_traces(problems, traces, progress=progress, workers=cfg.verify.workers,
                             timeout_s=cfg.verify.trace_timeout_s)
    tokens = sum(t.get("num_tokens", 0) for t in traces)
    metrics = {
        **summarize(verdicts),
        "problems": len(problems),
        # which problems failed, so that two evaluations of the same problems pair up (report.report_rows)
        "invalid_ids": sorted({v["problem_id"] for v in verdicts if not v["trace_valid"]}),
        "by_hops": metrics_by_hops(problems, verdicts),
        "generation": {"traces": len(traces), "tokens": tokens, "wall_s": round(wall, 3),
                       "traces_per_s": len(traces) / wall if wall else 0.0,
                       "tokens_per_s": tokens / wall if wall else 0.0, "do_sample": do_sample},
    }
    if out_dir is not None:
        out_dir = Path(out_dir)
        write_jsonl(out_dir / "traces.jsonl", traces)
        write_jsonl(out_dir / "verdicts.jsonl", verdicts)
        write_text(out_dir / "summary.md", summary_markdown(metrics))
        write_json(out_dir / "metrics.json", metrics)  # last: its presence marks a finished evaluation
    return metrics


def evaluate_rerank(model, tokenizer, problems: list[Problem], cfg: Config, qhat_dir: str | Path,
                    out_dir: str | Path, batch_size: int = 16) -> dict:
    """Sample `eval_cfg.rerank` traces per problem and keep the one q-hat predicts most likely valid.

    Returns {"n", "reranked": metrics, "first_sample": metrics of sample 0 (the same sampling without q-hat),
    "oracle_trace_validity": share of problems with at least one valid sample}; writes out_dir/rerank/ and
    out_dir/first_sample/ (traces, verdicts, metrics).
    """
    from .generation import generate_traces
    from .knowledge import load_qhat, rerank
    from .model import attention

    n = cfg.eval.rerank
    head = load_qhat(qhat_dir)
    t0 = time.time()
    samples = generate_traces(model, tokenizer, problems, n, _eval_generation(cfg), fmt=cfg.format, do_sample=True)
    wall = time.time() - t0
    with attention(model, cfg.knowledge.attn_implementation, "knowledge.attn_implementation"):  # as q-hat was fit
        chosen = rerank(model, tokenizer, head, problems, samples, batch_size=batch_size, fmt=cfg.format)
    out_dir = Path(out_dir)
    reranked = evaluate_traces(problems, chosen, wall, True, cfg, out_dir / "rerank", progress=False)
    first = evaluate_traces(problems, [t for t in samples if t["sample"] == 0], wall, True, cfg,
                            out_dir / "first_sample", progress=False)
    from .verify import verify_traces

    valid_any = {v["problem_id"] for v in verify_traces(problems, samples, progress=False, workers=cfg.verify.workers,
                                                        timeout_s=cfg.verify.trace_timeout_s) if v["trace_valid"]}
    return {"n": n, "reranked": reranked, "first_sample": first,
            "oracle_trace_validity": len(valid_any) / len(problems)}


def cmd_eval(args) -> int:
    from .config import load_config
    from .model import load_policy

    cfg = load_config(args.config, args.set)
    if args.rerank is not None:
        cfg.eval.rerank = args.rerank
    if cfg.eval.rerank and not args.qhat:
        raise UserError("eval --rerank: pass --qhat DIR (a q-hat folder such as OUT/iter_0/qhat)")
    from .data import read_problem_file

    problems = read_problem_file(args.problems, cfg.data.dataset)
    if args.limit:
        problems = problems[: args.limit]
    from . import dist

    with dist.job():  # under torchrun: each rank generates a shard, rank 0 verifies and writes (evaluate)
        model, tokenizer = load_policy(args.model, cfg.model)
        metrics = evaluate(model, tokenizer, problems, cfg, args.output)
    if not dist.is_main():
        return 0
    headline = {k: metrics[k] for k in ("traces", *METRIC_KEYS)}
    if cfg.eval.rerank:
        rr = evaluate_rerank(model, tokenizer, problems, cfg, args.qhat, args.output,
                             batch_size=cfg.knowledge.batch_size_features)
        metrics["rerank"] = rr
        write_json(Path(args.output) / "metrics.json", metrics)
        rows = [("greedy", metrics), (f"first of {rr['n']} samples", rr["first_sample"]),
                (f"q-hat rerank of {rr['n']}", rr["reranked"])]
        lines = ["| decoding | " + " | ".join(METRIC_KEYS) + " |", "|---" * (len(METRIC_KEYS) + 1) + "|"]
        lines += [f"| {name} | " + " | ".join(f"{100 * m[k]:.1f}%" for k in METRIC_KEYS) + " |" for name, m in rows]
        lines.append(f"\nAt least one valid sample (oracle): {100 * rr['oracle_trace_validity']:.1f}%")
        write_text(Path(args.output) / "rerank.md", "\n".join(lines) + "\n")
        print("\n".join(lines), file=sys.stderr)
        headline["rerank"] = {k: rr["reranked"][k] for k in METRIC_KEYS}
        headline["first_sample"] = {k: rr["first_sample"][k] for k in METRIC_KEYS}
        headline["oracle_trace_validity"] = rr["oracle_trace_validity"]
    print(summary_markdown(metrics), file=sys.stderr)
    print(json.dumps(headline))
    return 0
