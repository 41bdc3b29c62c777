"""Corrupted gold traces, one kind of error each, that the strict verifier must reject.

mutants(problem) yields (kind, text) for the problem's gold trace:
    index     one cited fact of a step replaced by another formula written before that step (a different one,
              and not one that satisfies the same condition of the rule)
    rule      the rule a MODUS_PONENS step cites replaced by another rule of the premises (a different one)
    polarity  a step's claim negated ("So the cow visits the tiger." -> "So the cow does not visit the tiger.")
    drop      one reasoning step left out (the later steps unchanged)
    answer    the CONCLUDE step and the Final Answer changed to each other label
Deterministic for a problem (the replacement indices come from a generator seeded by its id).
"""

from __future__ import annotations

import random
import zlib

from ...trace import ANSWER_CODES, LABELS, Problem, render_trace
from .gold import _after_so, gold_steps
from .logic import Lit, Rule, entities, literals, parse_sentence, render

KINDS = ("index", "rule", "polarity", "drop", "answer")


def _same(f, g) -> bool:
    if isinstance(f, Rule) and isinstance(g, Rule):
        return set(f.body) == set(g.body) and f.head == g.head
    return f == g


def _still_licenses(rule, facts: list, claim) -> bool:
    """Whether `facts` are exactly the rule's conditions for some entity with `claim` its conclusion: then a
    changed citation is no error (another fact that satisfies the same condition)."""
    if not isinstance(rule, Rule) or any(f is None or isinstance(f, Rule) for f in facts):
        return False
    have = set().union(*(set(literals(f)) for f in facts))
    for value in [None] if rule.ground else entities(facts):
        if {b.bind(value) for b in rule.body} == have and rule.head.bind(value) == claim:
            return True
    return False


def mutants(problem: Problem):
    steps = gold_steps(problem)
    if steps is None:
        return
    rng = random.Random(zlib.crc32(problem.id.encode()))
    label = problem.label
    P = len(problem.premises)
    formulas = [parse_sentence(p) for p in problem.premises]
    for _, option, _ in steps:
        if option != "CONCLUDE":
            formulas.append(None)  # filled below, in order
    k = 0
    for thought, option, args in steps:
        if option == "CONCLUDE":
            continue
        formulas[P + k] = parse_sentence(thought.rsplit(" So ", 1)[1])
        k += 1
    rules = [i for i, f in enumerate(formulas[:P]) if isinstance(f, Rule)]
    reasoning = [i for i, (_, o, _) in enumerate(steps) if o != "CONCLUDE"]

    def text(new_steps, answer=label):
        return render_trace(new_steps, answer)

    for k, i in enumerate(reasoning):
        thought, option, args = steps[i]
        n = P + k
        # index: a cited fact replaced by a different earlier formula
        for pos, a in enumerate(args[:-1] if option == "MODUS_PONENS" else args):
            others = [j for j in range(n) if j not in args and formulas[j] is not None
                      and not _same(formulas[j], formulas[a])
                      and not (option == "MODUS_PONENS" and _still_licenses(
                          formulas[args[-1]], [formulas[b] for b in args[:-1] if b != a] + [formulas[j]],
                          formulas[n]))]
            if others:
                new = list(args)
                new[pos] = rng.choice(others)
                yield "index", text(steps[:i] + [(thought, option, new)] + steps[i + 1:])
        # rule: another rule of the premises
        if option == "MODUS_PONENS":
            others = [j for j in rules if j not in args and not _same(formulas[j], formulas[args[-1]])]
            if others:
                new = args[:-1] + [rng.choice(others)]
                yield "rule", text(steps[:i] + [(thought, option, new)] + steps[i + 1:])
        # polarity: the claim negated
        claim = formulas[n]
        if isinstance(claim, Lit):
            head, _, _ = thought.rpartition(" So ")
            flipped = f"{head} So {_after_so(render(claim.negate()))}"
            yield "polarity", text(steps[:i] + [(flipped, option, args)] + steps[i + 1:])
        # drop: the step left out
        yield "drop", text(steps[:i] + steps[i + 1:])
    # answer: the other labels
    thought, _, _ = steps[-1]
    for other in LABELS:
        if other != label:
            yield "answer", text(steps[:-1] + [(thought, "CONCLUDE", [ANSWER_CODES[other]])], other)
