"""The FOLIO step verifier (Z3).

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

from dataclasses import dataclass, field

import z3

from ...trace import LABELS, Budget, OPTION_TYPES, ParsedStep, Problem, first_failure, make_verdict, parse_trace
from .fol import Formula, Term, Z3Builder, atoms, to_text
from .solver import STEP_TIMEOUT_MS, DEFAULT_TIMEOUT_MS, _check, _parse, solve_problem

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


def verify_folio_trace(problem: Problem, text: str, step_timeout_ms: float = STEP_TIMEOUT_MS,
                       budget: Budget | None = None) -> dict:
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
        if budget is not None:
            budget.check()
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



def _negate(f: Formula) -> Formula:
    return f.kids[0] if f.op == "not" else Formula("not", (f,))

