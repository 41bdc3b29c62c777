"""Our PrOntoQA generator. It follows the generative story of the original PrOntoQA generator (asaparov/prontoqa, fictional
ontology, ModusPonens, relevant distractors) with code written here:
  - a chain ontology root <- level 1 <- ... <- level L (L <= 5); every non-root node has one property (an
    adjective from its own property family; positive with probability 2/3) and a "distractor parent", a
    concept with a property of its own;
  - a two-concept distractor ontology (child -> root) with one property on the child;
  - the entity is a member of a chain node (the start) and of the distractor child (the distractor fact);
  - the proof walks up from the start and stops at a property after exactly `hops` rule applications;
  - a distractor rule "Every D is (not) P", D a concept used nowhere else and P the conclusion's adjective;
  - the query is the conclusion or its negation (fair coin): label TRUE or FALSE;
  - sentences: "Every/Each X is (not) a Y.", "Xs are (not) Ys.", "Every/Each X is (not) ADJ.",
    "Xs are (not) ADJ.", "NAME is a X.", singular/plural and each/every chosen by fair coins.
Context order: postorder (children before parents: the relevant rules appear in proof order), preorder,
or random; the two entity facts come last, in random order.

The label shortcut of the original (see ../shared/data/README.md): the distractor rule is the one rule whose
subject concept occurs nowhere else, and its polarity is always the opposite of the true conclusion's.
With `remove_shortcut=True` (the default) the distractor rule's polarity is a fair coin, independent of the
label, so that rule predicts the answer at chance (`shortcut_prediction`). The structure is unchanged. The
price: the two rules about the query's adjective now agree half of the time, and then their polarity is the
answer (~75% for "majority polarity"; see `label_heuristics`). Taking the ontology's own rule about the
adjective answers every problem, here and in the original: final-answer accuracy alone shows little.
"""

from __future__ import annotations

import dataclasses
import random
import re
from collections import Counter

from ...config import CURRICULUM_DISTRACTOR_MODES
from ...io import UserError
from ...trace import Problem, query_statement

# ----------------------------------------------------------------------------------------------------------
# Vocabulary of the original generator (fictional ontology)

NAMES = ("Fae", "Rex", "Sally", "Max", "Alex", "Sam", "Polly", "Stella", "Wren")
CONCEPTS = ("wumpus", "yumpus", "zumpus", "dumpus", "rompus", "numpus", "tumpus", "vumpus", "impus", "jompus",
            "gorpus", "shumpus", "lempus", "sterpus", "grimpus", "lorpus", "brimpus")
PROPERTY_FAMILIES = (
    ("blue", "red", "brown", "orange"),
    ("small", "large"),
    ("metallic", "wooden", "luminous", "liquid"),
    ("transparent", "opaque"),
    ("nervous", "happy", "feisty", "shy"),
    ("bright", "dull"),
    ("sweet", "sour", "spicy", "bitter"),
    ("floral", "fruity", "earthy"),
    ("hot", "cold", "temperate"),
    ("kind", "mean", "angry", "amenable", "aggressive"),
    ("melodic", "muffled", "discordant", "loud"),
    ("slow", "moderate", "fast"),
    ("windy", "sunny", "overcast", "rainy", "snowy"),
)
ADJECTIVES = tuple(a for fam in PROPERTY_FAMILIES for a in fam)
MAX_HOPS = 5  # 13 property families: a depth-L chain needs 2L+1 of them plus 2 for the distractor ontology
DEDUCTION_RULES = ("ModusPonens", "AndIntro", "AndElim", "OrIntro", "OrElim", "ProofByContra", "Composed")
CONTEXT_ORDERS = ("random", "postorder", "preorder")


def plural(noun: str) -> str:
    """'wumpus' -> 'wumpuses' (every fictional concept ends in -us)."""
    return noun + "es" if noun.endswith(("s", "x", "sh", "ch")) else noun + "s"


def singular(word: str) -> str:
    """'wumpuses' -> 'wumpus'; other words unchanged."""
    return word[:-2] if word.endswith("puses") else word


def is_concept(word: str) -> bool:
    """Fictional concepts all end in '-pus' (adjectives such as 'nervous' do not)."""
    return word.lower().endswith(("pus", "puses"))


def with_article(noun: str) -> str:
    """'impus' -> 'an impus' (the original's rule: 'an' before a vowel, except 'eu')."""
    return ("an " if noun[0] in "aeiou" and not noun.startswith("eu") else "a ") + noun


def rule_sentence(subject: str, obj: str, negated: bool, is_adjective: bool, form: str) -> str:
    """Surface form of the rule 'every `subject` is (not) `obj`'. form: 'plural', 'each' or 'every'."""
    neg = " not" if negated else ""
    if form == "plural":
        rhs = obj if is_adjective else plural(obj)
        return f"{plural(subject).capitalize()} are{neg} {rhs}."
    rhs = obj if is_adjective else with_article(obj)
    return f"{form.capitalize()} {subject} is{neg} {rhs}."


def fact_sentence(name: str, obj: str, negated: bool = False, is_adjective: bool = False) -> str:
    """'Max is a wumpus.', 'Max is not red.'"""
    neg = " not" if negated else ""
    rhs = obj if is_adjective else with_article(obj)
    return f"{name} is{neg} {rhs}."


# ----------------------------------------------------------------------------------------------------------
# Generator

def _draw_property(rng: random.Random, family: list[str]) -> tuple[str, bool]:
    """(adjective, negated): each value of the family has weight 1 positive and 0.5 negated (as the original)."""
    adj = rng.choice(family)
    return adj, rng.random() >= 2 / 3


def _rule_form(rng: random.Random) -> str:
    # the original: plural with probability 1/2, else "each" or "every" with equal odds
    return "plural" if rng.random() < 0.5 else rng.choice(["each", "every"])


def _generate_one(rng: random.Random, hops: int, context_order: str, remove_shortcut: bool,
                  pid: str) -> Problem:
    """One problem by rejection sampling of the original's story (tree depth, start node, proof walk)."""
    while True:
        names = list(CONCEPTS)
        rng.shuffle(names)
        families = [list(f) for f in PROPERTY_FAMILIES]
        rng.shuffle(families)
        distractor_concept = names.pop()

        # Depth of the chain: each level stops with probability stop/2, stop = 1 / (hops + 2).
        p_stop = 0.5 / (hops + 2)
        depth = 0
        while rng.random() >= p_stop and depth <= MAX_HOPS:
            depth += 1
        if depth < hops or depth > MAX_HOPS:
            continue
        chain = [names.pop() for _ in range(depth + 1)]  # chain[0] is the root (no property)
        props: dict[str, tuple[str, bool]] = {}
        dparent: dict[int, str] = {}
        for k in range(1, depth + 1):
            props[chain[k]] = _draw_property(rng, families.pop())
            dparent[k] = names.pop()
            props[dparent[k]] = _draw_property(rng, families.pop())
        dchild, droot = names.pop(), names.pop()
        props[dchild] = _draw_property(rng, families.pop())

        # Start node: uniform over levels >= hops; walk up, at each node stop at its property with weight
        # 0.3 (positive) / 0.7 (negated) against 1 for going up. Keep only walks of exactly `hops` steps.
        start = rng.randint(hops, depth)
        level = start
        stop_level = None
        while level >= 1:
            w = 0.7 if props[chain[level]][1] else 0.3
            if rng.random() < w / (1 + w):
                stop_level = level
                break
            level -= 1
        if stop_level is None or start - stop_level + 1 != hops:
            continue
        break

    entity = rng.choice(NAMES)
    adj, concl_negated = props[chain[stop_level]]

    # Rules as (subject, object, negated, is_adjective), in the original's traversal orders.
    def node_rules(k: int) -> list[tuple]:
        return [(chain[k], *props[chain[k]], True)]

    def subsumptions(k: int) -> list[tuple]:  # true parent first, then the distractor parent
        return [(chain[k], chain[k - 1], False, False), (chain[k], dparent[k], False, False)]

    dparent_rules = [(dparent[k], *props[dparent[k]], True) for k in range(1, depth + 1)]
    donto = [(dchild, *props[dchild], True), (dchild, droot, False, False)]
    if context_order == "preorder":
        main = []
        for k in range(1, depth + 1):
            main += subsumptions(k) + node_rules(k)
        donto = donto[::-1]
    else:  # postorder (random shuffles it below)
        main = []
        for k in range(depth, 0, -1):
            main += node_rules(k) + subsumptions(k)
    rules = main + dparent_rules + donto
    if context_order == "random":
        rng.shuffle(rules)
    rule_sents = [rule_sentence(s, o, n, a, _rule_form(rng)) for s, o, n, a in rules]
    where = {(s, o, n): sent for (s, o, n, _), sent in zip(rules, rule_sents)}  # the proof quotes the context
    sentences = list(rule_sents)

    # The distractor rule: about the conclusion's adjective, with the opposite polarity (the original), or
    # a fair-coin polarity when removing the shortcut.
    d_negated = (rng.random() < 0.5) if remove_shortcut else not concl_negated
    distractor = rule_sentence(distractor_concept, adj, d_negated, True, _rule_form(rng))
    sentences.insert(rng.randint(0, len(sentences)), distractor)

    facts = [fact_sentence(entity, chain[start]), fact_sentence(entity, dchild)]
    rng.shuffle(facts)

    # Gold proof: fact, then (rule, conclusion) per hop, reusing the context's sentences.
    proof = [fact_sentence(entity, chain[start])]
    for k in range(start, stop_level, -1):
        proof += [where[(chain[k], chain[k - 1], False)], fact_sentence(entity, chain[k - 1])]
    proof += [where[(chain[stop_level], adj, concl_negated)],
              fact_sentence(entity, adj, concl_negated, is_adjective=True)]

    label = "TRUE" if rng.random() < 0.5 else "FALSE"
    q_negated = concl_negated if label == "TRUE" else not concl_negated
    query = "True or false: " + fact_sentence(entity, adj, q_negated, is_adjective=True)
    return Problem(id=pid, premises=sentences + facts, query=query, label=label, proof=proof, hops=hops,
                   rule="ModusPonens", source="oakdpo-generator")


def parse_hops(hops: str | int | tuple[int, int] | list[int]) -> tuple[int, int]:
    """'3' -> (3, 3); '1-5' -> (1, 5); 3 -> (3, 3); (1, 5) -> (1, 5). Checks 1 <= lo <= hi <= MAX_HOPS."""
    if isinstance(hops, str):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", hops)
        if not m:
            raise UserError(f"--hops: expected H or H1-H2 (e.g. 1-5), got {hops!r}")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
    elif isinstance(hops, int):
        lo = hi = hops
    else:
        lo, hi = (int(h) for h in hops)
    if not 1 <= lo <= hi <= MAX_HOPS:
        raise UserError(f"--hops: need 1 <= H1 <= H2 <= {MAX_HOPS}, got {lo}-{hi}")
    return lo, hi


def generate_problems(num: int, hops: tuple[int, int] | int | str = (1, 5), seed: int = 0,
                      context_order: str = "random", remove_shortcut: bool = True) -> list[Problem]:
    """Generate `num` PrOntoQA-style problems (fictional ontology, ModusPonens, relevant distractors).

    Problem i depends only on (seed, i): the same seed gives identical problems and a longer run extends a
    shorter one. Hops are drawn uniformly from the range. Ids are 'gen-s<seed>-<i:06d>'.
    """
    lo, hi = parse_hops(hops)
    if context_order not in CONTEXT_ORDERS:
        raise UserError(f"--context-order: expected one of {', '.join(CONTEXT_ORDERS)}, got {context_order!r}")
    if num < 0:
        raise UserError(f"--num: expected a non-negative count, got {num}")
    out = []
    for i in range(num):
        rng = random.Random(f"oakdpo-prontoqa:{seed}:{i}")  # str seeds hash with sha512: stable everywhere
        h = rng.randint(lo, hi)
        out.append(_generate_one(rng, h, context_order, remove_shortcut, f"gen-s{seed}-{i:06d}"))
    return out


# ----------------------------------------------------------------------------------------------------------
# Reading PrOntoQA sentences (ModusPonens forms), used for the shortcut measurement

_RULE_SING = re.compile(r"^(?:Each|Every) (\w+) is( not)? (?:an? (\w+)|(\w+))\.$")
_RULE_PLUR = re.compile(r"^(\w+) are( not)? (\w+)\.$")
_FACT = re.compile(r"^([A-Z]\w*) is( not)? (?:an? (\w+)|(\w+))\.$")


def cut_to_proof(problem: Problem, keep: int, rng: random.Random, distractor: str = "random") -> Problem:
    """A copy of `problem` with only the premises its gold proof uses plus `keep` others drawn by `rng`, in their
    original order (renumbered). The SFT curriculum (sft.curriculum_steps) starts on these: with a handful of
    premises a lookup has few candidates, and the small model learns what a lookup is before the full problems.

    `distractor`, for the premises that end in the query's last word but are not in the proof (in PrOntoQA, the
    distractor rule about the queried property, which the backward proof's first lookup must tell from the
    proof's rule): "random", kept only if drawn among the `keep` others; "keep", always kept; "first", always
    kept and listed before the proof's rule, so the gold trace tries it first, meets the dead end and retries.
    """
    if distractor not in CURRICULUM_DISTRACTOR_MODES:
        raise UserError(f"sft.curriculum_distractor: expected one of {', '.join(CURRICULUM_DISTRACTOR_MODES)}, "
                        f"got {distractor!r}")
    used_text = {" ".join(s.split()).rstrip(".") for s in problem.proof}
    norm = [" ".join(p.split()).rstrip(".") for p in problem.premises]
    used = [i for i, t in enumerate(norm) if t in used_text]
    last = problem.query.split()[-1].rstrip(".") if problem.query.split() else None
    lookalike = {i for i, t in enumerate(norm) if last and t.split() and t.split()[-1] == last}
    if distractor != "random":
        used += sorted(lookalike - set(used))
    other = [i for i in range(len(norm)) if i not in used]
    rng.shuffle(other)
    kept = sorted(used + other[:keep])
    if distractor == "first":
        look = [k for k, i in enumerate(kept) if i in lookalike]
        proof_k = next((k for k in look if norm[kept[k]] in used_text), None)
        dis_k = next((k for k in look if norm[kept[k]] not in used_text), None)
        if proof_k is not None and dis_k is not None and proof_k < dis_k:
            kept[proof_k], kept[dis_k] = kept[dis_k], kept[proof_k]
    return dataclasses.replace(problem, id=f"{problem.id}-cut", premises=[problem.premises[i] for i in kept])


def parse_simple(sentence: str) -> tuple[str, str, str, bool] | None:
    """Parse a ModusPonens-form sentence.

    Returns ('rule', subject_concept, object, negated) or ('fact', name, object, negated), where object is a
    singular concept or an adjective; None for other sentences. Concepts are told from adjectives by the
    fictional '-pus' ending.
    """
    s = sentence.strip()
    m = _RULE_SING.match(s)
    if m:
        return ("rule", m.group(1).lower(), m.group(3) or m.group(4), bool(m.group(2)))
    m = _RULE_PLUR.match(s)
    if m:
        return ("rule", singular(m.group(1).lower()), singular(m.group(3)), bool(m.group(2)))
    m = _FACT.match(s)
    if m and m.group(1) not in ("Each", "Every"):
        return ("fact", m.group(1), m.group(3) or m.group(4), bool(m.group(2)))
    return None


def label_heuristics(problem: Problem) -> dict[str, str | None]:
    """Answers that need no reasoning, to measure label shortcuts. Each is TRUE/FALSE, or None where the
    heuristic does not apply. Only the rules about the query's adjective ("P-rules") are looked at:
      singleton_rule     the README's shortcut: the P-rule(s) whose subject concept occurs in no other premise
                         (the original's distractor); answer the opposite of their polarity.
      majority_polarity  the polarity most P-rules have (None on a tie).
      ontology_rule      the one P-rule whose subject occurs elsewhere (the ontology's own rule); answer its
                         polarity. Inherent to PrOntoQA's design: it finds the right rule without checking that
                         the entity reaches it.
    """
    out: dict[str, str | None] = {"singleton_rule": None, "majority_polarity": None, "ontology_rule": None}
    q = parse_simple(query_statement(problem.query))
    if q is None or q[0] != "fact":
        return out
    parsed = [parse_simple(p) for p in problem.premises]
    mentions: Counter = Counter()
    for p in parsed:
        if p is not None:
            mentions.update(w for w in ({p[1], p[2]} if p[0] == "rule" else {p[2]}) if is_concept(w))
    p_rules = [p for p in parsed if p and p[0] == "rule" and p[2] == q[2]]

    def answer(polarity: bool) -> str:  # the query is TRUE iff its polarity is the one derived
        return "TRUE" if q[3] == polarity else "FALSE"

    singles = {p[3] for p in p_rules if mentions[p[1]] == 1}
    if len(singles) == 1:
        out["singleton_rule"] = answer(not singles.pop())
    neg = sum(p[3] for p in p_rules)
    if p_rules and 2 * neg != len(p_rules):
        out["majority_polarity"] = answer(2 * neg > len(p_rules))
    others = [p for p in p_rules if mentions[p[1]] > 1]
    if len(others) == 1:
        out["ontology_rule"] = answer(others[0][3])
    return out


def shortcut_prediction(problem: Problem) -> str | None:
    """The README's label shortcut (`label_heuristics(problem)["singleton_rule"]`): the answer opposite to the
    polarity of the rule about the query's adjective whose subject occurs nowhere else; None if none."""
    return label_heuristics(problem)["singleton_rule"]


