"""The generator's shapes: premise counts, context orders, sentence forms and query phrasings are what the options
ask for, and every generated problem's gold trace verifies strictly in both format styles."""

from __future__ import annotations

import re
from collections import Counter
from statistics import mean

import pytest

from oakdpo.io import UserError
from oakdpo.tasks import get_task
from oakdpo.tasks.prontoqa.generator import (MAX_PREMISES, QUERY_PREFIXES, generate_problems, parse_premises,
                                             parse_simple)
from oakdpo.tasks.prontoqa.gold import gold_trace
from oakdpo.tasks.prontoqa.solver import label as solver_label
from oakdpo.tasks.prontoqa.verify import verify_trace
from oakdpo.trace import query_statement

RULE_FORMS = {"plural": re.compile(r"^[A-Z][a-z]+puses are "), "each": re.compile(r"^Each [a-z]+pus is "),
              "every": re.compile(r"^Every [a-z]+pus is ")}


def _rules(p):
    return [s for s in p.premises if parse_simple(s)[0] == "rule"]


def _facts(p):
    return [s for s in p.premises if parse_simple(s)[0] == "fact"]


def test_default_premise_counts_span_8_to_30_at_every_hop_count():
    problems = generate_problems(2500, (1, 5), seed=11)
    by_hops: dict[int, list[int]] = {}
    for p in problems:
        assert p.meta["premises"] == len(p.premises)
        by_hops.setdefault(p.hops, []).append(len(p.premises))
    assert set(by_hops) == {1, 2, 3, 4, 5}
    for hops, counts in by_hops.items():
        assert set(counts) == set(range(8, 31)), hops  # every count, at every hop count
    means = [mean(c) for c in by_hops.values()]
    assert max(means) - min(means) < 1.5  # independent of the hop count (uniform: 19 each)


@pytest.mark.parametrize("premises, allowed", [(18, {18}), ("8-12", set(range(8, 13))), ((26, 30), set(range(26, 31))),
                                               (MAX_PREMISES, {MAX_PREMISES})])
def test_premise_count_is_the_one_asked_for(premises, allowed):
    problems = generate_problems(150, (1, 5), seed=3, premises=premises)
    assert {len(p.premises) for p in problems} <= allowed
    assert len({len(p.premises) for p in problems}) == len(allowed)


def test_premise_count_below_the_proof_is_raised_to_it():
    # at h hops a problem needs h + 2 premises: the fact, h rules, the distractor rule
    problems = generate_problems(100, (1, 5), seed=4, premises="3-7")
    assert all(max(3, p.hops + 2) <= len(p.premises) <= 7 for p in problems)
    assert {len(p.premises) for p in problems if p.hops == 5} == {7}


def test_original_story_counts():
    problems = generate_problems(300, (1, 5), seed=4, premises="original")
    assert all(len(p.premises) in {4 * d + 5 for d in range(p.hops, 6)} for p in problems)
    assert all(len(_facts(p)) == 2 for p in problems)


def test_orders():
    for story in ((8, 30), "original"):
        proof = generate_problems(200, (2, 5), seed=6, context_order="proof", premises=story)
        rand = generate_problems(200, (2, 5), seed=6, context_order="random", premises=story)
        for p in proof:
            idx = [p.premises.index(s) for s in p.proof[1::2]]
            assert idx == sorted(idx) and p.meta["order"] == "proof"
        in_order = sum([p.premises.index(s) for s in p.proof[1::2]] == sorted(p.premises.index(s) for s in p.proof[1::2])
                       for p in rand)
        assert all(p.meta["order"] == "random" for p in rand)
        assert in_order < 0.5 * len(rand)  # shuffled: 2 to 5 rules are in order by chance now and then
    mixed = Counter(p.meta["order"] for p in generate_problems(400, (1, 5), seed=6))
    assert set(mixed) == {"random", "proof"} and 150 < mixed["proof"] < 250
    for p in generate_problems(200, (1, 5), seed=7):  # the entity facts come last in every order
        n = len(_facts(p))
        assert n in (1, 2) and all(parse_simple(s)[0] == "fact" for s in p.premises[-n:])


@pytest.mark.parametrize("form", ["plural", "each", "every"])
def test_forms(form):
    problems = generate_problems(100, (1, 5), seed=8, forms=form)
    for p in problems:
        assert all(RULE_FORMS[form].match(s) for s in _rules(p)), p.premises
        assert p.meta["forms"] == form
    negated_adjective = {"plural": "puses are not ", "each": "pus is not ", "every": "pus is not "}[form]
    assert any(negated_adjective in s for p in problems for s in _rules(p))  # "Every X is not ADJ", ...


def test_mixed_forms_use_every_form_in_one_problem():
    problems = generate_problems(200, (1, 5), seed=8)
    used = Counter(f for p in problems for s in _rules(p) for f, rx in RULE_FORMS.items() if rx.match(s))
    total = sum(used.values())
    assert total == sum(len(_rules(p)) for p in problems)  # every rule is in one of the three forms
    assert 0.45 < used["plural"] / total < 0.55 and 0.2 < used["each"] / total < 0.3  # the original's draw
    sentences = {s for p in problems for s in p.premises + p.proof + [query_statement(p.query)]}
    for pattern in (r"^Each \w+ is an? \w+\.$", r"^Every \w+ is an? \w+\.$", r"^\w+ are \w+\.$",
                    r"^[A-Z]\w+ is not \w+\.$", r"^Every \w+ is not \w+\.$", r"^[A-Z][a-z]+ is an? \w+\.$"):
        assert any(re.match(pattern, s) for s in sentences), pattern


@pytest.mark.parametrize("phrasing", ["true-or-false", "is-the-following"])
def test_query_phrasings(phrasing):
    problems = generate_problems(50, (1, 5), seed=9, query_phrasing=phrasing)
    for p in problems:
        assert p.query.startswith(QUERY_PREFIXES[phrasing]) and p.meta["phrasing"] == phrasing
        assert parse_simple(query_statement(p.query))[0] == "fact"
    mixed = Counter(p.meta["phrasing"] for p in generate_problems(400, (1, 5), seed=9))
    assert 150 < mixed["is-the-following"] < 250


def test_shape_options_change_only_what_they_name():
    # the same seed and index draw the same ontology; the phrasing changes the query's words only
    a = generate_problems(30, (1, 5), seed=5, query_phrasing="true-or-false")
    b = generate_problems(30, (1, 5), seed=5, query_phrasing="is-the-following")
    assert [p.premises for p in a] == [p.premises for p in b]
    assert [query_statement(p.query) for p in a] == [query_statement(p.query) for p in b]
    assert [p.label for p in a] == [p.label for p in b]


def test_problem_i_depends_on_seed_and_i_only():
    long = generate_problems(60, (1, 5), seed=12)
    assert [p.to_dict() for p in generate_problems(20, (1, 5), seed=12)] == [p.to_dict() for p in long[:20]]
    assert long[5].meta == {"premises": len(long[5].premises), "order": long[5].meta["order"], "forms": "mix",
                            "phrasing": long[5].meta["phrasing"]}


def test_structure_keeps_the_lookup_keys_of_the_original():
    """Apart from the query's adjective (the proof's rule and the distractor rule) and the entity's concept (its
    fact and a child rule), no two premises end in the same word; both repeats occur, and so do one and two facts."""
    problems = generate_problems(1000, (1, 5), seed=13)
    child = facts2 = 0
    for p in problems:
        last = Counter(s.rstrip(".").split()[-1].removesuffix("es") for s in p.premises)
        repeated = {w for w, n in last.items() if n > 1}
        adjective = query_statement(p.query).rstrip(".").split()[-1]
        start = p.proof[0].rstrip(".").split()[-1]
        assert adjective in repeated and repeated <= {adjective, start}
        assert last[adjective] == 2 and last[start] <= 2
        child += last[start] == 2
        facts2 += len(_facts(p)) == 2
    assert 0.25 * len(problems) < child < 0.6 * len(problems)
    assert 0.35 * len(problems) < facts2 < 0.65 * len(problems)


GRID = [dict(premises=n, context_order=o, forms=f, query_phrasing=q)
        for n in ("7", "8-12", "13-19", "20-25", "26-30", "33", "original")
        for o in ("random", "proof", "preorder") for f in ("mix", "plural", "every") for q in ("true-or-false",
                                                                                               "is-the-following")]


@pytest.mark.parametrize("shape", GRID, ids=lambda s: "-".join(str(v) for v in s.values()))
def test_every_gold_trace_verifies_strictly_in_both_styles_and_the_solver_agrees(shape):
    task = get_task("prontoqa")
    hops = "1-5" if shape["premises"] not in ("7",) else "5"
    problems = task.generate(25, seed=21, hops=hops, **shape)
    for p in problems:
        assert solver_label(p) == task.label(p) == p.label
        for style in ("natural", "lookup"):
            trace = gold_trace(p, style)
            verdict = verify_trace(p, trace)
            assert verdict["trace_valid"], (style, p.premises, p.query, trace, verdict)
            assert verdict["num_reasoning_steps"] == p.hops  # backward (lookup) or forward: one step per hop


@pytest.mark.parametrize("kwargs, message", [
    (dict(premises="40"), "--premises: need 1 <= N1 <= N2 <= 33, got 40-40"),
    (dict(premises="many"), "--premises: expected N, N1-N2 (e.g. 8-30) or original, got 'many'"),
    (dict(premises="5", hops="5"), "--premises: a 5-hop problem has at least 7 premises (its fact, 5 rules and the "
                                   "distractor rule), got at most 5"),
    (dict(context_order="inorder"), "--context-order: expected one of mix, random, proof, preorder, got 'inorder'"),
    (dict(forms="all"), "--forms: expected one of mix, plural, each, every, got 'all'"),
    (dict(query_phrasing="ask"), "--query-phrasing: expected one of mix, true-or-false, is-the-following, got 'ask'"),
])
def test_bad_shapes_are_user_errors(kwargs, message):
    with pytest.raises(UserError) as e:
        generate_problems(3, **kwargs)
    assert str(e.value) == message


def test_parse_premises():
    assert parse_premises("8-30") == (8, 30) and parse_premises(18) == (18, 18) and parse_premises(None) == (8, 30)
    assert parse_premises(" original ") == "original"


def test_both_phrasings_survive_a_problems_file(tmp_path):
    from oakdpo.data import read_problem_file, write_problems

    problems = generate_problems(20, (1, 5), seed=14)
    write_problems(tmp_path / "p.jsonl", problems)
    back = read_problem_file(tmp_path / "p.jsonl")
    assert [p.to_dict() for p in back] == [p.to_dict() for p in problems]
    assert {p.meta["phrasing"] for p in back} == {"true-or-false", "is-the-following"}
    assert all(verify_trace(p, gold_trace(p, "lookup"))["trace_valid"] for p in back)


def test_quickstart_long_training_problems_take_their_own_order():
    from oakdpo.config import load_config
    from oakdpo.loop import data_shapes

    def long_problems(*sets):
        d = load_config(None, ["data.train_long_fraction=0.5", "data.train_long_premises=20-30", *sets]).data
        n_long, shape, _ = data_shapes(d)
        return get_task("prontoqa").generate(40, seed=3, hops=d.hops, remove_shortcut=True, **shape)

    mixed = long_problems()
    assert {p.meta["order"] for p in mixed} == {"random", "proof"}  # "mix", the default: the generator's coin
    for order in ("random", "proof"):
        probs = long_problems(f"data.train_long_order={order}")
        assert {p.meta["order"] for p in probs} == {order}
        assert all(20 <= len(p.premises) <= 30 for p in probs)
    with pytest.raises(UserError, match="data.train_long_order"):
        long_problems("data.train_long_order=shuffled")
