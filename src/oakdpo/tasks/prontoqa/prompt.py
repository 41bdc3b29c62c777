"""How a PrOntoQA problem is shown to the model, in each format style (format.style).

`natural` (the default, what a real checkpoint sees): an instruction (the task, the option types, the trace
grammar) as the system part, and the premises exactly as written, each numbered once, and the query as written.
`lookup` (configs/tiny.yaml, the built-in tiny model): the lookup-shaped prompt (build_lookup_prompt).
"""

from __future__ import annotations

from ...trace import QUERY_TAG, Problem, query_statement
from .generator import singular

# The option types the PrOntoQA verifier gives a meaning (logic.RULES), one line each for the instruction.
OPTION_HELP = {
    "MODUS_PONENS": 'a fact "X is A" and a rule "Every A is B": "X is B".',
    "MODUS_TOLLENS": 'a fact "X is not B" and a rule "Every A is B": "X is not A".',
    "HYPOTHETICAL_SYLLOGISM": 'rules "Every A is B" and "Every B is C": "Every A is C".',
    "DISJUNCTIVE_SYLLOGISM": 'a fact "X is A or B" and a fact "X is not A": "X is B".',
    "AND_INTRO": 'two or more facts about X: their conjunction "X is A and B".',
    "AND_ELIM": 'a fact "X is A and B": one of its parts, "X is A".',
    "OR_INTRO": 'a fact "X is A": a disjunction that contains it, "X is A or B".',
    "CASE_SPLIT": 'a fact "X is A or B" and one rule per case with the same conclusion C: "X is C".',
    "CONTRADICTION": ('a fact "X is not C" and a rule "Everything that is A or B is C" (or "... is C and D"): '
                      '"X is not A". A rule "Everything that is A and B and E is C" also cites the facts "X is B", '
                      '"X is E" for the parts it does not deny: "X is not A" (citing fewer: "X is not A or not B"). '
                      'The fact may be "X is not C or F": "X is not A or F". Or two rules "Every A is C" and '
                      '"Everything that is B and E is not C" with the fact "X is E": "X is not A or not B".'),
    "CONCLUDE": "args [0] if the query is true, [1] if it is false; the last step, then the Final Answer line.",
}


INSTRUCTION = """\
Decide whether the query is true or false by writing a proof. Every step applies one inference rule to \
numbered formulas: the premises are [0] to [P-1], and the formula your k-th step derives is numbered P+k \
(the first is [P], the next [P+1], ...).

Write each step as a Thought line, whose last sentence is the formula it derives, then an Action line naming \
the rule and the formulas it cites. End with a CONCLUDE step and the answer:
Thought: Max is a yumpus. Each yumpus is a dumpus. So Max is a dumpus.
Action: <Option type="MODUS_PONENS" args="[12, 3]" />
...
Thought: Max is not wooden. So the query is true.
Action: <Option type="CONCLUDE" args="[0]" />
Final Answer: TRUE

Rules (what a step cites: what it derives):
""" + "\n".join(f"{name}: {what}" for name, what in OPTION_HELP.items())


def prompt(problem: Problem, style: str) -> tuple[str | None, str]:
    """(system, user) for format.style `natural` or `lookup` (see the module docstring)."""
    if style == "lookup":
        return None, build_lookup_prompt(problem)
    lines = ["Premises:"] + [f"[{i}] {' '.join(p.split())}" for i, p in enumerate(problem.premises)]
    lines += [f"Query: {' '.join(problem.query.split())}", "Proof:"]
    return INSTRUCTION, "\n".join(lines) + "\n"


def build_lookup_prompt(problem: Problem) -> str:
    """The lookup-style prompt (configs/tiny.yaml); the trace follows it directly.

        Query: Max is not[Q] wooden.
        Premises:
        [0] Numpuses are not[0] wooden.
        [1] Max is a[1] numpus.
        Next: [2]
        Proof:

    Each premise line carries its tag twice: in front, and again just before the sentence's last word. The
    second copy is for small models: the backward proof (gold_trace) looks a premise up by its last word, and
    with the tag right before that word one attention lookup ("what precedes this word?") finds the tag, and a
    second ("what follows this tag?") the sentence. The query comes first so the lookups never land on it; it
    is the statement alone, whatever the source's phrasing ("True or false: ...", "Is the following statement
    true or false? ..."). It carries the tag [Q] the same way, so the last step can restate it by one lookup
    ("So [Q] Max is not wooden: true.") and the answer is decided two tokens after the restated query's
    polarity (see gold_trace). When an earlier premise ends in the same word, the second copy is written "{i}"
    instead (inner_tag), so the two rules that end in the query's property are told apart by their tags' form.
    "Next:" names the number of the first derived formula (the premise count), so the first step's new tag is a
    copy of one prompt token whatever the premise count, and each later one the successor of the one before.
    """
    statement = query_statement(problem.query)
    lines = [f"Query: {_tag_last_word(statement, QUERY_TAG)}", "Premises:"]
    lines += [f"[{i}] {_tag_last_word(p, inner_tag(i, repeat))}"
              for i, (p, repeat) in enumerate(zip(problem.premises, repeated_keys(problem.premises)))]
    lines += [f"Next: [{len(problem.premises)}]", "Proof:"]
    return "\n".join(lines) + "\n"


def lookups(problem: Problem) -> dict[str, list[tuple[str, str]]]:
    """The lookup style's premise lookups: {key: [(inner tag, sentence), ...]} in prompt order. A backward proof
    (gold.gold_trace) cites premise i as "<key><inner tag> <sentence>", e.g. "wumpus[28] Tumpuses are wumpuses.";
    format.lookup_decoding has the decoder choose the tag among these and write the sentence."""
    out: dict[str, list[tuple[str, str]]] = {}
    for i, (p, repeat) in enumerate(zip(problem.premises, repeated_keys(problem.premises))):
        if p.split():
            text = sentence(p)
            out.setdefault(lookup_key(text), []).append((inner_tag(i, repeat), text))
    return out


def sentence(s: str) -> str:
    """A premise as a trace cites it: whitespace normalised, a final period when it has no end mark."""
    s = " ".join(s.split())
    return s if s.endswith((".", "!", "?")) else s + "."


def inner_tag(i: int, repeat: bool) -> str:
    """The tag written before premise i's last word: "[i]", or "{i}" when an earlier premise ends in the same
    word (repeated_keys). Two rules end in the query's property (the proof's and a distractor): with the
    later-listed one's tag written differently, each of the two lookups by that word has one answer of its
    kind, and the retry after a dead end need not exclude the rule it tried (docs/tiny-model.md)."""
    return f"{{{i}}}" if repeat else f"[{i}]"


def repeated_keys(premises: list[str]) -> list[bool]:
    """For each premise: whether an earlier premise has the same lookup key (_key: last word, singular)."""
    seen: set[str] = set()
    out = []
    for p in premises:
        words = p.rstrip(" .!?").split()
        k = lookup_key(words[-1]) if words else None  # any text: a premise with no word has no key
        out.append(k is not None and k in seen)
        seen.add(k)
    return out


def _tag_last_word(sentence: str, tag: str) -> str:
    """'Numpuses are not wooden.' -> 'Numpuses are not[0] wooden.' (whitespace normalised; one word: unchanged)."""
    head, _, last = " ".join(sentence.split()).rpartition(" ")
    return f"{head}{tag} {last}" if head else last




def lookup_key(sentence: str) -> str:
    """A premise's lookup key: its last word, a plural concept made singular ("yumpuses." -> "yumpus")."""
    return singular(sentence.rstrip(".").split()[-1])
