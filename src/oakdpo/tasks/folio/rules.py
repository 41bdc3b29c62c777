"""What each FOLIO option type licenses: a structural test per rule over the cited formulas and the claim.

A step is valid only when its option is the rule that licenses the claim (the step verifier adds the Z3
entailment check, vocabulary and citation checks; see verify.py and docs/folio.md). The elementary rules are
pure pattern matches:

    MODUS_PONENS            A → B, A                     ⊢ B
    MODUS_TOLLENS           A → B, ¬B                    ⊢ ¬A
    HYPOTHETICAL_SYLLOGISM  A → B, B → C                 ⊢ A → C
    DISJUNCTIVE_SYLLOGISM   A ∨ B ∨ C, ¬A                ⊢ B ∨ C      (A ⊕ B, ¬A ⊢ B;  A ⊕ B, A ⊢ ¬B)
    BICONDITIONAL_ELIM      A ↔ B, A ⊢ B;  A ↔ B, ¬A ⊢ ¬B (either side);  A ↔ B ⊢ A → B (either way)
    BICONDITIONAL_INTRO     A → B, B → A                 ⊢ A ↔ B
    UNIV_INSTANTIATION      ∀x φ(x)                      ⊢ φ(t)
    EXIST_GENERALIZATION    φ(t)                         ⊢ ∃x φ(x)
    AND_ELIM                A ∧ B ∧ C                    ⊢ B  (or a sub-conjunction: A ∧ C)
    AND_INTRO               A, B ∧ C                     ⊢ A ∧ B ∧ C  (the conjuncts are exactly the cited)
    OR_INTRO                A                            ⊢ A ∨ B  (a disjunction with the cited among its disjuncts)
    DOUBLE_NEGATION         A ⊢ ¬¬A;  ¬¬A ⊢ A
    CASE_SPLIT              A ∨ B, A → C, B → C          ⊢ C  (one implication per disjunct; ⊕ of two as well)

"Negation" reads both ways: ¬B, or B' where B is ¬B'. A cited universal formula `∀x (A → B)` may be
instantiated to fit (MODUS_PONENS from `∀x (Cat(x) → Mammal(x))` and `Cat(tom)` gives `Mammal(tom)`), and every
elementary rule also applies under a shared universal prefix: from `∀x φ1`, ..., `∀x φn` it gives `∀x ψ` when it
gives ψ from φ1 ... φn (`∀x (A(x) → B(x))`, `∀x (B(x) → C(x))` ⊢ `∀x (A(x) → C(x))`). EXIST_INSTANTIATION is
structural with a freshness condition (verify.py). The compound rules CONTRADICTION (claim ¬A), CONDITIONAL_PROOF
(claim A → B) and UNIV_GENERALIZATION (claim ∀x φ from universal formulas) are checked by Z3 alone and are for
steps that no elementary rule licenses: `first_rule` names the rule a step must use where two would do.
"""

from __future__ import annotations

import itertools
from collections import Counter

from .fol import Formula, Term

# option -> (min cited, max cited, what it needs); the prompt's rule list and the error reasons use these words
RULES = {
    "MODUS_PONENS": (2, 2, "an implication A → B (possibly universal, instantiated to fit) and its antecedent A; "
                           "the claim is its consequent B"),
    "MODUS_TOLLENS": (2, 2, "an implication A → B (possibly universal) and the negation of its consequent; the "
                            "claim is the negation of its antecedent"),
    "HYPOTHETICAL_SYLLOGISM": (2, 2, "two implications A → B and B → C (possibly universal); the claim is A → C"),
    "DISJUNCTIVE_SYLLOGISM": (2, 2, "a disjunction (∨, or ⊕ of two; possibly universal) and the negation of one "
                                    "disjunct; the claim is the other disjunct(s) (with ⊕: or the disjunct itself, "
                                    "and the claim is the other's negation)"),
    "BICONDITIONAL_ELIM": (1, 2, "a biconditional A ↔ B (possibly universal) and one side or its negation; the "
                                 "claim is the other side, negated alike (or the biconditional alone: the claim "
                                 "A → B or B → A)"),
    "BICONDITIONAL_INTRO": (2, 2, "two implications A → B and B → A; the claim is A ↔ B"),
    "UNIV_INSTANTIATION": (1, 1, "one universal formula; the claim is an instance of it (leading ∀ variables "
                                 "replaced by terms)"),
    "EXIST_INSTANTIATION": (1, 1, "one existential formula; the claim is its body with the ∃ variables replaced "
                                  "by fresh constants"),
    "EXIST_GENERALIZATION": (1, 1, "one formula; the claim is ∃x φ with the formula an instance of φ"),
    "AND_ELIM": (1, 1, "one conjunction (possibly universal); the claim is one of its conjuncts (or several "
                       "joined by ∧)"),
    "AND_INTRO": (2, 6, "two or more formulas; the claim is their conjunction"),
    "OR_INTRO": (1, 1, "one formula; the claim is a disjunction with it among the disjuncts"),
    "DOUBLE_NEGATION": (1, 1, "one formula A; the claim is ¬¬A (or the formula is ¬¬B and the claim B)"),
    "CASE_SPLIT": (3, 7, "a disjunction of n cases (∨, or ⊕ of two) and n implications, one from each case, "
                         "each with the claim as its consequent"),
    "CONTRADICTION": (1, 6, "formulas that contradict A; the claim is ¬A (reductio; only where no rule above "
                            "applies)"),
    "CONDITIONAL_PROOF": (1, 6, "formulas from which B follows once A is assumed; the claim is A → B (only where "
                                "no rule above applies)"),
    "UNIV_GENERALIZATION": (1, 4, "universal formulas from which the claim follows for an arbitrary object; the "
                                  "claim is universal (only where no rule above applies)"),
}
ELEMENTARY = ("MODUS_PONENS", "MODUS_TOLLENS", "HYPOTHETICAL_SYLLOGISM", "DISJUNCTIVE_SYLLOGISM",
              "BICONDITIONAL_ELIM", "BICONDITIONAL_INTRO", "UNIV_INSTANTIATION", "EXIST_GENERALIZATION",
              "AND_ELIM", "AND_INTRO", "OR_INTRO", "DOUBLE_NEGATION", "CASE_SPLIT")
COMPOUND = ("CONTRADICTION", "CONDITIONAL_PROOF", "UNIV_GENERALIZATION")  # Z3 alone, after the elementary ones

# ------------------------------------------------------------------------------------------ matching

Subst = dict  # pattern variable -> Term


def match(p: Formula, f: Formula, pvars: frozenset, s: Subst | None = None, ren: dict | None = None):
    """The substitution (a new dict extending `s`) of the pattern variables `pvars` (free names of `p`) that
    makes `p` equal to `f` up to the names of bound variables, or None."""
    s = dict(s or {})
    return s if _m(p, f, pvars, s, ren or {}) else None


def _m(p: Formula, f: Formula, pvars, s: dict, ren: dict) -> bool:
    if not pvars and not ren:
        return p == f
    if p.op != f.op or len(p.kids) != len(f.kids) or len(p.terms) != len(f.terms):
        return False
    if p.op in ("forall", "exists"):
        return _m(p.kids[0], f.kids[0], pvars - {p.name}, s, {**ren, p.name: f.name})
    if p.op == "atom" and p.name != f.name:
        return False
    for a, b in zip(p.terms, f.terms):
        if not _mt(a, b, pvars, s, ren):
            return False
    return all(_m(a, b, pvars, s, ren) for a, b in zip(p.kids, f.kids))


def _mt(a: Term, b: Term, pvars, s: dict, ren: dict) -> bool:
    if a.args is None:
        if a.name in ren:
            return b.args is None and b.name == ren[a.name]
        bound = set(ren.values())
        if a.name in pvars:
            if bound and _names(b) & bound:
                return False  # the value would be captured by a quantifier of the target
            if a.name in s:
                return s[a.name] == b
            s[a.name] = b
            return True
        return b.args is None and b.name == a.name and b.name not in bound
    if b.args is None or a.name != b.name or len(a.args) != len(b.args):
        return False
    return all(_mt(x, y, pvars, s, ren) for x, y in zip(a.args, b.args))


def _names(t: Term) -> set[str]:
    if t.args is None:
        return {t.name}
    out: set[str] = set()
    for a in t.args:
        out |= _names(a)
    return out


def instantiate(p: Formula, s: Subst, pvars: frozenset) -> Formula | None:
    """`p` with its free pattern variables replaced by their values in `s`; None when one is unbound or its
    value would be captured by a quantifier of `p`."""
    try:
        return _inst(p, s, pvars, frozenset())
    except _Unbound:
        return None


class _Unbound(Exception):
    pass


def _inst(p: Formula, s: Subst, pvars, inner: frozenset) -> Formula:
    if p.op in ("forall", "exists"):
        return Formula(p.op, (_inst(p.kids[0], s, pvars - {p.name}, inner | {p.name}),), name=p.name)
    if p.op in ("atom", "eq"):
        return Formula(p.op, name=p.name, terms=tuple(_inst_t(t, s, pvars, inner) for t in p.terms))
    return Formula(p.op, tuple(_inst(k, s, pvars, inner) for k in p.kids))


def _inst_t(t: Term, s: Subst, pvars, inner) -> Term:
    if t.args is None:
        if t.name not in pvars:
            return t
        if t.name not in s or _names(s[t.name]) & inner:
            raise _Unbound()
        return s[t.name]
    return Term(t.name, tuple(_inst_t(a, s, pvars, inner) for a in t.args))


def views(g: Formula):
    """(body, pattern variables) for the ways a cited formula may be used: as it is, and, when universal,
    its body with every leading ∀ variable free to be instantiated."""
    yield g, frozenset()
    if g.op == "forall":
        vs, body = [], g
        while body.op == "forall":
            vs.append(body.name)
            body = body.kids[0]
        yield body, frozenset(vs)


def neg_match(p: Formula, f: Formula, pvars, s: Subst | None = None) -> list[Subst]:
    """Substitutions under which `f` is the negation of `p`: f = ¬p, or p = ¬f."""
    out = []
    if f.op == "not":
        r = match(p, f.kids[0], pvars, s)
        if r is not None:
            out.append(r)
    if p.op == "not":
        r = match(p.kids[0], f, pvars, s)
        if r is not None:
            out.append(r)
    return out


def negate(f: Formula) -> Formula:
    """¬f, or g when f is ¬g."""
    return f.kids[0] if f.op == "not" else Formula("not", (f,))


def flat(f: Formula, op: str) -> tuple[Formula, ...]:
    """The operands of an `op` chain (∧ / ∨), or the formula itself."""
    return f.kids if f.op == op else (f,)


def instance_of(general: Formula, claim: Formula, quant: str) -> Subst | None:
    """The substitution that makes `claim` an instance of `general`: its first j leading `quant` variables
    (j = all .. 1) replaced by terms; None when there is none."""
    vs, body = [], general
    while body.op == quant:
        vs.append(body.name)
        body = body.kids[0]
    for j in range(len(vs), 0, -1):
        inner = general
        for _ in range(j):
            inner = inner.kids[0]
        s = match(inner, claim, frozenset(vs[:j]))
        if s is not None:
            return s
    return None


# ------------------------------------------------------------------------------------------- the rules

def _modus_ponens(c, f):
    for i, x in ((c[0], c[1]), (c[1], c[0])):
        for body, pv in views(i):
            if body.op == "implies":
                s = match(body.kids[0], x, pv)
                if s is not None and match(body.kids[1], f, pv, s) is not None:
                    return True
    return False


def _modus_tollens(c, f):
    for i, n in ((c[0], c[1]), (c[1], c[0])):
        for body, pv in views(i):
            if body.op == "implies":
                for s in neg_match(body.kids[1], n, pv):
                    if neg_match(body.kids[0], f, pv, s):
                        return True
    return False


def _hypothetical_syllogism(c, f):
    if f.op != "implies":
        return False
    p, r = f.kids
    for i1, i2 in ((c[0], c[1]), (c[1], c[0])):
        for b1, v1 in views(i1):
            if b1.op != "implies":
                continue
            s1 = match(b1.kids[0], p, v1)
            q = instantiate(b1.kids[1], s1, v1) if s1 is not None else None
            if q is None:
                continue
            for b2, v2 in views(i2):
                if b2.op == "implies":
                    s2 = match(b2.kids[0], q, v2)
                    if s2 is not None and match(b2.kids[1], r, v2, s2) is not None:
                        return True
    return False


def _disjunctive_syllogism(c, f):
    for d, n in ((c[0], c[1]), (c[1], c[0])):
        for body, pv in views(d):
            if body.op == "or":
                for i, k in enumerate(body.kids):
                    rest = body.kids[:i] + body.kids[i + 1:]
                    for s in neg_match(k, n, pv):
                        if len(rest) == 1:
                            if match(rest[0], f, pv, s) is not None:
                                return True
                        elif f.op == "or" and len(f.kids) == len(rest) and _all_match(rest, f.kids, pv, s):
                            return True
            elif body.op == "xor":
                for k, other in ((body.kids[0], body.kids[1]), (body.kids[1], body.kids[0])):
                    s = match(k, n, pv)
                    if s is not None and neg_match(other, f, pv, s):
                        return True
                    if any(match(other, f, pv, s2) is not None for s2 in neg_match(k, n, pv)):
                        return True
    return False


def _all_match(pats, fs, pv, s) -> bool:
    for p, g in zip(pats, fs):
        s = match(p, g, pv, s)
        if s is None:
            return False
    return True


def _biconditional_elim(c, f):
    if len(c) == 1:
        for body, pv in views(c[0]):
            if body.op == "iff" and f.op == "implies":
                a, b = body.kids
                for x, y in ((a, b), (b, a)):
                    s = match(x, f.kids[0], pv)
                    if s is not None and match(y, f.kids[1], pv, s) is not None:
                        return True
        return False
    for bic, x in ((c[0], c[1]), (c[1], c[0])):
        for body, pv in views(bic):
            if body.op != "iff":
                continue
            a, b = body.kids
            for side, other in ((a, b), (b, a)):
                s = match(side, x, pv)
                if s is not None and match(other, f, pv, s) is not None:
                    return True
                if any(neg_match(other, f, pv, s2) for s2 in neg_match(side, x, pv)):
                    return True
    return False


def _biconditional_intro(c, f):
    if f.op != "iff":
        return False
    p, r = f.kids
    for i1, i2 in ((c[0], c[1]), (c[1], c[0])):
        for b1, v1 in views(i1):
            if b1.op != "implies":
                continue
            s1 = match(b1, Formula("implies", (p, r)), v1)
            if s1 is None:
                continue
            for b2, v2 in views(i2):
                if b2.op == "implies" and match(b2, Formula("implies", (r, p)), v2) is not None:
                    return True
    return False


def _univ_instantiation(c, f):
    return c[0].op == "forall" and instance_of(c[0], f, "forall") is not None


def _exist_generalization(c, f):
    return f.op == "exists" and instance_of(f, c[0], "exists") is not None


def _and_elim(c, f):
    for body, pv in views(c[0]):
        if body.op != "and":
            continue
        if any(match(k, f, pv) is not None for k in body.kids):
            return True
        if not pv and f.op == "and" and len(f.kids) < len(body.kids) and not Counter(f.kids) - Counter(body.kids):
            return True
    return False


def _and_intro(c, f):
    if f.op != "and":
        return False
    parts = Counter(k for g in c for k in flat(g, "and"))
    return parts == Counter(f.kids)


def _or_intro(c, f):
    if f.op != "or":
        return False
    part = flat(c[0], "or")
    return len(part) < len(f.kids) and not Counter(part) - Counter(f.kids)


def _double_negation(c, f):
    return (f.op == "not" and f.kids[0].op == "not" and f.kids[0].kids[0] == c[0]) or \
        (c[0].op == "not" and c[0].kids[0].op == "not" and c[0].kids[0].kids[0] == f)


def _case_split(c, f):
    for di, d in enumerate(c):
        cases = c[:di] + c[di + 1:]
        antecedents = []
        for g in cases:  # each case: an implication whose consequent is the claim; its antecedent, ground
            found = None
            for body, pv in views(g):
                if body.op == "implies":
                    s = match(body.kids[1], f, pv)
                    a = instantiate(body.kids[0], s, pv) if s is not None else None
                    if a is not None:
                        found = a
                        break
            if found is None:
                break
            antecedents.append(found)
        else:
            for body, pv in views(d):
                if body.op in ("or", "xor") and len(body.kids) == len(antecedents) and len(antecedents) <= 6:
                    if any(_all_match(body.kids, perm, pv, {}) for perm in itertools.permutations(antecedents)):
                        return True
    return False


_CHECKS = {
    "MODUS_PONENS": _modus_ponens, "MODUS_TOLLENS": _modus_tollens,
    "HYPOTHETICAL_SYLLOGISM": _hypothetical_syllogism, "DISJUNCTIVE_SYLLOGISM": _disjunctive_syllogism,
    "BICONDITIONAL_ELIM": _biconditional_elim, "BICONDITIONAL_INTRO": _biconditional_intro,
    "UNIV_INSTANTIATION": _univ_instantiation, "EXIST_GENERALIZATION": _exist_generalization,
    "AND_ELIM": _and_elim, "AND_INTRO": _and_intro, "OR_INTRO": _or_intro, "DOUBLE_NEGATION": _double_negation,
    "CASE_SPLIT": _case_split,
}
_NO_PREFIX = ("UNIV_INSTANTIATION", "EXIST_GENERALIZATION")  # quantifier rules: no shared-prefix reading


def _strip_prefix(cited: list[Formula], claim: Formula):
    """The shared universal prefix removed: (cited bodies, claim body) with the k leading ∀ variables of the
    claim and of every cited formula renamed, position by position, to the same fresh names; None when the
    claim is not universal or a cited formula has fewer than k leading ∀."""
    if claim.op != "forall":
        return None
    k, g = 0, claim
    while g.op == "forall":
        k, g = k + 1, g.kids[0]
    out = []
    for f in [claim, *cited]:
        s, pv = {}, []
        for j in range(k):
            if f.op != "forall":
                return None
            pv.append(f.name)
            s[f.name] = Term(f"§{j}")  # cannot occur in parsed text: no clash with a real name
            f = f.kids[0]
        body = instantiate(f, s, frozenset(pv))
        if body is None:
            return None
        out.append(body)
    return out[1:], out[0]


def licenses(option: str, cited: list[Formula], claim: Formula) -> bool:
    """Does the elementary rule `option` give `claim` from `cited` (structurally; count not checked)?"""
    check = _CHECKS[option]
    lo, hi, _ = RULES[option]
    if not lo <= len(cited) <= hi:
        return False
    if check(cited, claim):
        return True
    if option in _NO_PREFIX:
        return False
    stripped = _strip_prefix(cited, claim)
    return stripped is not None and check(*stripped)


def compound_shape_error(option: str, cited: list[Formula], claim: Formula) -> str | None:
    """The shape a compound rule needs (its Z3 check is the verifier's), or None when it has it."""
    if option == "CONTRADICTION" and claim.op != "not":
        return "CONTRADICTION: the claim must be a negation ¬A (the cited formulas contradict A)"
    if option == "CONDITIONAL_PROOF" and claim.op != "implies":
        return "CONDITIONAL_PROOF: the claim must be an implication A → B"
    if option == "UNIV_GENERALIZATION":
        if claim.op != "forall":
            return "UNIV_GENERALIZATION: the claim must be a universal formula"
        if any(c.op != "forall" for c in cited):
            return "UNIV_GENERALIZATION: every cited formula must be universal"
    return None


def first_rule(cited: list[Formula], claim: Formula, before: str | None = None) -> str | None:
    """The first elementary rule (in ELEMENTARY order) that licenses the step, looking only at the rules
    before `before` when it is elementary (all of them for a compound rule or None)."""
    for rule in ELEMENTARY:
        if rule == before:
            return None
        if licenses(rule, cited, claim):
            return rule
    return None
