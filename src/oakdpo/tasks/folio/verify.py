"""The FOLIO step verifier (Z3): a step is valid only when its option is the rule that licenses its claim.

FOLIO traces are the foundation trace format plus one line per reasoning step that states its claim in FOL:
    Thought: [0] says everyone who drinks coffee depends on caffeine; so does rina. So Drinks(rina) → Dependent(rina).
    FOL: Drinks(rina) → Dependent(rina)
    Action: <Option type="UNIV_INSTANTIATION" args="[0]" />
A reasoning step is valid iff: the action parses and its option is known; the cited indices exist, come
earlier, and name premises or valid steps; the FOL line is present and parses (same parser and repairs as the
data); every predicate in it (name and arity) and every constant occurs in the premises or query (or is a
witness introduced by an earlier EXIST_INSTANTIATION); the option's rule licenses the claim from the cited
formulas (rules.py: a structural match for the elementary rules, where a step two rules would license takes
the first; the compound rules CONTRADICTION, CONDITIONAL_PROOF and UNIV_GENERALIZATION only where no
elementary rule applies, and with no superfluous citation); and the cited formulas ALONE entail the claim
(Z3). EXIST_INSTANTIATION is checked structurally instead: the claim is the existential's body with the bound
variables replaced by fresh constants. A CONCLUDE with answer TRUE (FALSE) is supported iff the query (its
negation: ¬Q, or A for a query ¬A) is a premise or the claim of a valid reasoning step; UNKNOWN is supported
iff Z3 finds that the premises entail neither (solved once per problem and process).

Time: `budget` (trace.Budget) bounds the whole verification, parsing and formula building included; every Z3
check gets min(its step limit, what the budget has left), and a spent budget raises VerifyTimeout (the
caller's verdict `timeout`). Premise formulas, their vocabulary and their Z3 terms are built once per problem
and process (a small cache), not once per trace. docs/folio.md has the details.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import z3

from ...trace import (LABELS, OPTION_TYPES, Budget, ParsedStep, Problem, citation_error, first_failure, make_verdict,
                      parse_trace)
from .fol import Formula, Z3Builder, atoms, to_text
from .rules import COMPOUND, RULES, compound_shape_error, first_rule, instance_of, licenses, negate
from .solver import DEFAULT_TIMEOUT_MS, STEP_TIMEOUT_MS, _check, _parse, solve_cached

RULE_SHAPES = RULES  # option -> (min cited, max cited, what it needs); the prompt lists these

_negate = negate  # kept under its old name for the optionizer


# ------------------------------------------------------------------------------------- per-problem data

@dataclass
class _ProblemInfo:
    """What every trace of one problem shares: parsed premises and query, their vocabulary, a Z3 builder
    holding the premises' symbols, and the Z3 terms of the premises built so far (a premise is built when a
    trace first cites it: a huge premise no trace cites costs nothing)."""
    premises: list[Formula | None]
    query: Formula | None
    preds: set
    consts: set
    builder: Z3Builder
    z3_premises: dict  # premise index -> z3 term


_INFO_CACHE: dict[tuple, _ProblemInfo] = {}
_INFO_CACHE_MAX = 256


def _problem_info(problem: Problem, budget: Budget | None) -> _ProblemInfo:
    fol = problem.fol or {}
    premise_texts = tuple(p if isinstance(p, str) else "" for p in (fol.get("premises") or []))
    query_text = fol.get("query") if isinstance(fol.get("query"), str) else None
    key = (premise_texts, query_text)
    info = _INFO_CACHE.get(key)
    if info is not None:
        return info
    premises, preds, consts = [], set(), set()
    for p in premise_texts:
        r = _parse(p, True, budget)
        premises.append(r.formula if r.ok else None)
        if r.ok:
            a, c = atoms(r.formula)
            preds |= a
            consts |= c
    query = None
    if query_text and query_text.strip():
        r = _parse(query_text, False, budget)
        if r.ok:
            query = r.formula
            a, c = atoms(query)
            preds |= a
            consts |= c
    info = _ProblemInfo(premises, query, preds, consts, Z3Builder(), {})
    if len(_INFO_CACHE) >= _INFO_CACHE_MAX:
        del _INFO_CACHE[next(iter(_INFO_CACHE))]
    _INFO_CACHE[key] = info
    return info


@dataclass
class _Context:
    """Everything one verification needs: the problem's shared data, a Z3 builder of its own (new symbols
    stay in this trace), a cache of built terms, the per-check limit and the trace's budget."""
    problem: Problem
    info: _ProblemInfo
    builder: Z3Builder
    step_timeout_ms: float = STEP_TIMEOUT_MS
    budget: Budget = field(default_factory=lambda: Budget(None))
    _built: dict = field(default_factory=dict)

    @property
    def premises(self) -> list[Formula | None]:
        return self.info.premises

    @property
    def query(self) -> Formula | None:
        return self.info.query

    @property
    def preds(self) -> set:
        return self.info.preds

    @property
    def consts(self) -> set:
        return self.info.consts

    def z(self, f: Formula) -> z3.BoolRef:
        hit = self._built.get(id(f))
        if hit is not None and hit[0] is f:
            return hit[1]
        for i, p in enumerate(self.info.premises):
            if p is f:
                if i not in self.info.z3_premises:
                    b = self.info.builder
                    b.budget = self.budget
                    try:
                        self.info.z3_premises[i] = b.build(f)
                    finally:
                        b.budget = None
                return self.info.z3_premises[i]
        term = self.builder.build(f)
        self._built[id(f)] = (f, term)  # the formula is kept alive with it, so its id stays its own
        return term

    def entails(self, hyps: list[Formula], goal: Formula) -> str:
        """'unsat' when `hyps` entail `goal` (Z3, within min(step limit, budget left)), else 'sat' /
        'timeout' / 'unknown'. A spent budget raises VerifyTimeout."""
        self.budget.check()
        z_hyps, z_goal = [self.z(h) for h in hyps], self.z(goal)
        return _check(self.builder, z_hyps, z_goal, self.budget.left_ms(self.step_timeout_ms))


def _context(problem: Problem, step_timeout_ms: float = STEP_TIMEOUT_MS, budget: Budget | None = None) -> _Context:
    budget = budget or Budget(None)
    info = _problem_info(problem, budget)
    return _Context(problem, info, info.builder.copy(budget), step_timeout_ms, budget)


# ---------------------------------------------------------------------------------------- step verifier

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
        error = citation_error(a, n, n_formulas, invalid)
        if error:
            return False, error, None, set()
        if known.get(a) is None:
            return False, f"cited premise {a} has no usable FOL", None, set()
    if not s.fol:
        return False, "missing FOL line", None, set()
    r = _parse(s.fol, False, ctx.budget)
    if not r.ok:
        return False, f"claim does not parse: {r.error}", None, set()
    claim = r.formula
    cited = [known[a] for a in s.args]
    if s.option == "EXIST_INSTANTIATION":
        return _check_exist_instantiation(cited, claim, ctx, known, witnesses)
    err = _vocabulary_error(claim, ctx, witnesses)
    if err:
        return False, err, None, set()
    err = _inference_error(s.option, cited, claim, ctx, s.args)
    if err:
        return False, err, None, set()
    return True, "ok", claim, set()


def _check_exist_instantiation(cited: list[Formula], claim: Formula, ctx: _Context, known: dict, witnesses: set):
    if len(cited) != 1 or cited[0].op != "exists":
        return False, _need("EXIST_INSTANTIATION", cited), None, set()
    subst = instance_of(cited[0], claim, "exists")
    if subst is None or any(t.args is not None for t in subst.values()):
        return False, "claim is not an instance of the cited existential", None, set()
    names = {t.name for t in subst.values()}
    if len(names) < len(subst):  # ∃x ∃y R(x, y) does not give R(a, a)
        return False, "EXIST_INSTANTIATION needs a distinct fresh constant for each variable", None, set()
    used = set(ctx.consts) | witnesses
    for f in known.values():
        if f is not None:
            used |= atoms(f)[1]
    stale = sorted(names & used)
    if stale:
        return False, f"EXIST_INSTANTIATION needs a fresh constant; {stale[0]!r} is already used", None, set()
    err = _vocabulary_error(claim, ctx, names | witnesses)
    if err:
        return False, err, None, set()
    return True, "ok", claim, names


def _need(option: str, cited: list) -> str:
    lo, hi, need = RULES[option]
    if not lo <= len(cited) <= hi:
        return f"{option} needs {need}; got {len(cited)} cited formula(s)"
    return f"{option} needs {need}"


def _inference_error(option: str, cited: list[Formula], claim: Formula, ctx: _Context,
                     args: list[int] | None = None) -> str | None:
    """None when `option` applied to `cited` licenses `claim`, else why not: the rule's own test (rules.py),
    no earlier rule that licenses the step, then the Z3 entailment, and for compound rules no superfluous
    citation. Not for EXIST_INSTANTIATION (structural, see _check_folio_step)."""
    lo, hi, _ = RULES[option]
    if not lo <= len(cited) <= hi:
        return _need(option, cited)
    if option in COMPOUND:
        err = compound_shape_error(option, cited, claim)
        if err:
            return err
        other = first_rule(cited, claim)
        if other:
            return f"this step is {other}, not {option} (a step names the first rule that licenses it)"
    else:
        if not licenses(option, cited, claim):
            if option == "UNIV_INSTANTIATION" and cited[0].op == "forall":
                return "claim is not an instance of the cited universal"
            return _need(option, cited)
        other = first_rule(cited, claim, before=option)
        if other:
            return f"this step is {other}, not {option} (a step names the first rule that licenses it)"
    verdict = ctx.entails(cited, claim)
    if verdict == "timeout":
        return "entailment check timed out"
    if verdict != "unsat":
        return "claim does not follow from the cited formulas"
    if option in COMPOUND and len(cited) >= 2:
        for i in range(len(cited)):
            if ctx.entails(cited[:i] + cited[i + 1:], claim) == "unsat":
                name = args[i] if args else i
                return f"cited formula {name} is not needed for the claim"
    return None


def _goal(ctx: _Context, answer: str) -> Formula | None:
    if ctx.query is None:
        return None
    return ctx.query if answer == "TRUE" else Formula("not", (ctx.query,))


def _goals(ctx: _Context, answer: str) -> list[Formula]:
    """The formulas that establish `answer`: the query (TRUE); ¬query, or A when the query is ¬A (FALSE)."""
    goal = _goal(ctx, answer)
    if goal is None:
        return []
    return [goal, ctx.query.kids[0]] if answer == "FALSE" and ctx.query.op == "not" else [goal]


def _premise_is(ctx: _Context, goal: Formula | None) -> bool:
    return goal is not None and any(p is not None and p == goal for p in ctx.premises)


# Why a CONCLUDE of a problem without a query formula (FOLIO's train split) is not supported: its answer cannot be
# checked. A trace whose only failure is this one is otherwise sound (verdict "answer_unchecked"; oakdpo.pairs).
ANSWER_UNCHECKED = "the problem has no query FOL to check the answer against"


def _check_folio_conclude(ctx: _Context, parsed, s: ParsedStep, derived: list[Formula], after_first: bool,
                          is_last: bool):
    """(valid, reason, supported, unchecked) for a CONCLUDE step; `derived` holds the claims of valid earlier
    steps. Support is computed for the first CONCLUDE only (a later one is invalid whatever it says). `unchecked`:
    the step is well formed and fails only because the problem has no query FOL (ANSWER_UNCHECKED)."""
    if after_first:
        return False, s.error or "more than one CONCLUDE", False, False
    supported, answer, why = False, None, ""
    if s.args is not None and len(s.args) == 1 and 0 <= s.args[0] < len(LABELS):
        answer = LABELS[s.args[0]]
        if ctx.query is None:
            why = ANSWER_UNCHECKED
        elif answer == "UNKNOWN":
            fol = ctx.problem.fol or {}
            r = solve_cached(list(fol.get("premises") or []), fol.get("query"),
                             DEFAULT_TIMEOUT_MS, ctx.budget)
            ctx.budget.check()
            supported = r.predicted == "UNKNOWN" and r.status == "ok"
            why = f"the premises decide the query (solver: {r.predicted}, {r.status})"
        else:
            goals = _goals(ctx, answer)
            supported = any(_premise_is(ctx, g) or g in derived for g in goals)
            why = f"{to_text(goals[0])!r} is neither a premise nor the claim of a valid step"
    if s.error:
        return False, s.error, supported, False
    if answer is None:
        return False, f"CONCLUDE needs 1 arg (0=TRUE, 1=FALSE, 2=UNKNOWN), got {s.args}", supported, False
    if not is_last:
        return False, "CONCLUDE is not the last step", supported, False
    if parsed.final_answer is None:
        return False, "missing Final Answer", supported, False
    if parsed.final_answer != answer:
        return False, f"CONCLUDE answer {answer} disagrees with Final Answer {parsed.final_answer}", supported, False
    if not supported:  # checked last: a CONCLUDE failing only here is well formed (see ANSWER_UNCHECKED)
        return False, f"answer {answer} not supported: {why}", False, ctx.query is None
    return True, "ok", supported, False


def verify_folio_trace(problem: Problem, text: str, step_timeout_ms: float = STEP_TIMEOUT_MS,
                       budget: Budget | None = None) -> dict:
    """Verdict for one FOLIO completion, in the PrOntoQA verdict shape (without problem_id / sample):
    {steps: [{index, option, args, claim, valid, reason}], answer, correct, trace_valid, step_validity,
    num_reasoning_steps, conclude_supported, trace_reason}. `claim` is the step's FOL line (the thought's last
    sentence when the FOL line is missing). Never raises on any text; a spent `budget` raises VerifyTimeout."""
    budget = budget or Budget(None)
    parsed = parse_trace(text)
    budget.check()
    ctx = _context(problem, step_timeout_ms, budget)
    P = len(ctx.premises)
    steps = parsed.steps
    n_reasoning = sum(1 for s in steps if not s.is_conclude)
    n_formulas = P + n_reasoning
    known: dict[int, Formula | None] = {i: f for i, f in enumerate(ctx.premises)}
    invalid: set[int] = set()
    witnesses: set[str] = set()
    derived: list[Formula] = []
    out, k = [], 0
    conclude_supported, first_done, unchecked = False, False, False
    for s in steps:
        budget.check()
        unchecked = False
        if s.is_conclude:
            valid, reason, supported, unchecked = _check_folio_conclude(ctx, parsed, s, derived, first_done,
                                                                        is_last=s.index == len(steps) - 1)
            if not first_done:
                conclude_supported = supported
            first_done = True
        else:
            n = P + k
            k += 1
            try:
                valid, reason, formula, new = _check_folio_step(s, n, n_formulas, ctx, known, invalid, witnesses)
            except z3.Z3Exception as e:  # bad model output is data: never propagate
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
    needs_reasoning = n_reasoning == 0 and answer in ("TRUE", "FALSE") and not any(
        _premise_is(ctx, g) for g in _goals(ctx, answer))
    trace_reason = first_failure(steps, out, answer, problem.label, needs_reasoning)
    verdict = make_verdict(steps, out, answer, problem.label, conclude_supported, trace_reason)
    if ctx.query is None:  # every reasoning step valid, one well-formed CONCLUDE last: only the answer is unchecked
        verdict["answer_unchecked"] = bool(out) and unchecked and all(v["valid"] for v in out[:-1])
    return verdict
