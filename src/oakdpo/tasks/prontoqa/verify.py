"""The strict PrOntoQA step verifier: a step is valid only when the formulas it cites license exactly what it claims.

For PrOntoQA a reasoning step (any option but CONCLUDE) is valid iff
  - the trace line parses and the option is known;
  - every cited index exists and is a premise or the formula of an EARLIER step, and that step is valid;
  - the cited formulas are exactly what the option needs (logic.apply_option; MODUS_PONENS: one fact
    "E is A" and one rule "A -> (not) B", in either order, exactly 2 args);
  - the claim (last sentence of the thought, see trace.extract_claim) equals the option's result, modulo
    case, a/an, the final period and singular/plural (logic.parse_sentence normalizes all of these).
The k-th reasoning step produces formula P+k (P premises) whether valid or not; citing an invalid step's
formula makes the citing step invalid. A CONCLUDE is valid when it is the only one and the last step, its
answer agrees with the Final Answer line (the trace's only one: trace.parse_trace marks the last CONCLUDE of a
trace with several), and its answer is supported: the query statement (TRUE) or its negation (FALSE) is a
premise or the formula of a valid step. A trace is valid iff all of that holds, every
reasoning step is valid, there is at least one reasoning step (unless the supporting statement is a premise),
and the answer equals the label. The original system's sample format ("sokrates") is read by
verify_sokrates_record.
"""

from __future__ import annotations

import re

from ...io import UserError
from ...trace import (LABELS, Budget, OPTION_TYPES, ParsedStep, ParsedTrace, Problem, citation_error, extract_claim,
                      first_failure, make_verdict, parse_trace, query_statement)
from .logic import Fact, apply_option, negate_fact, parse_sentence, render


def verify_trace(problem: Problem, text: str) -> dict:
    """Verdict for one completion (without problem_id / sample). Never raises on any text."""
    return verify_parsed(problem, parse_trace(text))


def _premise_formulas(problem: Problem) -> list:
    return [parse_sentence(p) if isinstance(p, str) else None for p in problem.premises]


def _supporting_statement(problem: Problem, answer: str):
    """The formula that must be established for `answer`: the query (TRUE) or its negation (FALSE)."""
    goal = parse_sentence(query_statement(problem.query))
    if not isinstance(goal, Fact):
        return None
    return goal if answer == "TRUE" else negate_fact(goal)


def verify_parsed(problem: Problem, parsed: ParsedTrace, budget: Budget | None = None) -> dict:
    """Verdict for an already parsed trace (PrOntoQA semantics). See the module docstring for the rules.
    `budget` is checked between steps (Budget.check raises VerifyTimeout)."""
    premises = _premise_formulas(problem)
    P = len(premises)
    steps = parsed.steps
    n_reasoning = sum(1 for s in steps if not s.is_conclude)
    n_formulas = P + n_reasoning
    # index -> formula, for premises and valid steps; invalid step indices are remembered separately
    known: dict[int, object] = {i: f for i, f in enumerate(premises)}
    invalid_formulas: set[int] = set()
    out = []
    k = 0
    conclude_supported = False
    first_conclude_done = False
    for s in steps:
        if budget is not None:
            budget.check()
        if s.is_conclude:
            valid, reason, supported = _check_conclude(problem, parsed, s, known, first_conclude_done,
                                                       is_last=s.index == len(steps) - 1)
            if not first_conclude_done:
                conclude_supported = supported
            first_conclude_done = True
        else:
            n = P + k
            k += 1
            valid, reason, formula = _check_step(s, n, n_formulas, P, known, invalid_formulas)
            if valid:
                known[n] = formula
            else:
                invalid_formulas.add(n)
        out.append({"index": s.index, "option": s.option, "args": s.args, "claim": s.claim,
                    "valid": valid, "reason": reason})

    answer = parsed.final_answer
    needs_reasoning = False
    if n_reasoning == 0:  # a CONCLUDE-only trace is fine only when the query (or its negation) is a premise
        statement = _supporting_statement(problem, answer) if answer in ("TRUE", "FALSE") else None
        needs_reasoning = statement is None or statement not in premises
    trace_reason = first_failure(steps, out, answer, problem.label, needs_reasoning)
    return make_verdict(steps, out, answer, problem.label, conclude_supported, trace_reason)


def _check_step(s: ParsedStep, n: int, n_formulas: int, P: int, known: dict, invalid: set):
    """(valid, reason, formula) for a reasoning step producing formula n."""
    if s.error:
        return False, s.error, None
    if s.option not in OPTION_TYPES:  # parse_trace already reports this; kept for hand-built ParsedSteps
        return False, f"unknown option {s.option!r}", None
    for a in s.args:
        error = citation_error(a, n, n_formulas, invalid)
        if error:
            return False, error, None
    lic, reason = apply_option(s.option, [known[a] for a in s.args], s.args)
    if lic is None:
        return False, reason, None
    if not s.claim:
        return False, f"missing claim: expected {lic.expected!r}", None
    claim = parse_sentence(s.claim)
    if claim is None:
        return False, f"claim does not parse: expected {lic.expected!r}", None
    if not lic.ok(claim):
        return False, f"claim does not follow: expected {lic.expected!r}", None
    return True, "ok", claim


def _check_conclude(problem: Problem, parsed: ParsedTrace, s: ParsedStep, known: dict, after_first: bool,
                    is_last: bool):
    """(valid, reason, supported) for a CONCLUDE step; `known` holds premises and valid earlier steps."""
    supported = False
    answer = None
    if s.args is not None and len(s.args) == 1 and 0 <= s.args[0] < len(LABELS):
        answer = LABELS[s.args[0]]
        statement = _supporting_statement(problem, answer) if answer != "UNKNOWN" else None
        supported = statement is not None and statement in known.values()
    if s.error:
        return False, s.error, supported
    if after_first:
        return False, "more than one CONCLUDE", supported
    if answer is None:
        return False, f"CONCLUDE needs 1 arg (0=TRUE, 1=FALSE, 2=UNKNOWN), got {s.args}", supported
    if not is_last:
        return False, "CONCLUDE is not the last step", supported
    if not supported:
        if answer == "UNKNOWN":
            return False, "answer UNKNOWN cannot be supported by a proof", False
        statement = _supporting_statement(problem, answer)
        if statement is None:
            return False, f"query does not parse: {problem.query!r}", False
        return False, (f"answer {answer} not supported: {render(statement, period=False)!r} is not a premise "
                       f"or the formula of a valid step"), False
    if parsed.final_answer is None:
        return False, "missing Final Answer", supported
    if parsed.final_answer != answer:
        return False, f"CONCLUDE answer {answer} disagrees with Final Answer {parsed.final_answer}", supported
    return True, "ok", supported



# ------------------------------------------------------------------------------- the sokrates format

_SOKRATES_CLAIM_RE = re.compile(r"\b(?:conclude|derive|infer)\s+that\b", re.IGNORECASE)
_BELONGS_RE = re.compile(r"\b([A-Za-z]+)\s+(does\s+not\s+belong|doesn't\s+belong|belongs)\s+to\s+(?:the\s+)?([A-Za-z]+)",
                         re.IGNORECASE)
_SOKRATES_ALIASES = {"RULE": "MODUS_PONENS"}


def _belongs(sentence: str) -> str:
    """'Max belongs to wumpuses' -> 'Max is a wumpuses' (the parser singularizes); negated likewise."""
    def sub(m):
        neg = not m.group(2).lower().startswith("belongs")
        return f"{m.group(1)} is {'not ' if neg else ''}a {m.group(3)}"
    return _BELONGS_RE.sub(sub, sentence)


def sokrates_claim(thought: str) -> str | None:
    """The original system's claim: the text after the last 'conclude that' / 'derive that' / 'infer that'
    (first sentence of it), else the last sentence of the thought; 'X belongs to Ys' reads as 'X is a Y'."""
    thought = thought or ""
    matches = list(_SOKRATES_CLAIM_RE.finditer(thought))
    if matches:
        rest = thought[matches[-1].end():].strip()
        first = re.split(r"(?<=[.!?])\s+", rest, maxsplit=1)[0] if rest else ""
        claim = extract_claim(first) if first else None
    else:
        claim = extract_claim(thought)
    return _belongs(claim) if claim else None


def _label(value) -> str | None:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, str) and value.strip().upper().rstrip(".") in LABELS:
        return value.strip().upper().rstrip(".")
    if isinstance(value, str) and value.strip().upper() in ("UNCERTAIN",):
        return "UNKNOWN"
    return None


def _sokrates_args(raw) -> list[int] | None:
    if isinstance(raw, list) and all(isinstance(a, int) and not isinstance(a, bool) for a in raw):
        return list(raw)
    if isinstance(raw, str):
        parts = raw.strip().strip("[]").split(",")
        if raw.strip().strip("[]").strip() == "":
            return []
        if all(re.fullmatch(r"\s*-?\d{1,9}\s*", p) for p in parts):
            return [int(p) for p in parts]
    return None


def sokrates_problem_and_trace(rec: dict, where: str = "record") -> tuple[Problem, ParsedTrace]:
    """Read one sokrates record into a Problem and a ParsedTrace. Structural problems raise UserError naming
    `where` and the field; a malformed step (bad option, bad args) becomes an invalid step instead."""
    for key in ("premises", "conclusion", "label", "steps"):
        if key not in rec:
            raise UserError(f"{where}: missing key '{key}'")
    if not isinstance(rec["premises"], list) or not all(isinstance(p, str) for p in rec["premises"]):
        raise UserError(f"{where}: field 'premises' must be a list of strings")
    if not isinstance(rec["conclusion"], str):
        raise UserError(f"{where}: field 'conclusion' must be a string")
    label = _label(rec["label"])
    if label is None:
        raise UserError(f"{where}: field 'label' must be one of True, False, Unknown, got {rec['label']!r}")
    if not isinstance(rec["steps"], list):
        raise UserError(f"{where}: field 'steps' must be a list")
    problem = Problem(id=str(rec.get("id", rec.get("problem_id", where))),
                      premises=[_belongs(p) for p in rec["premises"]],
                      query="True or false: " + query_statement(rec["conclusion"]), label=label,
                      source="sokrates")
    steps = []
    for i, st in enumerate(rec["steps"]):
        if not isinstance(st, dict):
            raise UserError(f"{where}: field 'steps[{i}]' must be an object")
        thought = st.get("thought", "")
        if not isinstance(thought, str):
            raise UserError(f"{where}: field 'steps[{i}].thought' must be a string")
        raw_type = st.get("option_type")
        option = _SOKRATES_ALIASES.get(raw_type, raw_type) if isinstance(raw_type, str) else None
        args = _sokrates_args(st.get("option_args"))
        error = None
        if option is None:
            error = "unparsable action"
        elif option not in OPTION_TYPES:
            error = f"unknown option {raw_type!r}"
        elif args is None:
            error = f"bad args {st.get('option_args')!r}"
        elif not thought.strip():
            error = "missing Thought"
        steps.append(ParsedStep(index=i, thought=thought, option=option, args=args,
                                claim=sokrates_claim(thought), span=(0, 0), error=error))
    final = _label(rec.get("final_answer"))
    return problem, ParsedTrace(steps=steps, final_answer=final)


def verify_sokrates_record(rec: dict, where: str = "record") -> dict:
    """Verdict for one sokrates record, with problem_id (record 'id' or `where`) and sample (record or 0)."""
    problem, parsed = sokrates_problem_and_trace(rec, where)
    sample = rec.get("sample", 0)
    return {"problem_id": problem.id, "sample": sample, **verify_parsed(problem, parsed)}


