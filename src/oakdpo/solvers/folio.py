"""FOLIO with a real Z3 solver: loader, labels, step verification, prompt and gold traces, `oakdpo solve`.

- load_folio(path): FOLIO JSONL -> Problem records that carry `fol = {"premises": [...], "query": ...}`.
- solve(premises_fol, conclusion_fol, timeout_ms): TRUE if the premises entail the conclusion, FALSE if they
  entail its negation, else UNKNOWN; inconsistent premises, timeouts and unparsable formulas are reported
  as statuses of their own (predicted None).
- verify_folio_trace(problem, text): the PrOntoQA verdict shape, with each step checked by Z3 (see below).
- build_folio_prompt(problem) and folio_gold_trace(problem): the SFT prompt and optionizer for FOLIO.

FOLIO traces are the foundation trace format plus one line per reasoning step that states its claim in FOL:
    Thought: [0] says everyone who drinks coffee depends on caffeine; so does rina. So Drinks(rina) → Dependent(rina).
    FOL: Drinks(rina) → Dependent(rina)
    Action: <Option type="UNIV_INSTANTIATION" args="[0]" />
A reasoning step is valid iff: the action parses and its option is known; the cited indices exist, come
earlier, and name premises or valid steps; the FOL line is present and parses (same parser and repairs as the
data); every predicate in it (name and arity) and every constant occurs in the premises or query (or is a
witness introduced by an earlier EXIST_INSTANTIATION); the cited formulas have the shape the option needs
(RULE_SHAPES below); the cited formulas ALONE entail the claim (Z3, per-step timeout); and, when two or more
formulas are cited, none of them is superfluous (the claim does not follow without it). EXIST_INSTANTIATION
is checked structurally instead: the claim is the existential's body with the bound variables replaced by
fresh constants. A CONCLUDE with answer TRUE (FALSE) is supported iff the claim of one valid reasoning step
entails the query (its negation), or the query (its negation) is itself a premise; UNKNOWN is supported iff Z3
finds that the premises entail neither. docs/folio.md has the details.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import time
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path

import z3

from ..formats import (ANSWER_CODES, LABELS, OPTION_TYPES, ParsedStep, Problem, first_failure, make_verdict,
                       parse_trace, render_action)
from ..io import UserError, read_jsonl_lines, write_jsonl
from .fol import Formula, ParseResult, Term, Z3Builder, atoms, parse_fol, substitute, to_text

DEFAULT_TIMEOUT_MS = 5000  # whole-problem budget of solve()
STEP_TIMEOUT_MS = 2000  # one entailment check of the step verifier

LABEL_MAP = {"true": "TRUE", "false": "FALSE", "unknown": "UNKNOWN", "uncertain": "UNKNOWN"}

# ------------------------------------------------------------------------------------------------ loader


def _as_list(value, where: str, key: str) -> list[str]:
    if isinstance(value, str):
        return value.split("\n")
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise UserError(f"{where}: field '{key}' must be a list of strings or a newline-separated string")


def folio_record_to_problem(rec: dict, where: str, source: str, default_id: str) -> Problem:
    """One FOLIO JSON record -> Problem. `where` ('file:line') prefixes errors."""
    def pick(*keys, required=True):
        for k in keys:
            if k in rec:
                return k, rec[k]
        if required:
            raise UserError(f"{where}: missing key '{keys[0]}'")
        return None, None

    _, premises = pick("premises")
    fol_key, fol_premises = pick("premises-FOL", "premises_FOL")
    _, conclusion = pick("conclusion")
    ckey, conclusion_fol = pick("conclusion-FOL", "conclusion_FOL", required=False)
    _, label = pick("label")
    premises = _as_list(premises, where, "premises")
    fol_premises = _as_list(fol_premises, where, fol_key)
    if not isinstance(conclusion, str):
        raise UserError(f"{where}: field 'conclusion' must be a string")
    if conclusion_fol is not None and not isinstance(conclusion_fol, str):
        raise UserError(f"{where}: field '{ckey}' must be a string")
    if not isinstance(label, str) or label.strip().lower() not in LABEL_MAP:
        raise UserError(f"{where}: field 'label' must be True, False, Unknown or Uncertain, got {label!r}")
    # Drop pairs where both sides are empty, then FOL entries left over past the last sentence when empty.
    n = max(len(premises), len(fol_premises))
    pairs = [(premises[i] if i < len(premises) else None, fol_premises[i] if i < len(fol_premises) else None)
             for i in range(n)]
    pairs = [(nl, f) for nl, f in pairs if (nl or "").strip() or (f or "").strip()]
    premises = [nl.strip() for nl, _ in pairs if nl is not None]
    fol_premises = [f.strip() for _, f in pairs if f is not None]
    rid = rec.get("example_id", rec.get("id"))
    return Problem(
        id=str(rid) if rid is not None else default_id,
        premises=premises,
        query=f"True or false: {conclusion.strip()}",
        label=LABEL_MAP[label.strip().lower()],
        proof=[], hops=None, rule="FOL", source=source,
        fol={"premises": fol_premises,
             "query": conclusion_fol.strip() if isinstance(conclusion_fol, str) and conclusion_fol.strip() else None},
    )


def load_folio(path: str | os.PathLike) -> list[Problem]:
    """Read FOLIO JSONL (v0.0 keys premises, premises-FOL, conclusion, conclusion-FOL, label; the _FOL spelling
    too). Problem ids: example_id, else '<file>:<line>'. Errors: UserError naming file:line and the field.
    When the NL and FOL premise lists differ in length after dropping empty pairs, both are kept as they are:
    formula indices in traces always refer to fol['premises'] (build_folio_prompt shows the NL as context)."""
    path = Path(path)
    out = []
    for lineno, rec in read_jsonl_lines(path):
        out.append(folio_record_to_problem(rec, f"{path}:{lineno}", f"folio:{path.name}", f"{path.name}:{lineno}"))
    return out


# ------------------------------------------------------------------------------------------------ solver


@functools.lru_cache(maxsize=65536)
def _parse(text: str, allow_empty: bool) -> ParseResult:
    return parse_fol(text, allow_empty=allow_empty)


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
    s.set("timeout", max(1, int(timeout_ms)))
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


def solve(premises_fol: list[str], conclusion_fol: str | None, timeout_ms: float = DEFAULT_TIMEOUT_MS) -> SolveResult:
    """Label a conclusion against premises with Z3. `timeout_ms` bounds the whole call (all checks)."""
    t0 = time.perf_counter()
    deadline = t0 + timeout_ms / 1000

    def left() -> float:
        return (deadline - time.perf_counter()) * 1000

    def done(pred, status, detail=""):
        return SolveResult(pred, status, detail, (time.perf_counter() - t0) * 1000)

    if conclusion_fol is None or not str(conclusion_fol).strip():
        return done(None, "no_query", "no conclusion FOL")
    parsed = []
    for i, p in enumerate(premises_fol):
        r = _parse(p, True)
        if not r.ok:
            return done(None, "unparsed", f"premise {i}: {r.error}")
        parsed.append(r.formula)
    q = _parse(conclusion_fol, False)
    if not q.ok:
        return done(None, "unparsed", f"conclusion: {q.error}")
    b = Z3Builder()
    hyps = [b.build(f) for f in parsed]
    goal = b.build(q.formula)
    r0 = _check(b, hyps, None, left())
    if r0 == "unsat":
        return done(None, "inconsistent", "the premises contradict each other")
    r_true = _check(b, hyps, goal, left())
    if r_true == "unsat":
        return done("TRUE", "ok")
    r_false = _check(b, hyps, z3.Not(goal), left())
    if r_false == "unsat":
        return done("FALSE", "ok")
    if r_true == "sat" and r_false == "sat":
        return done("UNKNOWN", "ok")
    if "timeout" in (r_true, r_false):
        return done(None, "timeout", f"no answer within {timeout_ms:g} ms")
    return done("UNKNOWN", "incomplete", "z3 could not decide (quantifiers); neither direction was proved")


def solve_problem(problem: Problem, timeout_ms: float = DEFAULT_TIMEOUT_MS) -> SolveResult:
    fol = problem.fol or {}
    return solve(list(fol.get("premises") or []), fol.get("query"), timeout_ms)


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


# ---------------------------------------------------------------------------------------- step verifier

IMPLICATIONS = ("implies",)
RULE_SHAPES = {
    # option: (min cited, max cited, description) -- the per-rule shape test is _shape_error()
    "MODUS_PONENS": (2, 2, "an implication (or universal implication) and a fact"),
    "MODUS_TOLLENS": (2, 2, "an implication (or universal implication) and a negated fact"),
    "HYPOTHETICAL_SYLLOGISM": (2, 2, "two implications"),
    "DISJUNCTIVE_SYLLOGISM": (2, 2, "a disjunction (∨ or ⊕, possibly universal) and the negation of a disjunct"),
    "UNIV_INSTANTIATION": (1, 1, "one universal formula"),
    "UNIV_GENERALIZATION": (1, 4, "formulas from which a universal claim follows"),
    "EXIST_INSTANTIATION": (1, 1, "one existential formula"),
    "EXIST_GENERALIZATION": (1, 1, "one formula; the claim is existential"),
    "AND_INTRO": (2, 6, "two or more formulas; the claim is a conjunction"),
    "AND_ELIM": (1, 1, "one conjunction (possibly universal)"),
    "OR_INTRO": (1, 1, "one formula; the claim is a disjunction"),
    "CASE_SPLIT": (2, 6, "a disjunction and the formulas covering its cases"),
    "BICONDITIONAL_INTRO": (2, 2, "two implications; the claim is a biconditional"),
    "BICONDITIONAL_ELIM": (1, 2, "a biconditional (possibly universal), and optionally a fact"),
    "CONTRADICTION": (1, 6, "formulas that contradict the claim's negation (the claim is ¬A) or each other"),
    "DOUBLE_NEGATION": (1, 1, "one formula; claim or cited formula has a double negation"),
    "CONDITIONAL_PROOF": (1, 6, "formulas from which the implication claimed follows"),
}


def _strip_forall(f: Formula) -> Formula:
    while f.op == "forall":
        f = f.kids[0]
    return f


def _core(f: Formula) -> str:
    return _strip_forall(f).op


def _shape_error(option: str, cited: list[Formula], claim: Formula) -> str | None:
    """None when the cited formulas / claim have the shape `option` needs, else why not."""
    lo, hi, need = RULE_SHAPES[option]
    if not lo <= len(cited) <= hi:
        return f"{option} needs {need}; got {len(cited)} cited formula(s)"
    ops = [_core(c) for c in cited]
    bad = f"{option} needs {need}"
    if option in ("MODUS_PONENS", "MODUS_TOLLENS"):
        if "implies" not in ops:
            return bad
        other = cited[1] if ops[0] == "implies" else cited[0]
        if option == "MODUS_TOLLENS" and other.op != "not":
            return bad
    elif option == "HYPOTHETICAL_SYLLOGISM":
        if ops != ["implies", "implies"] or _core(claim) != "implies":
            return bad
    elif option == "DISJUNCTIVE_SYLLOGISM":
        for i in (0, 1):
            other, disj = cited[1 - i], _strip_forall(cited[i])
            if ops[i] == "or" and (other.op == "not" or any(other == _negate(k) for k in disj.kids)):
                return None
            if ops[i] == "xor":
                return None
        return bad
    elif option == "UNIV_INSTANTIATION":
        if cited[0].op != "forall":
            return bad
    elif option == "UNIV_GENERALIZATION":
        if claim.op != "forall":
            return f"{option}: the claim must be a universal formula"
    elif option == "EXIST_INSTANTIATION":
        if cited[0].op != "exists":
            return bad
    elif option == "EXIST_GENERALIZATION":
        if claim.op != "exists":
            return f"{option}: the claim must be an existential formula"
    elif option == "AND_INTRO":
        if claim.op != "and":
            return f"{option}: the claim must be a conjunction"
    elif option == "AND_ELIM":
        if ops[0] != "and":
            return bad
    elif option == "OR_INTRO":
        if _core(claim) != "or":
            return f"{option}: the claim must be a disjunction"
    elif option == "CASE_SPLIT":
        if not any(o in ("or", "xor") for o in ops):
            return bad
    elif option == "BICONDITIONAL_INTRO":
        if ops != ["implies", "implies"] or _core(claim) != "iff":
            return bad
    elif option == "BICONDITIONAL_ELIM":
        if "iff" not in ops:
            return bad
    elif option == "DOUBLE_NEGATION":
        def dn(f):
            return f.op == "not" and f.kids[0].op == "not"
        if not (dn(cited[0]) or dn(claim)):
            return bad
    elif option == "CONDITIONAL_PROOF":
        if _core(claim) != "implies":
            return f"{option}: the claim must be an implication"
    return None


def _match_instance(general: Formula, claim: Formula, quant: str) -> dict | None:
    """Substitution {var: constant} making the body under `general`'s leading `quant` variables equal to the
    claim (some or all of the leading variables may be instantiated), or None."""
    vars_, body = [], general
    while body.op == quant:
        vars_.append(body.name)
        body = body.kids[0]
    # try instantiating the first j variables, j = len .. 1
    for j in range(len(vars_), 0, -1):
        inner = general
        for _ in range(j):
            inner = inner.kids[0]
        subst: dict[str, str] = {}
        if _unify(inner, claim, set(vars_[:j]), subst, set()):
            return subst
    return None


def _unify(pat: Formula, f: Formula, vars_: set, subst: dict, bound: set) -> bool:
    if pat.op != f.op or len(pat.kids) != len(f.kids) or len(pat.terms) != len(f.terms):
        return False
    if pat.op in ("forall", "exists"):
        if pat.name != f.name:
            return False
        return _unify(pat.kids[0], f.kids[0], vars_ - {pat.name}, subst, bound | {pat.name})
    if pat.op == "atom" and pat.name != f.name:
        return False
    for a, b in zip(pat.terms, f.terms):
        if not _unify_term(a, b, vars_, subst, bound):
            return False
    return all(_unify(a, b, vars_, subst, bound) for a, b in zip(pat.kids, f.kids))


def _unify_term(a: Term, b: Term, vars_: set, subst: dict, bound: set) -> bool:
    if a.args is None and a.name in vars_ and a.name not in bound:
        if b.args is not None or b.name in bound:
            return False
        if a.name in subst:
            return subst[a.name] == b.name
        subst[a.name] = b.name
        return True
    if (a.args is None) != (b.args is None) or a.name != b.name:
        return False
    if a.args is None:
        return True
    return len(a.args) == len(b.args) and all(_unify_term(x, y, vars_, subst, bound) for x, y in zip(a.args, b.args))


@dataclass
class _Context:
    """Everything one verification needs: parsed premises, vocabulary, a Z3 builder, a time budget."""
    problem: Problem
    premises: list[Formula | None]
    query: Formula | None
    preds: set
    consts: set
    builder: Z3Builder = field(default_factory=Z3Builder)
    step_timeout_ms: float = STEP_TIMEOUT_MS

    def z(self, f: Formula) -> z3.BoolRef:
        return self.builder.build(f)

    def entails(self, hyps: list[Formula], goal: Formula) -> str:
        return _check(self.builder, [self.z(h) for h in hyps], self.z(goal), self.step_timeout_ms)


def _context(problem: Problem, step_timeout_ms: float = STEP_TIMEOUT_MS) -> _Context:
    fol = problem.fol or {}
    premises = []
    preds, consts = set(), set()
    for p in fol.get("premises") or []:
        r = _parse(p, True)
        premises.append(r.formula if r.ok else None)
        if r.ok:
            a, c = atoms(r.formula)
            preds |= a
            consts |= c
    query = None
    if fol.get("query"):
        r = _parse(fol["query"], False)
        if r.ok:
            query = r.formula
            a, c = atoms(query)
            preds |= a
            consts |= c
    return _Context(problem, premises, query, preds, consts, step_timeout_ms=step_timeout_ms)


def _vocabulary_error(claim: Formula, ctx: _Context, extra_consts: set) -> str | None:
    preds, consts = atoms(claim)
    for name, arity in sorted(preds - ctx.preds):
        if arity < 0:
            return f"unknown function {name!r} (not in the premises or query)"
        same = sorted(a for n, a in ctx.preds if n == name and a >= 0)
        if same:
            return f"predicate {name!r} used with {arity} argument(s); the premises use {same[0]}"
        return f"unknown predicate {name!r} (not in the premises or query)"
    for c in sorted(consts - ctx.consts - extra_consts):
        return f"unknown constant {c!r} (not in the premises or query)"
    return None


def _check_folio_step(s: ParsedStep, n: int, n_formulas: int, ctx: _Context, known: dict, invalid: set,
                      witnesses: set):
    """(valid, reason, formula, new_witnesses) for the reasoning step producing formula n."""
    if s.error:
        return False, s.error, None, set()
    if s.option not in OPTION_TYPES:
        return False, f"unknown option {s.option!r}", None, set()
    for a in s.args:
        if a < 0 or a >= n_formulas:
            return False, f"cited index {a} does not exist", None, set()
        if a == n:
            return False, f"cites its own formula {a}", None, set()
        if a > n:
            return False, f"cites formula {a} from a later step", None, set()
        if a in invalid:
            return False, f"cites formula {a} from an invalid step", None, set()
        if known.get(a) is None:
            return False, f"cited premise {a} has no usable FOL", None, set()
    if not s.fol:
        return False, "missing FOL line", None, set()
    r = _parse(s.fol, False)
    if not r.ok:
        return False, f"claim does not parse: {r.error}", None, set()
    claim = r.formula
    cited = [known[a] for a in s.args]
    err = _shape_error(s.option, cited, claim)
    if err:
        return False, err, None, set()
    if s.option == "EXIST_INSTANTIATION":
        subst = _match_instance(cited[0], claim, "exists")
        if subst is None:
            return False, "claim is not an instance of the cited existential", None, set()
        used = set(ctx.consts) | witnesses
        for f in known.values():
            if f is not None:
                used |= atoms(f)[1]
        stale = sorted(c for c in subst.values() if c in used)
        if stale:
            return False, f"EXIST_INSTANTIATION needs a fresh constant; {stale[0]!r} is already used", None, set()
        err = _vocabulary_error(claim, ctx, set(subst.values()) | witnesses)
        if err:
            return False, err, None, set()
        return True, "ok", claim, set(subst.values())
    err = _vocabulary_error(claim, ctx, witnesses)
    if err:
        return False, err, None, set()
    err = _inference_error(s.option, cited, claim, ctx, s.args)
    if err:
        return False, err, None, set()
    return True, "ok", claim, set()


def _inference_error(option: str, cited: list[Formula], claim: Formula, ctx: _Context,
                     args: list[int] | None = None) -> str | None:
    """None when `option` applied to `cited` licenses `claim` (shape, then Z3 entailment, then no superfluous
    citation), else why not. Not for EXIST_INSTANTIATION (structural, see _check_folio_step)."""
    err = _shape_error(option, cited, claim)
    if err:
        return err
    if option == "UNIV_INSTANTIATION" and _match_instance(cited[0], claim, "forall") is None:
        return "claim is not an instance of the cited universal"
    if option == "CONTRADICTION" and claim.op != "not":
        if _check(ctx.builder, [ctx.z(c) for c in cited], None, ctx.step_timeout_ms) != "unsat":
            return "CONTRADICTION needs a negated claim or cited formulas that contradict each other"
    verdict = ctx.entails(cited, claim)
    if verdict == "timeout":
        return "entailment check timed out"
    if verdict != "unsat":
        return "claim does not follow from the cited formulas"
    if len(cited) >= 2:
        for i in range(len(cited)):
            if ctx.entails(cited[:i] + cited[i + 1:], claim) == "unsat":
                name = args[i] if args else i
                return f"cited formula {name} is not needed for the claim"
    return None


def _goal(ctx: _Context, answer: str) -> Formula | None:
    if ctx.query is None:
        return None
    return ctx.query if answer == "TRUE" else Formula("not", (ctx.query,))


def _premise_is(ctx: _Context, goal: Formula) -> bool:
    return any(p is not None and p == goal for p in ctx.premises)


def _check_folio_conclude(ctx: _Context, parsed, s: ParsedStep, derived: list[Formula], after_first: bool,
                          is_last: bool):
    """(valid, reason, supported) for a CONCLUDE step; `derived` holds the claims of valid earlier steps."""
    supported, answer, why = False, None, ""
    if s.args is not None and len(s.args) == 1 and 0 <= s.args[0] < len(LABELS):
        answer = LABELS[s.args[0]]
        if ctx.query is None:
            why = "the problem has no query FOL to check the answer against"
        elif answer == "UNKNOWN":
            r = solve_problem(ctx.problem, DEFAULT_TIMEOUT_MS)
            supported = r.predicted == "UNKNOWN" and r.status == "ok"
            why = f"the premises decide the query (solver: {r.predicted}, {r.status})"
        else:
            goal = _goal(ctx, answer)
            supported = _premise_is(ctx, goal) or any(d == goal for d in derived) or any(
                ctx.entails([d], goal) == "unsat" for d in derived)
            why = f"no premise is {to_text(goal)!r} and no valid step's claim entails it"
    if s.error:
        return False, s.error, supported
    if after_first:
        return False, "more than one CONCLUDE", supported
    if answer is None:
        return False, f"CONCLUDE needs 1 arg (0=TRUE, 1=FALSE, 2=UNKNOWN), got {s.args}", supported
    if not is_last:
        return False, "CONCLUDE is not the last step", supported
    if not supported:
        return False, f"answer {answer} not supported: {why}", False
    if parsed.final_answer is None:
        return False, "missing Final Answer", supported
    if parsed.final_answer != answer:
        return False, f"CONCLUDE answer {answer} disagrees with Final Answer {parsed.final_answer}", supported
    return True, "ok", supported


def verify_folio_trace(problem: Problem, text: str, step_timeout_ms: float = STEP_TIMEOUT_MS) -> dict:
    """Verdict for one FOLIO completion, in the PrOntoQA verdict shape (without problem_id / sample):
    {steps: [{index, option, args, claim, valid, reason}], answer, correct, trace_valid, step_validity,
    num_reasoning_steps, conclude_supported, trace_reason}. `claim` is the step's FOL line (the thought's last
    sentence when the FOL line is missing). Never raises on any text."""
    parsed = parse_trace(text)
    ctx = _context(problem, step_timeout_ms)
    P = len(ctx.premises)
    steps = parsed.steps
    n_reasoning = sum(1 for s in steps if not s.is_conclude)
    n_formulas = P + n_reasoning
    known: dict[int, Formula | None] = {i: f for i, f in enumerate(ctx.premises)}
    invalid: set[int] = set()
    witnesses: set[str] = set()
    derived: list[Formula] = []
    out, k = [], 0
    conclude_supported, first_done = False, False
    for s in steps:
        if s.is_conclude:
            valid, reason, supported = _check_folio_conclude(ctx, parsed, s, derived, first_done,
                                                             is_last=s.index == len(steps) - 1)
            if not first_done:
                conclude_supported = supported
            first_done = True
        else:
            n = P + k
            k += 1
            try:
                valid, reason, formula, new = _check_folio_step(s, n, n_formulas, ctx, known, invalid, witnesses)
            except (z3.Z3Exception, RecursionError) as e:  # bad model output is data: never propagate
                valid, reason, formula, new = False, f"solver error: {e}", None, set()
            if valid:
                known[n] = formula
                derived.append(formula)
                witnesses |= new
            else:
                invalid.add(n)
        out.append({"index": s.index, "option": s.option, "args": s.args,
                    "claim": s.fol if s.fol else s.claim, "valid": valid, "reason": reason})
    answer = parsed.final_answer
    needs_reasoning = n_reasoning == 0 and answer in ("TRUE", "FALSE") and not _premise_is(ctx, _goal(ctx, answer))
    trace_reason = first_failure(steps, out, answer, problem.label, needs_reasoning)
    return make_verdict(steps, out, answer, problem.label, conclude_supported, trace_reason)


# --------------------------------------------------------------------------------- prompt and gold traces


def build_folio_prompt(problem: Problem) -> str:
    """The FOLIO prompt: numbered premises with their FOL, the query with its FOL. The trace follows it.

        Premises:
        [0] All people who regularly drink coffee are dependent on caffeine.
            FOL: ∀x (Drinks(x) → Dependent(x))
        ...
        Query: True or false: Rina is ...
            FOL: Jokes(rina) ⊕ Unaware(rina)
        Proof:
    Formula indices are those of fol['premises']; when the NL list has another length, the NL sentences are
    shown first as 'Context:' and the numbered list shows the FOL alone."""
    fol = problem.fol or {}
    fols = list(fol.get("premises") or [])
    lines = []
    paired = len(fols) == len(problem.premises)
    if not paired and problem.premises:
        lines.append("Context: " + " ".join(" ".join(p.split()) for p in problem.premises))
    lines.append("Premises:")
    for i, f in enumerate(fols):
        if paired:
            lines.append(f"[{i}] {' '.join(problem.premises[i].split())}")
            lines.append(f"    FOL: {' '.join(f.split())}")
        else:
            lines.append(f"[{i}] FOL: {' '.join(f.split())}")
    lines.append(f"Query: {problem.query}")
    if fol.get("query"):
        lines.append(f"    FOL: {' '.join(str(fol['query']).split())}")
    lines.append("Proof:")
    return "\n".join(lines) + "\n"


def render_folio_step(thought: str, fol: str | None, option: str, args: list[int]) -> str:
    """One FOLIO step: Thought line, FOL line (omitted for CONCLUDE / when None), Action line."""
    mid = f"\nFOL: {fol}" if fol else ""
    return f"Thought: {thought}{mid}\n{render_action(option, args)}"


def render_folio_trace(steps: list[tuple[str, str | None, str, list[int]]], answer: str) -> str:
    """steps: (thought, fol, option, args) including the CONCLUDE step."""
    return "\n".join(render_folio_step(*s) for s in steps) + f"\nFinal Answer: {answer}"


def _negate(f: Formula) -> Formula:
    return f.kids[0] if f.op == "not" else Formula("not", (f,))


def _minimal_support(ctx: _Context, formulas: list[Formula], goal: Formula, timeout_ms: float,
                     drop_first: list[int] | None = None) -> list[int] | None:
    """Indices of a minimal subset of `formulas` that entails `goal` (Z3 unsat core, then deletion; the
    indices in `drop_first` are tried for deletion first), or None when they do not entail it."""
    b = ctx.builder
    s = z3.Solver(ctx=b.ctx)
    s.set("timeout", int(timeout_ms))
    tags = []
    for i, f in enumerate(formulas):
        t = z3.Bool(f"support!{i}", b.ctx)
        tags.append(t)
        s.assert_and_track(b.build(f), t)
    s.add(z3.Not(b.build(goal)))
    if s.check() != z3.unsat:
        return None
    names = {str(t): i for i, t in enumerate(tags)}
    core = sorted(names[str(c)] for c in s.unsat_core())
    order = [i for i in (drop_first or []) if i in core] + [i for i in core if i not in (drop_first or [])]
    for i in order:
        trial = [j for j in core if j != i]
        if _check(b, [b.build(formulas[j]) for j in trial], b.build(goal), timeout_ms) == "unsat":
            core = trial
    return core


def _atoms_of(f: Formula) -> list[Formula]:
    if f.op == "atom":
        return [f]
    return [a for k in f.kids for a in _atoms_of(k)]


def _triggered_instances(general: Formula, ground: list[Formula], consts: list[str], limit: int = 24):
    """Ground instances of a leading-∀ formula whose variables are bound by matching one of its atoms against
    a ground atom already in play (remaining variables range over the constants)."""
    vars_, body = [], general
    while body.op == "forall":
        vars_.append(body.name)
        body = body.kids[0]
    substs = []
    for pat in _atoms_of(body):
        for g in ground:
            if g.name != pat.name or len(g.terms) != len(pat.terms):
                continue
            sub: dict[str, str] = {}
            if all(_unify_term(a, b, set(vars_), sub, set()) for a, b in zip(pat.terms, g.terms)) and sub:
                if sub not in substs:
                    substs.append(sub)
    out = []
    for sub in substs:
        free = [v for v in vars_ if v not in sub]
        for combo in product(consts, repeat=len(free)):
            full = {**sub, **dict(zip(free, combo))}
            inst = body
            for v in vars_:
                inst = substitute(inst, v, full[v])
            if inst not in out:
                out.append(inst)
            if len(out) >= limit:
                return out
    return out


_CLOSING_RULES = ("MODUS_PONENS", "MODUS_TOLLENS", "DISJUNCTIVE_SYLLOGISM", "BICONDITIONAL_ELIM", "AND_ELIM",
                  "UNIV_INSTANTIATION", "AND_INTRO", "OR_INTRO", "EXIST_GENERALIZATION", "HYPOTHETICAL_SYLLOGISM",
                  "BICONDITIONAL_INTRO", "UNIV_GENERALIZATION", "CONDITIONAL_PROOF", "CASE_SPLIT", "CONTRADICTION")


class _ProofSearch:
    """Builds a FOLIO proof for `goal` from the premise indices in `core` (see folio_gold_trace)."""

    def __init__(self, ctx: _Context, core: list[int], goal: Formula, max_steps: int = 16,
                 timeout_ms: float = STEP_TIMEOUT_MS):
        self.ctx, self.goal, self.max_steps, self.timeout_ms = ctx, goal, max_steps, timeout_ms
        self.P = len(ctx.premises)
        self.known: list[tuple[int, Formula]] = [(i, ctx.premises[i]) for i in core]
        self.steps: list[tuple[str, list[int], Formula]] = []
        consts = set(atoms(goal)[1])
        for _, f in self.known:
            consts |= atoms(f)[1]
        self.consts = sorted(consts)

    def have(self, f: Formula) -> int | None:
        return next((i for i, g in self.known if g == f), None)

    def add(self, option: str, args: list[int], claim: Formula, check: bool = True) -> bool:
        if self.have(claim) is not None or len(self.steps) >= self.max_steps:
            return False
        if check and _inference_error(option, [self.formula(a) for a in args], claim, self.ctx, args):
            return False
        self.steps.append((option, args, claim))
        self.known.append((self.P + len(self.steps) - 1, claim))
        return True

    def formula(self, idx: int) -> Formula:
        return next(g for i, g in self.known if i == idx)

    def forward_round(self) -> bool:
        """One round of ground forward chaining; True when something new was derived. Rules apply to ground
        formulas and to ground instances of universal ones, citing the universal itself (MODUS_PONENS,
        DISJUNCTIVE_SYLLOGISM, ... accept a universal premise), so no separate instantiation step is needed."""
        progress = False
        ground = [a for _, f in self.known if f.op != "forall" for a in _atoms_of(f)] + _atoms_of(self.goal)
        candidates = []
        for i, f in self.known:
            if f.op == "forall":
                candidates += [(i, inst) for inst in _triggered_instances(f, ground, self.consts)]
            else:
                candidates.append((i, f))
        have = self.have
        for i, f in candidates:
            if f.op == "and":
                for k in f.kids:
                    progress |= self.add("AND_ELIM", [i], k)
            elif f.op == "implies":
                a, c = f.kids
                j = have(a)
                if j is None and a.op == "and" and all(have(k) is not None for k in a.kids):
                    self.add("AND_INTRO", [have(k) for k in a.kids], a)
                    j = have(a)
                if j is None and a.op == "or":
                    for k in a.kids:
                        if have(k) is not None and self.add("OR_INTRO", [have(k)], a):
                            j = have(a)
                            break
                if j is not None:
                    progress |= self.add("MODUS_PONENS", [i, j], c)
                elif have(_negate(c)) is not None:
                    progress |= self.add("MODUS_TOLLENS", [i, have(_negate(c))], _negate(a))
            elif f.op in ("or", "xor"):
                for x, k in enumerate(f.kids):
                    rest = f.kids[:x] + f.kids[x + 1:]
                    other = rest[0] if len(rest) == 1 else Formula(f.op, rest)
                    if have(_negate(k)) is not None and (f.op == "or" or len(f.kids) == 2):
                        progress |= self.add("DISJUNCTIVE_SYLLOGISM", [i, have(_negate(k))], other)
                    if f.op == "xor" and len(f.kids) == 2 and have(k) is not None:
                        progress |= self.add("DISJUNCTIVE_SYLLOGISM", [i, have(k)], _negate(other))
            elif f.op == "iff":
                for x, y in ((0, 1), (1, 0)):
                    if have(f.kids[x]) is not None:
                        progress |= self.add("BICONDITIONAL_ELIM", [i, have(f.kids[x])], f.kids[y])
                    elif have(_negate(f.kids[x])) is not None:
                        progress |= self.add("BICONDITIONAL_ELIM", [i, have(_negate(f.kids[x]))],
                                             _negate(f.kids[y]))
        return progress

    def close(self, goal: Formula, max_cited: int, depth: int = 2) -> bool:
        """Derive `goal` in one step from a minimal supporting set, or via its parts (∧, ∃, ∨); True on success."""
        if self.have(goal) is not None:
            return True
        idxs = [i for i, _ in self.known]
        forms = [f for _, f in self.known]
        support = _minimal_support(self.ctx, forms, goal, self.timeout_ms,
                                   drop_first=[n for n, i in enumerate(idxs) if i < self.P])
        if support is None:
            return False
        if len(support) <= max_cited:
            args = [idxs[n] for n in support]
            for option in _CLOSING_RULES:
                if self.add(option, args, goal):
                    return True
        if depth <= 0:
            return False
        if goal.op == "and":
            if all(self.close(k, max_cited, depth - 1) for k in goal.kids):
                return self.add("AND_INTRO", [self.have(k) for k in goal.kids], goal)
        elif goal.op == "exists":
            for c in self.consts:
                sub = substitute(goal.kids[0], goal.name, c)
                if _minimal_support(self.ctx, forms, sub, self.timeout_ms) is not None and \
                        self.close(sub, max_cited, depth - 1):
                    return self.add("EXIST_GENERALIZATION", [self.have(sub)], goal)
        elif goal.op == "iff":
            a, c = goal.kids
            there, back = Formula("implies", (a, c)), Formula("implies", (c, a))
            if self.close(there, max_cited, depth - 1) and self.close(back, max_cited, depth - 1):
                return self.add("BICONDITIONAL_INTRO", [self.have(there), self.have(back)], goal)
        elif goal.op == "or":
            for k in goal.kids:
                if _minimal_support(self.ctx, forms, k, self.timeout_ms) is not None and \
                        self.close(k, max_cited, depth - 1):
                    return self.add("OR_INTRO", [self.have(k)], goal)
        return False

    def instantiate_existentials(self) -> None:
        """EXIST_INSTANTIATION of each existential premise with fresh witnesses w1, w2, ..."""
        used = set(self.ctx.consts)
        for _, f in self.known:
            used |= atoms(f)[1]
        n = 0
        for i, f in list(self.known):
            if f.op != "exists":
                continue
            body = f
            while body.op == "exists":
                n += 1
                while f"w{n}" in used:
                    n += 1
                body = substitute(body.kids[0], body.name, f"w{n}")
                used.add(f"w{n}")
                self.consts.append(f"w{n}")
            self.add("EXIST_INSTANTIATION", [i], body, check=False)  # structural rule: fresh by construction

    def run(self) -> list[tuple[str, list[int], Formula]] | None:
        if self.close(self.goal, max_cited=2):
            return self.pruned()
        self.instantiate_existentials()
        for _ in range(self.max_steps):
            if self.close(self.goal, max_cited=2):
                return self.pruned()
            if not self.forward_round():
                break
        if self.close(self.goal, max_cited=6):
            return self.pruned()
        return None

    def pruned(self) -> list[tuple[str, list[int], Formula]]:
        """The steps the goal's step needs (transitively), renumbered; the goal's step comes last."""
        P = self.P
        last = self.have(self.goal) - P
        need = {last}
        for k in range(last, -1, -1):
            if k in need:
                need |= {a - P for a in self.steps[k][1] if a >= P}
        order = sorted(need)
        remap = {P + old: P + new for new, old in enumerate(order)}
        return [(self.steps[k][0], [remap.get(a, a) for a in self.steps[k][1]], self.steps[k][2]) for k in order]


def folio_gold_trace(problem: Problem, timeout_ms: float = DEFAULT_TIMEOUT_MS) -> str | None:
    """The FOLIO optionizer: a verified trace for SFT, or None where none is found.

    The label must agree with solve() (status ok), else None: annotation errors are not taught.
    UNKNOWN: a CONCLUDE-only trace. TRUE / FALSE (goal: the query or its negation): a premise equal to the goal
    gives a CONCLUDE-only trace; otherwise take an unsat-core minimal premise set that entails the goal and
    search a proof over it (_ProofSearch): try to close the goal in one step (a minimal supporting set of at
    most 2 formulas and an option that fits it; ∧ / ∃ / ∨ / ↔ goals also through their parts, then AND_INTRO /
    EXIST_GENERALIZATION / OR_INTRO / BICONDITIONAL_INTRO); else instantiate existential premises with fresh
    witnesses w1, w2, ... and run rounds of ground forward chaining over ground formulas and over instances of
    universal premises whose variables are bound by atoms already in play, citing the universal itself
    (AND_ELIM, AND_INTRO / OR_INTRO of an antecedent, MODUS_PONENS, MODUS_TOLLENS, DISJUNCTIVE_SYLLOGISM,
    BICONDITIONAL_ELIM), trying to close after each round; at the end allow a closing step citing up to 6
    formulas. Steps the goal's step does not need are pruned. Every step is checked with the verifier's own
    rules while searching, and the finished trace is returned only if verify_folio_trace finds it valid.
    None when the label disagrees with the solver, the problem has no query FOL, or no proof is found within
    16 steps."""
    r = solve_problem(problem, timeout_ms)
    if r.status != "ok" or r.predicted != problem.label:
        return None
    code = [ANSWER_CODES[problem.label]]
    if problem.label == "UNKNOWN":
        text = render_folio_trace([("Neither the statement nor its negation follows from the premises. "
                                    "So the query is unknown.", None, "CONCLUDE", code)], "UNKNOWN")
        return text if verify_folio_trace(problem, text)["trace_valid"] else None
    ctx = _context(problem)
    if ctx.query is None or any(p is None for p in ctx.premises):
        return None
    goal = _goal(ctx, problem.label)
    word = "true" if problem.label == "TRUE" else "false"
    k = next((i for i, p in enumerate(ctx.premises) if p == goal), None)
    if k is not None:
        text = render_folio_trace([(f"[{k}] states {to_text(goal)}. So the query is {word}.", None,
                                    "CONCLUDE", code)], problem.label)
        return text if verify_folio_trace(problem, text)["trace_valid"] else None
    core = _minimal_support(ctx, list(ctx.premises), goal, timeout_ms)
    if core is None:
        return None
    steps = _ProofSearch(ctx, core, goal).run()
    if not steps:
        return None
    P = len(ctx.premises)
    rendered = []
    for n, (option, args, claim) in enumerate(steps):
        cited = " and ".join(f"[{a}]" for a in args)
        rule = option.lower().replace("_", " ")
        rendered.append((f"By {rule} from {cited}: [{P + n}] {to_text(claim)}.", to_text(claim), option, args))
    rendered.append((f"[{P + len(steps) - 1}] is {to_text(goal)}. So the query is {word}.", None, "CONCLUDE", code))
    text = render_folio_trace(rendered, problem.label)
    return text if verify_folio_trace(problem, text)["trace_valid"] else None


# ------------------------------------------------------------------------------------------------- CLI


def _read_problems(path: str) -> list[Problem]:
    """problems.jsonl -> Problems; errors name file:line and the field."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: no such file")
    out = []
    with open(p, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{p}:{lineno}"
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(f"{where}: invalid JSON ({e.msg})") from None
            if not isinstance(rec, dict):
                raise UserError(f"{where}: expected a JSON object")
            prob = Problem.from_dict(rec, where)
            if prob.fol is not None and not (isinstance(prob.fol, dict) and isinstance(prob.fol.get("premises"), list)):
                raise UserError(f"{where}: field 'fol' must be {{\"premises\": [...], \"query\": ...}}")
            out.append(prob)
    return out


def run_solve(args) -> int:
    problems = _read_problems(args.problems)
    if args.timeout_ms <= 0:
        raise UserError(f"--timeout-ms must be positive, got {args.timeout_ms}")
    records, summary = solve_problems(problems, args.timeout_ms)
    write_jsonl(args.output, records)
    print(json.dumps(summary))
    return 0


def add_cli(sub) -> None:
    p = sub.add_parser("solve", help="Label FOLIO problems with Z3 (TRUE / FALSE / UNKNOWN) and compare with gold.",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--problems", required=True, help="problems.jsonl with `fol` (oakdpo data import --format folio)")
    p.add_argument("-o", "--output", required=True, help="labels.jsonl: {problem_id, predicted, label, status, ...}")
    p.add_argument("--timeout-ms", type=float, default=DEFAULT_TIMEOUT_MS, help="Z3 budget per problem (ms)")
    p.set_defaults(func=run_solve)
