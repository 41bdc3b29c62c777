"""FOLIO + Z3 figures: parsing and repairs, premise-set satisfiability, label agreement, time per problem.

    python benchmarks/folio.py [--gold]                          # shared train split + handwritten conclusions
    python benchmarks/folio.py --validation /tmp/folio-validation.jsonl [--gold]

The train split (../shared/data/folio) has no conclusion-FOL, so label agreement there is measured on the
handwritten conclusions of tests/data/folio_handwritten.json. --gold adds the optionizer's coverage: verified
gold traces of the train split's own problems (none can have one: no query formula), of the handwritten
conclusions, and of ground atom queries over the train stories (oakdpo.tasks.folio.queries, --atom-queries
per story; a few minutes). --validation takes FOLIO JSONL with conclusion-FOL (the real v0.0 validation
split; not shipped, never commit it) and reports agreement with the gold labels, the statuses, the median /
p90 time per problem, and with --gold its gold-trace coverage. Prints one JSON object per section; the last
line sums them up.
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from oakdpo.tasks.folio.fol import Z3Builder, parse_fol  # noqa: E402
from oakdpo.tasks.folio.solver import _check, _parse, solve, solve_problems  # noqa: E402
from oakdpo.tasks.folio.gold import folio_gold_trace  # noqa: E402
from oakdpo.tasks.folio.loader import load_folio  # noqa: E402
from oakdpo.tasks.folio.verify import verify_folio_trace  # noqa: E402

TRAIN = ROOT / ".." / "shared" / "data" / "folio" / "folio-v0.0-train.jsonl"
HANDWRITTEN = ROOT / "tests" / "data" / "folio_handwritten.json"


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else 0.0


def train_figures() -> dict:
    rows = [json.loads(line) for line in TRAIN.read_text(encoding="utf-8").splitlines() if line.strip()]
    formulas = [f for r in rows for f in r["premises-FOL"]]
    distinct = sorted(set(formulas))
    results = {f: parse_fol(f, allow_empty=True) for f in distinct}
    repairs = collections.Counter(x for r in results.values() for x in r.repairs)
    sets = {tuple(r["premises-FOL"]) for r in rows}
    sat, times = {}, []
    for s in sets:
        t0 = time.perf_counter()
        b = Z3Builder()
        sat[s] = _check(b, [b.build(_parse(f, True).formula) for f in s], None, 5000)
        times.append((time.perf_counter() - t0) * 1000)
    sat_rows = sum(sat[tuple(r["premises-FOL"])] == "sat" for r in rows)
    return {
        "section": "train premises",
        "rows": len(rows),
        "premise_formulas": len(formulas),
        "distinct_formulas": len(distinct),
        "parse_failures": sum(not r.ok for r in results.values()),
        "formulas_repaired": sum(bool(r.repairs) for r in results.values()),
        "repairs": dict(repairs.most_common()),
        "premise_sets": len(sets),
        "premise_sets_sat": sum(v == "sat" for v in sat.values()),
        "premise_set_verdicts": dict(collections.Counter(sat.values())),
        "rows_with_sat_premises": sat_rows,
        "rows_sat_fraction": round(sat_rows / len(rows), 4),
        "sat_check_median_ms": round(statistics.median(times), 2),
    }


def handwritten_figures() -> dict:
    rows = [json.loads(line) for line in TRAIN.read_text(encoding="utf-8").splitlines() if line.strip()]
    premises = {}
    for r in rows:
        premises.setdefault(r["story_id"], r["premises-FOL"])
    cases = json.loads(HANDWRITTEN.read_text(encoding="utf-8"))["conclusions"]
    agree, times = 0, []
    for c in cases:
        r = solve(premises[c["story_id"]], c["fol"])
        agree += r.predicted == c["label"]
        times.append(r.ms)
    return {"section": "handwritten conclusions", "problems": len(cases), "agreement": round(agree / len(cases), 4),
            "median_ms": round(statistics.median(times), 2), "p90_ms": round(pct(times, 0.9), 2)}


def gold_figures(name: str, problems) -> dict:
    """Verified gold traces per label, and the option types they use."""
    from oakdpo.trace import parse_trace

    found, options, t0 = collections.Counter(), collections.Counter(), time.perf_counter()
    for p in problems:
        g = folio_gold_trace(p)
        if g is not None and verify_folio_trace(p, g)["trace_valid"]:
            found[p.label] += 1
            options.update(s.option for s in parse_trace(g).steps)
    return {"section": f"gold {name}", "problems": len(problems),
            "labels": dict(collections.Counter(p.label for p in problems)), "gold_traces": dict(found),
            "gold_total": sum(found.values()), "options": dict(options.most_common()),
            "s": round(time.perf_counter() - t0, 1)}


def validation_figures(path: str, gold: bool) -> dict:
    problems = load_folio(path)
    t0 = time.perf_counter()
    records, summary = solve_problems(problems, progress=False)
    wall = time.perf_counter() - t0
    times = [r["ms"] for r in records if r["status"] != "no_query"]
    confusion = collections.Counter(f"{r['label']}->{r['predicted']}" for r in records)
    out = {"section": f"validation {Path(path).name}", **summary, "p90_ms": round(pct(times, 0.9), 2),
           "wall_s": round(wall, 2), "confusion": dict(sorted(confusion.items()))}
    if gold:
        found = collections.Counter()
        valid = 0
        for p in problems:
            g = folio_gold_trace(p)
            if g is not None:
                found[p.label] += 1
                valid += verify_folio_trace(p, g)["trace_valid"]
        out["gold_traces"] = dict(found)
        out["gold_traces_valid"] = valid
        out["labels"] = dict(collections.Counter(p.label for p in problems))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--validation", help="FOLIO JSONL with conclusion-FOL (e.g. the v0.0 validation split)")
    ap.add_argument("--gold", action="store_true", help="also count verified gold traces (optionizer)")
    ap.add_argument("--atom-queries", type=int, default=4, help="with --gold: atom queries per train story")
    args = ap.parse_args()
    sections = []
    if TRAIN.is_file():
        sections.append(train_figures())
        sections.append(handwritten_figures())
        if args.gold:
            from oakdpo.tasks.folio.queries import atom_query_problems, handwritten_problems, load_stories

            sections.append(gold_figures("train split", load_folio(TRAIN)))
            sections.append(gold_figures("handwritten", handwritten_problems(TRAIN, HANDWRITTEN)))
            sections.append(gold_figures("atom queries", atom_query_problems(load_stories(TRAIN),
                                                                             per_story=args.atom_queries)))
    else:
        print(json.dumps({"skipped": f"{TRAIN} not found"}))
    if args.validation:
        sections.append(validation_figures(args.validation, args.gold))
    for s in sections:
        print(json.dumps(s, ensure_ascii=False))
    final = {}
    for s in sections:
        name = "_".join(s["section"].split()[:2]) if s["section"].startswith("gold") else s["section"].split()[0]
        for k in ("parse_failures", "rows_sat_fraction", "agreement", "median_ms", "gold_total"):
            if k in s:
                final[f"{name}_{k}"] = s[k]
    print(json.dumps(final))
    return 0


if __name__ == "__main__":
    sys.exit(main())
