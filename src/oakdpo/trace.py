"""What every task shares: the problem record, the trace grammar a model writes, and the verdict shape.

Problem record (one JSON object per line in problems.jsonl):
    id        unique string
    task      the task that reads, shows and verifies it (oakdpo.tasks: prontoqa, folio, proofwriter, ...)
    premises  list of sentences, numbered 0..P-1 in the prompt
    query     "True or false: <sentence>." or "Prove: <sentence>." (any phrasing the task reads)
    label     TRUE | FALSE | UNKNOWN  (a Prove: query is provable by construction: TRUE)
    proof     gold proof sentences (PrOntoQA chain-of-thought order), may be empty
    hops      int or null
    rule      deduction rule of the gold proof (ModusPonens, AndIntro, ...)
    source    where it came from (oakdpo-generator, prontoqa-json:<file>, logiclm:<file>, folio:<file>)
    fol       optional {"premises": [...], "query": "..."} first-order formulas (FOLIO)
    meta      optional task-specific data (a dict), e.g. a generator's shape settings

Trace (the completion after the prompt):
    Thought: <words, ending with the step's claimed conclusion as one sentence>
    Action: <Option type="MODUS_PONENS" args="[3, 7]" />
    ...
    Thought: <words>
    Action: <Option type="CONCLUDE" args="[0]" />      (0 = TRUE, 1 = FALSE, 2 = UNKNOWN)
    Final Answer: TRUE

The k-th non-CONCLUDE step produces formula P+k. The claim of a step is the last sentence of its thought,
with leading connectives (So, Thus, Therefore, Hence) and formula tags like "[25]" and the query's "[Q]" removed.
parse_trace(text) reads a completion into steps (total: never raises; malformed parts become steps with an
`error`). Each task's verifier checks the steps; first_failure and make_verdict give every task the same
verdict shape. Budget bounds the time one verification may take.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from .io import UserError

LABELS = ("TRUE", "FALSE", "UNKNOWN")
ANSWER_CODES = {"TRUE": 0, "FALSE": 1, "UNKNOWN": 2}

OPTION_TYPES = (
    "MODUS_PONENS", "MODUS_TOLLENS", "HYPOTHETICAL_SYLLOGISM", "DISJUNCTIVE_SYLLOGISM",
    "UNIV_INSTANTIATION", "UNIV_GENERALIZATION", "EXIST_INSTANTIATION", "EXIST_GENERALIZATION",
    "AND_INTRO", "AND_ELIM", "OR_INTRO", "CASE_SPLIT", "BICONDITIONAL_INTRO", "BICONDITIONAL_ELIM",
    "CONTRADICTION", "DOUBLE_NEGATION", "CONDITIONAL_PROOF", "CONCLUDE",
)

PROBLEM_KEYS = ("id", "premises", "query", "label")


@dataclass
class Problem:
    id: str
    premises: list[str]
    query: str
    label: str
    proof: list[str] = field(default_factory=list)
    hops: int | None = None
    rule: str = "ModusPonens"
    source: str = ""
    fol: dict | None = None
    task: str = "prontoqa"
    meta: dict | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        for key in ("fol", "meta"):
            if d[key] is None:
                del d[key]
        return d

    @classmethod
    def from_dict(cls, d: dict, where: str = "problem", task: str | None = None) -> "Problem":
        """Build from a JSON record, checking every field's type; `where` (e.g. 'problems.jsonl:7') prefixes any
        error. A record without 'task' belongs to `task` (the caller's --dataset-type); without either, it is
        FOLIO when it has 'fol', else PrOntoQA."""
        if not isinstance(d, dict):
            raise UserError(f"{where}: expected a JSON object, got {type(d).__name__}")
        for key in PROBLEM_KEYS:
            if key not in d:
                raise UserError(f"{where}: missing key '{key}'")

        def need(key, ok, what):
            if key in d and not ok(d[key]):
                raise UserError(f"{where}: field '{key}' must be {what}, got {short_repr(d[key])}")

        need("id", lambda v: isinstance(v, str) and v != "", "a non-empty string")
        need("premises", lambda v: isinstance(v, list) and all(isinstance(p, str) for p in v), "a list of strings")
        for i, p in enumerate(d["premises"]):
            if not p.strip():
                raise UserError(f"{where}: field 'premises[{i}]' is an empty sentence")
        need("query", lambda v: isinstance(v, str), "a string")
        need("label", lambda v: v in LABELS, f"one of {', '.join(LABELS)}")
        need("proof", lambda v: isinstance(v, list) and all(isinstance(p, str) for p in v), "a list of strings")
        need("hops", lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool)), "an integer or null")
        for key in ("rule", "source", "task"):
            need(key, lambda v: isinstance(v, str), "a string")
        need("fol", lambda v: v is None or (isinstance(v, dict) and isinstance(v.get("premises"), list)
                                            and all(isinstance(p, str) for p in v["premises"])
                                            and (v.get("query") is None or isinstance(v.get("query"), str))),
             '{"premises": [strings], "query": string or null}')
        need("meta", lambda v: v is None or isinstance(v, dict), "an object or null")
        known = set(cls.__dataclass_fields__)
        rec = {k: v for k, v in d.items() if k in known}
        rec.setdefault("task", task or ("folio" if d.get("fol") else "prontoqa"))
        return cls(**rec)


def short_repr(value: Any) -> str:
    """repr() cut to 60 characters, for error messages that show a bad value."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."




QUERY_TAG_NAME = "Q"  # what stands in the query's tag where a formula tag has its number
QUERY_TAG = f"[{QUERY_TAG_NAME}]"  # the query's tag in PrOntoQA prompts (build_prompt) and in the gold trace's last step


def query_statement(query: str) -> str:
    """'True or false: Max is a cat.' -> 'Max is a cat.'  (also 'Prove: ...')."""
    q = query.strip()
    for prefix in ("True or false:", "Prove:", "Is the following statement true or false?"):
        if q.lower().startswith(prefix.lower()):
            return q[len(prefix):].strip()
    return q


def render_action(option: str, args: list[int]) -> str:
    return f'Action: <Option type="{option}" args="[{", ".join(str(a) for a in args)}]" />'


def render_step(thought: str, option: str, args: list[int]) -> str:
    return f"Thought: {thought}\n{render_action(option, args)}"


def render_trace(steps: list[tuple[str, str, list[int]]], answer: str) -> str:
    """steps: (thought, option, args) including the CONCLUDE step; answer: TRUE/FALSE/UNKNOWN."""
    body = "\n".join(render_step(t, o, a) for t, o, a in steps)
    return f"{body}\nFinal Answer: {answer}"


def trace_record(problem_id: str, sample: int, text: str, **extra: Any) -> dict:
    """One line of traces.jsonl."""
    return {"problem_id": problem_id, "sample": sample, "text": text, **extra}


# ------------------------------------------------------------------------------------------ trace parsing

_ACTION_RE = re.compile(r'^Action:\s*<Option\s+type\s*=\s*"([^"]*)"\s+args\s*=\s*"([^"]*)"\s*/?>\s*$')
_FINAL_RE = re.compile(r"^\s*Final Answer:\s*(TRUE|FALSE|UNKNOWN)\s*\.?\s*$", re.IGNORECASE)
_TAG_RE = re.compile(rf"\[\s*(?:\d+|{QUERY_TAG_NAME})\s*\]|\{{\s*\d+\s*\}}")
_CONNECTIVE = (
    r"(?:so|thus|therefore|hence|then|consequently|accordingly|finally|as\s+a\s+result|"
    r"(?:and\s+)?(?:so\s+)?we\s+(?:can\s+)?(?:conclude|derive|infer|deduce|get|know|have)(?:\s+that)?|"
    r"it\s+follows\s+that|(?:this|which|that)\s+(?:means|implies)(?:\s+that)?|"
    r"(?:by|since|because|from)\b[^,]*,)"  # a leading reason: "By modus ponens, ...", "Since A, ...", "From [3], ..."
    r"(?:\s*,\s*|\s+|$)")
# All leading connectives in one pass ("So thus, we conclude that ..."): linear in the thought's length.
_CONNECTIVES_RE = re.compile(rf"^(?:\s*{_CONNECTIVE})+", re.IGNORECASE)
# "A and B, so C": the claim is C (the last such clause).
_CONSEQUENCE_RE = re.compile(r"^.*,\s*(?:so|therefore|hence|thus)\b\s*,?\s*(?=\S)", re.IGNORECASE)
_CONTRACTION_RE = re.compile(r"\b(is|are|does|do)n['\u2019]t\b", re.IGNORECASE)
_SENTENCE_END_RE = re.compile(r"(?<=[.!?])\s+")


@dataclass
class ParsedStep:
    """One step of a trace: the text up to and including its Action line.

    index: 0-based position in the trace (CONCLUDE steps included); the i-th step <-> the i-th line that
    starts with "Action:". span: (start, end) character offsets of that Action line in the trace text.
    error: None, or why the step is malformed ("missing Thought", "unparsable action", ...).
    """
    index: int
    thought: str
    option: str | None
    args: list[int] | None
    claim: str | None
    span: tuple[int, int]
    fol: str | None = None
    error: str | None = None

    @property
    def is_conclude(self) -> bool:
        return self.option == "CONCLUDE"


@dataclass
class ParsedTrace:
    """A parsed completion. final_answer: TRUE/FALSE/UNKNOWN from the text after the last Action line, or None.
    final_answers: every line of the text that starts with "Final Answer" (stripped, in order, garbled ones
    too); a trace needs exactly one, after its last Action line."""
    steps: list[ParsedStep]
    final_answer: str | None
    text: str = ""
    final_answers: list[str] = field(default_factory=list)


def extract_claim(thought: str) -> str | None:
    """The claim of a step: the last sentence of its thought, without formula tags ("[25]"), leading connectives
    ("So", "Thus", "Therefore", "Hence", "we conclude that", "By modus ponens,", ...), what precedes a last ", so",
    quotes or bold around it, and with "isn't" read as "is not". None when nothing is left."""
    text = _TAG_RE.sub(" ", thought or "")
    text = " ".join(text.split())
    if not text:
        return None
    sentences = [s for s in _SENTENCE_END_RE.split(text) if s.strip(" .!?")]
    if not sentences:
        return None
    claim = sentences[-1].strip()
    body = claim.rstrip(" .!?")
    end = claim[len(body):].strip()
    body = _CONSEQUENCE_RE.sub("", body, count=1)
    body = _CONNECTIVES_RE.sub("", body, count=1).strip(" ,;:")
    # Markdown bold, quotes around the formula, and "isn't": what a chat model writes, not a different claim
    body = _CONTRACTION_RE.sub(r"\1 not", body.replace("**", "")).strip(" \"'`\u201c\u201d")
    if not body:
        return None
    return body[:1].upper() + body[1:] + end


def parse_action(line: str) -> tuple[str | None, list[int] | None, str | None]:
    """'Action: <Option type="X" args="[1, 2]" />' -> (option, args, error). Never raises."""
    m = _ACTION_RE.match(line.rstrip("\r"))
    if not m:
        return None, None, "unparsable action"
    option, raw_args = m.group(1).strip(), m.group(2).strip()
    if option not in OPTION_TYPES:
        return option, None, f"unknown option {option!r}"
    inner = raw_args[1:-1].strip() if raw_args.startswith("[") and raw_args.endswith("]") else None
    if inner is None:
        return option, None, f"bad args {raw_args!r}"
    if not inner:
        return option, [], None
    args = []
    for part in inner.split(","):
        part = part.strip()
        if not re.fullmatch(r"-?\d{1,9}", part):
            return option, None, f"bad args {raw_args!r}"
        args.append(int(part))
    return option, args, None


def parse_trace(text: str) -> ParsedTrace:
    """Parse a completion into steps. Total: any string gives a ParsedTrace, never an exception.

    The trace is split at each line (lines end at "\n") that starts with "Action:" (column 0); the text before an
    Action line (after the previous one) holds the step's "Thought:" line(s) and optionally a "FOL:" line. The
    text after the last Action line holds "Final Answer: TRUE|FALSE|UNKNOWN". A trace with more than one line
    starting with "Final Answer" (anywhere) gets that as the error of its last CONCLUDE step.
    """
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    steps: list[ParsedStep] = []
    seg_lines: list[str] = []
    answer_lines: list[str] = []
    pos = 0
    for line in text.split("\n"):  # lines end at "\n" only (not at other Unicode line breaks)
        start, pos = pos, pos + len(line) + 1
        body = line[:-1] if line.endswith("\r") else line
        if body.lstrip()[:12].lower() == "final answer":
            answer_lines.append(body.strip())
        if not body.startswith("Action:"):
            seg_lines.append(body)
            continue
        thought, fol, has_thought = _read_segment(seg_lines)
        seg_lines = []
        option, args, error = parse_action(body)
        if error is None and not has_thought:
            error = "missing Thought"
        steps.append(ParsedStep(index=len(steps), thought=thought, option=option, args=args,
                                claim=extract_claim(thought), span=(start, start + len(body)), fol=fol,
                                error=error))
    final = None
    for body in seg_lines:
        m = _FINAL_RE.match(body)
        if m:
            final = m.group(1).upper()
            break
        if body.strip().lower().startswith("final answer"):
            break  # garbled answer line
    if len(answer_lines) > 1:
        # Several answers: the trace's conclusion is ill-formed. The error sits on the last CONCLUDE step, so
        # every task's verifier (which reports a CONCLUDE's parse error first) rejects the trace with it.
        concludes = [s for s in steps if s.is_conclude]
        if concludes and concludes[-1].error is None:
            shown = ", ".join(repr(a[:40]) for a in answer_lines[:3]) + (", ..." if len(answer_lines) > 3 else "")
            concludes[-1].error = f"{len(answer_lines)} Final Answer lines ({shown}); need exactly 1"
    return ParsedTrace(steps=steps, final_answer=final, text=text, final_answers=answer_lines)


def _read_segment(lines: list[str]) -> tuple[str, str | None, bool]:
    """Thought text (all Thought: lines and their continuation lines), FOL line, whether a Thought: was seen."""
    thought: list[str] = []
    fol = None
    seen = False
    in_thought = False
    for body in lines:
        s = body.strip()
        if s.startswith("Thought:"):
            seen, in_thought = True, True
            thought.append(s[len("Thought:"):].strip())
        elif s.startswith("FOL:"):
            fol = s[len("FOL:"):].strip()
            in_thought = False
        elif in_thought and s:
            thought.append(s)
    return " ".join(t for t in thought if t), fol, seen


def citation_error(a: int, n: int, n_formulas: int, invalid: set[int]) -> str | None:
    """Why the step deriving formula n may not cite formula a, or None: a cited index must exist (premises, then
    derived formulas, n_formulas in all), come before n, and not be the formula of an invalid step. Every task's
    verifier applies these alike, one cited index at a time."""
    if a < 0 or a >= n_formulas:
        return f"cited index {a} does not exist"
    if a == n:
        return f"cites its own formula {a}"
    if a > n:
        return f"cites formula {a} from a later step"
    if a in invalid:
        return f"cites formula {a} from an invalid step"
    return None


def first_failure(steps: list, step_verdicts: list[dict], answer: str | None, label: str,
                  needs_reasoning: bool) -> str:
    """'ok' when a trace is valid, else its first failure, in the order every task's verifier uses: an invalid
    reasoning step, no / several CONCLUDE steps, an invalid CONCLUDE, no reasoning step where the answer needs one
    (`needs_reasoning`: the caller's verdict on a CONCLUDE-only trace), a missing Final Answer, a wrong answer."""
    for s, v in zip(steps, step_verdicts):
        if not s.is_conclude and not v["valid"]:
            return f"step {s.index}: {v['reason']}"
    concludes = [s.index for s in steps if s.is_conclude]
    if not concludes:
        return "no CONCLUDE step"
    if len(concludes) > 1:
        return f"{len(concludes)} CONCLUDE steps (need exactly 1)"
    c = concludes[0]
    if not step_verdicts[c]["valid"]:
        return f"step {c}: {step_verdicts[c]['reason']}"
    if needs_reasoning:
        return "no reasoning step"
    if answer is None:
        return "missing Final Answer"
    if answer != label:
        return f"answer {answer} does not match label {label}"
    return "ok"


def make_verdict(steps: list, step_verdicts: list[dict], answer: str | None, label: str,
                 conclude_supported: bool, trace_reason: str) -> dict:
    """The verdict of one trace, shared by the PrOntoQA and FOLIO verifiers: per-step results plus the trace's
    answer, correctness, validity ("ok" reason), step validity over reasoning steps, and CONCLUDE support."""
    reasoning = [v for s, v in zip(steps, step_verdicts) if not s.is_conclude]
    return {
        "steps": step_verdicts,
        "answer": answer,
        "correct": answer == label,
        "trace_valid": trace_reason == "ok",
        "step_validity": sum(v["valid"] for v in reasoning) / len(reasoning) if reasoning else 0.0,
        "num_reasoning_steps": len(reasoning),
        "conclude_supported": conclude_supported,
        "trace_reason": trace_reason,
    }


class VerifyTimeout(Exception):
    """Raised by Budget.check when a verification runs past its budget; the caller records verdict `timeout`."""


class Budget:
    """A deadline for one trace's verification (verify.trace_timeout_s). Parsing, formula building and solver
    calls all count: verifiers call `check()` between pieces of work and give solvers `left_ms()`."""

    def __init__(self, seconds: float | None):
        self.seconds = seconds
        self.deadline = None if seconds is None else time.monotonic() + seconds

    def left_ms(self, cap_ms: float | None = None) -> float:
        if self.deadline is None:
            return float("inf") if cap_ms is None else cap_ms
        left = (self.deadline - time.monotonic()) * 1000
        return left if cap_ms is None else min(left, cap_ms)

    def check(self) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise VerifyTimeout(f"verification took longer than {self.seconds:g} s")

    def capped(self, ms: float | None) -> "Budget":
        """A budget that ends `ms` milliseconds from now or at this one's deadline, whichever is first (a part
        of the work with a limit of its own, e.g. one solver call)."""
        sub = Budget(None if ms is None else ms / 1000)
        if self.deadline is not None and (sub.deadline is None or self.deadline < sub.deadline):
            sub.seconds, sub.deadline = self.seconds, self.deadline
        return sub


def timeout_verdict(reason: str) -> dict:
    """The verdict of a trace whose verification ran out of time: invalid, no step credited."""
    return {"steps": [], "answer": None, "correct": False, "trace_valid": False, "step_validity": 0.0,
            "num_reasoning_steps": 0, "conclude_supported": False, "trace_reason": f"timeout: {reason}",
            "timeout": True}
