"""PrOntoQA sentences <-> formulas, and the inference rules (options) over them.

PrOntoQA (fictional ontology) only needs a tiny logic: one-place predicates (concepts such as "wumpus" and
properties such as "wooden"), named entities, and three sentence kinds:

    Fact     "Max is a wumpus."  "Max is not wooden."  "Max is a wumpus and a yumpus."  "Max is a X or a Y."
    Rule     "Every/Each X is (not) a Y."  "Xs are (not) Ys."  "Each ADJ X is a Y."  "No X is a Y."
             "Everything that is a X or a Y is a Z."  "Everything that is (a) X and (a) Y is (a) Z."
    Assume / Contradicts   "Assume Max is a X."  "This contradicts with Max is not a X."  (proof sentences)

parse_sentence() normalizes case, a/an, the final period, commas and singular/plural ("wumpuses" ->
"wumpus"), and returns None for anything it cannot read; it never raises. render() writes a canonical
sentence that parses back to the same formula.

apply_option() is the single place that says what each option (inference rule) licenses from the formulas a
step cites; the verifier and the gold-trace builder both use it, so they cannot disagree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable, Union

# Names and concept words of the original generator (fictional ontology); used for rendering and tests only:
# the parser accepts any word.
NAMES = ("Fae", "Rex", "Sally", "Max", "Alex", "Sam", "Polly", "Stella", "Wren")

# Word endings of the generator's fictional nouns (wumpus, timple, tergit, felper, dalpist, prilpant, zilpor,
# folpee, daumpin); a word ending so is rendered as a noun ("a wumpus"), anything else as an adjective.
_NOUN_ENDINGS = ("pus", "ple", "git", "per", "pist", "pant", "por", "pee", "pin")
_PLURAL_ENDINGS = tuple(e + ("es" if e.endswith("s") else "s") for e in _NOUN_ENDINGS)

_QUANTIFIERS = {"every", "each", "all", "no", "everything", "anything", "something", "nothing", "a", "an",
                "the", "this", "that", "some", "any", "it", "if", "since", "because", "so", "thus"}
_ALLOWED = re.compile(r"^[A-Za-z0-9\s,'\-]*$")


@dataclass(frozen=True, order=True)
class Lit:
    """A predicate applied to the subject, possibly negated. `noun` only affects rendering ("a wumpus")."""
    pred: str
    neg: bool = False
    noun: bool = field(default=False, compare=False)

    def negate(self) -> "Lit":
        return Lit(self.pred, not self.neg, self.noun)


@dataclass(frozen=True)
class Fact:
    """A statement about one entity: one literal (op "atom"), or a conjunction / disjunction of literals."""
    entity: str                 # lower-case key
    lits: tuple                 # sorted, unique Lits
    op: str = "atom"            # atom | and | or
    name: str = field(default="", compare=False)  # display form of the entity ("Max")


@dataclass(frozen=True)
class Rule:
    """For all x: ante(x) -> cons(x); ante/cons are literal sets joined by their op (atom | and | or)."""
    ante: tuple
    ante_op: str
    cons: tuple
    cons_op: str


@dataclass(frozen=True)
class Assume:
    fact: Fact


@dataclass(frozen=True)
class Contradicts:
    fact: Fact


Formula = Union[Fact, Rule, Assume, Contradicts]


def _norm_lits(lits, op: str) -> tuple[tuple, str] | None:
    # "a wumpus or not a wumpus" (a tautology) and "a wumpus and not a wumpus" (a contradiction) keep both
    # literals: the original generator writes them (an OrIntro query whose other disjuncts are drawn at random;
    # an AndIntro query over contradictory premises), and each follows soundly (OR_INTRO; AND_INTRO of the two
    # facts, which only contradictory premises provide).
    uniq = {}
    for lit in lits:
        uniq.setdefault((lit.pred, lit.neg), lit)
    out = tuple(sorted(uniq.values()))
    if not out:
        return None
    return out, ("atom" if len(out) == 1 else op)


def make_fact(entity: str, lits, op: str = "atom") -> Fact | None:
    n = _norm_lits(lits, op)
    if n is None:
        return None
    return Fact(entity.lower(), n[0], n[1], entity[:1].upper() + entity[1:].lower())


def make_rule(ante, ante_op: str, cons, cons_op: str) -> Rule | None:
    a, c = _norm_lits(ante, ante_op), _norm_lits(cons, cons_op)
    if a is None or c is None:
        return None
    return Rule(a[0], a[1], c[0], c[1])


def negate_fact(f: Fact) -> Fact:
    """De Morgan: not (A and B) = not A or not B."""
    op = {"atom": "atom", "and": "or", "or": "and"}[f.op]
    return Fact(f.entity, tuple(sorted(l.negate() for l in f.lits)), op, f.name)


# ----------------------------------------------------------------------------------------------- words

def is_noun(word: str) -> bool:
    return word.endswith(_NOUN_ENDINGS)


def singular(word: str) -> tuple[str, bool]:
    """'wumpuses' -> ('wumpus', True); 'timples' -> ('timple', True); other words unchanged (False)."""
    if word.endswith("uses") and len(word) > 4:
        return word[:-2], True
    if word.endswith(_PLURAL_ENDINGS):
        return word[:-1], True
    return word, False


def plural(word: str) -> str:
    return word + ("es" if word.endswith("s") else "s")


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


# --------------------------------------------------------------------------------------------- parsing

def _split_list(tokens: list[str]) -> tuple[list[list[str]], str] | None:
    """Split 'a X, a Y, and a Z' at commas and and/or; mixing and with or is ambiguous -> None."""
    items, cur, op = [], [], "atom"
    for t in tokens:
        if t in (",", "and", "or"):
            if t != ",":
                if op != "atom" and op != t:
                    return None
                op = t
            if cur:
                items.append(cur)
                cur = []
            elif not items or t == ",":
                return None  # leading separator or ", ,"
        else:
            cur.append(t)
    if not cur:
        return None
    items.append(cur)
    if len(items) > 1 and op == "atom":
        return None  # a bare comma list without and/or
    return items, op


def _parse_np(words: list[str], plural_ctx: bool) -> list[Lit] | None:
    """'a wooden wumpus' / 'wooden wumpuses' / 'wooden' / 'yumpuses' -> literals (conjunction)."""
    if not words:
        return None
    if words[0] in ("a", "an"):
        words = words[1:]
        if not words or any(w in _QUANTIFIERS or w == "not" for w in words):
            return None
        noun, _ = singular(words[-1])
        return [Lit(w, False, False) for w in words[:-1]] + [Lit(noun, False, True)]
    if any(w in _QUANTIFIERS or w == "not" for w in words):
        return None
    if len(words) == 1:
        w, was_plural = singular(words[0])
        return [Lit(w, False, was_plural or is_noun(w))]
    # several words without an article: adjectives + a plural (or bare) noun, e.g. "wooden wumpuses"
    noun, was_plural = singular(words[-1])
    if not (was_plural or plural_ctx or is_noun(noun)):
        return None
    return [Lit(w, False, False) for w in words[:-1]] + [Lit(noun, False, True)]


def _parse_predicate(tokens: list[str], plural_ctx: bool) -> tuple[list[Lit], str] | None:
    """The part after 'is' / 'are': '[not] a X', 'a X and not Y', 'a X, a Y, or a Z' -> (lits, op).

    'not' negates the item it starts: 'not a X and a Y' reads as (not X) and Y.
    """
    split = _split_list(tokens) if tokens else None
    if split is None:
        return None
    items, op = split
    lits: list[Lit] = []
    for item in items:
        neg = item[0] == "not"
        if neg:
            item = item[1:]
        np_lits = _parse_np(item, plural_ctx)
        if np_lits is None:
            return None
        if len(np_lits) > 1 and (neg or op == "or"):
            return None  # "not a wooden wumpus" / "a wooden X or a Y": outside the grammar we support
        lits += [Lit(l.pred, neg, l.noun) for l in np_lits]
    if len(lits) > 1 and op == "atom":
        op = "and"  # "a wooden wumpus"
    return lits, op


def _parse_fact(tokens: list[str], display: str) -> Fact | None:
    ent = tokens[0]
    if ent in _QUANTIFIERS or ent in ("not", "and", "or", "is", "are", ",") or len(tokens) < 3 or tokens[1] != "is":
        return None
    # clause coordination: "max is a X and max is not a Y", "max is a X, max is a Y, and max is not a Z" (the
    # original generator writes the same formula with or without the commas). Each later clause "max is ..."
    # is preceded by a separator: ",", "and", "or", ", and" or ", or"; like a list of noun phrases
    # (_split_list), a bare comma list is not a coordination and "and" mixed with "or" is ambiguous.
    starts = [j for j in range(3, len(tokens) - 1)
              if tokens[j] == ent and tokens[j + 1] == "is" and tokens[j - 1] in (",", "and", "or")]
    if starts:
        ops, ends = set(), []
        for j in starts:
            sep = tokens[j - 2:j] if tokens[j - 2] == "," and tokens[j - 1] != "," else tokens[j - 1:j]
            ops.update(t for t in sep if t != ",")
            ends.append(j - len(sep))
        if len(ops) != 1:
            return None
        bounds = [0] + starts
        ends.append(len(tokens))
        lits = []
        for b, e in zip(bounds, ends):
            pred = _parse_predicate(tokens[b + 2:e], False)
            if pred is None or len(pred[0]) != 1:
                return None
            lits += pred[0]
        return make_fact(display, lits, ops.pop())
    pred = _parse_predicate(tokens[2:], False)
    if pred is None:
        return None
    return make_fact(display, *pred)


def _parse_subject(words: list[str], plural_ctx: bool) -> list[Lit] | None:
    """Rule subject: '[adj ...] noun' (singular after every/each, plural with 'are')."""
    if not words or any(w in _QUANTIFIERS or w in ("not", "and", "or", "is", "are", ",") for w in words):
        return None
    noun, was_plural = singular(words[-1])
    if plural_ctx and not was_plural and not is_noun(noun):
        return None
    return [Lit(w, False, False) for w in words[:-1]] + [Lit(noun, False, True)]


def _parse_rule(tokens: list[str]) -> Rule | None:
    first = tokens[0]
    if first in ("everything", "anything") and len(tokens) > 2 and tokens[1] == "that" and tokens[2] in ("is", "are"):
        rest = tokens[3:]
        # the antecedent list ends at the next 'is'/'are'
        if "is" not in rest and "are" not in rest:
            return None
        k = min(i for i, t in enumerate(rest) if t in ("is", "are"))
        ante = _parse_predicate(rest[:k], False)
        cons = _parse_predicate(rest[k + 1:], False)
        if ante is None or cons is None:
            return None
        return make_rule(ante[0], ante[1], cons[0], cons[1])
    if first in ("every", "each", "all", "no"):
        tokens = tokens[1:]
        negate = first == "no"
    else:
        negate = False
    verbs = [i for i, t in enumerate(tokens) if t in ("is", "are")]
    if not verbs:
        return None
    k = verbs[0]
    verb = tokens[k]
    plural_ctx = verb == "are"
    if first in ("every", "each") and plural_ctx:
        return None
    if first == "all" and not plural_ctx:
        return None
    if first not in ("every", "each", "all", "no") and not plural_ctx:
        return None  # "X is ..." with a common noun subject is a fact about an entity, handled elsewhere
    subj = _parse_subject(tokens[:k], plural_ctx)
    cons = _parse_predicate(tokens[k + 1:], plural_ctx)
    if subj is None or cons is None:
        return None
    lits, op = cons
    if negate:
        if len(lits) != 1 or lits[0].neg:
            return None
        lits = [lits[0].negate()]
    return make_rule(subj, "and", lits, op)


def _tokens(text: str) -> tuple[list[str], str] | None:
    s = text.strip()
    while s and s[-1] in ".!?":
        s = s[:-1].rstrip()
    if not s or not _ALLOWED.match(s):
        return None
    raw = s.replace(",", " , ").split()
    return [t.lower() for t in raw], (raw[0] if raw else "")


def parse_sentence(text: str) -> Formula | None:
    """One PrOntoQA sentence -> Fact | Rule | Assume | Contradicts, or None when it does not parse."""
    if not isinstance(text, str):
        return None
    return _parse_cached(text)


@lru_cache(maxsize=200_000)  # premises repeat across the samples of a problem; formulas are immutable
def _parse_cached(text: str) -> Formula | None:
    try:
        return _parse(text)
    except Exception:  # defensive: a parser bug must never turn bad model output into a crash
        return None


def _parse(text: str) -> Formula | None:
    tok = _tokens(text)
    if tok is None or not tok[0]:
        return None
    tokens, first_raw = tok
    if tokens[0] == "assume":
        rest = tokens[1:]
        if rest and rest[0] == "that":
            rest = rest[1:]
        f = _parse_fact(rest, _display(text, len(tokens) - len(rest))) if rest else None
        return Assume(f) if isinstance(f, Fact) else None
    if tokens[:2] == ["this", "contradicts"]:
        rest = tokens[2:]
        if rest and rest[0] == "with":
            rest = rest[1:]
        f = _parse_fact(rest, _display(text, len(tokens) - len(rest))) if rest else None
        return Contradicts(f) if isinstance(f, Fact) else None
    if len(tokens) >= 3 and tokens[1] == "is" and tokens[0] not in _QUANTIFIERS:
        return _parse_fact(tokens, first_raw)
    return _parse_rule(tokens)


def _display(text: str, k: int) -> str:
    raw = text.strip().replace(",", " , ").split()
    return raw[k] if k < len(raw) else ""


def parse_fact(text: str) -> Fact | None:
    f = parse_sentence(text)
    return f if isinstance(f, Fact) else None


# ------------------------------------------------------------------------------------------- rendering

def _np(lit: Lit) -> str:
    if lit.noun or is_noun(lit.pred):
        return f"{_article(lit.pred)} {lit.pred}"
    return lit.pred


def _predicate(lits: tuple, op: str) -> str:
    parts = [("not " if l.neg else "") + _np(l) for l in lits]
    if len(parts) == 1:
        return parts[0]
    return ", ".join(parts[:-1]) + (", " if len(parts) > 2 else " ") + op + " " + parts[-1]


def _subject_np(lits: tuple, op: str) -> str | None:
    """'wooden wumpus' when the antecedent is adjectives + one noun, else None (use 'Everything that is')."""
    if op == "or" or any(l.neg for l in lits):
        return None
    nouns = [l for l in lits if l.noun or is_noun(l.pred)]
    if len(nouns) != 1:
        return None
    adjs = [l.pred for l in lits if l is not nouns[0]]
    return " ".join(adjs + [nouns[0].pred])


def render(f: Formula, period: bool = True) -> str:
    """Canonical sentence for a formula; parse_sentence(render(f)) == f."""
    end = "." if period else ""
    if isinstance(f, Fact):
        name = f.name or f.entity.capitalize()
        return f"{name} is {_predicate(f.lits, f.op)}{end}"
    if isinstance(f, Rule):
        subj = _subject_np(f.ante, f.ante_op)
        cons = _predicate(f.cons, f.cons_op)
        if subj is not None:
            return f"Every {subj} is {cons}{end}"
        return f"Everything that is {_predicate(f.ante, f.ante_op)} is {cons}{end}"
    if isinstance(f, Assume):
        return f"Assume {render(f.fact, period=False)}{end}"
    if isinstance(f, Contradicts):
        return f"This contradicts with {render(f.fact, period=False)}{end}"
    return str(f)


def describe(lits: tuple, op: str) -> str:
    """Short form for reasons: 'vumpus', 'not wooden', 'wumpus or yumpus'."""
    return f" {op} ".join(("not " if l.neg else "") + l.pred for l in lits)


# ------------------------------------------------------------------------------------ inference rules

@dataclass
class Licence:
    """What a step's cited formulas license: `ok(claim)` says whether the claim follows; `expected` names it."""
    ok: Callable[[Formula], bool]
    expected: str


def _only(result: Formula) -> Licence:
    return Licence(lambda c: c == result, render(result, period=False))


def _one_of(results: list[Formula]) -> Licence:
    results = list(dict.fromkeys(results))
    return Licence(lambda c: c in results, " / ".join(render(r, period=False) for r in results))


def _kind(f: Formula | None) -> str:
    if isinstance(f, Fact):
        return "fact"
    if isinstance(f, Rule):
        return "rule"
    if isinstance(f, Assume):
        return "assumption"
    if isinstance(f, Contradicts):
        return "contradiction"
    return "unparsable"


def _need(option: str, n: int, args: list[int], exact: bool = True) -> str | None:
    if exact and len(args) != n:
        return f"{option} needs {n} arg{'s' if n != 1 else ''}, got {len(args)}"
    if not exact and len(args) < n:
        return f"{option} needs at least {n} args, got {len(args)}"
    if len(set(args)) != len(args):
        dup = next(a for a in args if args.count(a) > 1)
        return f"{option} cites formula {dup} twice"
    return None


def _fact_and_rule(option: str, fs: list[Formula], args: list[int], fact_desc: str = "a fact"):
    kinds = [_kind(f) for f in fs]
    if sorted(kinds) != ["fact", "rule"]:
        got = " and ".join(f"{k} {a}" for k, a in zip(kinds, args))
        return None, f"{option} needs {fact_desc} and a rule, got {got}"
    i = kinds.index("fact")
    return (fs[i], fs[1 - i]), None


def _mp(fs, args):
    if (r := _need("MODUS_PONENS", 2, args)):
        return None, r
    pair, r = _fact_and_rule("MODUS_PONENS", fs, args)
    if r:
        return None, r
    fact, rule = pair
    if fact.lits != rule.ante or fact.op != rule.ante_op:
        return None, (f"rule does not apply: fact concept {describe(fact.lits, fact.op)!r} does not match "
                      f"rule subject {describe(rule.ante, rule.ante_op)!r}")
    return _only(Fact(fact.entity, rule.cons, rule.cons_op, fact.name)), None


def _mt(fs, args):
    if (r := _need("MODUS_TOLLENS", 2, args)):
        return None, r
    pair, r = _fact_and_rule("MODUS_TOLLENS", fs, args, "a negated fact")
    if r:
        return None, r
    fact, rule = pair
    if rule.cons_op != "atom" or rule.ante_op == "or":
        return None, f"MODUS_TOLLENS needs a rule with one consequent, got {describe(rule.cons, rule.cons_op)!r}"
    if fact.op != "atom" or fact.lits[0] != rule.cons[0].negate():
        return None, (f"rule does not apply: fact {describe(fact.lits, fact.op)!r} does not deny "
                      f"rule consequent {describe(rule.cons, rule.cons_op)!r}")
    neg = negate_fact(Fact(fact.entity, rule.ante, rule.ante_op, fact.name))
    return _only(neg), None


def _hs(fs, args):
    if (r := _need("HYPOTHETICAL_SYLLOGISM", 2, args)):
        return None, r
    if [_kind(f) for f in fs] != ["rule", "rule"]:
        got = " and ".join(f"{_kind(f)} {a}" for f, a in zip(fs, args))
        return None, f"HYPOTHETICAL_SYLLOGISM needs two rules, got {got}"
    for a, b in ((fs[0], fs[1]), (fs[1], fs[0])):
        if a.cons == b.ante and a.cons_op == b.ante_op:
            return _only(Rule(a.ante, a.ante_op, b.cons, b.cons_op)), None
    return None, (f"rules do not chain: consequent {describe(fs[0].cons, fs[0].cons_op)!r} does not match "
                  f"subject {describe(fs[1].ante, fs[1].ante_op)!r}")


def _facts(option: str, fs, args) -> str | None:
    for f, a in zip(fs, args):
        if not isinstance(f, Fact):
            return f"{option} needs facts, formula {a} is {'an' if _kind(f)[0] in 'aeiou' else 'a'} {_kind(f)}"
    if len({f.entity for f in fs}) > 1:
        return f"{option} needs facts about one entity, got {', '.join(sorted({f.name for f in fs}))}"
    return None


def _and_intro(fs, args):
    if (r := _need("AND_INTRO", 2, args, exact=False)) or (r := _facts("AND_INTRO", fs, args)):
        return None, r
    if any(f.op == "or" for f in fs):
        return None, "AND_INTRO cannot join disjunctions"
    lits = [l for f in fs for l in f.lits]
    res = make_fact(fs[0].name, lits, "and")
    if res is None:
        return None, "AND_INTRO joins contradictory facts"
    return _only(res), None


def _and_elim(fs, args):
    if (r := _need("AND_ELIM", 1, args)) or (r := _facts("AND_ELIM", fs, args)):
        return None, r
    f = fs[0]
    if f.op != "and":
        return None, f"AND_ELIM needs a conjunction, formula {args[0]} is not one"
    return _one_of([Fact(f.entity, (l,), "atom", f.name) for l in f.lits]), None


def _or_intro(fs, args):
    if (r := _need("OR_INTRO", 1, args)) or (r := _facts("OR_INTRO", fs, args)):
        return None, r
    f = fs[0]
    if f.op != "atom":
        return None, f"OR_INTRO needs a single fact, formula {args[0]} is a {'conjunction' if f.op == 'and' else 'disjunction'}"
    lit = f.lits[0]

    def ok(c):
        return isinstance(c, Fact) and c.entity == f.entity and c.op == "or" and lit in c.lits

    return Licence(ok, f"{f.name} is {_predicate((lit,), 'atom')} or ..."), None


def _ds(fs, args):
    if (r := _need("DISJUNCTIVE_SYLLOGISM", 2, args)) or (r := _facts("DISJUNCTIVE_SYLLOGISM", fs, args)):
        return None, r
    for d, n in ((fs[0], fs[1]), (fs[1], fs[0])):
        if d.op == "or" and n.op == "atom" and n.lits[0].negate() in d.lits:
            rest = [l for l in d.lits if l != n.lits[0].negate()]
            return _only(make_fact(d.name, rest, "or")), None
    return None, "DISJUNCTIVE_SYLLOGISM needs a disjunction and the negation of one of its cases"


def _case_split(fs, args):
    if (r := _need("CASE_SPLIT", 3, args, exact=False)):
        return None, r
    disj = [f for f in fs if isinstance(f, Fact)]
    rules = [f for f in fs if isinstance(f, Rule)]
    if len(disj) != 1 or len(rules) != len(fs) - 1:
        return None, "CASE_SPLIT needs one disjunction and one rule per case"
    d = disj[0]
    if d.op != "or":
        return None, "CASE_SPLIT needs a disjunction 'E is A or B'"
    if len(rules) != len(d.lits):
        return None, f"CASE_SPLIT needs one rule per case ({len(d.lits)}), got {len(rules)}"
    cases = {l: None for l in d.lits}
    for r in rules:
        if r.ante_op != "atom" or r.ante[0] not in cases or cases[r.ante[0]] is not None:
            return None, f"rule does not apply: rule subject {describe(r.ante, r.ante_op)!r} is not an open case of {describe(d.lits, d.op)!r}"
        cases[r.ante[0]] = r
    concl = {(r.cons, r.cons_op) for r in rules}
    if len(concl) != 1:
        return None, "CASE_SPLIT rules do not share one consequent"
    cons, op = concl.pop()
    return _only(Fact(d.entity, cons, op, d.name)), None


def _parts(option: str, rules: list, facts: list) -> tuple[list | None, str]:
    """The parts of the rules' subjects that the cited part facts affirm (each fact one part of a conjunctive
    subject, none twice), or (None, reason)."""
    parts: list = []
    for a, f in facts:
        if f.op != "atom" or not any(r.ante_op == "and" and f.lits[0] in r.ante for r in rules):
            subj = " / ".join(repr(describe(r.ante, r.ante_op)) for r in rules)
            return None, (f"rule does not apply: fact {describe(f.lits, f.op)!r} (formula {a}) is not a part of "
                          f"rule subject {subj}")
        if f.lits[0] in parts:
            return None, f"{option} cites part {describe(f.lits, f.op)!r} twice"
        parts.append(f.lits[0])
    return parts, "ok"


def _denied_subject(rule: Rule, parts: list) -> list[list]:
    """The ways to deny the rule's subject, given the affirmed parts, as lists of literals to join by 'or':
    'not A1 or ... or not Ak' over the parts left of a conjunction (one way), 'not Ai' for any case Ai of a
    disjunction or the one concept. An empty list: the parts affirm the whole subject."""
    if rule.ante_op == "and":
        return [[l.negate() for l in rule.ante if l not in parts]]
    return [[l.negate()] for l in rule.ante]


def _contradiction(fs, args):
    """Proof by contradiction folded into one step: what E cannot be, since the rule would otherwise make it
    both C and not C.

    Form 1, a rule and a fact that denies its consequent: "E is not C" (or a disjunction "E is not C or R ...")
      with C the rule's consequent or one conjunct of it ("Every A is B, C and D"); the rule's subject is denied:
        one concept or a disjunction A1 or ... or An:   "E is not Ai" (any i), or "E is not Ai or R ...";
        a conjunction A1 and ... and An, with facts "E is Aj" for k < n of its parts:
            "E is not Ai or ... (R ...)" over the parts left (k = n - 1: "E is not Ai").
      The one form that is MODUS_TOLLENS is not CONTRADICTION: a fact "E is not C" and a rule with the one
      consequent C whose subject is one concept or a conjunction (no other facts).
    Form 2, two rules whose consequents contradict ("... is C", "... is not C", or a conjunct of either) and
      at least one fact "E is Aj" for a part of a conjunctive subject: "E is not X or not Y" with X / Y the
      parts (or one case) of each subject left undenied by the facts.
    Sound: were E all the parts left, the rules (with the facts) would make it C and not C."""
    if (r := _need("CONTRADICTION", 2, args, exact=False)):
        return None, r
    kinds = [_kind(f) for f in fs]
    if len(fs) == 2 or kinds.count("rule") not in (1, 2) or kinds.count("fact") + kinds.count("rule") != len(fs):
        if len(fs) != 2:
            got = ", ".join(f"{k} {a}" for k, a in zip(kinds, args))
            return None, (f"CONTRADICTION needs a negated fact and a rule (or two rules), and facts for parts of "
                          f"a rule subject, got {got}")
        pair, r = _fact_and_rule("CONTRADICTION", fs, args, "a negated fact")
        if r:
            return None, r
    rules = [f for f in fs if isinstance(f, Rule)]
    facts = [(a, f) for a, f in zip(args, fs) if isinstance(f, Fact)]
    if (r := _facts("CONTRADICTION", [f for _, f in facts], [a for a, _ in facts])):
        return None, r
    name = facts[0][1].name
    results: list = []
    if len(rules) == 2:  # form 2
        r1, r2 = rules
        if r1.cons_op == "or" or r2.cons_op == "or" or not any(l.negate() in r2.cons for l in r1.cons):
            return None, (f"rules do not contradict: consequents {describe(r1.cons, r1.cons_op)!r} and "
                          f"{describe(r2.cons, r2.cons_op)!r}")
        parts, reason = _parts("CONTRADICTION", rules, facts)
        if parts is None:
            return None, reason
        for x in _denied_subject(r1, parts):
            for y in _denied_subject(r2, parts):
                if x or y:
                    results.append(make_fact(name, x + y, "or"))
        if not results:
            return None, "CONTRADICTION: the cited facts affirm both rule subjects, no part is left to deny"
        return _one_of(results), None
    rule = rules[0]  # form 1: try each fact as the denial, the others as parts
    fact = facts[0][1]
    if (len(fs) == 2 and fact.op == "atom" and rule.cons_op == "atom" and rule.ante_op != "or"
            and fact.lits[0].negate() in rule.cons):
        return None, (f"CONTRADICTION: a fact that denies the one consequent of a rule whose subject is "
                      f"{'a conjunction' if rule.ante_op == 'and' else 'one concept'} is MODUS_TOLLENS")
    reason = None
    for k, (a, deny) in enumerate(facts):
        if deny.op == "and" or rule.cons_op == "or":
            continue
        denied = [l for l in deny.lits if l.negate() in rule.cons]
        if not denied:
            continue
        others = facts[:k] + facts[k + 1:]
        if others and rule.ante_op != "and":
            reason = (f"CONTRADICTION cites facts for parts of the rule subject only when it is a conjunction, "
                      f"got {describe(rule.ante, rule.ante_op)!r}")
            continue
        parts, why = _parts("CONTRADICTION", rules, others)
        if parts is None:
            reason = why
            continue
        for lit in denied:
            rest = [l for l in deny.lits if l != lit]
            for x in _denied_subject(rule, parts):
                if x or rest:
                    results.append(make_fact(name, rest + x, "or"))
                else:
                    reason = (f"CONTRADICTION: the cited facts affirm every part of rule subject "
                              f"{describe(rule.ante, rule.ante_op)!r}, no part is left to deny")
    if results:
        return _one_of(results), None
    if reason is None:
        if len(facts) == 1:
            fact = facts[0][1]
            reason = (f"rule does not apply: fact {describe(fact.lits, fact.op)!r} does not deny "
                      f"rule consequent {describe(rule.cons, rule.cons_op)!r}")
        else:
            reason = (f"rule does not apply: no cited fact denies rule consequent "
                      f"{describe(rule.cons, rule.cons_op)!r}")
    return None, reason


RULES: dict[str, Callable] = {
    "MODUS_PONENS": _mp,
    "MODUS_TOLLENS": _mt,
    "HYPOTHETICAL_SYLLOGISM": _hs,
    "DISJUNCTIVE_SYLLOGISM": _ds,
    "AND_INTRO": _and_intro,
    "AND_ELIM": _and_elim,
    "OR_INTRO": _or_intro,
    "CASE_SPLIT": _case_split,
    "CONTRADICTION": _contradiction,
}


def apply_option(option: str, formulas: list[Formula | None], args: list[int]) -> tuple[Licence | None, str]:
    """What `option` licenses from the cited `formulas` (parallel to `args`, the cited indices, for messages).

    Returns (Licence, "ok") or (None, reason). Options without a meaning over PrOntoQA formulas (e.g.
    UNIV_GENERALIZATION) are rejected with a reason; the caller has already checked the option is known.
    """
    fn = RULES.get(option)
    if fn is None:
        return None, f"option {option} does not apply to PrOntoQA formulas"
    for f, a in zip(formulas, args):
        if f is None:
            return None, f"cited formula {a} does not parse"
        if isinstance(f, (Assume, Contradicts)):
            return None, f"cited formula {a} is {'an assumption' if isinstance(f, Assume) else 'a contradiction'}, not a statement"
    lic, reason = fn(formulas, args)
    return (lic, "ok") if lic is not None else (None, reason)
