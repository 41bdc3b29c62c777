"""FOLIO's label solver (Z3): TRUE if the premises entail the conclusion, FALSE if they entail its negation,
else UNKNOWN; inconsistent premises, timeouts and unparsable formulas are statuses of their own."""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass

import z3

from ...trace import Budget, Problem, VerifyTimeout
from .fol import ParseResult, Z3Builder, parse_fol

DEFAULT_TIMEOUT_MS = 5000  # whole-problem budget of solve()
STEP_TIMEOUT_MS = 2000  # one entailment check of the step verifier
_CACHE_MAX = 65536  # parsed formulas kept per process
_CACHE_TEXT_MAX = 20_000  # longer texts are parsed every time (no real formula is this long)
_parse_cache: dict[tuple[str, bool], ParseResult] = {}


def _parse(text: str, allow_empty: bool, budget: Budget | None = None) -> ParseResult:
    """parse_fol with a per-process cache (premises are parsed once per process, not once per trace).
    `budget` bounds the parse of a text not yet cached (VerifyTimeout when spent; nothing is cached then)."""
    if not isinstance(text, str) or len(text) > _CACHE_TEXT_MAX:
        return parse_fol(text, allow_empty=allow_empty, budget=budget)
    key = (text, allow_empty)
    r = _parse_cache.get(key)
    if r is None:
        r = parse_fol(text, allow_empty=allow_empty, budget=budget)
        if len(_parse_cache) >= _CACHE_MAX:
            del _parse_cache[next(iter(_parse_cache))]  # oldest first
        _parse_cache[key] = r
    return r


@dataclass
class SolveResult:
    predicted: str | None  # TRUE / FALSE / UNKNOWN; None when inconsistent, timed out or unparsed
    status: str  # ok | inconsistent | timeout | unparsed | no_query | incomplete (z3 gave up: UNKNOWN)
    detail: str = ""
    ms: float = 0.0


def _check(builder: Z3Builder, hyps: list[z3.BoolRef], goal: z3.BoolRef | None, timeout_ms: float) -> str:
    """'unsat' | 'sat' | 'timeout' | 'unknown' for hyps ∧ ¬goal (goal None: hyps alone)."""
    if timeout_ms <= 0:
        return "timeout"
    s = z3.Solver(ctx=builder.ctx)
    s.set("timeout", max(1, int(min(timeout_ms, 2**31 - 1))))
    s.add(*hyps)
    if goal is not None:
        s.add(z3.Not(goal))
    r = s.check()
    if r == z3.unsat:
        return "unsat"
    if r == z3.sat:
        return "sat"
    reason = s.reason_unknown()
    return "timeout" if ("timeout" in reason or "canceled" in reason) else "unknown"


def solve(premises_fol: list[str], conclusion_fol: str | None, timeout_ms: float = DEFAULT_TIMEOUT_MS,
          budget: Budget | None = None) -> SolveResult:
    """Label a conclusion against premises with Z3. `timeout_ms` bounds the whole call: parsing, building and
    every check (as does `budget`, a trace.Budget, when it ends sooner). Never raises on any text."""
    t0 = time.perf_counter()
    b = (budget or Budget(None)).capped(timeout_ms)

    def done(pred, status, detail=""):
        return SolveResult(pred, status, detail, (time.perf_counter() - t0) * 1000)

    if conclusion_fol is None or not str(conclusion_fol).strip():
        return done(None, "no_query", "no conclusion FOL")
    try:
        parsed = []
        for i, p in enumerate(premises_fol):
            r = _parse(p, True, b)
            if not r.ok:
                return done(None, "unparsed", f"premise {i}: {r.error}")
            parsed.append(r.formula)
        q = _parse(conclusion_fol, False, b)
        if not q.ok:
            return done(None, "unparsed", f"conclusion: {q.error}")
        builder = Z3Builder(budget=b)
        hyps = [builder.build(f) for f in parsed]
        goal = builder.build(q.formula)
        r0 = _check(builder, hyps, None, b.left_ms())
        if r0 == "unsat":
            return done(None, "inconsistent", "the premises contradict each other")
        r_true = _check(builder, hyps, goal, b.left_ms())
        if r_true == "unsat":
            return done("TRUE", "ok")
        r_false = _check(builder, hyps, z3.Not(goal), b.left_ms())
    except VerifyTimeout:
        return done(None, "timeout", f"no answer within {timeout_ms:g} ms")
    except RecursionError:  # not reached: formulas deeper than fol.MAX_DEPTH do not parse
        return done(None, "unparsed", "formula too deep")
    if r_false == "unsat":
        return done("FALSE", "ok")
    if r_true == "sat" and r_false == "sat":
        return done("UNKNOWN", "ok")
    if "timeout" in (r_true, r_false):
        return done(None, "timeout", f"no answer within {timeout_ms:g} ms")
    return done("UNKNOWN", "incomplete", "z3 could not decide (quantifiers); neither direction was proved")


_solve_cache: dict[tuple, SolveResult] = {}


def solve_cached(premises_fol: list[str], conclusion_fol: str | None, timeout_ms: float = DEFAULT_TIMEOUT_MS,
                 budget: Budget | None = None) -> SolveResult:
    """solve() once per (premises, conclusion, timeout) in a process: what the verifier asks for every trace
    that concludes UNKNOWN. A result cut short by `budget` (less than timeout_ms was left) is not kept."""
    key = (tuple(premises_fol), conclusion_fol, timeout_ms)
    r = _solve_cache.get(key)
    if r is not None:
        return r
    full = budget is None or budget.left_ms() >= timeout_ms
    r = solve(premises_fol, conclusion_fol, timeout_ms, budget)
    if full or r.status != "timeout":
        if len(_solve_cache) >= 4096:
            del _solve_cache[next(iter(_solve_cache))]
        _solve_cache[key] = r
    return r


def solve_problem(problem: Problem, timeout_ms: float = DEFAULT_TIMEOUT_MS,
                  budget: Budget | None = None) -> SolveResult:
    fol = problem.fol or {}
    return solve(list(fol.get("premises") or []), fol.get("query"), timeout_ms, budget)


def solve_problems(problems: list[Problem], timeout_ms: float = DEFAULT_TIMEOUT_MS, progress: bool = True):
    """(records, summary) for `oakdpo solve`. agreement = predicted == label over problems with a query FOL."""
    from tqdm import tqdm

    show = progress and int(os.environ.get("RANK", "0")) == 0
    records, times = [], []
    for p in tqdm(problems, desc="solve", disable=not show):
        r = solve_problem(p, timeout_ms)
        records.append({"problem_id": p.id, "predicted": r.predicted, "label": p.label, "status": r.status,
                        "detail": r.detail, "ms": round(r.ms, 2)})
        if r.status != "no_query":
            times.append(r.ms)
    scored = [r for r in records if r["status"] != "no_query"]
    count = lambda s: sum(1 for r in records if r["status"] == s)  # noqa: E731
    summary = {
        "problems": len(records),
        "scored": len(scored),
        "agreement": (sum(r["predicted"] == r["label"] for r in scored) / len(scored)) if scored else 0.0,
        "inconsistent": count("inconsistent"),
        "timeout": count("timeout"),
        "unparsed": count("unparsed"),
        "no_query": count("no_query"),
        "incomplete": count("incomplete"),
        "median_ms": round(statistics.median(times), 2) if times else 0.0,
    }
    return records, summary


