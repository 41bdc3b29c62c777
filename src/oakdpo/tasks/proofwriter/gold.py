"""The ProofWriter optionizer: the solver's proof as a trace with the existing option types.

Step shapes (docs/proofwriter.md):
- a rule fires on facts (any number of conditions, the variable bound to one entity): one MODUS_PONENS step
  citing the fact for each condition, in the rule's order, then the rule:
      Thought: The cow is cold. The cow visits the lion. If the cow is cold and the cow visits the lion then
      the lion sees the squirrel. So the lion sees the squirrel.
      Action: <Option type="MODUS_PONENS" args="[3, 5, 12]" />
  (the verifier also accepts the longer routes AND_INTRO then MODUS_PONENS, and UNIV_INSTANTIATION then
  MODUS_PONENS; the gold trace takes the one-step route.)
- TRUE / FALSE: the derivations the statement (its negation) needs, each after those it cites, then
      Thought: The tiger is young. So the query is false.
      Action: <Option type="CONCLUDE" args="[1]" />
  (a statement that is a premise: the CONCLUDE step alone).
- UNKNOWN: every derived fact that could lead to the statement or its negation (solver.relevant_derivations:
  usually none), then a CONCLUDE [2] that names both: "No premise or derived fact says that the tiger is young
  or that the tiger is not young. So the query is unknown."

Both styles write the same trace (the lookup style's prompt only drops the instruction).
"""

from __future__ import annotations

from ...trace import ANSWER_CODES, Problem, render_trace
from .logic import Lit, clause_text, render
from .solver import Closure, Derivation, goal_of, relevant_derivations, solve


def _sentence(s: str) -> str:
    s = " ".join(s.split())
    return s if s.endswith((".", "!", "?")) else s + "."


def gold_derivations(problem: Problem) -> tuple[list[Derivation], Closure] | None:
    """The derivations the gold trace writes and the solver's closure, or None when the solver's label is not
    the problem's."""
    predicted, _, c = solve(problem)
    if c is None or predicted != problem.label:
        return None
    goal = goal_of(problem)
    if problem.label == "UNKNOWN":
        return relevant_derivations(c, goal), c
    return c.proof(goal if problem.label == "TRUE" else goal.negate()), c


def gold_trace(problem: Problem, style: str = "natural") -> str | None:
    """The gold trace (the same in both styles; see the module docstring), or None when the solver does not
    reach the problem's label (the caller skips and counts such problems)."""
    steps = gold_steps(problem)
    return None if steps is None else render_trace(steps, problem.label)


def gold_steps(problem: Problem) -> list[tuple[str, str, list[int]]] | None:
    """The gold trace's steps (thought, option, args), the CONCLUDE step last, or None (see gold_trace)."""
    found = gold_derivations(problem)
    if found is None:
        return None
    derivations, c = found
    goal = goal_of(problem)
    P = len(problem.premises)
    index: dict[Lit, int] = dict(c.theory.facts)
    text: dict[int, str] = {i: _sentence(p) for i, p in enumerate(problem.premises)}
    steps: list[tuple[str, str, list[int]]] = []
    for d in derivations:
        args = list(dict.fromkeys([index[b] for b in d.body] + [d.rule]))  # a fact cited once
        n = P + len(steps)
        claim = render(d.fact)
        cited = " ".join(text[a] for a in args)
        steps.append((f"{cited} So {_after_so(claim)}", "MODUS_PONENS", args))
        index.setdefault(d.fact, n)
        text[n] = claim
    label = problem.label
    if label == "UNKNOWN":
        thought = (f"No premise or derived fact says that {clause_text(goal)} or that "
                   f"{clause_text(goal.negate())}. So the query is unknown.")
    else:
        support = goal if label == "TRUE" else goal.negate()
        thought = f"{text[index[support]]} So the query is {label.lower()}."
    steps.append((thought, "CONCLUDE", [ANSWER_CODES[label]]))
    return steps


def _after_so(sentence: str) -> str:
    """'The cow ...' reads 'So the cow ...'; a name ('Bob is ...') keeps its capital."""
    return "the" + sentence[3:] if sentence.startswith("The ") else sentence
