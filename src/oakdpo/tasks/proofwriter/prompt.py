"""How a ProofWriter problem is shown to the model, in each format style (format.style).

`natural` (what a real checkpoint sees): the instruction below as the system part (the task, the option types
the verifier accepts, one line each, and the trace grammar), and as the user part the premises exactly as
written, each numbered once ("[3] The cow is blue."), the query as written, and "Proof:".
`lookup` (configs/tiny.yaml, the built-in tiny model): the same user part without the instruction; the trace is
the natural one (gold.gold_trace).
"""

from __future__ import annotations

from ...trace import Problem

# The option types the ProofWriter verifier gives a meaning (verify.py), one line each for the instruction.
OPTION_HELP = {
    "MODUS_PONENS": 'a rule ("If ... then ...", "All A things are B") and one fact for each of its conditions, '
                    '"something" / "someone" read as one entity: the rule\'s conclusion for that entity.',
    "AND_INTRO": 'two or more facts: their conjunction, "The cow is big and the cow visits the lion."',
    "AND_ELIM": "a conjunction of facts: one of its parts.",
    "UNIV_INSTANTIATION": 'a rule about "something" / "someone": the rule for one entity, '
                          '"If the cow is cold then the cow is blue."',
    "CONCLUDE": "args [0] if the statement follows (true), [1] if its negation follows (false), [2] if neither "
                "can (unknown: first derive every fact that could lead to the statement or to its negation); "
                "the last step, then the Final Answer line.",
}

INSTRUCTION = """\
Decide whether the query's statement is true, false or unknown given the premises, by writing a proof. It is \
true if it follows from the premises, false if its negation follows, and unknown if neither does: nothing is \
false just because it is not stated. Every step applies one inference rule to numbered formulas: the premises \
are [0] to [P-1], and the formula your k-th step derives is numbered P+k (the first is [P], the next [P+1], ...).

Write each step as a Thought line, whose last sentence is the formula it derives, then an Action line naming \
the rule and the formulas it cites. End with a CONCLUDE step and the answer:
Thought: The cow is cold. If something is cold then it visits the tiger. So the cow visits the tiger.
Action: <Option type="MODUS_PONENS" args="[2, 7]" />
...
Thought: The tiger is not young. So the query is true.
Action: <Option type="CONCLUDE" args="[0]" />
Final Answer: TRUE

Rules (what a step cites: what it derives):
""" + "\n".join(f"{name}: {what}" for name, what in OPTION_HELP.items())


def user_text(problem: Problem) -> str:
    lines = ["Premises:"] + [f"[{i}] {' '.join(p.split())}" for i, p in enumerate(problem.premises)]
    lines += [f"Query: {' '.join(problem.query.split())}", "Proof:"]
    return "\n".join(lines) + "\n"


def prompt(problem: Problem, style: str) -> tuple[str | None, str]:
    """(system, user) for format.style `natural` or `lookup` (see the module docstring)."""
    return (None if style == "lookup" else INSTRUCTION), user_text(problem)
