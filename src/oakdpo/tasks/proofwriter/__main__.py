"""`python -m oakdpo.tasks.proofwriter FILE [--limit N]`: the task's acceptance figures on a Logic-LM file.

Prints, as one JSON object: the solver's agreement with the file's answers (and each miss with the solver's
status), the share of gold traces that verify strictly in each format style, and how many mutants of each kind
(mutants.KINDS) the verifier rejects.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter

from . import ProofWriterTask
from .mutants import KINDS, mutants
from .solver import solve


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m oakdpo.tasks.proofwriter")
    ap.add_argument("file", help="Logic-LM ProofWriter JSON (e.g. ../shared/data/proofwriter/train.json)")
    ap.add_argument("--limit", type=int, default=0, help="Only the first N problems (0: all).")
    args = ap.parse_args(argv)
    task = ProofWriterTask()
    problems = task.load(args.file)
    if args.limit:
        problems = problems[:args.limit]
    t0 = time.perf_counter()
    agree, misses = 0, []
    for p in problems:
        predicted, status, _ = solve(p)
        if predicted == p.label:
            agree += 1
        else:
            misses.append({"id": p.id, "label": p.label, "predicted": predicted, "status": status})
    solved = [p for p in problems if solve(p)[0] == p.label]
    gold = {}
    for style in ("natural", "lookup"):
        valid = sum(task.verify(p, task.gold_trace(p, style))["trace_valid"] for p in solved)
        gold[style] = {"valid": valid, "of": len(solved)}
    made, rejected = Counter(), Counter()
    reasons: dict[str, Counter] = {k: Counter() for k in KINDS}
    accepted = []
    for p in solved:
        for kind, text in mutants(p):
            v = task.verify(p, text)
            made[kind] += 1
            if not v["trace_valid"]:
                rejected[kind] += 1
                reasons[kind][v["trace_reason"].split(":", 1)[-1].strip().split(" '")[0][:48]] += 1
            else:
                accepted.append({"id": p.id, "kind": kind})
    print(json.dumps({
        "problems": len(problems),
        "solver_agreement": {"agree": agree, "of": len(problems), "pct": round(100 * agree / max(1, len(problems)), 2),
                             "misses": misses},
        "gold_valid": gold,
        "mutants": {k: {"made": made[k], "rejected": rejected[k], "top_reasons": reasons[k].most_common(3)}
                    for k in KINDS},
        "mutants_accepted": accepted[:20],
        "seconds": round(time.perf_counter() - t0, 1),
    }, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
