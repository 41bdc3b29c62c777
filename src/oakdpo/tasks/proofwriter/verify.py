"""The strict ProofWriter step verifier: a step is valid only when the formulas it cites license exactly its claim.

Formulas are numbered as in every task: premises 0..P-1 (read by logic.parse_sentence; a premise that does not
parse cannot be cited), and the k-th reasoning step's claim is formula P+k, valid or not. A reasoning step is
valid iff its action parses; every cited index exists, is cited once, and names a premise or an EARLIER valid
step; the claim (the thought's last sentence, trace.extract_claim) parses; and, by option:
- MODUS_PONENS: exactly one cited rule and at least one cited fact; for one value of the rule's variable
  every condition of the rule is a literal of a cited fact and every cited fact supplies a condition; the
  claim is the rule's conclusion for that value.
- AND_INTRO: two or more cited facts, each adding a literal the others lack; the claim is a conjunction of
  exactly their literals (any order).
- AND_ELIM: one cited conjunction; the claim is one of its literals.
- UNIV_INSTANTIATION: one cited rule with a variable; the claim is that rule for one entity.
- any other option is rejected: ProofWriter's rules only apply forward (no contraposition, no cases).
Facts are literals ("The cow is not big.") and conjunctions of them; claims compare as formulas, so case,
"someone"/"something" and the final period do not matter.

CONCLUDE must be the only one and the last step, agree with the Final Answer line, and be supported:
- TRUE (args [0]): the statement is a premise or the claim of a valid step; FALSE ([1]): its negation is.
- UNKNOWN ([2]): neither the statement nor its negation is among the literals of the premises and valid steps,
  and no rule instance that could lead to either can still fire: every instance whose conclusion matches a
  needed pattern (solver.needed_patterns) and whose conditions are all among those literals has its conclusion
  among them too. That makes the trace a certificate: a set that holds the premises and is closed under the
  relevant instances holds every derivation of the statement or its negation, so neither follows. A trace
  whose relevant instances are all closed already (most UNKNOWN problems) may be the CONCLUDE step alone.
A TRUE / FALSE trace without reasoning steps is valid only when the supporting literal is a premise. The trace
is valid iff every step is valid, the CONCLUDE is supported and the answer equals the label.
"""

from __future__ import annotations

from ...trace import (LABELS, OPTION_TYPES, Budget, ParsedStep, ParsedTrace, Problem, citation_error, first_failure,
                      make_verdict)
from .logic import Conj, Lit, Rule, clause_text, entities, literals, parse_sentence, render
from .solver import goal_of, needed_patterns, open_instances, read_theory

ACCEPTED = ("MODUS_PONENS", "AND_INTRO", "AND_ELIM", "UNIV_INSTANTIATION")


def _is_fact(f) -> bool:
    return (isinstance(f, Lit) and f.ground) or (isinstance(f, Conj) and all(x.ground for x in f.lits))


def _quote(f) -> str:
    return repr(render(f))


def _values(rule: Rule, facts: list) -> list[str | None]:
    """The values worth trying for the rule's variable: the entities of the cited facts (None: ground rule)."""
    return [None] if rule.ground else entities(facts)


def _modus_ponens(cited: list, args: list[int]):
    """(expected claims, reason) for MODUS_PONENS over the cited formulas."""
    rules = [(a, f) for a, f in zip(args, cited) if isinstance(f, Rule)]
    facts = [(a, f) for a, f in zip(args, cited) if not isinstance(f, Rule)]
    if len(rules) != 1 or not facts:
        return None, (f"MODUS_PONENS cites one rule and the facts for its conditions, got {len(rules)} rules "
                      f"and {len(facts)} facts")
    for a, f in facts:
        if not _is_fact(f):
            return None, f"cited formula {a} is not a fact"
    rule = rules[0][1]
    best = None
    expected = []
    for value in _values(rule, [f for _, f in facts]):
        body = {b.bind(value) for b in rule.body}
        have = set().union(*(set(literals(f)) for _, f in facts))
        missing = [b for b in rule.body if b.bind(value) not in have]
        unused = [a for a, f in facts if not (set(literals(f)) & body)]
        if not missing and not unused:
            expected.append(rule.head.bind(value))
        elif best is None or len(missing) + len(unused) < best[0]:
            best = (len(missing) + len(unused), value, missing, unused)
    if expected:
        return expected, None
    if best is None:
        return None, "the cited facts do not match the rule's conditions"
    _, value, missing, unused = best
    if missing:
        return None, f"the rule's condition {render(missing[0].bind(value))!r} is not a cited fact"
    return None, f"cited fact {unused[0]} is not a condition of the rule"


def _and_intro(cited: list, args: list[int]):
    if len(cited) < 2:
        return None, f"AND_INTRO cites two or more facts, got {len(cited)}"
    for a, f in zip(args, cited):
        if not _is_fact(f):
            return None, f"cited formula {a} is not a fact"
    for i, (a, f) in enumerate(zip(args, cited)):
        others = set().union(*(set(literals(g)) for j, g in enumerate(cited) if j != i))
        if set(literals(f)) <= others:
            return None, f"cited formula {a} adds nothing to the conjunction"
    return ["and", set().union(*(set(literals(f)) for f in cited))], None


def _and_elim(cited: list, args: list[int]):
    if len(cited) != 1 or not isinstance(cited[0], Conj):
        return None, "AND_ELIM cites one conjunction"
    return list(cited[0].lits), None


def _univ_instantiation(cited: list, args: list[int]):
    if len(cited) != 1 or not isinstance(cited[0], Rule) or cited[0].ground:
        return None, 'UNIV_INSTANTIATION cites one rule about "something"'
    return ["forall", cited[0]], None


def _expected_text(expected) -> str:
    if expected and expected[0] == "and":
        return render(Conj(tuple(sorted(expected[1], key=render))))
    if expected and expected[0] == "forall":
        return f"{render(expected[1], period=False)}, for one entity"
    return render(expected[0])


def _claim_ok(expected, claim) -> bool:
    if expected[0] == "and":
        return isinstance(claim, Conj) and len(set(claim.lits)) == len(claim.lits) and set(claim.lits) == expected[1]
    if expected[0] == "forall":
        rule = expected[1]
        return (isinstance(claim, Rule) and claim.ground
                and any(rule.bind(e) == claim for e in entities([claim])))
    return isinstance(claim, Lit) and claim in expected


_CHECKS = {"MODUS_PONENS": _modus_ponens, "AND_INTRO": _and_intro, "AND_ELIM": _and_elim,
           "UNIV_INSTANTIATION": _univ_instantiation}


def _check_step(s: ParsedStep, n: int, n_formulas: int, known: dict, invalid: set):
    """(valid, reason, formula) for a reasoning step producing formula n."""
    if s.error:
        return False, s.error, None
    if s.option not in OPTION_TYPES:
        return False, f"unknown option {s.option!r}", None
    if s.option not in _CHECKS:
        return False, (f"{s.option} is not a ProofWriter inference (rules apply forward only; use "
                       f"{', '.join(ACCEPTED)})"), None
    if not s.args:
        return False, f"{s.option} cites no formula", None
    for a in s.args:
        error = citation_error(a, n, n_formulas, invalid)
        if error:
            return False, error, None
        if known.get(a) is None:
            return False, f"cited premise {a} is not a fact or rule the verifier reads", None
    if len(set(s.args)) != len(s.args):
        return False, "cites a formula twice", None
    expected, reason = _CHECKS[s.option]([known[a] for a in s.args], s.args)
    if expected is None:
        return False, reason, None
    want = _expected_text(expected)
    if not s.claim:
        return False, f"missing claim: expected {want!r}", None
    claim = parse_sentence(s.claim)
    if claim is None:
        return False, f"claim does not parse: expected {want!r}", None
    if not _claim_ok(expected, claim):
        return False, f"claim does not follow: expected {want!r}", None
    return True, "ok", claim


def verify_parsed(problem: Problem, parsed: ParsedTrace, budget: Budget | None = None) -> dict:
    """The verdict of a parsed trace (see the module docstring). Never raises on any text; `budget` is checked
    between steps and while the UNKNOWN certificate is checked (Budget.check raises VerifyTimeout)."""
    goal = goal_of(problem)
    theory = read_theory(problem.premises, [goal] if goal is not None else [])
    P = len(problem.premises)
    steps = parsed.steps
    n_reasoning = sum(1 for s in steps if not s.is_conclude)
    n_formulas = P + n_reasoning
    known: dict[int, object] = dict(enumerate(theory.formulas))
    invalid: set[int] = set()
    out, k = [], 0
    conclude_supported, first_done = False, False
    for s in steps:
        if budget is not None:
            budget.check()
        if s.is_conclude:
            valid, reason, supported = _check_conclude(problem, parsed, s, goal, theory, known, first_done,
                                                       s.index == len(steps) - 1, budget)
            if not first_done:
                conclude_supported = supported
            first_done = True
        else:
            n = P + k
            k += 1
            valid, reason, formula = _check_step(s, n, n_formulas, known, invalid)
            if valid:
                known[n] = formula
            else:
                invalid.add(n)
        out.append({"index": s.index, "option": s.option, "args": s.args, "claim": s.claim,
                    "valid": valid, "reason": reason})
    answer = parsed.final_answer
    needs_reasoning = False
    if n_reasoning == 0 and answer in ("TRUE", "FALSE") and goal is not None:
        support = goal if answer == "TRUE" else goal.negate()
        needs_reasoning = support not in theory.formulas
    trace_reason = first_failure(steps, out, answer, problem.label, needs_reasoning)
    return make_verdict(steps, out, answer, problem.label, conclude_supported, trace_reason)


def _unknown_support(goal: Lit, theory, known: dict, budget) -> tuple[bool, str]:
    have: set[Lit] = set()
    for f in known.values():
        have |= set(literals(f))
    for lit, word in ((goal, "the statement"), (goal.negate(), "its negation")):
        if lit in have:
            return False, f"{word} {render(lit)!r} is a premise or derived"
    patterns = needed_patterns(theory.rules, goal)
    for i, head, body in open_instances(theory, patterns, have, budget):
        return False, (f"rule {i} still gives {render(head)!r} from known facts: derive what could lead to "
                       f"{clause_text(goal)!r} or its negation before concluding UNKNOWN")
    return True, "ok"


def _check_conclude(problem: Problem, parsed: ParsedTrace, s: ParsedStep, goal, theory, known: dict,
                    after_first: bool, is_last: bool, budget):
    """(valid, reason, supported) for a CONCLUDE step; `known` holds premises and valid earlier steps."""
    supported, answer, why = False, None, ""
    if s.args is not None and len(s.args) == 1 and 0 <= s.args[0] < len(LABELS):
        answer = LABELS[s.args[0]]
        if goal is None:
            why = f"the query does not parse: {problem.query!r}"
        elif answer == "UNKNOWN":
            supported, why = _unknown_support(goal, theory, known, budget)
        else:
            support = goal if answer == "TRUE" else goal.negate()
            supported = any(f == support for f in known.values())
            why = f"{render(support)!r} is not a premise or the claim of a valid step"
    if s.error:
        return False, s.error, supported
    if after_first:
        return False, "more than one CONCLUDE", supported
    if answer is None:
        return False, f"CONCLUDE needs 1 arg (0=TRUE, 1=FALSE, 2=UNKNOWN), got {s.args}", supported
    if not is_last:
        return False, "CONCLUDE is not the last step", supported
    if not supported:
        return False, f"answer {answer} not supported: {why}", False
    if parsed.final_answer is None:
        return False, "missing Final Answer", supported
    if parsed.final_answer != answer:
        return False, f"CONCLUDE answer {answer} disagrees with Final Answer {parsed.final_answer}", supported
    return True, "ok", supported

