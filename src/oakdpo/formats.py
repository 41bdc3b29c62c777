"""The problem record, the prompt, and the trace format a model writes.

Problem record (one JSON object per line in problems.jsonl):
    id        unique string
    premises  list of sentences, numbered 0..P-1 in the prompt
    query     "True or false: <sentence>." or "Prove: <sentence>."
    label     TRUE | FALSE | UNKNOWN  (a Prove: query is provable by construction: TRUE)
    proof     gold proof sentences (PrOntoQA chain-of-thought order), may be empty
    hops      int or null
    rule      deduction rule of the gold proof (ModusPonens, AndIntro, ...)
    source    where it came from (oakdpo-generator, prontoqa-json:<file>, logiclm:<file>, folio:<file>)
    fol       optional {"premises": [...], "query": "..."} first-order formulas (FOLIO)

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
`error`); gold_trace(problem) is the optionizer that writes a problem's gold proof in this format.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from itertools import combinations, product
from typing import Any

from .io import UserError
from .logic import Fact, Rule, apply_option, describe, negate_fact, parse_sentence, render

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

    def to_dict(self) -> dict:
        d = asdict(self)
        if d["fol"] is None:
            del d["fol"]
        return d

    @classmethod
    def from_dict(cls, d: dict, where: str = "problem") -> "Problem":
        """Build from a JSON record; `where` (e.g. 'problems.jsonl:7') prefixes any error."""
        for key in PROBLEM_KEYS:
            if key not in d:
                raise UserError(f"{where}: missing key '{key}'")
        if not isinstance(d["premises"], list) or not all(isinstance(p, str) for p in d["premises"]):
            raise UserError(f"{where}: field 'premises' must be a list of strings")
        if not isinstance(d["query"], str):
            raise UserError(f"{where}: field 'query' must be a string")
        if d["label"] not in LABELS:
            raise UserError(f"{where}: field 'label' must be one of {', '.join(LABELS)}, got {d['label']!r}")
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})


QUERY_TAG_NAME = "Q"  # what stands in the query's tag where a formula tag has its number
QUERY_TAG = f"[{QUERY_TAG_NAME}]"  # the query's tag in PrOntoQA prompts (build_prompt) and in the gold trace's last step


def query_statement(query: str) -> str:
    """'True or false: Max is a cat.' -> 'Max is a cat.'  (also 'Prove: ...')."""
    q = query.strip()
    for prefix in ("True or false:", "Prove:", "Is the following statement true or false?"):
        if q.lower().startswith(prefix.lower()):
            return q[len(prefix):].strip()
    return q


def build_prompt(problem: Problem) -> str:
    """The prompt the policy sees; the trace follows it directly. The SFT/DPO/generation code all use this.

        Query: True or false: Max is not[Q] wooden.
        Premises:
        [0] Numpuses are not[0] wooden.
        [1] Max is a[1] numpus.
        Proof:

    Each premise line carries its tag twice: in front, and again just before the sentence's last word. The
    second copy is for small models: the backward proof (gold_trace) looks a premise up by its last word, and
    with the tag right before that word one attention lookup ("what precedes this word?") finds the tag, and a
    second ("what follows this tag?") the sentence. The query comes first so the lookups never land on it. It
    carries the tag [Q] the same way, so the last step can restate it by one lookup ("So [Q] Max is not wooden:
    true.") and the answer is decided two tokens after the restated query's polarity (see gold_trace).
    When an earlier premise ends in the same word, the second copy is written "{i}" instead (inner_tag), so
    the two rules that end in the query's property are told apart by their tags' form.
    FOLIO problems (with `fol`) get the FOLIO prompt, which also shows each premise's first-order formula.
    """
    if problem.fol:
        from .solvers.folio import build_folio_prompt

        return build_folio_prompt(problem)
    lines = [f"Query: {_tag_last_word(problem.query, QUERY_TAG)}", "Premises:"]
    lines += [f"[{i}] {_tag_last_word(p, inner_tag(i, repeat))}"
              for i, (p, repeat) in enumerate(zip(problem.premises, repeated_keys(problem.premises)))]
    lines.append("Proof:")
    return "\n".join(lines) + "\n"


def inner_tag(i: int, repeat: bool) -> str:
    """The tag written before premise i's last word: "[i]", or "{i}" when an earlier premise ends in the same
    word (repeated_keys). Two rules end in the query's property (the proof's and a distractor): with the
    later-listed one's tag written differently, each of the two lookups by that word has one answer of its
    kind, and the retry after a dead end need not exclude the rule it tried (docs/tiny-model.md, change 8)."""
    return f"{{{i}}}" if repeat else f"[{i}]"


def repeated_keys(premises: list[str]) -> list[bool]:
    """For each premise: whether an earlier premise has the same lookup key (_key: last word, singular)."""
    seen: set[str] = set()
    out = []
    for p in premises:
        words = p.rstrip(" .!?").split()
        k = _key(words[-1]) if words else None  # any text: a premise with no word has no key
        out.append(k is not None and k in seen)
        seen.add(k)
    return out


def _tag_last_word(sentence: str, tag: str) -> str:
    """'Numpuses are not wooden.' -> 'Numpuses are not[0] wooden.' (whitespace normalised; one word: unchanged)."""
    head, _, last = " ".join(sentence.split()).rpartition(" ")
    return f"{head}{tag} {last}" if head else last


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
_CONNECTIVE_RE = re.compile(
    r"^(?:so|thus|therefore|hence|then|consequently|accordingly|finally|"
    r"(?:and\s+)?(?:so\s+)?we\s+(?:can\s+)?(?:conclude|derive|infer|deduce|get|know|have)(?:\s+that)?|"
    r"it\s+follows\s+that|this\s+means\s+(?:that)?|which\s+means\s+(?:that)?|that\s+means\s+(?:that)?)"
    r"(?:\s*,\s*|\s+|$)",
    re.IGNORECASE)
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
    """A parsed completion. final_answer: TRUE/FALSE/UNKNOWN from the text after the last Action line, or None."""
    steps: list[ParsedStep]
    final_answer: str | None
    text: str = ""


def extract_claim(thought: str) -> str | None:
    """The claim of a step: the last sentence of its thought, without formula tags ("[25]") and leading
    connectives ("So", "Thus", "Therefore", "Hence", "we conclude that", ...). None when nothing is left."""
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
    while True:
        stripped = _CONNECTIVE_RE.sub("", body, count=1).strip()
        if stripped == body:
            break
        body = stripped
    body = body.strip(" ,;:")
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

    The trace is split at each line (lines end at "\n") that starts with "Action:" (column 0); the text before an Action line
    (after the previous one) holds the step's "Thought:" line(s) and optionally a "FOL:" line. The text after
    the last Action line holds "Final Answer: TRUE|FALSE|UNKNOWN".
    """
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    steps: list[ParsedStep] = []
    seg_lines: list[str] = []
    pos = 0
    for line in text.split("\n"):  # lines end at "\n" only (not at other Unicode line breaks)
        start, pos = pos, pos + len(line) + 1
        body = line[:-1] if line.endswith("\r") else line
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
    return ParsedTrace(steps=steps, final_answer=final, text=text)


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


# ------------------------------------------------------------------------------------------- gold traces

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


def gold_trace(problem: Problem, backward: bool = True) -> str | None:
    """The optionizer: a problem's gold proof (PrOntoQA chain of thought) as a trace in our format.

    A proof that is one chain of modus ponens (fact, rule, rule, ...) is written backward, from the rule that
    concludes the query's property to the entity's fact (see _backward); with backward=False, and for every
    other proof, forward, as the chain of thought goes:
    each non-premise proof sentence that follows in one step from the premises and the sentences derived so
    far becomes a step whose thought restates the cited formulas with their indices, e.g.
        Thought: [24] Max is a vumpus. [22] Each vumpus is a brimpus. So [25] Max is a brimpus.
        Action: <Option type="MODUS_PONENS" args="[24, 22]" />
    Sentences inside an assumption ("Assume ...", OrElim / ProofByContra) do not follow from the premises and
    are skipped; the case split / contradiction is then one CASE_SPLIT / CONTRADICTION step. The trace ends
    with a CONCLUDE step naming the supporting formula and the Final Answer line. A query that is itself a
    premise gives a CONCLUDE-only trace. Pure function; raises UserError when the proof does not reach the
    answer (a data bug). FOLIO problems (`problem.fol`) go to oakdpo.solvers.folio.folio_gold_trace, which
    returns None when it finds no proof.
    """
    if problem.fol:
        from .solvers.folio import folio_gold_trace  # lazy: z3 is heavy
        return folio_gold_trace(problem)
    statement = query_statement(problem.query)
    goal = parse_sentence(statement)
    if not isinstance(goal, Fact):
        raise UserError(f"problem {problem.id}: query {problem.query!r} does not parse")
    if problem.label == "FALSE":
        goal = negate_fact(goal)
    elif problem.label != "TRUE":
        raise UserError(f"problem {problem.id}: no gold proof for label {problem.label}")
    P = len(problem.premises)
    avail = [(i, parse_sentence(p)) for i, p in enumerate(problem.premises)]
    avail = [(i, f) for i, f in avail if f is not None]
    texts = {i: _sentence(p) for i, p in enumerate(problem.premises)}
    steps: list[tuple[str, str, list[int]]] = []

    def have(f):
        return next((i for i, g in avail if g == f), None)

    def add_step(f, text: str, option: str, args: list[int]) -> None:
        n = P + len(steps)
        cited = " ".join(f"[{a}] {texts[a]}" for a in args)
        steps.append((f"{cited} So [{n}] {text}", option, args))
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
            raise UserError(f"problem {problem.id}: the gold proof does not reach the answer {problem.label}")
        add_step(goal, render(goal), *found)
    k = have(goal)
    backward = _backward(problem, steps, dict(texts), dict(avail), goal) if backward and k >= P else None
    if backward:
        steps, k = backward, P + len(backward) - 1
        texts[k] = render(goal)
    # The last step restates the query by its tag and answers right after it: the answer then depends on two
    # nearby polarities (derived fact, restated query). Written "So the query is true." after the derived fact,
    # with the query only at the prompt's start, the tiny model never learned it (docs/tiny-model.md).
    word = "true" if problem.label == "TRUE" else "false"
    steps.append((f"[{k}] {texts[k]} So {QUERY_TAG} {statement.rstrip('.!?')}: {word}.", "CONCLUDE",
                  [ANSWER_CODES[problem.label]]))
    return render_trace(steps, problem.label)


def _key(sentence: str) -> str:
    """A premise's lookup key: its last word, a plural concept made singular ("yumpuses." -> "yumpus")."""
    from .data import singular  # lazy: data imports this module

    return singular(sentence.rstrip(".").split()[-1])


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
            tried += f"{cite(i)} {subject}? "
    out = []
    composed, prev, first = formulas[rules[-1]], rules[-1], tried + cite(rules[-1]) + " "
    for r in reversed(rules[:-1]):
        ante = formulas[r]
        composed = Rule(ante.ante, ante.ante_op, composed.cons, composed.cons_op)
        n = P + len(out)
        texts[n] = render(composed)
        out.append((f"{first}{cite(r)} So [{n}] {texts[n]}", "HYPOTHETICAL_SYLLOGISM", [r, prev]))
        prev, first = n, ""
    fact = formulas[fact0]
    n = P + len(out)
    claim = Fact(fact.entity, composed.cons, composed.cons_op, name=fact.name)
    if claim != goal:
        return None
    texts[n] = render(claim)
    out.append((f"{first}{cite(fact0)} So [{n}] {texts[n]}", "MODUS_PONENS", [fact0, prev]))
    return out


def _sentence(s: str) -> str:
    s = " ".join(s.split())
    return s if s.endswith((".", "!", "?")) else s + "."


def first_failure(steps: list, step_verdicts: list[dict], answer: str | None, label: str,
                  needs_reasoning: bool) -> str:
    """'ok' when a trace is valid, else its first failure, in the order both verifiers use: an invalid reasoning
    step, no / several CONCLUDE steps, an invalid CONCLUDE, no reasoning step where the answer needs one
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

