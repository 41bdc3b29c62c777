"""Verification throughput of the strict PrOntoQA verifier on the shared data (acceptance 5).

Gold traces of all shared PrOntoQA examples plus mutated copies (a citation changed, a claim negated, a step
dropped, the option changed), verified with oakdpo.verify.verify_traces. Prints steps/s and traces/s, and
the summary of each set. Skips (with a message) when ../shared/data is absent.

    python benchmarks/verify.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def mutate(text: str, rng: random.Random) -> str:
    """One random corruption of a gold trace (see tests/test_verify.py for the exact-reason versions)."""
    lines = text.split("\n")
    actions = [i for i, line in enumerate(lines) if line.startswith("Action:") and "CONCLUDE" not in line]
    i = rng.choice(actions)
    kind = rng.randrange(4)
    if kind == 0:  # a citation changed
        first = int(lines[i].split("[", 1)[1].split(",")[0])
        other = rng.choice([a for a in range(30) if a != first])
        lines[i] = lines[i].replace(f"[{first},", f"[{other},", 1)
    elif kind == 1:  # negation flipped in the claim
        t = lines[i - 1]
        lines[i - 1] = t.replace(" is not ", " is ") if " is not " in t.rsplit("]", 1)[-1] else \
            t[: t.rfind(" is ")] + " is not " + t[t.rfind(" is ") + 4:]
    elif kind == 2:  # a step dropped
        del lines[i - 1: i + 1]
    else:  # the option changed
        lines[i] = lines[i].replace("MODUS_PONENS", rng.choice(["AND_INTRO", "MODUS_TOLLENS", "OR_INTRO"]))
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="Timed passes; the best is reported.")
    args = ap.parse_args()
    if not (SHARED / "prontoqa").is_dir():
        print(f"skipped: {SHARED / 'prontoqa'} is absent")
        return 0
    from oakdpo.tasks.prontoqa.loaders import load_prontoqa_json
    from oakdpo.tasks.prontoqa.gold import gold_trace
    from oakdpo.verify import summarize, verify_traces

    problems = []
    for f in sorted((SHARED / "prontoqa").glob("*.json")):
        problems += load_prontoqa_json(f)
    rng = random.Random(0)
    gold = [{"problem_id": p.id, "sample": 0, "text": gold_trace(p)} for p in problems]
    mutated = [{"problem_id": t["problem_id"], "sample": 1, "text": mutate(t["text"], rng)} for t in gold]
    print(f"{len(problems)} shared PrOntoQA problems; {len(gold)} gold + {len(mutated)} mutated traces")
    for name, traces in (("gold", gold), ("mutated", mutated), ("all", gold + mutated)):
        best = float("inf")
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            verdicts = verify_traces(problems, traces, progress=False)
            best = min(best, time.perf_counter() - t0)
        s = summarize(verdicts)
        steps = sum(len(v["steps"]) for v in verdicts)
        print(f"{name:8s} traces {s['traces']:5d}  steps {steps:6d} (reasoning {s['reasoning_steps']:6d})  "
              f"{steps / best:9.0f} steps/s  {s['traces'] / best:8.0f} traces/s  "
              f"step_validity {s['step_validity']:.3f}  trace_validity {s['trace_validity']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
