"""The FOLIO optionizer: a verified gold trace found by proof search over an unsat-core minimal premise set."""

from __future__ import annotations

from itertools import product

import z3

from ...trace import ANSWER_CODES, Problem
from .fol import Formula, Term, atoms, substitute, to_text
from .prompt import render_folio_trace
from .rules import COMPOUND, compound_shape_error, first_rule, instantiate, match, views
from .solver import DEFAULT_TIMEOUT_MS, STEP_TIMEOUT_MS, _check, _parse, solve_problem
from .verify import _Context, _context, _goal, _inference_error, _negate, verify_folio_trace


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


def _canon(f: Formula) -> Formula:
    """The formula as the verifier will read it back from its text (∧ / ∨ chains flattened, ...)."""
    r = _parse(to_text(f), False)
    return r.formula if r.ok else f


def _triggered_instances(general: Formula, ground: list[Formula], consts: list[str], limit: int = 24,
                         quant: str = "forall"):
    """Ground instances of a formula's leading `quant` body whose variables are bound by matching one of its
    atoms against a ground atom already in play (remaining variables range over the constants)."""
    vars_, body = [], general
    while body.op == quant:
        vars_.append(body.name)
        body = body.kids[0]
    pv = frozenset(vars_)
    substs = []
    for pat in _atoms_of(body):
        for g in ground:
            if g.name != pat.name or len(g.terms) != len(pat.terms):
                continue
            sub = match(pat, g, pv)
            if sub and sub not in substs:
                substs.append(sub)
    out = []
    for sub in substs:
        free = [v for v in vars_ if v not in sub]
        for combo in product(consts, repeat=len(free)):
            inst = instantiate(body, {**sub, **{v: Term(c) for v, c in zip(free, combo)}}, pv)
            if inst is not None and inst not in out:
                out.append(inst)
            if len(out) >= limit:
                return out
    return out


class _ProofSearch:
    """Builds a FOLIO proof for `goal` from the premise indices in `core` (see folio_gold_trace)."""

    def __init__(self, ctx: _Context, core: list[int], goal: Formula, max_steps: int = 20,
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
        claim = _canon(claim)
        if self.have(claim) is not None or len(self.steps) >= self.max_steps:
            return False
        if check and _inference_error(option, [self.formula(a) for a in args], claim, self.ctx, args):
            return False
        self.steps.append((option, args, claim))
        self.known.append((self.P + len(self.steps) - 1, claim))
        return True

    def formula(self, idx: int) -> Formula:
        return next(g for i, g in self.known if i == idx)

    def candidates(self) -> list[tuple[int, Formula]]:
        """(index, formula) pairs to reason from: ground formulas, and ground instances of universal ones
        (whose variables are bound by atoms already in play), each with the index of the formula it came from."""
        ground = [a for _, f in self.known if f.op != "forall" for a in _atoms_of(f)] + _atoms_of(self.goal)
        out = []
        for i, f in self.known:
            if f.op == "forall":
                out += [(i, inst) for inst in _triggered_instances(f, ground, self.consts)]
            else:
                out.append((i, f))
        return out

    def establish(self, f: Formula, depth: int = 2) -> int | None:
        """The index of `f` when known, or after deriving it from known parts in a step or two: AND_INTRO of
        its conjuncts, OR_INTRO of a disjunct, a reductio for ¬(A ∨ B) from ¬A and ¬B or ¬(A ∧ B) from ¬A;
        None when it cannot."""
        j = self.have(f)
        if j is not None or depth <= 0:
            return j
        if f.op == "and":
            parts = [self.establish(k, depth - 1) for k in f.kids]
            if all(a is not None for a in parts) and self.add("AND_INTRO", parts, f):
                return self.have(_canon(f))
        elif f.op == "or":
            for k in f.kids:
                a = self.establish(k, depth - 1)
                if a is not None and self.add("OR_INTRO", [a], f):
                    return self.have(_canon(f))
        elif f.op == "not" and f.kids[0].op in ("or", "and"):
            g = f.kids[0]
            negs = [self.establish(_negate(k), depth - 1) for k in g.kids]
            args = negs if g.op == "or" else next(([a] for a in negs if a is not None), [None])
            if all(a is not None for a in args) and self.add("CONTRADICTION", args, f):
                return self.have(_canon(f))
        return None

    def reductio_add(self, args: list[int], k: Formula) -> bool:
        """CONTRADICTION: ¬k from `args`; when k is ¬m, DOUBLE_NEGATION then gives m."""
        nk = Formula("not", (k,))
        progress = self.add("CONTRADICTION", args, nk)
        if k.op == "not" and self.have(_canon(nk)) is not None:
            progress |= self.add("DOUBLE_NEGATION", [self.have(_canon(nk))], k.kids[0])
        return progress

    def forward_round(self) -> bool:
        """One round of ground forward chaining; True when something new was derived. Rules apply to ground
        formulas and to ground instances of universal ones, citing the universal itself (MODUS_PONENS,
        DISJUNCTIVE_SYLLOGISM, ... accept a universal premise), so no separate instantiation step is needed."""
        progress = False
        est = self.establish
        ground = [a for _, f in self.known if f.op != "forall" for a in _atoms_of(f)] + _atoms_of(self.goal)
        for i, f in self.candidates():
            if f.op == "and":
                for k in f.kids:
                    progress |= self.add("AND_ELIM", [i], k)
            elif f.op == "implies":
                a, c = f.kids
                j = est(a)
                if j is not None:
                    progress |= self.add("MODUS_PONENS", [i, j], c)
                elif (j := est(_negate(c))) is not None:
                    progress |= self.add("MODUS_TOLLENS", [i, j], _negate(a))
            elif f.op in ("or", "xor"):
                # one disjunct ruled out per step (the first one that can be): a chain, not every subset
                for x, k in enumerate(f.kids):
                    rest = f.kids[:x] + f.kids[x + 1:]
                    other = rest[0] if len(rest) == 1 else Formula(f.op, rest)
                    if (j := est(_negate(k))) is not None:
                        progress |= self.add("DISJUNCTIVE_SYLLOGISM", [i, j], other)
                        break
                    if f.op == "xor" and (j := self.have(k)) is not None:
                        progress |= self.add("DISJUNCTIVE_SYLLOGISM", [i, j], _negate(other))
                        break
            elif f.op == "iff":
                for x, y in ((0, 1), (1, 0)):
                    if (j := est(f.kids[x])) is not None:
                        progress |= self.add("BICONDITIONAL_ELIM", [i, j], f.kids[y])
                    elif (j := est(_negate(f.kids[x]))) is not None:
                        progress |= self.add("BICONDITIONAL_ELIM", [i, j], _negate(f.kids[y]))
            elif f.op == "not":  # reductio: what a negated ∨ / ∧ / ∃ rules out
                g = f.kids[0]
                if g.op == "or":
                    for k in g.kids:
                        progress |= self.reductio_add([i], k)
                elif g.op == "and":
                    for x, k in enumerate(g.kids):
                        others = [self.have(o) for y, o in enumerate(g.kids) if y != x]
                        if all(o is not None for o in others):
                            progress |= self.reductio_add([i, *others], k)
                elif g.op == "exists":
                    for inst in _triggered_instances(g, ground, self.consts, quant="exists"):
                        progress |= self.reductio_add([i], inst)
        return progress

    def case_split(self, goal: Formula) -> bool:
        """CASE_SPLIT: a disjunction in play whose every disjunct is the antecedent of a known implication
        (or of an instance of a universal one) with the goal as consequent."""
        for i, f in self.candidates():
            if f.op not in ("or", "xor"):
                continue
            cases = []
            for k in f.kids:
                j = next((j for j, g in self.known for body, pv in views(g) if body.op == "implies"
                          and (s := match(body.kids[0], k, pv)) is not None
                          and match(body.kids[1], goal, pv, s) is not None), None)
                if j is None:
                    break
                cases.append(j)
            else:
                if self.add("CASE_SPLIT", [i, *cases], goal):
                    return True
        return False

    def close(self, goal: Formula, max_cited: int, depth: int = 2, compound: bool = False) -> bool:
        """Derive `goal` in one step from a minimal supporting set, or via its parts (∧, ∃, ∨, ↔) or by cases;
        True on success. The compound rules (Z3 alone) are tried only with `compound`."""
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
            option = _closing_option([forms[n] for n in support], _canon(goal), compound)
            if option and self.add(option, args, goal):
                return True
        if self.case_split(goal):
            return True
        if depth <= 0:
            return False
        if goal.op == "and":
            if all(self.close(k, max_cited, depth - 1, compound) for k in goal.kids):
                return self.add("AND_INTRO", [self.have(k) for k in goal.kids], goal)
        elif goal.op == "exists":
            for c in self.consts:
                sub = substitute(goal.kids[0], goal.name, c)
                if _minimal_support(self.ctx, forms, sub, self.timeout_ms) is not None and \
                        self.close(sub, max_cited, depth - 1, compound):
                    return self.add("EXIST_GENERALIZATION", [self.have(sub)], goal)
        elif goal.op == "iff":
            a, c = goal.kids
            there, back = Formula("implies", (a, c)), Formula("implies", (c, a))
            if self.close(there, max_cited, depth - 1, compound) and self.close(back, max_cited, depth - 1, compound):
                return self.add("BICONDITIONAL_INTRO", [self.have(there), self.have(back)], goal)
        elif goal.op == "or":
            for k in goal.kids:
                if _minimal_support(self.ctx, forms, k, self.timeout_ms) is not None and \
                        self.close(k, max_cited, depth - 1, compound):
                    return self.add("OR_INTRO", [self.have(k)], goal)
        return False

    def reductio(self, goal: Formula, max_cited: int) -> bool:
        """The last resort for a goal that is not a negation: CONTRADICTION gives ¬¬goal from a minimal
        supporting set (they contradict ¬goal), DOUBLE_NEGATION the goal."""
        if goal.op == "not":
            return False
        dn = Formula("not", (Formula("not", (goal,)),))
        idxs = [i for i, _ in self.known]
        support = _minimal_support(self.ctx, [f for _, f in self.known], dn, self.timeout_ms,
                                   drop_first=[n for n, i in enumerate(idxs) if i < self.P])
        if support is None or len(support) > max_cited:
            return False
        return self.add("CONTRADICTION", [idxs[n] for n in support], dn) and \
            self.add("DOUBLE_NEGATION", [self.have(_canon(dn))], goal)

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
        """Elementary rules first (one-step closings, then rounds of forward chaining); the compound rules
        only when those do not reach the goal; a reductio of the whole goal last."""
        self.instantiate_existentials()
        for compound in (False, True):
            for _ in range(self.max_steps):
                if self.close(self.goal, 2, compound=compound):
                    return self.pruned()
                if not self.forward_round():
                    break
            if self.close(self.goal, 6, compound=compound):
                return self.pruned()
        if self.reductio(self.goal, 6):
            return self.pruned()
        return None

    def pruned(self) -> list[tuple[str, list[int], Formula]]:
        """The steps the goal's step needs (transitively), renumbered; the goal's step comes last."""
        P = self.P
        last = self.have(_canon(self.goal)) - P
        need = {last}
        for k in range(last, -1, -1):
            if k in need:
                need |= {a - P for a in self.steps[k][1] if a >= P}
        order = sorted(need)
        remap = {P + old: P + new for new, old in enumerate(order)}
        return [(self.steps[k][0], [remap.get(a, a) for a in self.steps[k][1]], self.steps[k][2]) for k in order]


def _closing_option(cited: list[Formula], goal: Formula, compound: bool) -> str | None:
    """The option a one-step closing from `cited` must use: the first elementary rule that licenses it, else
    (with `compound`) the compound rule of the goal's shape."""
    rule = first_rule(cited, goal)
    if rule or not compound:
        return rule
    return next((o for o in COMPOUND if compound_shape_error(o, cited, goal) is None), None)


def folio_gold_trace(problem: Problem, timeout_ms: float = DEFAULT_TIMEOUT_MS) -> str | None:
    """The FOLIO optionizer: a verified trace for SFT, or None where none is found.

    The label must agree with solve() (status ok), else None: annotation errors are not taught.
    UNKNOWN: a CONCLUDE-only trace. TRUE / FALSE (goal: the query or its negation): a premise equal to the goal
    gives a CONCLUDE-only trace; otherwise take an unsat-core minimal premise set that entails the goal and
    search a proof over it (_ProofSearch), elementary rules first: instantiate existential premises with fresh
    witnesses w1, w2, ...; try to close the goal in one step (a minimal supporting set of at most 2 formulas
    and the rule that licenses it, or CASE_SPLIT over a disjunction whose cases imply the goal; ∧ / ∃ / ∨ / ↔
    goals also through their parts, then AND_INTRO / EXIST_GENERALIZATION / OR_INTRO / BICONDITIONAL_INTRO);
    else run rounds of ground forward chaining over ground formulas and over instances of universal premises
    whose variables are bound by atoms already in play, citing the universal itself (AND_ELIM, MODUS_PONENS
    with an antecedent built by AND_INTRO / OR_INTRO, MODUS_TOLLENS, DISJUNCTIVE_SYLLOGISM one disjunct at a
    time, BICONDITIONAL_ELIM, and reductio steps for what ¬(A ∨ B), ¬(A ∧ B) with A, or ¬∃x φ rule out),
    trying to close after each round, and at the end with up to 6 cited formulas. Only then the same with the
    compound rules (CONTRADICTION, CONDITIONAL_PROOF, UNIV_GENERALIZATION) allowed for the closing step, and
    last a reductio of the whole goal (CONTRADICTION: ¬¬goal, then DOUBLE_NEGATION). Steps the goal's step
    does not need are pruned. Every step is checked with the verifier's own rules while searching, and the
    finished trace is returned only if verify_folio_trace finds it valid. None when the label disagrees with
    the solver, the problem has no query FOL, or no proof is found within 20 steps."""
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


