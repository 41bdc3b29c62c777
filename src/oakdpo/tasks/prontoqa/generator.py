"""Our PrOntoQA generator. It follows the generative story of the original PrOntoQA generator (asaparov/prontoqa, fictional
ontology, ModusPonens, relevant distractors) with code written here, and covers the shapes PrOntoQA sources vary
(generate_problems; each problem's shape is in its meta):
  - the premise count, uniform over a range (default 8-30) whatever the hop count: the proof's path (the
    entity's concept up to the concept whose property is queried), the distractor rule "Every D is (not) P"
    (D a concept used nowhere else, P the conclusion's adjective), and distractors added one sentence at a time:
    properties, distractor parents of any concept, the ontology above the proof, a child chain below the
    entity's concept, a second entity fact (_generate_shaped). `premises="original"` keeps the original's own
    story: a chain of depth L <= 5 with a property and a distractor parent per level, a two-concept distractor
    ontology, 4L + 5 premises (_generate_original);
  - the context order: the proof's rules in proof order (the original's postorder), random, or preorder; the
    entity facts come last;
  - the sentence forms "Each/Every X is (not) a Y.", "Xs are (not) Ys.", "Each/Every X is (not) ADJ.",
    "Xs are (not) ADJ.", "NAME is a X." (per sentence as the original draws them, or one form);
  - the query phrasing "True or false: S" or Logic-LM's "Is the following statement true or false? S";
  - the query is the conclusion or its negation (fair coin): label TRUE or FALSE.

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
# Shapes: what PrOntoQA sources vary, and the default mixture

CONTEXT_ORDERS = ("random", "proof", "preorder")
FORMS = ("plural", "each", "every")
QUERY_PHRASINGS = ("true-or-false", "is-the-following")
QUERY_PREFIXES = {"true-or-false": "True or false: ", "is-the-following": "Is the following statement true or false? "}
MIX = "mix"
DEFAULT_PREMISES = (8, 30)
MAX_PREMISES = 33  # every concept of the vocabulary used, each with a property: see _generate_shaped
ORIGINAL = "original"  # premises="original": the original generator's story, its premise count set by the depth


def _choice(value: str, allowed: tuple[str, ...], option: str) -> str:
    if value != MIX and value not in allowed:
        raise UserError(f"{option}: expected one of {', '.join((MIX, *allowed))}, got {value!r}")
    return value


def parse_premises(premises: str | int | tuple[int, int] | list[int] | None) -> tuple[int, int] | str:
    """'8-30' -> (8, 30); '18' or 18 -> (18, 18); 'original' -> 'original'; None -> DEFAULT_PREMISES."""
    if premises is None:
        return DEFAULT_PREMISES
    if isinstance(premises, str):
        if premises.strip() == ORIGINAL:
            return ORIGINAL
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", premises)
        if not m:
            raise UserError(f"--premises: expected N, N1-N2 (e.g. 8-30) or {ORIGINAL}, got {premises!r}")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
    elif isinstance(premises, int):
        lo = hi = premises
    else:
        lo, hi = (int(n) for n in premises)
    if not 1 <= lo <= hi <= MAX_PREMISES:
        raise UserError(f"--premises: need 1 <= N1 <= N2 <= {MAX_PREMISES}, got {lo}-{hi}")
    return lo, hi


def _mixed(rng: random.Random, value: str, allowed: tuple[str, ...]) -> str:
    return rng.choice(allowed) if value == MIX else value


# ----------------------------------------------------------------------------------------------------------
# Generator

def _draw_property(rng: random.Random, family: list[str]) -> tuple[str, bool]:
    """(adjective, negated): each value of the family has weight 1 positive and 0.5 negated (as the original)."""
    adj = rng.choice(family)
    return adj, rng.random() >= 2 / 3


def _form_drawer(rng: random.Random, forms: str):
    """The surface form of each rule sentence: one of FORMS, or the original's per-sentence draw ("mix": plural
    with probability 1/2, else "each" or "every" with equal odds)."""
    if forms != MIX:
        return lambda: forms
    return lambda: "plural" if rng.random() < 0.5 else rng.choice(["each", "every"])


def _query(entity: str, adj: str, negated: bool, phrasing: str) -> str:
    return QUERY_PREFIXES[phrasing] + fact_sentence(entity, adj, negated, is_adjective=True)


def _generate_original(rng: random.Random, hops: int, context_order: str, remove_shortcut: bool,
                       form, phrasing: str, pid: str) -> Problem:
    """The original generator's story (module docstring), by rejection sampling of its tree depth, start node and
    proof walk: the premise count is 4 * depth + 5 (depth >= hops)."""
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
    else:  # proof order: children before parents, the original's postorder (random shuffles it below)
        main = []
        for k in range(depth, 0, -1):
            main += node_rules(k) + subsumptions(k)
    rules = main + dparent_rules + donto
    if context_order == "random":
        rng.shuffle(rules)
    rule_sents = [rule_sentence(s, o, n, a, form()) for s, o, n, a in rules]
    where = {(s, o, n): sent for (s, o, n, _), sent in zip(rules, rule_sents)}  # the proof quotes the context
    sentences = list(rule_sents)

    # The distractor rule: about the conclusion's adjective, with the opposite polarity (the original), or
    # a fair-coin polarity when removing the shortcut.
    d_negated = (rng.random() < 0.5) if remove_shortcut else not concl_negated
    distractor = rule_sentence(distractor_concept, adj, d_negated, True, form())
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
    return Problem(id=pid, premises=sentences + facts, query=_query(entity, adj, q_negated, phrasing), label=label,
                   proof=proof, hops=hops, rule="ModusPonens", source="oakdpo-generator")


def _adjective_pool(rng: random.Random) -> list[str]:
    """Distinct adjectives to pop, one per property family before any family's second value (the original uses
    a family once per problem; past 13 properties a problem needs more)."""
    families = [list(f) for f in PROPERTY_FAMILIES]
    rng.shuffle(families)
    for f in families:
        rng.shuffle(f)
    first = [f[0] for f in families]
    rest = [a for f in families for a in f[1:]]
    rng.shuffle(rest)
    return (first + rest)[::-1]  # popped from the end: the families' first values first


def _generate_shaped(rng: random.Random, hops: int, n_premises: int, context_order: str, remove_shortcut: bool,
                     form, phrasing: str, pid: str) -> Problem:
    """One problem with exactly `n_premises` premises (>= hops + 2), built by the original's story rules:

    - the proof's path start -> ... -> stop (hops concepts, hops - 1 "is a" rules) and the stop concept's rule
      about the query's adjective P; the entity's fact "NAME is a start";
    - the distractor rule "Every D is (not) P", D a concept used nowhere else;
    - then distractors, one sentence at a time, until the count is reached: a property of a concept that has none
      (never P's adjective, every adjective distinct), a new parent concept of any concept (so the path's nodes
      get distractor parents and the ontology grows above the stop concept), a child chain below the start
      concept (its first rule ends in the start concept like the entity's fact, as in the original), and a
      second entity fact "NAME is a E" (the original's distractor ontology).
    Every concept is the object of at most one rule, so apart from P (the stop's rule and the distractor) and the
    start concept (the fact and a child rule) no two premises end in the same word, as in the original.
    Context order: "proof" lists each concept's property and then its "is a" rules, from the bottom of the child
    chain up the path and the first parents, then the other concepts (the original's postorder: the proof's
    rules in proof order); "preorder" reverses that list; "random" shuffles it. The distractor rule goes in at a
    random place and the entity facts come last, in random order.
    """
    names = list(CONCEPTS)
    rng.shuffle(names)
    adjectives = _adjective_pool(rng)
    path = [names.pop() for _ in range(hops)]  # path[0]: the entity's concept, path[-1]: the stop concept
    distractor_concept = names.pop()
    adj = adjectives.pop()
    concl_negated = rng.random() >= 2 / 3
    props: dict[str, tuple[str, bool]] = {path[-1]: (adj, concl_negated)}
    parents: dict[str, list[str]] = {c: [] for c in path}
    for a, b in zip(path, path[1:]):
        parents[a].append(b)
    children: list[str] = []  # the child chain below path[0]: children[0] is path[0]'s child
    second_fact: str | None = None

    extra = n_premises - (hops + 2)
    if rng.random() < 0.5 and extra > 0:  # the second entity fact (the original always has it, Logic-LM not)
        second_fact = names.pop()
        parents[second_fact] = []
        extra -= 1
    if rng.random() < 0.4 and extra > 0:  # a child of the entity's concept (about 30% of the original's)
        children.append(names.pop())
        parents[children[0]] = [path[0]]
        extra -= 1
    for _ in range(extra):
        no_prop = [c for c in parents if c not in props]
        moves = (["prop"] if no_prop else []) + (["parent", "parent"] + (["child"] if children else []) if names
                                                 else [])
        if not moves:
            break  # unreachable: MAX_PREMISES is what the vocabulary allows
        move = rng.choice(moves)
        if move == "prop":
            props[rng.choice(no_prop)] = (adjectives.pop(), rng.random() >= 2 / 3)
        elif move == "parent":
            new = names.pop()
            parents[rng.choice(list(parents))].append(new)
            parents[new] = []
        else:
            new = names.pop()
            parents[new] = [children[-1]]
            children.append(new)

    # Rules as (subject, object, negated, is_adjective), each concept's property before its "is a" rules.
    def block(c: str) -> list[tuple]:
        return ([(c, *props[c], True)] if c in props else []) + [(c, p, False, False) for p in parents[c]]

    spine = children[::-1] + path
    while parents[spine[-1]]:  # on up the first parents above the stop concept
        spine.append(parents[spine[-1]][0])
    rest = [c for c in parents if c not in spine and c != second_fact] + ([second_fact] if second_fact else [])
    rules = [r for c in spine + rest for r in block(c)]
    if context_order == "preorder":
        rules = rules[::-1]
    elif context_order == "random":
        rng.shuffle(rules)
    rule_sents = [rule_sentence(s, o, n, a, form()) for s, o, n, a in rules]
    where = {(s, o, n): sent for (s, o, n, _), sent in zip(rules, rule_sents)}  # the proof quotes the context
    sentences = list(rule_sents)
    d_negated = (rng.random() < 0.5) if remove_shortcut else not concl_negated
    sentences.insert(rng.randint(0, len(sentences)), rule_sentence(distractor_concept, adj, d_negated, True, form()))

    entity = rng.choice(NAMES)
    facts = [fact_sentence(entity, path[0])] + ([fact_sentence(entity, second_fact)] if second_fact else [])
    rng.shuffle(facts)
    proof = [fact_sentence(entity, path[0])]
    for a, b in zip(path, path[1:]):
        proof += [where[(a, b, False)], fact_sentence(entity, b)]
    proof += [where[(path[-1], adj, concl_negated)], fact_sentence(entity, adj, concl_negated, is_adjective=True)]

    label = "TRUE" if rng.random() < 0.5 else "FALSE"
    q_negated = concl_negated if label == "TRUE" else not concl_negated
    return Problem(id=pid, premises=sentences + facts, query=_query(entity, adj, q_negated, phrasing), label=label,
                   proof=proof, hops=hops, rule="ModusPonens", source="oakdpo-generator")


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
                      context_order: str = MIX, remove_shortcut: bool = True,
                      premises: str | int | tuple[int, int] | None = DEFAULT_PREMISES, forms: str = MIX,
                      query_phrasing: str = MIX) -> list[Problem]:
    """Generate `num` PrOntoQA-style problems (fictional ontology, ModusPonens, relevant distractors).

    Shapes (each drawn per problem; "mix" is the default mixture):
      hops            H or (H1, H2), uniform over the range;
      premises        (N1, N2): the premise count, uniform over the range whatever the hop count (at least
                      hops + 2: the proof's fact and rules and the distractor rule; _generate_shaped), or
                      "original": the original generator's story, whose count the ontology's depth sets;
      context_order   random | proof | preorder; mix: random or proof, a fair coin;
      forms           plural ("Xs are Ys") | each ("Each X is a Y") | every ("Every X is not ADJ"); mix: the
                      original's draw per sentence (plural 1/2, each 1/4, every 1/4);
      query_phrasing  true-or-false ("True or false: S") | is-the-following ("Is the following statement true
                      or false? S", Logic-LM's); mix: a fair coin.
    Each problem's meta records its shape: {"premises", "order", "forms", "phrasing"}.
    Problem i depends only on (seed, i) and the shape arguments: the same seed gives identical problems and a
    longer run extends a shorter one. Ids are 'gen-s<seed>-<i:06d>'.
    """
    lo, hi = parse_hops(hops)
    counts = parse_premises(premises)
    _choice(context_order, CONTEXT_ORDERS, "--context-order")
    _choice(forms, FORMS, "--forms")
    _choice(query_phrasing, QUERY_PHRASINGS, "--query-phrasing")
    if counts != ORIGINAL and counts[1] < hi + 2:
        raise UserError(f"--premises: a {hi}-hop problem has at least {hi + 2} premises (its fact, {hi} rules and "
                        f"the distractor rule), got at most {counts[1]}")
    if num < 0:
        raise UserError(f"--num: expected a non-negative count, got {num}")
    out = []
    for i in range(num):
        rng = random.Random(f"oakdpo-prontoqa:{seed}:{i}")  # str seeds hash with sha512: stable everywhere
        h = rng.randint(lo, hi)
        order = _mixed(rng, context_order, ("random", "proof"))
        phrasing = _mixed(rng, query_phrasing, QUERY_PHRASINGS)
        form = _form_drawer(rng, forms)
        pid = f"gen-s{seed}-{i:06d}"
        if counts == ORIGINAL:
            p = _generate_original(rng, h, order, remove_shortcut, form, phrasing, pid)
        else:
            n = rng.randint(max(counts[0], h + 2), counts[1])
            p = _generate_shaped(rng, h, n, order, remove_shortcut, form, phrasing, pid)
        p.meta = {"premises": len(p.premises), "order": order, "forms": forms, "phrasing": phrasing}
        out.append(p)
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


