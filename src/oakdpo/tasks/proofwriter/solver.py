"""ProofWriter's label solver: forward chaining over the facts and rules, open world.

closure(premises) applies every rule to the known literals, round after round, until nothing new follows. A
rule fires on a binding of its variable to an entity (a ground rule on itself) when every condition is a known
literal, a negated condition ("not red") included: negation is explicit, nothing is false by default. Round r
uses the literals known before it, so the first derivation recorded for a literal is one of least depth.
label: TRUE when the statement is in the closure, FALSE when its negation is, else UNKNOWN (both: None,
status "inconsistent"). proof(lit) lists the derivations a literal needs, in an order that cites only earlier ones.

Relevance (what an UNKNOWN answer has to look at): needed_patterns(rules, goal) are the literals, with the
variable as a wildcard, that a derivation of the statement or of its negation could pass through: the two
themselves, and, for every rule whose conclusion unifies with a needed pattern, its conditions under that
unifier. A rule instance is relevant when its conclusion matches a needed pattern. If a set of literals that
holds the premises is closed under the relevant instances and contains neither the statement nor its
negation, then neither follows (any derivation of them uses relevant instances only): open_instances checks
that closure, and both the UNKNOWN gold trace (relevant_derivations) and the verifier rely on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ...trace import Problem, query_statement
from .logic import VAR, Lit, Rule, entities, literals, parse_sentence


@dataclass(frozen=True)
class Derivation:
    """One rule firing: `fact` from the rule premise `rule` (its index) on the ground literals `body`."""
    fact: Lit
    rule: int
    body: tuple[Lit, ...]
    depth: int


@dataclass
class Theory:
    """The premises read as formulas: fact literals (with the premise index that states them), rules, entities."""
    formulas: list
    facts: dict[Lit, int]
    rules: list[tuple[int, Rule]]
    entities: list[str]
    unparsed: list[int] = field(default_factory=list)


def read_theory(premises: list[str], extra_entities=()) -> Theory:
    formulas = [parse_sentence(p) for p in premises]
    facts: dict[Lit, int] = {}
    rules: list[tuple[int, Rule]] = []
    for i, f in enumerate(formulas):
        if isinstance(f, Rule):
            rules.append((i, f))
        for lit in literals(f):
            facts.setdefault(lit, i)
    ents = entities([f for f in formulas if f is not None] + list(extra_entities))
    return Theory(formulas, facts, rules, ents, [i for i, f in enumerate(formulas) if f is None])


def bindings(rule: Rule, ents: list[str]):
    """The values the rule's variable can take (None: a ground rule, one instance)."""
    return [None] if rule.ground else ents


@dataclass
class Closure:
    theory: Theory
    derived: dict[Lit, Derivation]  # in derivation order

    def holds(self, lit: Lit) -> bool:
        return lit in self.theory.facts or lit in self.derived

    @property
    def inconsistent(self) -> bool:
        known = set(self.theory.facts) | set(self.derived)
        return any(lit.negate() in known for lit in known)

    def proof(self, lit: Lit) -> list[Derivation]:
        """The derivations `lit` needs (none when it is a premise), each after those of its conditions."""
        need: set[Lit] = set()
        stack = [lit]
        while stack:
            x = stack.pop()
            if x in need or x in self.theory.facts or x not in self.derived:
                continue
            need.add(x)
            stack.extend(self.derived[x].body)
        return [d for f, d in self.derived.items() if f in need]


_NO = object()  # _value: the literal cannot be an instance of the condition


def _value(cond: Lit, lit: Lit):
    """The variable's value that makes `cond` the ground literal `lit` (None: cond is ground and equal), or _NO."""
    if cond.pred != lit.pred or cond.positive != lit.positive or len(cond.args) != len(lit.args):
        return _NO
    value = None
    for x, y in zip(cond.args, lit.args):
        if x == VAR:
            if value is not None and value != y:
                return _NO
            value = y
        elif x != y:
            return _NO
    return value


def closure(theory: Theory, max_rounds: int = 256) -> Closure:
    """Forward chaining, one round at a time; a round tries only the rule instances with a condition that the
    previous round added (any earlier instance fired already)."""
    known: set[Lit] = set(theory.facts)
    derived: dict[Lit, Derivation] = {}
    depth = {lit: 0 for lit in known}
    order = {e: i for i, e in enumerate(theory.entities)}
    fresh = list(known)
    for _ in range(max_rounds):
        by_key: dict[tuple, list[Lit]] = {}
        for lit in fresh:
            by_key.setdefault((lit.pred, lit.positive), []).append(lit)
        new: dict[Lit, Derivation] = {}
        for i, rule in theory.rules:
            values = set()
            for cond in rule.body:
                for lit in by_key.get((cond.pred, cond.positive), ()):
                    v = _value(cond, lit)
                    if v is None and not rule.ground:
                        values.update(theory.entities)  # a ground condition is new: any value may fire now
                    elif v is not _NO:
                        values.add(v)
            for value in sorted(values, key=lambda v: order.get(v, -1)):
                body = tuple(b.bind(value) for b in rule.body)
                if not all(b in known for b in body):
                    continue
                head = rule.head.bind(value)
                if head in known or head in new:
                    continue
                new[head] = Derivation(head, i, body, 1 + max(depth[b] for b in body))
        if not new:
            break
        for lit, d in new.items():
            known.add(lit)
            depth[lit] = d.depth
            derived[lit] = d
        fresh = list(new)
    return Closure(theory, derived)


def goal_of(problem: Problem) -> Lit | None:
    """The statement the query asks about, as a ground literal (None when it does not parse as one)."""
    f = parse_sentence(query_statement(problem.query))
    return f if isinstance(f, Lit) and f.ground else None


def solve(problem: Problem) -> tuple[str | None, str, Closure | None]:
    """(label or None, status, closure). Status: ok | inconsistent | query does not parse | N premises unparsed
    (the label is still given: unparsed premises are left out)."""
    goal = goal_of(problem)
    if goal is None:
        return None, "query does not parse", None
    theory = read_theory(problem.premises, [goal])
    c = closure(theory)
    pos, neg = c.holds(goal), c.holds(goal.negate())
    status = f"{len(theory.unparsed)} premises unparsed" if theory.unparsed else "ok"
    if pos and neg:
        return None, "inconsistent", c
    return ("TRUE" if pos else "FALSE" if neg else "UNKNOWN"), status, c


def label(problem: Problem) -> str | None:
    return solve(problem)[0]


# ------------------------------------------------------------------------------------------- relevance

def _unify(head: Lit, pattern: Lit) -> tuple[bool, str | None]:
    """Whether a rule's conclusion can be an instance of `pattern` (VAR in a pattern: any entity), and the
    value it forces on the rule's variable (None: not forced)."""
    if head.pred != pattern.pred or head.positive != pattern.positive or len(head.args) != len(pattern.args):
        return False, None
    value = None
    for h, q in zip(head.args, pattern.args):
        if h == VAR:
            if q != VAR:
                if value is not None and value != q:
                    return False, None
                value = q
        elif q != VAR and q != h:
            return False, None
    return True, value


def matches(lit: Lit, pattern: Lit) -> bool:
    return (lit.pred == pattern.pred and lit.positive == pattern.positive and len(lit.args) == len(pattern.args)
            and all(q == VAR or q == a for a, q in zip(lit.args, pattern.args)))


def needed_patterns(rules: list[tuple[int, Rule]], goal: Lit) -> list[Lit]:
    out = [goal, goal.negate()]
    seen = set(out)
    i = 0
    while i < len(out):
        p = out[i]
        i += 1
        for _, rule in rules:
            ok, value = _unify(rule.head, p)
            if not ok:
                continue
            for b in rule.body:
                q = b.bind(value)
                if q not in seen:
                    seen.add(q)
                    out.append(q)
    return out


def open_instances(theory: Theory, patterns: list[Lit], known: set[Lit], budget=None):
    """Relevant rule instances that can still fire: (rule index, conclusion, conditions) for each rule instance
    whose conclusion matches a needed pattern and is not in `known` while all its conditions are."""
    for i, rule in theory.rules:
        if budget is not None:
            budget.check()
        if not any(_unify(rule.head, p)[0] for p in patterns):
            continue
        for value in bindings(rule, theory.entities):
            head = rule.head.bind(value)
            if head in known or not any(matches(head, p) for p in patterns):
                continue
            body = tuple(b.bind(value) for b in rule.body)
            if all(b in known for b in body):
                yield i, head, body


def relevant_derivations(c: Closure, goal: Lit) -> list[Derivation]:
    """The derived literals that match a needed pattern of `goal`, in derivation order: a trace that derives
    them leaves no relevant rule instance open (each one's conditions are themselves relevant)."""
    patterns = needed_patterns(c.theory.rules, goal)
    return [d for f, d in c.derived.items() if any(matches(f, p) for p in patterns)]


__all__ = ["Closure", "Derivation", "Theory", "closure", "goal_of", "label", "matches", "needed_patterns",
           "open_instances", "read_theory", "relevant_derivations", "solve"]
