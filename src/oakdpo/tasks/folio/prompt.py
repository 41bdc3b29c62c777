"""How a FOLIO problem is shown to the model: numbered premises with their first-order formulas, the query
with its formula. The natural style adds an instruction (task, option types, the trace grammar with its FOL line)."""

from __future__ import annotations

from ...trace import Problem, render_action
from .verify import RULE_SHAPES

OPTION_HELP = {option: desc + "." for option, (_, _, desc) in RULE_SHAPES.items()}
OPTION_HELP["CONCLUDE"] = ("args [0] true, [1] false, [2] unknown; the last step, then the Final Answer line. "
                           "UNKNOWN needs no derivation: it is accepted when the premises decide neither way.")

INSTRUCTION = """\
Decide whether the query is true, false or unknown (neither it nor its negation follows) by writing a proof. \
Every step applies one inference rule to numbered formulas: the premises are [0] to [P-1], and the formula your \
k-th step derives is numbered P+k (the first is [P], the next [P+1], ...).

Write each step as a Thought line, a FOL line with the formula it derives (first-order logic in the premises' \
notation: ∀ ∃ ¬ ∧ ∨ → ↔ ⊕, the premises' predicate and constant names), then an Action line naming the rule and \
the formulas it cites. End with a CONCLUDE step and the answer:
Thought: [0] says all who drink coffee depend on caffeine, and [3] says Rina drinks coffee. So [5] Rina depends on caffeine.
FOL: Dependent(rina)
Action: <Option type="MODUS_PONENS" args="[0, 3]" />
...
Thought: [5] settles the query. So the query is true.
Action: <Option type="CONCLUDE" args="[0]" />
Final Answer: TRUE

Rules (what a step cites: what it derives):
""" + "\n".join(f"{name}: {what}" for name, what in OPTION_HELP.items())


def prompt(problem: Problem, style: str) -> tuple[str | None, str]:
    """(system, user): the same problem text in both styles; `natural` adds the instruction as the system part."""
    return (INSTRUCTION if style == "natural" else None), build_folio_prompt(problem)

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


