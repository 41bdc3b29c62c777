"""Gold-trace coverage on files of the original PrOntoQA generator, every deduction rule: for each JSON file in the
given folders (asaparov/prontoqa `run_experiment.py --model-name json`, any --deduction-rule, with or without
--proofs-only), the problems loaded, the gold traces the optionizer writes in each format style, and how many of
them the strict verifier accepts. The generator is not part of this project: run it yourself, with seeds of your
choice, and point this script at its output. ../shared/data/prontoqa (ModusPonens only) is read by default.

    python benchmarks/prontoqa_rules.py [DIR_OR_FILE ...] [--out coverage.json]

Prints one row per file and style, the problems without a gold trace (their ids, and the first proof sentence the
optionizer could not place), and a total; exits 1 when any problem lacks a valid gold trace.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

STYLES = ("natural", "lookup")


def coverage(path: Path) -> dict:
    from oakdpo.tasks.prontoqa.gold import gold_trace
    from oakdpo.tasks.prontoqa.loaders import load_prontoqa_json
    from oakdpo.verify import verify_traces

    problems = load_prontoqa_json(path)
    row = {"file": path.name, "problems": len(problems), "rules": sorted({p.rule for p in problems})}
    for style in STYLES:
        golds = [(p, gold_trace(p, style)) for p in problems]
        traces = [{"problem_id": p.id, "sample": 0, "text": g} for p, g in golds if g is not None]
        verdicts = verify_traces([p for p, g in golds if g is not None], traces, progress=False, workers=1)
        row[style] = {"gold": len(traces), "valid": sum(bool(v["trace_valid"]) for v in verdicts),
                      "missing": [p.id for p, g in golds if g is None],
                      "invalid": [v["problem_id"] for v in verdicts if not v["trace_valid"]]}
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("paths", nargs="*", default=[str(ROOT / ".." / "shared" / "data" / "prontoqa")])
    ap.add_argument("--out", default=None, help="JSON file to write the rows to.")
    args = ap.parse_args()
    files = []
    for p in map(Path, args.paths):
        files += sorted(p.glob("*.json")) if p.is_dir() else [p]
    if not files:
        print("no PrOntoQA JSON files found", file=sys.stderr)
        return 2
    rows, total, ok = [], 0, {s: 0 for s in STYLES}
    print(f"{'file':62s} {'rules':28s} {'n':>4s}  natural gold/valid   lookup gold/valid")
    for f in files:
        r = coverage(f)
        rows.append(r)
        total += r["problems"]
        for s in STYLES:
            ok[s] += r[s]["valid"]
        print(f"{r['file'][:62]:62s} {','.join(r['rules'])[:28]:28s} {r['problems']:4d}  "
              + "   ".join(f"{r[s]['gold']:5d} / {r[s]['valid']:5d}" for s in STYLES))
        for s in STYLES:
            bad = r[s]["missing"] + r[s]["invalid"]
            if bad:
                print(f"    {s}: no valid gold trace for {len(bad)}: {', '.join(bad[:8])}" + (" ..." if len(bad) > 8
                                                                                             else ""))
    shares = ", ".join(f"{s} {ok[s]} ({100 * ok[s] / max(total, 1):.1f}%)" for s in STYLES)
    print(f"total: {total} problems; valid gold traces: {shares}")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2) + "\n")
    return 0 if all(ok[s] == total for s in STYLES) else 1


if __name__ == "__main__":
    sys.exit(main())
