"""How one model reasons on PrOntoQA problems of every shape: strict trace validity, step validity and accuracy on a
grid of generated shapes and on every file of ../shared/data/prontoqa.

The grid (GRID): premise count bins 8-12 / 13-19 / 20-25 / 26-30 (the range the original generator and Logic-LM's
files span, 9-25 and mostly 18 at five hops, with room on both sides) x context order (random, proof) x hops
(1, 3, 5: the shortest proof, the middle, the longest) x query phrasing (true-or-false, is-the-following):
48 cells of --per-cell problems (default 20: 960 greedy traces, a few CPU minutes for the tiny model). Cell c
is generated with generator seed 100 * --seed + c, so --seed picks a grid no training run sees (quickstart uses
generator seeds data.seed to data.seed + 3: training, validation, the loop's problems, the long training problems;
sft_probe.py 77): tune on one grid seed, report another.
Sentence forms are the default mixture in every cell (every form in every problem).

Every problem is evaluated through oakdpo.evaluation.evaluate with the config's format and eval sections, so
the prompts are the ones the model was trained on. Prints a table per cell, the grid's mean and worst cell, the
margins per factor, and the shared files; writes all of it to --out (JSON).

    python benchmarks/shapes.py --model runs/demo/sft [--config configs/tiny.yaml] [--out shapes.json]
    python benchmarks/shapes.py --compare sft.json loop.json dpo_off.json   # per-cell table side by side

--compare also pairs each file with the first problem by problem (grid problems mended, broken, and an exact sign
test's p): a model that fails 0.4% of the grid differs from another by a few problems, and which ones tells
whether that is more than chance.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from oakdpo.io import UserError, read_jsonl, write_json  # noqa: E402
from oakdpo.report import mended_broken  # noqa: E402

PREMISE_BINS = ("8-12", "13-19", "20-25", "26-30")
ORDERS = ("random", "proof")
HOPS = (1, 3, 5)
PHRASINGS = ("true-or-false", "is-the-following")
GRID = [dict(premises=n, order=o, hops=h, phrasing=q) for n, o, h, q in itertools.product(PREMISE_BINS, ORDERS, HOPS,
                                                                                          PHRASINGS)]
SHARED = ROOT / ".." / "shared" / "data" / "prontoqa"
FIGURES = ("trace_validity", "step_validity", "accuracy")


def grid_problems(seed: int, per_cell: int) -> list[tuple[dict, list]]:
    """(cell, its problems) for every cell of GRID, cell c from generator seed 100 * seed + c."""
    from oakdpo.tasks.prontoqa.generator import generate_problems

    return [(cell, generate_problems(per_cell, hops=cell["hops"], seed=100 * seed + c, premises=cell["premises"],
                                     context_order=cell["order"], query_phrasing=cell["phrasing"]))
            for c, cell in enumerate(GRID)]


def _reason(verdict: dict) -> str:
    """A trace's first failure with its numbers blanked, to count failures by kind."""
    return re.sub(r"\d+", "N", str(verdict.get("trace_reason") or "?"))[:90]


def run(model_dir: str, config: str | None, overrides: list[str], seed: int, per_cell: int, shared: Path | None,
        work: Path) -> dict:
    from oakdpo.config import load_config
    from oakdpo.data import read_problem_file
    from oakdpo.evaluation import evaluate
    from oakdpo.model import load_policy
    from oakdpo.verify import summarize

    cfg = load_config(config, overrides)
    groups: list[tuple[str, dict, list]] = [("grid", cell, probs) for cell, probs in grid_problems(seed, per_cell)]
    files = sorted(shared.glob("*.json")) if shared and shared.is_dir() else []
    groups += [("shared", {"file": f.name}, read_problem_file(f, "prontoqa")) for f in files]
    problems = [p for _, _, probs in groups for p in probs]
    model, tok = load_policy(model_dir, cfg.model)
    t0 = time.time()
    evaluate(model, tok, problems, cfg, out_dir=work, progress=False)
    wall = time.time() - t0
    by_id = {v["problem_id"]: v for v in read_jsonl(work / "verdicts.jsonl")}
    out: dict = {"model": str(model_dir), "config": config, "seed": seed, "per_cell": per_cell,
                 "format": cfg.format.style, "eval_wall_s": round(wall, 1), "cells": [], "shared": {}}
    invalid: Counter = Counter()
    for kind, key, probs in groups:
        verdicts = [by_id[p.id] for p in probs]
        invalid.update(_reason(v) for v in verdicts if not v["trace_valid"])
        m = summarize(verdicts)
        row = {**key, "n": m["traces"], **{k: m[k] for k in FIGURES}}
        if kind == "grid":
            out["cells"].append(row)
        else:
            out["shared"][key["file"]] = row
    cells = out["cells"]
    out["grid"] = {"mean_trace_validity": sum(c["trace_validity"] for c in cells) / len(cells),
                   "min_trace_validity": min(c["trace_validity"] for c in cells),
                   "cells_below_95": sum(c["trace_validity"] < 0.95 for c in cells),
                   **{f"mean_{k}": sum(c[k] for c in cells) / len(cells) for k in ("step_validity", "accuracy")}}
    out["margins"] = {factor: {str(v): sum(c["trace_validity"] for c in cells if c[factor] == v) /
                               sum(c[factor] == v for c in cells) for v in values}
                      for factor, values in (("premises", PREMISE_BINS), ("order", ORDERS), ("hops", HOPS),
                                             ("phrasing", PHRASINGS))}
    out["failures"] = dict(invalid.most_common(8))
    # The grid's invalid problems by id, so --compare can pair two models problem by problem.
    out["grid_invalid"] = sorted(p.id for kind, _, probs in groups if kind == "grid" for p in probs
                                 if not by_id[p.id]["trace_valid"])
    return out


def _pct(x: float) -> str:
    return f"{100 * x:5.1f}%"


def print_report(r: dict) -> None:
    print(f"model {r['model']} ({r['format']} format), grid seed {r['seed']}, {r['per_cell']} problems per cell, "
          f"eval {r['eval_wall_s']} s")
    print(f"{'premises':>8s} {'order':>6s} {'hops':>4s} {'phrasing':>16s} {'n':>3s}   trace    step  accuracy")
    for c in r["cells"]:
        print(f"{c['premises']:>8s} {c['order']:>6s} {c['hops']:>4d} {c['phrasing']:>16s} {c['n']:>3d} "
              + " ".join(f"{_pct(c[k]):>7s}" for k in FIGURES))
    g = r["grid"]
    print(f"grid: mean trace validity {_pct(g['mean_trace_validity'])}, worst cell {_pct(g['min_trace_validity'])}, "
          f"{g['cells_below_95']} of {len(r['cells'])} cells below 95%; mean step validity "
          f"{_pct(g['mean_step_validity'])}, accuracy {_pct(g['mean_accuracy'])}")
    for factor, vals in r["margins"].items():
        print(f"  by {factor}: " + ", ".join(f"{v} {_pct(x)}" for v, x in vals.items()))
    if r["shared"]:
        print(f"{'shared file':>24s} {'n':>4s}   trace    step  accuracy")
        for name, s in r["shared"].items():
            print(f"{name:>24s} {s['n']:>4d} " + " ".join(f"{_pct(s[k]):>7s}" for k in FIGURES))
    if r["failures"]:
        print("first failures of invalid traces: " + "; ".join(f"{n} x {k}" for k, n in r["failures"].items()))


def paired(base: dict, other: dict) -> tuple[int, int, float] | None:
    """Problems the other model gets right that the base gets wrong (mended), the reverse (broken), and the sign
    test's p; None when the two files are not the same grid or lack the ids."""
    if "grid_invalid" not in base or "grid_invalid" not in other or \
            (base["seed"], base["per_cell"]) != (other["seed"], other["per_cell"]):
        return None
    return mended_broken(base["grid_invalid"], other["grid_invalid"])


def _load_result(path: str) -> dict:
    """A result file of this script; a missing or foreign file is a one-line error naming it and the field."""
    try:
        r = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: not a readable JSON result file ({e})") from None
    for key in ("cells", "grid", "shared", "seed", "per_cell"):
        if not isinstance(r, dict) or key not in r:
            raise UserError(f"{path}: field {key!r} missing: not a benchmarks/shapes.py result file")
    return r


def compare(paths: list[str]) -> None:
    """Per-cell and per-file strict trace validity of several result files side by side, then each file against the
    first problem by problem: on 960 problems a difference of a few traces is within what two runs of one setting
    differ by, and the sign test says so."""
    runs = [_load_result(p) for p in paths]
    names = [Path(p).stem for p in paths]
    print(f"{'premises':>8s} {'order':>6s} {'hops':>4s} {'phrasing':>16s} " + " ".join(f"{n:>10.10s}" for n in names))
    for i, c in enumerate(runs[0]["cells"]):
        print(f"{c['premises']:>8s} {c['order']:>6s} {c['hops']:>4d} {c['phrasing']:>16s} "
              + " ".join(f"{_pct(r['cells'][i]['trace_validity']):>10s}" for r in runs))
    print(f"{'grid mean':>38s} " + " ".join(f"{_pct(r['grid']['mean_trace_validity']):>10s}" for r in runs))
    print(f"{'worst cell':>38s} " + " ".join(f"{_pct(r['grid']['min_trace_validity']):>10s}" for r in runs))
    shared = list(dict.fromkeys(name for r in runs for name in r["shared"]))  # a run with --shared '' has none
    for name in shared:
        cols = [_pct(r["shared"][name]["trace_validity"]) if name in r["shared"] else "-" for r in runs]
        print(f"{name:>38s} " + " ".join(f"{c:>10s}" for c in cols))
    for name, r in zip(names[1:], runs[1:]):
        pair = paired(runs[0], r)
        if pair is None:
            print(f"{name} against {names[0]}: not paired (another grid, or a file without grid_invalid)")
        else:
            print(f"{name} against {names[0]}, grid problems: {pair[0]} mended, {pair[1]} broken "
                  f"(sign test p = {pair[2]:.2g})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="Trained policy folder (e.g. runs/demo/sft).")
    ap.add_argument("--config", default=str(ROOT / "configs" / "tiny.yaml"), help="Config whose format and eval "
                    "sections the model was trained and is evaluated with.")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="Config override.")
    ap.add_argument("--out", default="shapes.json", help="JSON file to write.")
    ap.add_argument("--seed", type=int, default=1000, help="Grid seed (cell c uses generator seed 100*seed+c).")
    ap.add_argument("--per-cell", type=int, default=20, help="Problems per cell.")
    ap.add_argument("--shared", default=str(SHARED), help="Folder of original PrOntoQA files ('' to skip).")
    ap.add_argument("--work", default=None, help="Folder for the evaluation's traces and verdicts (default: temp).")
    ap.add_argument("--compare", nargs="+", metavar="JSON", help="Print result files side by side, pair each with "
                    "the first problem by problem (mended, broken, sign test p) and exit.")
    args = ap.parse_args()
    if args.compare:
        try:
            compare(args.compare)
        except UserError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
        return
    if not args.model:
        ap.error("--model is required (or --compare)")
    import torch

    torch.set_num_threads(2)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            result = run(args.model, args.config, args.set, args.seed, args.per_cell,
                         Path(args.shared) if args.shared else None, Path(args.work or tmp))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    write_json(args.out, result)
    print_report(result)
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
