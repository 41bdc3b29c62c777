"""ProofWriter's sentences as formulas: ground literals, conjunctions of them, and rules with one variable.

Formulas
    Lit(pred, args, positive)   "The cow is blue."            Lit("blue", ("the cow",), True)
                                "The cow does not visit Bob."  Lit("visits", ("the cow", "Bob"), False)
        `pred` is an attribute (one argument) or a relation verb in the third person singular (two arguments).
        Terms are entity names, canonical: "the cow", "the bald eagle" (lower case after "the"), "Bob"; or
        VAR, the rule's one variable ("something", "someone", "it", "they", "things", "people").
    Conj(lits)                  "The cow is big and the cow visits the lion."  (what AND_INTRO derives)
    Rule(body, head)            "If something is big and not red then it is round."
                                "All cold, blue things are big."  "Blue people are rough."
                                "If the cow is cold and the cow visits the lion then the lion sees the squirrel."
        body: the conjuncts (literals, VAR allowed), head: one literal. Every VAR in the head occurs in the body.

parse_sentence(text) reads one sentence into a Lit, Conj or Rule, or None when it is none of the forms below;
it never raises. The forms (any capitalisation of the first letter, the final period optional):
    fact    SUBJ is [not] ADJ | SUBJ VERBs OBJ | SUBJ does not VERB OBJ          (joined by "and": a Conj;
            a conjunct without a subject takes the previous one's: "The cow is big and not red.")
    rule    If COND [and COND]... then CLAUSE       (COND, CLAUSE: a fact clause over terms or VAR; "they",
            "do not" and "are" take the plain verb / plural copula)
    generic [All] ADJ[, ADJ]... [and ADJ] (things|people) are [not] ADJ
render(formula) writes the canonical sentence back ("The cow does not visit the tiger.").
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import NamedTuple

VAR = "?x"
_VAR_WORDS = {"something", "someone", "somebody", "it", "they", "things", "people", "everything", "everyone"}
_PLURAL_SUBJECTS = {"they", "things", "people"}  # take "are" and the plain verb
_STOP = {"is", "are", "not", "does", "do", "doesn't", "don't", "and", "then", "if", "the", "all", "a", "an", "or"}
_NEG = ("does not", "do not", "doesn't", "don't")
_WORD = re.compile(r"[a-z][a-z-]*$")
_NAME = re.compile(r"[A-Z][a-z]*(?:-[A-Z]?[a-z]+)*$")
_NOT_NAMES = {"The", "If", "All", "Then", "And", "So", "Thus", "It", "They", "Something", "Someone", "Not"}


class Lit(NamedTuple):  # tuples: the solver hashes millions of them
    pred: str
    args: tuple[str, ...]
    positive: bool = True

    @property
    def ground(self) -> bool:
        return VAR not in self.args

    def negate(self) -> "Lit":
        return Lit(self.pred, self.args, not self.positive)

    def bind(self, value: str | None) -> "Lit":
        if value is None or self.ground:
            return self
        return Lit(self.pred, tuple(value if a == VAR else a for a in self.args), self.positive)


class Conj(NamedTuple):
    lits: tuple[Lit, ...]


class Rule(NamedTuple):
    body: tuple[Lit, ...]
    head: Lit

    @property
    def ground(self) -> bool:
        return self.head.ground and all(b.ground for b in self.body)

    def bind(self, value: str) -> "Rule":
        return Rule(tuple(b.bind(value) for b in self.body), self.head.bind(value))


Formula = Lit | Conj | Rule


# ----------------------------------------------------------------------------------------------- verbs

def third_person(verb: str) -> str:
    """'visit' -> 'visits', 'chase' -> 'chases', 'watch' -> 'watches', 'carry' -> 'carries'."""
    if verb.endswith(("s", "sh", "ch", "x", "z", "o")):
        return verb + "es"
    if len(verb) > 1 and verb.endswith("y") and verb[-2] not in "aeiou":
        return verb[:-1] + "ies"
    return verb + "s"


def plain_verb(verb: str) -> str:
    """'visits' -> 'visit', 'chases' -> 'chase', 'watches' -> 'watch', 'carries' -> 'carry' (3rd person -> plain)."""
    if verb.endswith("ies") and len(verb) > 3:
        return verb[:-3] + "y"
    if verb.endswith(("sses", "shes", "ches", "xes", "zes", "oes")):
        return verb[:-2]
    return verb[:-1] if verb.endswith("s") else verb


# ----------------------------------------------------------------------------------------------- parsing

def _term(words: list[str], allow_var: bool) -> str | None:
    """A subject/object: 'the' + 1-3 words, a capitalised name, or (allow_var) a variable word."""
    if not words:
        return None
    first = words[0]
    if len(words) == 1 and first.lower() in _VAR_WORDS:
        return VAR if allow_var else None
    if first.lower() == "the":
        rest = [w.lower() for w in words[1:]]
        if 1 <= len(rest) <= 3 and all(_WORD.match(w) and w not in _STOP and w not in _VAR_WORDS for w in rest):
            return "the " + " ".join(rest)
        return None
    if len(words) == 1 and _NAME.match(first) and first not in _NOT_NAMES:
        return first
    return None


def _clause(words: list[str], allow_var: bool) -> tuple[Lit, str] | None:
    """One clause -> (literal, its subject's surface word). Copula: SUBJ is|are [not] ADJ; relation:
    SUBJ VERB OBJ / SUBJ does|do not VERB OBJ."""
    for i, w in enumerate(words):
        lw = w.lower()
        if lw in ("is", "are") and i > 0:
            subj = _term(words[:i], allow_var)
            if subj is None:
                continue
            if (lw == "are") != (words[0].lower() in _PLURAL_SUBJECTS):
                return None  # 'Cows are blue', 'they is': the copula does not agree
            rest = [x.lower() for x in words[i + 1:]]
            positive = True
            if rest and rest[0] == "not":
                positive, rest = False, rest[1:]
            if len(rest) == 1 and _WORD.match(rest[0]) and rest[0] not in _STOP and rest[0] not in _VAR_WORDS:
                return Lit(rest[0], (subj,), positive), words[0].lower()
            return None
    for i in range(1, len(words)):
        subj = _term(words[:i], allow_var)
        if subj is None:
            continue
        rest = words[i:]
        positive = True
        neg2 = " ".join(x.lower() for x in rest[:2])
        if neg2 in _NEG:
            positive, rest = False, rest[2:]
        elif rest and rest[0].lower() in _NEG:
            positive, rest = False, rest[1:]
        if len(rest) < 2:
            continue
        verb = rest[0]
        if not _WORD.match(verb) or verb in _STOP or verb in _VAR_WORDS:
            continue
        obj = _term(rest[1:], allow_var)
        if obj is None:
            continue
        plain = not positive or words[0].lower() in _PLURAL_SUBJECTS
        if plain == verb.endswith("s") and not (plain and verb.endswith("ss")):
            # 'they visits' / 'the cow visit' / 'does not visits': the verb form does not agree
            continue
        return Lit(third_person(verb) if plain else verb, (subj, obj), positive), words[0].lower()
    return None


def _conjuncts(text: str, allow_var: bool) -> list[Lit] | None:
    """'X is big and not red' / 'X is A and X sees Y' / 'X is quiet, red, and rough' -> literals; a conjunct
    without its own subject takes the previous conjunct's subject (and its copula)."""
    parts = [p.strip() for p in re.split(r"\s*,\s*(?:and\s+)?|\s+and\s+", text) if p.strip()]  # "A, B, and C"
    if not parts:
        return None
    out: list[Lit] = []
    prev_subject: list[str] | None = None
    for part in parts:
        words = part.split()
        got = _clause(words, allow_var)
        if got is None and prev_subject is not None:
            copula = "are" if prev_subject[0].lower() in _PLURAL_SUBJECTS else "is"
            got = _clause(prev_subject + [copula] + words, allow_var) or _clause(prev_subject + words, allow_var)
        if got is None:
            return None
        lit, _ = got
        out.append(lit)
        prev_subject = _subject_words(words, lit, prev_subject)
    return out


def _subject_words(words: list[str], lit: Lit, prev: list[str] | None) -> list[str]:
    """The words of a conjunct's own subject (or the inherited one when it had none)."""
    for n in (1, 2, 3, 4):
        if _term(words[:n], True) == lit.args[0]:
            return words[:n]
    return prev or words[:1]


_GENERIC = re.compile(r"^(?:all\s+)?(?P<adjs>[a-z][a-z ,-]*?)\s+(?:things|people|ones|persons)\s+are\s+"
                      r"(?P<neg>not\s+)?(?P<adj>[a-z]+)$", re.IGNORECASE)


def _generic(text: str) -> Rule | None:
    m = _GENERIC.match(text)
    if not m:
        return None
    adjs = [a.strip().lower() for a in re.split(r"\s*,\s*|\s+and\s+", m.group("adjs")) if a.strip()]
    if not adjs or any(not _WORD.match(a) or a in _STOP or a in _VAR_WORDS or " " in a for a in adjs):
        return None
    head = m.group("adj").lower()
    if head in _STOP or head in _VAR_WORDS:
        return None
    return Rule(tuple(Lit(a, (VAR,)) for a in adjs), Lit(head, (VAR,), m.group("neg") is None))


def parse_sentence(text) -> Formula | None:
    """One sentence -> Lit | Conj | Rule, or None (any text: never raises). See the module docstring."""
    if not isinstance(text, str):
        return None
    return _parse(text)


@lru_cache(maxsize=1 << 16)  # premises repeat across a file's questions, and every verification reads them
def _parse(text: str) -> Formula | None:
    s = " ".join(text.replace("\u2019", "'").split()).rstrip(" .!?").strip()
    if not s or len(s) > 400:
        return None
    m = re.match(r"^if\s+(.+?)\s*,?\s+then\s+(.+)$", s, re.IGNORECASE)
    if m:
        body = _conjuncts(m.group(1), True)
        got = _clause(m.group(2).split(), True)
        if body is None or got is None:
            return None
        head = got[0]
        if not head.ground and all(b.ground for b in body):
            return None  # a head variable that no condition binds
        return Rule(tuple(body), head)
    generic = _generic(s)
    if generic is not None:
        return generic
    lits = _conjuncts(s, False)
    if not lits:
        return None
    return lits[0] if len(lits) == 1 else Conj(tuple(lits))


# ----------------------------------------------------------------------------------------------- rendering

def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _subject_text(term: str, var_word: str) -> str:
    return var_word if term == VAR else term


def clause_text(lit: Lit, var_word: str = "something", pronoun: str | None = None) -> str:
    """A literal as a clause; VAR is written `var_word` (or `pronoun` when given: 'it')."""
    word = pronoun or var_word
    subj = _subject_text(lit.args[0], word)
    plural = subj in _PLURAL_SUBJECTS
    if len(lit.args) == 1:
        copula = "are" if plural else "is"
        return f"{subj} {copula} {'' if lit.positive else 'not '}{lit.pred}"
    obj = _subject_text(lit.args[1], word)
    if lit.positive:
        return f"{subj} {plain_verb(lit.pred) if plural else lit.pred} {obj}"
    return f"{subj} {'do' if plural else 'does'} not {plain_verb(lit.pred)} {obj}"


def render(f: Formula, period: bool = True) -> str:
    """The canonical sentence of a formula: 'The cow does not visit the tiger.', 'If something is cold then it
    is blue.', 'The cow is big and the cow visits the lion.'"""
    end = "." if period else ""
    if isinstance(f, Lit):
        return _cap(clause_text(f)) + end
    if isinstance(f, Conj):
        return _cap(" and ".join(clause_text(lit) for lit in f.lits)) + end
    if isinstance(f, Rule):
        clauses, seen = [], False
        for lit in (*f.body, f.head):
            clauses.append(clause_text(lit, "it" if seen else "something"))
            seen = seen or not lit.ground
        return f"If {' and '.join(clauses[:-1])} then {clauses[-1]}{end}"
    return ""


def negate(lit: Lit) -> Lit:
    return lit.negate()


def literals(f: Formula | None) -> tuple[Lit, ...]:
    """The ground literals a fact formula asserts (a Lit: itself; a Conj: its parts; a rule: none)."""
    if isinstance(f, Lit) and f.ground:
        return (f,)
    if isinstance(f, Conj):
        return tuple(x for x in f.lits if x.ground)
    return ()


def entities(formulas) -> list[str]:
    """The entity names that occur in `formulas`, in order of first occurrence."""
    out: list[str] = []

    def add(lit: Lit):
        for a in lit.args:
            if a != VAR and a not in out:
                out.append(a)

    for f in formulas:
        if isinstance(f, Lit):
            add(f)
        elif isinstance(f, Conj):
            for x in f.lits:
                add(x)
        elif isinstance(f, Rule):
            for x in (*f.body, f.head):
                add(x)
    return out
