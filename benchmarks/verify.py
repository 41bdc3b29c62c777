"""Verification throughput per task with 1 and 2 workers (the process pool's speed-up on a 2-core machine).

Realistic traces: the gold traces of shared-data problems (PrOntoQA: the shared files and generated problems;
FOLIO: the handwritten conclusions and atom queries over the train stories; ProofWriter: the train file) and
as many mutants of them (a citation, option, claim polarity, step or answer changed: benchmarks/fuzz.py's
mutators), verified with oakdpo.verify.verify_traces under the default per-trace budget. Each timed pass is a
fresh call (the pool starts inside it, workers begin with empty per-problem caches). Prints steps/s (all steps,
CONCLUDE included), traces/s and CPU seconds per task and worker count, the speed-up, and the summary of
each set (the machine should be otherwise idle: the speed-up is wall-clock). Skips
(with a message) when ../shared/data is absent.

    python benchmarks/verify.py [--repeat 3] [--tasks prontoqa,folio,proofwriter] [--problems 300]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fuzz  # noqa: E402  (benchmarks/fuzz.py: problem loading and mutators)

KINDS = ("m_cite", "m_option", "m_polarity", "m_drop", "m_answer")


def traces_for(task: str, n_problems: int, seed: int):
    rng = random.Random(seed)
    problems, golds = fuzz.load_problems(task, n_problems, rng)
    traces = [{"problem_id": p.id, "sample": 0, "text": g} for p, g in zip(problems, golds)]
    for i, (p, g) in enumerate(zip(problems, golds)):
        m = fuzz.mutate(KINDS[i % len(KINDS)], task, p, g, rng) or fuzz.mutate("m_answer", task, p, g, rng)
        traces.append({"problem_id": p.id, "sample": 1, "text": m})
    rng.shuffle(traces)  # as a run's file would interleave problems
    return problems, traces


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="Timed passes per worker count; the best is reported.")
    ap.add_argument("--tasks", default="prontoqa,folio,proofwriter")
    ap.add_argument("--problems", type=int, default=0, help="Problems per task (0: 2400 PrOntoQA, 400 FOLIO, "
                    "1500 ProofWriter).")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if not fuzz.SHARED.is_dir():
        print(f"skipped: {fuzz.SHARED} is absent")
        return 0
    from oakdpo.config import VerifyConfig
    from oakdpo.verify import summarize, verify_traces

    budget = VerifyConfig().trace_timeout_s
    default_n = {"prontoqa": 2400, "folio": 400, "proofwriter": 1500}
    results = []
    for task in args.tasks.split(","):
        problems, traces = traces_for(task, args.problems or default_n.get(task, 400), args.seed)
        rates = {}
        for workers in (1, 2):
            best, cpu, verdicts = float("inf"), float("inf"), None
            for _ in range(args.repeat):
                fuzz_caches_clear()
                t0, c0 = time.perf_counter(), _cpu()
                verdicts = verify_traces(problems, traces, progress=False, workers=workers, timeout_s=budget)
                best, cpu = min(best, time.perf_counter() - t0), min(cpu, _cpu() - c0)
            steps = sum(len(v["steps"]) for v in verdicts)
            rates[workers] = steps / best
            s = summarize(verdicts)
            print(f"{task:12s} workers {workers}  traces {s['traces']:5d}  steps {steps:6d}  "
                  f"{steps / best:8.0f} steps/s"
                  f"  {s['traces'] / best:7.0f} traces/s  ({best:.2f} s)  step_validity {s['step_validity']:.3f}"
                  f"  trace_validity {s['trace_validity']:.3f}  timeouts {s['timeouts']}  cpu {cpu:.2f} s", flush=True)
        results.append((task, rates[1], rates[2]))
    print(f"\n{'task':12s} {'1 worker':>12s} {'2 workers':>12s} {'speed-up':>9s}")
    for task, r1, r2 in results:
        print(f"{task:12s} {r1:8.0f} st/s {r2:8.0f} st/s {r2 / r1:8.2f}x")
    return 0


def _cpu() -> float:
    """CPU seconds of this process and its finished children (the pool's workers): with 2 workers about the
    1-worker figure when the pool adds no work; the wall-clock speed-up also needs two idle cores."""
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def fuzz_caches_clear() -> None:
    """Empty this process's per-problem caches, so that every pass (in process or forked) starts cold."""
    from oakdpo.tasks.folio import solver, verify

    solver._parse_cache.clear()
    solver._solve_cache.clear()
    verify._INFO_CACHE.clear()


if __name__ == "__main__":
    sys.exit(main())
