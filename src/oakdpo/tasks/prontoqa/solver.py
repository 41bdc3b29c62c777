"""PrOntoQA's label solver: forward chaining over the premises with the task's own rules (logic.apply_option)."""

from __future__ import annotations

from ...trace import Problem, query_statement
from .logic import Fact, Rule, make_fact, negate_fact, parse_sentence


def closure(premises: list[str], max_rounds: int = 64) -> set[Fact]:
    """Every single-literal fact that follows from the premises by modus ponens (atom, 'and' and 'or'
    antecedents), plus the premise facts themselves and the parts of conjunctive facts."""
    formulas = [parse_sentence(p) for p in premises]
    rules = [f for f in formulas if isinstance(f, Rule)]
    known: set[Fact] = set()
    for f in formulas:
        if isinstance(f, Fact):
            known.add(f)
            if f.op == "and":
                known |= {make_fact(f.name, [lit]) for lit in f.lits}
    for _ in range(max_rounds):
        atoms = {(f.entity, f.lits[0]): f for f in known if f.op == "atom"}
        new = set()
        for r in rules:
            for entity, name in {(f.entity, f.name) for f in known}:
                have = [(entity, lit) in atoms for lit in r.ante]
                if (r.ante_op == "or" and any(have)) or (r.ante_op != "or" and all(have)):
                    fact = Fact(entity, r.cons, r.cons_op, name)
                    if fact not in known:
                        new.add(fact)
                        if fact.op == "and":
                            new |= {make_fact(name, [lit]) for lit in fact.lits}
        if not new:
            break
        known |= new
    return known


def label(problem: Problem) -> str | None:
    """TRUE when the query follows, FALSE when its negation does, None when neither (PrOntoQA has no UNKNOWN)."""
    goal = parse_sentence(query_statement(problem.query))
    if not isinstance(goal, Fact):
        return None
    known = closure(problem.premises)

    def holds(f: Fact) -> bool:
        if f in known:
            return True
        parts = [Fact(f.entity, (lit,), "atom", f.name) for lit in f.lits]
        return all(p in known for p in parts) if f.op == "and" else f.op == "or" and any(p in known for p in parts)

    if holds(goal):
        return "TRUE"
    if holds(negate_fact(goal)):
        return "FALSE"
    return None
