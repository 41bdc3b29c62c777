"""The PrOntoQA optionizer: a problem's gold proof as a trace, in each format style."""

from __future__ import annotations

from itertools import combinations, product
from typing import Any

from ...trace import ANSWER_CODES, QUERY_TAG, Problem, query_statement, render_trace
from .logic import (Assume, Contradicts, Fact, Rule, apply_option, describe, make_fact, negate_fact, parse_sentence,
                    render)
from .prompt import inner_tag, lookup_key as _key, repeated_keys, sentence as _sentence

# Options tried, in order, to derive a proof sentence in one step (ModusPonens first: most common).
_GOLD_OPTIONS = ("MODUS_PONENS", "AND_INTRO", "AND_ELIM", "OR_INTRO", "CASE_SPLIT", "CONTRADICTION", "MODUS_TOLLENS")


def _gold_candidates(option: str, avail: list[tuple[int, Any]]):
    """Argument lists worth trying for `option` over the available (index, formula) pairs, newest facts first."""
    facts = [(i, f) for i, f in reversed(avail) if isinstance(f, Fact)]
    rules = [(i, f) for i, f in avail if isinstance(f, Rule)]
    if option == "MODUS_PONENS":  # only rules whose subject is the fact's concept: apply_option rejects the rest
        for i, f in facts:
            for j, r in rules:
                if r.ante == f.lits and r.ante_op == f.op:
                    yield [i, j]
    elif option in ("CONTRADICTION", "MODUS_TOLLENS"):
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


def _derive(target, avail: list[tuple[int, Any]], hypothetical: bool = False):
    """One step (option, args) that licenses `target` from the available formulas, or None. `hypothetical`: only
    a step that cites a hypothetical formula (negative index, see _open_block)."""
    formulas = dict(avail)
    for option in _GOLD_OPTIONS:
        for args in _gold_candidates(option, avail):
            if hypothetical and not any(a < 0 for a in args):
                continue
            lic, _ = apply_option(option, [formulas[a] for a in args], args)
            if lic is not None and lic.ok(target):
                return option, args
    return None


def gold_trace(problem: Problem, style: str = "lookup") -> str | None:
    """The optionizer: a problem's gold proof (PrOntoQA chain of thought) as a trace in our format, or None when
    its proof does not reach the answer (the caller skips and counts such problems).

    Each non-premise proof sentence that follows in one step from the premises and the sentences derived so far
    becomes a step (forward, as the chain of thought goes). Sentences inside an assumption ("Assume ...",
    OrElim / ProofByContra) do not follow from the premises and are skipped; the case split is then one
    CASE_SPLIT step. A proof by contradiction ("Assume E is A." ... "E is D." "This contradicts with E is not
    D." "E is not A.") becomes the contradiction walked back from D to A (_refute): one CONTRADICTION step (or
    MODUS_TOLLENS, for a plain rule) per rule the block applied to a formula that depends on the assumption,
    each citing the fact that denies the rule's consequent ("E is not D", or "E is not D or not B" when two
    parts depend on it), the rule, and (a conjunctive subject) the facts for its other parts; sentences of the
    block that do not depend on the assumption are ordinary steps. A query that is itself a premise gives a
    CONCLUDE-only trace.

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

    proof = [(s, parse_sentence(s)) for s in problem.proof]
    hyp = None  # the open proof-by-contradiction block: its hypothetical formulas and how each was derived
    skipped = []  # sentences outside a block that did not follow: they may follow from a later assumption
    for pos, (sentence, f) in enumerate(proof):
        if isinstance(f, Assume):
            hyp = _open_block(proof, pos, f.fact)
            for g in skipped if hyp is not None else ():
                if all(h != g for _, h in hyp["avail"]) and (found := _derive(g, avail + hyp["avail"], True)):
                    hyp["avail"].append((-1 - len(hyp["avail"]), g))
                    hyp["how"][g] = found
            continue
        if isinstance(f, Contradicts):
            if hyp is not None:
                after = proof[pos + 1][1] if pos + 1 < len(proof) else None
                for step in _refute(hyp, f.fact, avail, have, after, P + len(steps)) or ():
                    claim, option, args = step
                    text = _sentence(proof[pos + 1][0]) if claim == after else render(claim)
                    add_step(claim, text, option, args)
            hyp = None
            continue
        if not isinstance(f, Fact):
            continue
        if hyp is not None and all(g != f for _, g in hyp["avail"]):
            # under the assumption: how the sentence follows from it (even when it also follows without it: with
            # contradictory premises, see _refute), for the walk back from the contradiction
            if (found := _derive(f, avail + hyp["avail"], hypothetical=True)) is not None:
                hyp["avail"].append((-1 - len(hyp["avail"]), f))
                hyp["how"][f] = found
        if have(f) is not None:
            continue
        found = _derive(f, avail)
        if found is None:
            if hyp is None:
                skipped.append(f)
            continue  # a sentence under an assumption is not derivable from the premises: no step
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


def _open_block(proof, pos: int, assumed: Fact):
    """The hypothetical state of a proof-by-contradiction block opened at proof[pos] ("Assume ..."), or None
    when the block ends otherwise (an OrElim case ends at the next "Assume" or at "Since ...")."""
    for _, g in proof[pos + 1:]:
        if isinstance(g, Assume):
            return None
        if isinstance(g, Contradicts):
            # hypothetical formulas get negative indices; -1 is the assumption itself
            return {"avail": [(-1, assumed)], "how": {}, "assumed": assumed}
    return None


def _refute(hyp, denial: Fact, avail: list[tuple[int, Any]], have, after, first: int):
    """Steps (claim, option, args) deriving "E is not A" for the block's assumption "E is A" from the sentence
    the block contradicts, `denial` ("E is not D"), or None when the block is not of the shapes below (the caller
    then makes no step). The steps get the indices first, first + 1, ... Each is a CONTRADICTION step, or a
    MODUS_TOLLENS step where the rule is a plain one (one consequent, no part facts; _denial_option).

    The walk holds a fact n, "E is not h1 or ... or not hk" (first the denial "E is not D"), each hi a literal
    of a hypothetical formula (one that follows from the assumption), and replaces the latest hi by what it
    followed from: looking through AND_ELIM / AND_INTRO to the MODUS_PONENS that made hi, from a formula F and a
    rule, the step CONTRADICTION [n, rule, facts for F's other parts] denies F's hypothetical parts instead
    (F itself, the case a of F = OR_INTRO(a), or the parts of F = AND_INTRO(...) that are not facts). The walk
    ends when n is "E is not A".
    When the denial itself follows only from the assumption (the original generator uses the assumed fact in
    the proof before "Assume ..." too), the first step is the other form of CONTRADICTION: the two rules that
    make D and not D, with the facts for their subjects' other parts.
    The original generator sometimes writes contradictory premises (a premise conjunction that contains the
    assumption or one of its consequences): then a part may follow with or without the assumption, and the walk
    tries denying such a part when all are facts. The last claim must be the sentence after the block (`after`)
    when that is a fact."""
    formulas = dict(avail + hyp["avail"])
    how, assumed = hyp["how"], hyp["assumed"]
    order = {f: k for k, (_, f) in enumerate(hyp["avail"])}  # later hypothetical formulas have larger keys
    target = negate_fact(assumed)
    if denial.entity != assumed.entity or denial.op != "atom" or assumed.op != "atom":
        return None

    def producers(lit):
        """(rule index, F, position) of each MODUS_PONENS behind a hypothetical formula with literal lit."""
        out = []

        def down(t, seen):
            if t in seen or t not in how:
                return
            seen.add(t)
            option, args = how[t]
            cited = [formulas[a] for a in args]
            if option == "AND_ELIM":
                down(cited[0], seen)
            elif option == "AND_INTRO":
                for c in cited:
                    if lit in c.lits:
                        down(c, seen)
            elif option == "MODUS_PONENS":
                k = 0 if isinstance(cited[0], Rule) else 1
                out.append((args[k], cited[1 - k], order[t]))

        for t in sorted((t for t in how if t.op != "or" and lit in t.lits), key=order.get, reverse=True):
            down(t, set())
        return out

    def subject_choices(fact):
        """(facts to cite, literals left to deny) for the hypothetical formula F a rule was applied to."""
        if fact.op == "atom":
            return [([], [fact.lits[0]])] if (fact in how or fact == assumed) else []
        option, args = how.get(fact, ("", []))
        if fact.op == "or":
            src = formulas[args[0]] if option == "OR_INTRO" else None
            return [([], [src.lits[0]])] if src is not None and src.op == "atom" else []
        if option != "AND_INTRO":
            return []
        parts = [formulas[a] for a in args]
        if any(q.op != "atom" for q in parts):
            return []
        hyps = [q for q in parts if have(q) is None]
        if hyps:
            return [([have(q) for q in parts if q not in hyps], [q.lits[0] for q in hyps])]
        # contradictory premises: every part is also a fact; deny one that follows from the assumption
        return [([have(o) for o in parts if o is not q], [q.lits[0]]) for q in parts if q in how or q == assumed]

    def walk(n, held, k, depth):
        if held == target:
            return []
        if depth > 4 * len(hyp["avail"]) + 4:
            return None
        # resolve the literal whose hypothetical formula came last, by each MODUS_PONENS that could have made it
        prods = {l: producers(l.negate()) for l in held.lits if l != target.lits[0]}
        prods = {l: ps for l, ps in prods.items() if ps}
        if not prods:
            return None
        l = max(prods, key=lambda x: max(p[2] for p in prods[x]))
        for rule_i, fact, _ in prods[l]:
            for cite, left in subject_choices(fact):
                lits = [x for x in held.lits if x != l] + [x.negate() for x in left]
                claim = make_fact(held.name, lits, "or")
                if claim is None:
                    continue
                cargs = [n, rule_i] + cite
                option = _denial_option(claim, [formulas[a] for a in cargs], cargs)
                if option is None:
                    continue
                known = have(claim)
                m = known if known is not None else first + k
                formulas[m] = claim
                rest = walk(m, claim, k + (known is None), depth + 1)
                if rest is not None:
                    return ([] if known is not None else [(claim, option, cargs)]) + rest
        return None

    lit = denial.lits[0]

    def two_rule_starts():
        for r1, f1, _ in producers(lit.negate()):
            for r2, f2, _ in producers(lit):
                for c1, l1 in subject_choices(f1):
                    for c2, l2 in subject_choices(f2):
                        cite = list(dict.fromkeys(c1 + c2))
                        claim = make_fact(denial.name, [x.negate() for x in l1 + l2], "or")
                        cargs = [r1, r2] + cite
                        if claim is None or not cite:  # the step needs a fact: it names the entity
                            continue
                        lic, _ = apply_option("CONTRADICTION", [formulas[a] for a in cargs], cargs)
                        if lic is None or not lic.ok(claim):
                            continue
                        known = have(claim)
                        m = known if known is not None else first
                        formulas[m] = claim
                        rest = walk(m, claim, int(known is None), 0)
                        yield None if rest is None else \
                            ([] if known is not None else [(claim, "CONTRADICTION", cargs)]) + rest

    n = have(denial)
    if n is not None:
        steps = walk(n, denial, 0, 0)
    else:  # the denial follows from the assumption too: the two rules that make D and not D
        steps = next((st for st in two_rule_starts() if st is not None), None)
    if steps is None:
        return None
    claim = steps[-1][0] if steps else denial
    return steps if claim == target and (not isinstance(after, Fact) or after == claim) else None


def _denial_option(claim, formulas: list, args: list[int]) -> str | None:
    """The option that licenses `claim` from a denial and a rule: MODUS_TOLLENS (a plain rule, one consequent, no
    other facts) or CONTRADICTION (every other form); the two never license the same step."""
    for option in ("MODUS_TOLLENS", "CONTRADICTION"):
        lic, _ = apply_option(option, formulas, args)
        if lic is not None and lic.ok(claim):
            return option
    return None
