"""The strict step verifier: a step is valid only when the formulas it cites license exactly what it claims.

For PrOntoQA a reasoning step (any option but CONCLUDE) is valid iff
  - the trace line parses and the option is known;
  - every cited index exists and is a premise or the formula of an EARLIER step, and that step is valid;
  - the cited formulas are exactly what the option needs (logic.apply_option; MODUS_PONENS: one fact
    "E is A" and one rule "A -> (not) B", in either order, exactly 2 args);
  - the claim (last sentence of the thought, see formats.extract_claim) equals the option's result, modulo
    case, a/an, the final period and singular/plural (logic.parse_sentence normalizes all of these).
The k-th reasoning step produces formula P+k (P premises) whether valid or not; citing an invalid step's
formula makes the citing step invalid. A CONCLUDE is valid when it is the only one and the last step, its
answer agrees with the Final Answer line, and its answer is supported: the query statement (TRUE) or its
negation (FALSE) is a premise or the formula of a valid step. A trace is valid iff all of that holds, every
reasoning step is valid, there is at least one reasoning step (unless the supporting statement is a premise),
and the answer equals the label.

Problems with `problem.fol` (FOLIO) go to oakdpo.solvers.folio.verify_folio_trace, which returns the same
verdict shape. The original system's sample format ("sokrates") is read by verify_sokrates_record.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from .formats import (LABELS, OPTION_TYPES, ParsedStep, ParsedTrace, Problem, extract_claim, first_failure,
                      make_verdict, parse_trace, query_statement)
from .io import UserError, read_jsonl, write_jsonl
from .logic import Fact, apply_option, negate_fact, parse_sentence, render

SUMMARY_KEYS = ("traces", "reasoning_steps", "step_validity", "trace_validity", "accuracy")


# ------------------------------------------------------------------------------------------ library API

def verify_trace(problem: Problem, text: str) -> dict:
    """Verdict for one completion (without problem_id / sample). Never raises on any text."""
    if problem.fol:
        from .solvers.folio import verify_folio_trace  # imported lazily: z3 is heavy
        return verify_folio_trace(problem, text)
    return verify_parsed(problem, parse_trace(text))


def _premise_formulas(problem: Problem) -> list:
    return [parse_sentence(p) if isinstance(p, str) else None for p in problem.premises]


def _supporting_statement(problem: Problem, answer: str):
    """The formula that must be established for `answer`: the query (TRUE) or its negation (FALSE)."""
    goal = parse_sentence(query_statement(problem.query))
    if not isinstance(goal, Fact):
        return None
    return goal if answer == "TRUE" else negate_fact(goal)


def verify_parsed(problem: Problem, parsed: ParsedTrace) -> dict:
    """Verdict for an already parsed trace (PrOntoQA semantics). See the module docstring for the rules."""
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
        if a < 0 or a >= n_formulas:
            return False, f"cited index {a} does not exist", None
        if a == n:
            return False, f"cites its own formula {a}", None
        if a > n:
            return False, f"cites formula {a} from a later step", None
        if a in invalid:
            return False, f"cites formula {a} from an invalid step", None
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


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def verify_traces(problems: list[Problem], traces: list[dict], progress: bool = True,
                  dataset: str = "auto") -> list[dict]:
    """Verdicts for trace records {problem_id, sample, text}, in order.

    dataset: "auto" (FOLIO when a problem has `fol`), "prontoqa" (always the PrOntoQA verifier) or "folio".
    An unknown problem_id raises UserError naming it.
    """
    from tqdm.auto import tqdm
    by_id = {p.id: p for p in problems}
    out = []
    for i, rec in enumerate(tqdm(traces, desc="verify", disable=not progress or not _is_main_process())):
        pid = rec.get("problem_id")
        problem = by_id.get(pid)
        if problem is None:
            raise UserError(f"trace {i}: unknown problem_id {pid!r}")
        text = rec.get("text", "")
        if dataset == "prontoqa":
            verdict = verify_parsed(problem, parse_trace(text))
        elif dataset == "folio":
            from .solvers.folio import verify_folio_trace
            verdict = verify_folio_trace(problem, text)
        else:
            verdict = verify_trace(problem, text)
        out.append({"problem_id": pid, "sample": rec.get("sample", 0), **verdict})
    return out


def summarize(verdicts: list[dict]) -> dict:
    """Aggregate figures: step validity is over all reasoning steps (micro average); the rest per trace."""
    n = len(verdicts)
    steps = sum(v["num_reasoning_steps"] for v in verdicts)
    valid = sum(1 for v in verdicts for s in v["steps"] if s["option"] != "CONCLUDE" and s["valid"])
    return {
        "traces": n,
        "reasoning_steps": steps,
        "step_validity": valid / steps if steps else 0.0,
        "trace_validity": sum(bool(v["trace_valid"]) for v in verdicts) / n if n else 0.0,
        "accuracy": sum(bool(v["correct"]) for v in verdicts) / n if n else 0.0,
        "conclude_support": sum(bool(v.get("conclude_supported")) for v in verdicts) / n if n else 0.0,
    }


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


# ----------------------------------------------------------------------------------------------- CLI

def _line_numbers(path: Path) -> list[int]:
    """Line numbers of the non-blank lines (read_jsonl skips blank ones), to name file:line in errors."""
    with open(path, encoding="utf-8", errors="replace") as f:
        return [i for i, line in enumerate(f, 1) if line.strip()]


def load_traces(path: str | Path, problem_ids: set[str]) -> list[dict]:
    """traces.jsonl -> records {problem_id, sample, text}; errors name file:line and the field."""
    path = Path(path)
    recs = read_jsonl(path, required=("problem_id", "text"))
    lines = _line_numbers(path)
    out = []
    for rec, line in zip(recs, lines):
        if not isinstance(rec["text"], str):
            raise UserError(f"{path}:{line}: field 'text' must be a string")
        sample = rec.get("sample", 0)
        if not isinstance(sample, int) or isinstance(sample, bool):
            raise UserError(f"{path}:{line}: field 'sample' must be an integer")
        if rec["problem_id"] not in problem_ids:
            raise UserError(f"{path}:{line}: field 'problem_id': unknown problem {rec['problem_id']!r}")
        out.append({"problem_id": rec["problem_id"], "sample": sample, "text": rec["text"]})
    return out


def run_verify(args) -> int:
    fmt = args.format or "oakdpo"
    if fmt not in ("oakdpo", "sokrates"):
        raise UserError(f"--format: unknown format {fmt!r} (known: oakdpo, sokrates)")
    if args.dataset not in ("auto", "prontoqa", "folio"):
        raise UserError(f"--dataset: unknown dataset {args.dataset!r} (known: auto, prontoqa, folio)")
    progress = not args.no_progress
    if fmt == "sokrates":
        if not args.input:
            raise UserError("verify --format sokrates: give the input file (INPUT.jsonl)")
        path = Path(args.input)
        recs = read_jsonl(path)
        lines = _line_numbers(path)
        verdicts = [verify_sokrates_record(rec, where=f"{path}:{line}") for rec, line in zip(recs, lines)]
    else:
        if not args.problems or not args.traces:
            raise UserError("verify: --problems and --traces are required (or --format sokrates INPUT.jsonl)")
        from .data import read_problems  # problems.jsonl reader (file:line errors, duplicate ids)
        problems = read_problems(args.problems)
        if args.dataset == "folio":
            lines = _line_numbers(Path(args.problems))
            for p, line in zip(problems, lines):
                if not p.fol:
                    raise UserError(f"{args.problems}:{line}: missing key 'fol' (needed by --dataset folio)")
        traces = load_traces(args.traces, {p.id for p in problems})
        verdicts = verify_traces(problems, traces, progress=progress, dataset=args.dataset)
    write_jsonl(args.output, verdicts)
    summary = summarize(verdicts)
    print(json.dumps({k: summary[k] for k in SUMMARY_KEYS}))
    return 0


def add_cli(sub) -> None:
    p = sub.add_parser("verify", help="Verify traces step by step (strict PrOntoQA verifier / FOLIO via Z3).",
                       description="Verify traces: oakdpo verify --problems P.jsonl --traces T.jsonl -o V.jsonl, "
                                   "or oakdpo verify --format sokrates INPUT.jsonl -o V.jsonl. The last stdout "
                                   "line is a JSON summary.")
    p.add_argument("input", nargs="?", help="Input JSONL for --format sokrates.")
    p.add_argument("--problems", help="problems.jsonl (oakdpo format).")
    p.add_argument("--traces", help="traces.jsonl: {problem_id, sample, text} per line.")
    p.add_argument("-o", "--output", required=True, help="verdicts.jsonl to write (atomically).")
    p.add_argument("--format", default="oakdpo", help="oakdpo (default) or sokrates.")
    p.add_argument("--dataset", default="auto", help="auto (default: FOLIO when a problem has 'fol'), prontoqa "
                                                    "or folio.")
    p.add_argument("--no-progress", action="store_true", help="No progress bar.")
    p.set_defaults(func=run_verify)
