"""The PrOntoQA optionizer: a problem's gold proof as a trace, in each format style."""

from __future__ import annotations

from itertools import combinations, product
from typing import Any

from ...trace import ANSWER_CODES, QUERY_TAG, Problem, query_statement, render_trace
from .logic import Fact, Rule, apply_option, describe, negate_fact, parse_sentence, render
from .prompt import inner_tag, lookup_key as _key, repeated_keys

# Options tried, in order, to derive a proof sentence in one step (ModusPonens first: most common).
_GOLD_OPTIONS = ("MODUS_PONENS", "AND_INTRO", "AND_ELIM", "OR_INTRO", "CASE_SPLIT", "CONTRADICTION")


def _gold_candidates(option: str, avail: list[tuple[int, Any]]):
    """Argument lists worth trying for `option` over the available (index, formula) pairs, newest facts first."""
    facts = [(i, f) for i, f in reversed(avail) if isinstance(f, Fact)]
    rules = [(i, f) for i, f in avail if isinstance(f, Rule)]
    if option in ("MODUS_PONENS", "CONTRADICTION"):
        for i, f in facts:
            for j, r in rules:
                yield [i, j]
    elif option in ("AND_ELIM", "OR_INTRO"):
        for i, f in facts:
            yield [i]
    elif option == "AND_INTRO":
        singles = [(i, f) for i, f in facts if f.op == "atom"]
        for n in (2, 3):
            for combo in combinations(sorted(singles), n):
                yield [i for i, _ in combo]
    elif option == "CASE_SPLIT":
        for i, d in facts:
            if d.op != "or":
                continue
            picks = []
            for lit in d.lits:
                cands = [j for j, r in rules if r.ante_op == "atom" and r.ante[0] == lit]
                if not cands:
                    break
                picks.append(cands)
            else:
                for combo in product(*picks):
                    yield [i, *combo]


def _derive(target, avail: list[tuple[int, Any]]):
    """One step (option, args) that licenses `target` from the available formulas, or None."""
    formulas = dict(avail)
    for option in _GOLD_OPTIONS:
        for args in _gold_candidates(option, avail):
            lic, _ = apply_option(option, [formulas[a] for a in args], args)
            if lic is not None and lic.ok(target):
                return option, args
    return None


def gold_trace(problem: Problem, style: str = "lookup") -> str | None:
    """The optionizer: a problem's gold proof (PrOntoQA chain of thought) as a trace in our format, or None when
    its proof does not reach the answer (the caller skips and counts such problems).

    Each non-premise proof sentence that follows in one step from the premises and the sentences derived so far
    becomes a step (forward, as the chain of thought goes). Sentences inside an assumption ("Assume ...",
    OrElim / ProofByContra) do not follow from the premises and are skipped; the case split / contradiction is
    then one CASE_SPLIT / CONTRADICTION step. A query that is itself a premise gives a CONCLUDE-only trace.

    style "natural": the thought restates the cited formulas as plain sentences and ends with the claim,
        Thought: Max is a vumpus. Each vumpus is a brimpus. So Max is a brimpus.
        Action: <Option type="MODUS_PONENS" args="[24, 22]" />
    and the CONCLUDE step says which way the query goes ("Max is wooden. So the query is false.").
    style "lookup" (the tiny model): a proof that is one chain of modus ponens is written backward with the
    lookup scaffolding of _backward, any other proof forward with every formula tagged ("[24] Max is a vumpus.
    ... So [25] Max is a brimpus."), and the CONCLUDE step restates the query by its tag ("So [Q] Max is not
    wooden: true.").
    """
    tagged = style == "lookup"
    statement = query_statement(problem.query)
    goal = parse_sentence(statement)
    if not isinstance(goal, Fact) or problem.label not in ("TRUE", "FALSE"):
        return None
    if problem.label == "FALSE":
        goal = negate_fact(goal)
    P = len(problem.premises)
    avail = [(i, parse_sentence(p)) for i, p in enumerate(problem.premises)]
    avail = [(i, f) for i, f in avail if f is not None]
    texts = {i: _sentence(p) for i, p in enumerate(problem.premises)}
    steps: list[tuple[str, str, list[int]]] = []

    def have(f):
        return next((i for i, g in avail if g == f), None)

    def tag(i: int) -> str:
        return f"[{i}] " if tagged else ""

    def add_step(f, text: str, option: str, args: list[int]) -> None:
        n = P + len(steps)
        cited = " ".join(f"{tag(a)}{texts[a]}" for a in args)
        steps.append((f"{cited} So {tag(n)}{text}", option, args))
        avail.append((n, f))
        texts[n] = text

    for sentence in problem.proof:
        f = parse_sentence(sentence)
        if not isinstance(f, Fact) or have(f) is not None:
            continue
        found = _derive(f, avail)
        if found is None:
            continue  # a sentence under an assumption: not derivable from the premises
        add_step(f, _sentence(sentence), *found)
        if f == goal:
            break
    if have(goal) is None:
        found = _derive(goal, avail)
        if found is None:
            return None
        add_step(goal, render(goal), *found)
    k = have(goal)
    word = "true" if problem.label == "TRUE" else "false"
    code = [ANSWER_CODES[problem.label]]
    if not tagged:
        steps.append((f"{texts[k]} So the query is {word}.", "CONCLUDE", code))
        return render_trace(steps, problem.label)
    backward = _backward(problem, steps, dict(texts), dict(avail), goal) if k >= P else None
    if backward:
        steps, k = backward, P + len(backward) - 1
        texts[k] = render(goal)
    # The last step restates the query by its tag and answers right after it: the answer then depends on two
    # nearby polarities (derived fact, restated query). Written "So the query is true." after the derived fact,
    # with the query only at the prompt's start, the tiny model never learned it (docs/tiny-model.md).
    steps.append((f"[{k}] {texts[k]} So {QUERY_TAG} {statement.rstrip('.!?')}: {word}.", "CONCLUDE", code))
    return render_trace(steps, problem.label)


def _backward(problem: Problem, steps, texts: dict, formulas: dict, goal):
    """Rewrite a forward modus-ponens chain (fact, rule_1 .. rule_n) as a backward proof, or None if `steps`
    is not such a chain ending in `goal`. The backward proof starts from the rule that concludes the query's property and
    composes rules with HYPOTHETICAL_SYLLOGISM, each step citing the premise whose object is the current rule's
    subject; the last step applies the composed rule to the entity's fact (MODUS_PONENS):

        Thought: wooden[0] Numpuses are not wooden. numpus[8] Shumpuses are numpuses. So [25] Every shumpus is not wooden.
        Action: <Option type="HYPOTHETICAL_SYLLOGISM" args="[8, 0]" />
        Thought: shumpus[24] Max is a shumpus. So [26] Max is not wooden.
        Action: <Option type="MODUS_PONENS" args="[24, 25]" />

    Why: each cited premise is found by its last word (the key written before its tag), which occurs once in
    the premises except at the first step (the query's property, where a distractor rule shares it), so every
    lookup is one a small model can learn (see build_prompt). Forward, every step would choose among all the
    rules about a concept.
    """
    P = len(problem.premises)
    if not steps or any(o != "MODUS_PONENS" or len(a) != 2 for _, o, a in steps):
        return None
    fact0, rules = steps[0][2][0], [a[1] for _, _, a in steps]
    chained = all(steps[k][2][0] == P + k - 1 for k in range(1, len(steps)))
    if not chained or fact0 >= P or any(r >= P for r in rules):
        return None
    if not isinstance(formulas.get(fact0), Fact) or not all(isinstance(formulas.get(r), Rule) for r in rules):
        return None

    repeat = repeated_keys(problem.premises)

    def cite(i: int) -> str:
        return f"{_key(texts[i])}{inner_tag(i, repeat[i])} {texts[i]}"

    def tag(i: int) -> str:  # a cited rule's tag as the trace wrote it, or a derived formula's
        return inner_tag(i, repeat[i]) if i < P else f"[{i}]"

    # Two rules end in the query's property: the proof's and a distractor whose subject no premise leads to.
    # A lookup cannot tell them apart, so the proof tries them in prompt order: a distractor listed first is
    # cited, its subject looked up and found missing ("yumpus?"), and the lookup goes on to the next rule.
    ends = {_key(texts[i]) for i in range(P)}
    tried = ""
    for i in range(rules[-1]):
        f = formulas.get(i)
        if isinstance(f, Rule) and _key(texts[i]) == _key(texts[rules[-1]]):
            subject = describe(f.ante, f.ante_op)
            if subject in ends:
                break  # not a dead end: do not teach a lookup that fails when it would succeed
            tried += f"{cite(i)} {tag(i)} {subject}? "
    out = []
    composed, prev, first = formulas[rules[-1]], rules[-1], tried + cite(rules[-1]) + " "
    for r in reversed(rules[:-1]):
        ante = formulas[r]
        composed = Rule(ante.ante, ante.ante_op, composed.cons, composed.cons_op)
        n = P + len(out)
        texts[n] = render(composed)
        out.append((f"{first}{tag(prev)} {cite(r)} So [{n}] {texts[n]}", "HYPOTHETICAL_SYLLOGISM", [r, prev]))
        prev, first = n, ""
    fact = formulas[fact0]
    n = P + len(out)
    claim = Fact(fact.entity, composed.cons, composed.cons_op, name=fact.name)
    if claim != goal:
        return None
    texts[n] = render(claim)
    out.append((f"{first}{tag(prev)} {cite(fact0)} So [{n}] {texts[n]}", "MODUS_PONENS", [fact0, prev]))
    return out


def _sentence(s: str) -> str:
    s = " ".join(s.split())
    return s if s.endswith((".", "!", "?")) else s + "."


