"""FOLIO problems with a query formula over the stories of a FOLIO file, for tests and benchmarks.

FOLIO's v0.0 train split has no conclusion FOL, so its own problems have neither a solver label to check nor
a gold trace. Two sets put its stories to use: the handwritten conclusions of tests/data/folio_handwritten.json
(labels derived by hand), and ground atom queries `P(c)` over each story's unary predicates and constants,
labelled by the Z3 solver (so they test the optionizer and the verifier, not the solver).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from ...trace import Problem
from .fol import atoms
from .solver import _parse, solve


def load_stories(path: str | Path) -> dict:
    """story_id -> premises-FOL (the first row of each story) of a FOLIO JSONL file."""
    stories: dict = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            r = json.loads(line)
            stories.setdefault(r["story_id"], r["premises-FOL"])
    return stories


def _problem(pid: str, fol: list[str], query: str, label: str, source: str) -> Problem:
    return Problem(id=pid, task="folio", premises=[f"Premise {j}." for j in range(len(fol))],
                   query="True or false: the query formula holds.", label=label, rule="FOL", source=source,
                   fol={"premises": list(fol), "query": query})


def handwritten_problems(train_path: str | Path, handwritten_path: str | Path) -> list[Problem]:
    """The handwritten conclusions over train stories, as problems (ids h0, h1, ...)."""
    stories = load_stories(train_path)
    cases = json.loads(Path(handwritten_path).read_text(encoding="utf-8"))["conclusions"]
    return [_problem(f"h{i}", stories[c["story_id"]], c["fol"], c["label"], "folio-handwritten")
            for i, c in enumerate(cases)]


def atom_query_problems(stories: dict, per_story: int = 4, seed: int = 0, limit: int | None = None) -> list[Problem]:
    """Up to `per_story` ground atom queries per story (about a third UNKNOWN), labelled by solve() with
    status ok; stories whose premises do not parse are skipped. Deterministic for a seed."""
    rng = random.Random(seed)
    out: list[Problem] = []
    for sid, fol in sorted(stories.items(), key=lambda kv: str(kv[0])):
        parsed = [_parse(f, True) for f in fol]
        if not all(r.ok for r in parsed):
            continue
        preds, consts = set(), set()
        for r in parsed:
            a, c = atoms(r.formula)
            preds |= a
            consts |= c
        candidates = [f"{n}({c})" for n, arity in sorted(preds) if arity == 1 for c in sorted(consts)]
        rng.shuffle(candidates)
        got = {"TRUE": 0, "FALSE": 0, "UNKNOWN": 0}
        for q in candidates:
            if sum(got.values()) >= per_story:
                break
            r = solve(fol, q)
            if r.status != "ok" or got[r.predicted] >= per_story // 2 + (r.predicted != "UNKNOWN"):
                continue
            got[r.predicted] += 1
            out.append(_problem(f"s{sid}:{q}", fol, q, r.predicted, "folio-atom-query"))
            if limit is not None and len(out) >= limit:
                return out
    return out
