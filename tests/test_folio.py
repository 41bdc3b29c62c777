"""FOLIO with Z3: parser + repairs, solver labels and statuses, step verification, prompt, optionizer, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oakdpo.trace import Problem
from oakdpo.io import UserError
from oakdpo.tasks.folio.fol import Z3Builder, parse_fol, to_text
from oakdpo.tasks.folio.prompt import build_folio_prompt, render_folio_trace
from oakdpo.tasks.folio.gold import folio_gold_trace
from oakdpo.tasks.folio.loader import load_folio
from oakdpo.tasks.folio.solver import solve, _check, _parse
from oakdpo.tasks.folio.rules import RULES
from oakdpo.tasks.folio.verify import verify_folio_trace

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
TRAIN = SHARED / "folio" / "folio-v0.0-train.jsonl"
HANDWRITTEN = Path(__file__).resolve().parent / "data" / "folio_handwritten.json"


def _train_rows() -> list[dict]:
    if not TRAIN.is_file():
        pytest.skip("shared FOLIO data not available")
    return [json.loads(line) for line in TRAIN.read_text(encoding="utf-8").splitlines() if line.strip()]


# ----------------------------------------------------------------------------------------------- parser

def test_every_train_premise_parses_and_premise_sets_are_satisfiable():
    rows = _train_rows()
    assert len(rows) == 1004
    failures = [(r["example_id"], f) for r in rows for f in r["premises-FOL"] if not parse_fol(f, allow_empty=True).ok]
    assert failures == []
    # 340 distinct premise sets; the two unsat ones are genuinely contradictory annotations
    # (∀x∀y (Larger(x, y) ↔ ¬Larger(y, x)) fails at x = y; the Prereq/CanTake story).
    sets = {tuple(r["premises-FOL"]) for r in rows}
    verdicts = {}
    for s in sets:
        b = Z3Builder()
        verdicts[s] = _check(b, [b.build(_parse(f, True).formula) for f in s], None, 5000)
    assert len(sets) == 340
    assert sorted(verdicts.values()).count("sat") == 338
    unsat_rows = sum(verdicts[tuple(r["premises-FOL"])] != "sat" for r in rows)
    assert unsat_rows == 7
    assert (len(rows) - unsat_rows) / len(rows) >= 0.99


@pytest.mark.parametrize("text,expected,repairs", [
    ("(WorkTeams(kat) ∧ Tired(kat)) ∨ ¬WorkTeams(kat) ∧ ¬Tired(kat))",
     "WorkTeams(kat) ∧ Tired(kat) ∨ ¬WorkTeams(kat) ∧ ¬Tired(kat)", ["unmatched_close"]),
    ("∀x (Road(x) → (MadeOfConcrete(x) ∨ MadeOfAsphalt(x))", "∀x (Road(x) → MadeOfConcrete(x) ∨ MadeOfAsphalt(x))",
     ["missing_close"]),
    ("∀x ∀y (GoodGuy(x) ∧ Fights(x, y) ⟷ BadGuy(y) ∧ Fights(y, x))",
     "∀x ∀y (GoodGuy(x) ∧ Fights(x, y) ↔ BadGuy(y) ∧ Fights(y, x))", ["ascii_ops"]),
    ("GraduateStudent(joe) ⊕  Doctor(joe) → ¬(GraduateStudent(joe) ^ Student(joe))",
     "GraduateStudent(joe) ⊕ Doctor(joe) → ¬(GraduateStudent(joe) ∧ Student(joe))", ["ascii_ops"]),
    ("∀x ∀y (SuperheroMovie(x), NamedAfter(x, y) → GoodGuy(y))",
     "∀x ∀y (SuperheroMovie(x) ∧ NamedAfter(x, y) → GoodGuy(y))", ["comma_and"]),
    ("(LanguageModel(bert) ∧ Giant(bert)) → (LanguageModel(gpt-3) ∧ Giant(gpt-3)).",
     "LanguageModel(bert) ∧ Giant(bert) → LanguageModel(gpt-3) ∧ Giant(gpt-3)", ["trailing_period"]),
    ("∃x (Country(x) Nearby(medeempire, x) ∧ PlotsToSwallowUp(medeempire, x))",
     "∃x (Country(x) ∧ Nearby(medeempire, x) ∧ PlotsToSwallowUp(medeempire, x))", ["juxtaposition"]),
    ("¬ComeFrom(captain america, dc universe)", "¬ComeFrom(captain_america, dc_universe)", ["spaced_name"]),
    ("∀x ((Orlando(x) ∨ Miami(x)) ∧ Florida(x)) → WantToGo(x))",
     "∀x ((Orlando(x) ∨ Miami(x)) ∧ Florida(x) → WantToGo(x))", ["unmatched_close", "wide_scope"]),
    ("∀x ∃y (BittenBy(x, y) ∨ ScratchedBy(x, y)) → AttackedBy(x,y)",
     "∀x ∃y (BittenBy(x, y) ∨ ScratchedBy(x, y) → AttackedBy(x, y))", ["wide_scope"]),
    # plain syntax, no repair: digits, hyphens, '+', dots, apostrophes, non-ASCII letters, a space before "("
    ("Grade(a+) ∨ Visited(mr.smith, y42.3billion) ∨ Co-Produced(x, 2000) ∨ Companies’Stocks(kO) ∨ LostToIgaŚwiątek(x)",
     "Grade(a+) ∨ Visited(mr.smith, y42.3billion) ∨ Co-Produced(x, 2000) ∨ Companies’Stocks(kO) ∨ LostToIgaŚwiątek(x)", []),
    ("∀x  (Mammal (x)→  Animal (x))", "∀x (Mammal(x) → Animal(x))", []),
    ("forall x (P(x) -> Q(x))", "∀x (P(x) → Q(x))", ["ascii_ops"]),
])
def test_repairs(text, expected, repairs):
    r = parse_fol(text)
    assert r.error is None
    assert to_text(r.formula) == expected
    assert r.repairs == repairs


def test_empty_strings():
    assert parse_fol("  ", allow_empty=True).formula.op == "true"
    assert parse_fol("  ", allow_empty=True).repairs == ["empty"]
    assert parse_fol("").error == "empty formula"


def test_precedence_and_associativity():
    f = parse_fol("A(a) ∨ B(a) ∧ ¬C(a) ⊕ D(a) → E(a) → F(a) ↔ G(a)").formula
    assert f.op == "iff"
    imp = f.kids[0]
    assert imp.op == "implies" and imp.kids[1].op == "implies"  # → is right-associative
    xor = imp.kids[0]
    assert xor.op == "xor" and xor.kids[0].op == "or" and xor.kids[0].kids[1].op == "and"
    assert xor.kids[0].kids[1].kids[1].op == "not"
    # ↔ binds loosest, → looser than ⊕, as the FOLIO validation annotations read
    assert solve(["A(a) ⊕ B(a) → C(a)", "A(a)", "¬B(a)"], "C(a)").predicted == "TRUE"
    assert solve(["A(a)", "A(a) → B(a) → C(a)", "B(a)"], "C(a)").predicted == "TRUE"


def test_names_scopes_and_arities():
    # y is bound nowhere: it is a constant, so the premise says nothing about other objects
    assert solve(["∀x (P(x, y))"], "P(a, y)").predicted == "TRUE"
    assert solve(["∀x (P(x, y))"], "P(a, b)").predicted == "UNKNOWN"
    # the same name with two arities is two symbols; a predicate and a constant may share a name
    assert solve(["P(a)"], "P(a, a)").predicted == "UNKNOWN"
    assert solve(["Love(love)"], "∃x (Love(x))").predicted == "TRUE"
    # nested quantifiers and shadowing
    assert solve(["∀x ∃y (R(x, y))"], "∃y (R(a, y))").predicted == "TRUE"
    assert solve(["∀x (∃x (P(x)) → Q(x))", "P(b)"], "Q(a)").predicted == "TRUE"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="∀∃¬∧∨→↔⊕⟷^,.()xyPQab +-'’ś 12=", max_size=40))
def test_parser_never_raises(text):
    r = parse_fol(text)
    assert (r.formula is None) == (r.error is not None)
    if r.ok:  # anything accepted can be converted to z3
        Z3Builder().build(r.formula)


# ----------------------------------------------------------------------------------------------- solver

def test_handwritten_conclusions_agree_with_gold():
    rows = _train_rows()
    premises = {}
    for r in rows:
        premises.setdefault(r["story_id"], r["premises-FOL"])
    cases = json.loads(HANDWRITTEN.read_text(encoding="utf-8"))["conclusions"]
    assert len(cases) == 47
    got = [(c["fol"], solve(premises[c["story_id"]], c["fol"]).predicted) for c in cases]
    assert got == [(c["fol"], c["label"]) for c in cases]


def test_statuses_are_reported_separately():
    r = solve(["P(a)", "¬P(a)"], "Q(a)")
    assert (r.predicted, r.status) == (None, "inconsistent")
    r = solve(["P(a) ∧"], "Q(a)")
    assert (r.predicted, r.status, r.detail) == (None, "unparsed", "premise 0: unexpected end of formula")
    r = solve(["P(a)"], None)
    assert (r.predicted, r.status) == (None, "no_query")
    r = solve(["P(a)"], "P(a) $")
    assert (r.predicted, r.status) == (None, "unparsed")


def test_timeout_is_respected():
    # every model of these premises is infinite: Z3 cannot finish, so the budget decides
    hard = ["∀x ∃y (R(x, y))", "∀x ¬R(x, x)", "∀x ∀y ∀z (R(x, y) ∧ R(y, z) → R(x, z))"]
    r = solve(hard, "P(a)", timeout_ms=100)
    assert (r.predicted, r.status) == (None, "timeout")
    assert r.ms < 1000


# ----------------------------------------------------------------------------------------------- loader

def test_load_folio_keys_labels_and_ids(tmp_path):
    p = tmp_path / "f.jsonl"
    recs = [
        {"example_id": 7, "premises": ["All cats are mammals.", "Tom is a cat."], "premises-FOL":
         ["∀x (Cat(x) → Mammal(x))", "Cat(tom)"], "conclusion": "Tom is a mammal.",
         "conclusion-FOL": "Mammal(tom)", "label": "True"},
        {"premises": "A is b.\nC is d.", "premises_FOL": "P(a)\nQ(c)", "conclusion": "x.", "conclusion_FOL": "P(c)",
         "label": "Uncertain"},
        {"premises": ["S."], "premises-FOL": ["R(s)", ""], "conclusion": "y.", "label": "Unknown"},
    ]
    p.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in recs) + "\n\n", encoding="utf-8")
    probs = load_folio(p)
    assert [x.id for x in probs] == ["7", "f.jsonl:2", "f.jsonl:3"]
    assert [x.label for x in probs] == ["TRUE", "UNKNOWN", "UNKNOWN"]
    assert probs[0].query == "True or false: Tom is a mammal."
    assert probs[0].fol == {"premises": ["∀x (Cat(x) → Mammal(x))", "Cat(tom)"], "query": "Mammal(tom)"}
    assert (probs[0].rule, probs[0].proof, probs[0].hops, probs[0].source) == ("FOL", [], None, "folio:f.jsonl")
    assert probs[1].premises == ["A is b.", "C is d."] and probs[1].fol["premises"] == ["P(a)", "Q(c)"]
    assert probs[2].fol == {"premises": ["R(s)"], "query": None}  # trailing empty FOL dropped
    assert Problem.from_dict(probs[0].to_dict()).fol == probs[0].fol


@pytest.mark.parametrize("line,message", [
    ('{"premises": [], "conclusion": "c", "label": "True"}', "f.jsonl:1: missing key 'premises-FOL'"),
    ('{"premises": [], "premises-FOL": [], "conclusion": "c", "label": "Maybe"}',
     "f.jsonl:1: field 'label' must be True, False, Unknown or Uncertain, got 'Maybe'"),
    ('{"premises": [1], "premises-FOL": [], "conclusion": "c", "label": "True"}',
     "f.jsonl:1: field 'premises' must be a list of strings or a newline-separated string"),
    ('{"premises": [', "f.jsonl:1: invalid JSON"),
    ('{"premises": [], "premises-FOL": 5, "conclusion": "c", "label": "True"}',
     "f.jsonl:1: field 'premises-FOL' must be a list of strings or a newline-separated string, got 5"),
    ('{"premises": null, "premises-FOL": [], "conclusion": "c", "label": "True"}',
     "f.jsonl:1: field 'premises' must be a list of strings or a newline-separated string, got None"),
    ('{"premises": ["a"], "premises_FOL": [["P(a)"]], "conclusion": "c", "label": "True"}',
     "f.jsonl:1: field 'premises_FOL' must be a list of strings or a newline-separated string, got [['P(a)']]"),
    ('{"premises": [], "premises-FOL": [], "conclusion": ["c"], "label": "True"}',
     "f.jsonl:1: field 'conclusion' must be a string, got ['c']"),
    ('{"premises": [], "premises-FOL": [], "conclusion": "c", "conclusion-FOL": 3, "label": "True"}',
     "f.jsonl:1: field 'conclusion-FOL' must be a string, got 3"),
    ('{"premises": [], "premises-FOL": [], "conclusion": "c", "label": ["True"]}',
     "f.jsonl:1: field 'label' must be True, False, Unknown or Uncertain, got ['True']"),
    ('[1, 2]', "f.jsonl:1: expected a JSON object, got list"),
    ('{"premises": ["A.", "B."], "premises-FOL": ["P(a)", " "], "conclusion": "c", "label": "True"}',
     "f.jsonl:1: field 'premises-FOL' has no formula for premise 1 ('B.')"),
    ('{"premises": ["A.", "B."], "premises-FOL": ["P(a)"], "conclusion": "c", "label": "True"}',
     "f.jsonl:1: field 'premises-FOL' has no formula for premise 1 ('B.')"),
])
def test_load_folio_errors(tmp_path, line, message):
    p = tmp_path / "f.jsonl"
    p.write_text(line + "\n", encoding="utf-8")
    with pytest.raises(UserError) as e:
        load_folio(p)
    assert str(e.value).replace(str(tmp_path) + "/", "").startswith(message)


def test_load_folio_cli_bad_input_is_one_line(tmp_path, capsys):
    from oakdpo.cli import main
    p = tmp_path / "f.jsonl"
    p.write_text('{"premises": ["a"], "premises-FOL": {"x": 1}, "conclusion": "c", "label": "True"}\n')
    out = tmp_path / "problems.jsonl"
    assert main(["data", "import", "--format", "folio", str(p), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {p}:1: field 'premises-FOL' must be a list of strings or a newline-separated string, " \
                  "got {'x': 1}"
    assert not out.exists()


def test_load_folio_empty_sentence_beside_a_formula(tmp_path):
    p = tmp_path / "f.jsonl"
    p.write_text(json.dumps({"example_id": "", "premises": ["", "B."], "premises-FOL": ["P(a)", "Q(b)"],
                             "conclusion": "c", "label": "True"}) + "\n")
    (prob,) = load_folio(p)
    assert (prob.id, prob.premises, prob.fol["premises"]) == ("f.jsonl:1", ["P(a)", "B."], ["P(a)", "Q(b)"])
    assert Problem.from_dict(prob.to_dict()).premises == ["P(a)", "B."]


def test_train_split_loads():
    _train_rows()
    probs = load_folio(TRAIN)
    assert len(probs) == 1004
    assert sum(p.label == "UNKNOWN" for p in probs) == 330
    assert all(p.fol["query"] is None for p in probs)  # v0.0 train has no conclusion-FOL
    assert sum(len(p.premises) != len(p.fol["premises"]) for p in probs) == 0


# ------------------------------------------------------------------------------------------ step checks

def _problem(query="Tired(tom)", label="TRUE") -> Problem:
    fol = ["∀x (Drinks(x) → Dependent(x))", "Drinks(rina)", "Student(max) ∧ Unaware(max)", "Jokes(tom) ∨ Drinks(tom)",
           "¬Jokes(tom)", "∀x (Dependent(x) → Tired(x))", "∃x (Student(x) ∧ Jokes(x))"]
    return Problem(id="t", task="folio", premises=[f"Sentence {i}." for i in range(len(fol))],
                   query="True or false: Tom is tired.",
                   label=label, rule="FOL", source="test", fol={"premises": fol, "query": query})


def _step(thought, fol, option, args):
    return render_folio_trace([(thought, fol, option, args)], "TRUE").rsplit("\nFinal Answer", 1)[0]


def _first_step(problem, fol, option, args):
    text = _step("Some words.", fol, option, args) + "\nFinal Answer: TRUE"
    return verify_folio_trace(problem, text)["steps"][0]


@pytest.mark.parametrize("fol,option,args", [
    ("Dependent(rina)", "MODUS_PONENS", [0, 1]),  # universal implication + fact
    ("Dependent(rina)", "MODUS_PONENS", [1, 0]),  # either order
    ("Drinks(rina) → Dependent(rina)", "UNIV_INSTANTIATION", [0]),
    ("Unaware(max)", "AND_ELIM", [2]),
    ("Drinks(tom)", "DISJUNCTIVE_SYLLOGISM", [3, 4]),
    ("Student(w) ∧ Jokes(w)", "EXIST_INSTANTIATION", [6]),  # w: a fresh witness
    ("∃x (Drinks(x))", "EXIST_GENERALIZATION", [1]),
    ("Drinks(rina) ∨ Tired(max)", "OR_INTRO", [1]),
    ("¬Jokes(tom) ∧ Drinks(rina)", "AND_INTRO", [4, 1]),
])
def test_valid_steps_pass(fol, option, args):
    v = _first_step(_problem(), fol, option, args)
    assert (v["valid"], v["reason"], v["claim"]) == (True, "ok", fol)


def _needs(option, got=None):
    text = f"{option} needs {RULES[option][2]}"
    return text if got is None else f"{text}; got {got} cited formula(s)"


@pytest.mark.parametrize("fol,option,args,reason", [
    # follows from all premises (DS -> Drinks(tom) -> Dependent -> Tired) but MODUS_PONENS does not give it
    ("Tired(tom)", "MODUS_PONENS", [5, 4], _needs("MODUS_PONENS")),
    ("Dependnet(rina)", "MODUS_PONENS", [0, 1], "unknown predicate 'Dependnet' (not in the premises or query)"),
    ("Dependent(rina, tom)", "MODUS_PONENS", [0, 1],
     "predicate 'Dependent' used with 2 argument(s); the premises use 1"),
    ("Dependent(rina)", "MODUS_PONENS", [1, 2], _needs("MODUS_PONENS")),
    ("Dependent(rina)", "UNIV_INSTANTIATION", [0], "claim is not an instance of the cited universal"),
    ("Unaware(max)", "AND_ELIM", [1], _needs("AND_ELIM")),
    ("Unaware(max)", "AND_ELIM", [2, 1], _needs("AND_ELIM", 2)),
    ("Drinks(tom)", "DISJUNCTIVE_SYLLOGISM", [3, 1], _needs("DISJUNCTIVE_SYLLOGISM")),
    ("Student(max) ∧ Jokes(max)", "EXIST_INSTANTIATION", [6],
     "EXIST_INSTANTIATION needs a fresh constant; 'max' is already used"),
    ("Dependent(rina)", "AND_INTRO", [0, 1], _needs("AND_INTRO")),
    ("Drinks(rina) ∧ Unaware(max)", "AND_INTRO", [1, 2, 4], _needs("AND_INTRO")),  # the conjuncts != the cited
    ("Dependent(rina) ∧", "MODUS_PONENS", [0, 1], "claim does not parse: unexpected end of formula"),
    (None, "MODUS_PONENS", [0, 1], "missing FOL line"),
    ("Dependent(rina)", "MODUS_PONENS", [0, 9], "cited index 9 does not exist"),
    ("Dependent(rina)", "MODUS_PONENS", [0, 7], "cites its own formula 7"),
    # a step an elementary rule licenses must name it, not a compound rule (which Z3 alone would accept)
    ("¬Jokes(tom)", "CONTRADICTION", [4, 1], "cited formula 1 is not needed for the claim"),  # padding
    ("Drinks(rina) → Dependent(rina)", "CONDITIONAL_PROOF", [0],
     "this step is UNIV_INSTANTIATION, not CONDITIONAL_PROOF (a step names the first rule that licenses it)"),
    ("Dependent(rina)", "CONTRADICTION", [0, 1],
     "CONTRADICTION: the claim must be a negation ¬A (the cited formulas contradict A)"),
    ("∀x (Drinks(x) → Tired(x))", "UNIV_GENERALIZATION", [0, 5],
     "this step is HYPOTHETICAL_SYLLOGISM, not UNIV_GENERALIZATION (a step names the first rule that licenses it)"),
    ("Drinks(tom)", "CASE_SPLIT", [3, 4, 0], _needs("CASE_SPLIT")),
])
def test_invalid_steps_fail_with_reason(fol, option, args, reason):
    v = _first_step(_problem(), fol, option, args)
    assert (v["valid"], v["reason"]) == (False, reason)


RULE_CASES = [
    # (cited formulas, claim, the one rule that licenses it)
    (["A(a) → B(a)", "A(a)"], "B(a)", "MODUS_PONENS"),
    (["∀x (A(x) → B(x))", "A(a)"], "B(a)", "MODUS_PONENS"),
    (["∀x ∀y (R(x, y) → S(y, x))", "R(a, b)"], "S(b, a)", "MODUS_PONENS"),
    (["∀x (A(x) → B(x))", "∀x (A(x))"], "∀x (B(x))", "MODUS_PONENS"),  # under a shared universal prefix
    (["∀x (A(x) → ¬B(x))", "B(a)"], "¬A(a)", "MODUS_TOLLENS"),  # the negation of ¬B(a) is B(a)
    (["¬A(a) → B(a)", "¬B(a)"], "A(a)", "MODUS_TOLLENS"),
    (["∀x (A(x) → B(x))", "∀y (B(y) → C(y))"], "∀z (A(z) → C(z))", "HYPOTHETICAL_SYLLOGISM"),
    (["∀x (A(x) → B(x))", "∀x (B(x) → C(x))"], "A(a) → C(a)", "HYPOTHETICAL_SYLLOGISM"),
    (["A(a) ∨ B(a) ∨ C(a)", "¬B(a)"], "A(a) ∨ C(a)", "DISJUNCTIVE_SYLLOGISM"),
    (["∀x (A(x) ∨ B(x))", "¬A(a)"], "B(a)", "DISJUNCTIVE_SYLLOGISM"),
    (["A(a) ⊕ B(a)", "A(a)"], "¬B(a)", "DISJUNCTIVE_SYLLOGISM"),
    (["¬A(a) ∨ B(a)", "A(a)"], "B(a)", "DISJUNCTIVE_SYLLOGISM"),
    (["∀x (A(x) ↔ B(x))", "¬B(a)"], "¬A(a)", "BICONDITIONAL_ELIM"),
    (["A(a) ↔ B(a)"], "B(a) → A(a)", "BICONDITIONAL_ELIM"),
    (["A(a) → B(a)", "B(a) → A(a)"], "B(a) ↔ A(a)", "BICONDITIONAL_INTRO"),
    (["∀x ∀y (R(x, y))"], "∀y (R(a, y))", "UNIV_INSTANTIATION"),
    (["R(a, b)"], "∃x (R(x, b))", "EXIST_GENERALIZATION"),
    (["A(a) ∧ B(a) ∧ C(a)"], "A(a) ∧ C(a)", "AND_ELIM"),
    (["∀x (A(x) ∧ B(x))"], "B(a)", "AND_ELIM"),
    (["∀x (A(x) ∧ B(x))"], "∀x (B(x))", "AND_ELIM"),
    (["A(a) ∧ B(a)", "C(a)"], "C(a) ∧ A(a) ∧ B(a)", "AND_INTRO"),
    (["A(a) ∨ B(a)"], "B(a) ∨ C(a) ∨ A(a)", "OR_INTRO"),
    (["¬¬A(a)"], "A(a)", "DOUBLE_NEGATION"),
    (["A(a) ∨ B(a)", "A(a) → C(a)", "∀x (B(x) → C(x))"], "C(a)", "CASE_SPLIT"),
    (["¬(A(a) ∨ B(a))"], "¬B(a)", None),  # only a compound rule (CONTRADICTION) gives it
    (["A(a) ∧ B(a)", "∀x (A(x) → C(x))"], "C(a)", None),  # needs AND_ELIM first: no one-step rule
    (["∀x (A(x) → B(x))", "A(a) ∧ C(a)"], "B(a)", None),
    (["A(a) → B(a)", "B(a)"], "A(a)", None),  # affirming the consequent
    (["A(a) ∨ B(a)", "A(a)"], "¬B(a)", None),  # ∨ is not ⊕
]


@pytest.mark.parametrize("cited,claim,rule", RULE_CASES)
def test_each_rule_licenses_its_own_shape(cited, claim, rule):
    from oakdpo.tasks.folio.rules import first_rule
    c = [parse_fol(f).formula for f in cited]
    assert first_rule(c, parse_fol(claim).formula) == rule


def test_rule_swaps_are_rejected():
    """Every step of RULE_CASES that its rule licenses is rejected under every other option."""
    from oakdpo.trace import OPTION_TYPES
    for cited, claim, rule in RULE_CASES:
        if rule is None:
            continue
        fols = [f for f in cited]
        p = Problem(id="r", task="folio", premises=[f"s{i}" for i in range(len(fols))], query="True or false: q.",
                    label="TRUE", rule="FOL", source="t", fol={"premises": fols, "query": claim})
        for option in OPTION_TYPES:
            if option == "CONCLUDE":
                continue
            v = _first_step(p, claim, option, list(range(len(fols))))
            assert v["valid"] == (option == rule), (cited, claim, option, v["reason"])


def test_exist_instantiation_takes_one_fresh_constant_per_variable():
    p = _problem()
    p.fol["premises"] += ["∃x ∃y (Loves(x, y))"]
    v = _first_step(p, "Loves(u, w)", "EXIST_INSTANTIATION", [7])
    assert (v["valid"], v["reason"]) == (True, "ok")
    v = _first_step(p, "Loves(u, u)", "EXIST_INSTANTIATION", [7])  # would contradict ∀x ¬Loves(x, x)
    assert (v["valid"], v["reason"]) == (False, "EXIST_INSTANTIATION needs a distinct fresh constant for each "
                                                "variable")


def test_compound_rules_where_no_elementary_rule_applies():
    p = _problem()
    p.fol["premises"] += ["¬(Drinks(max) ∨ Jokes(max))", "∀x (Drinks(x) ∨ Jokes(x) → Tired(x))"]
    v = _first_step(p, "¬Drinks(max)", "CONTRADICTION", [7])
    assert (v["valid"], v["reason"]) == (True, "ok")
    v = _first_step(p, "Drinks(max) → Tired(max)", "CONDITIONAL_PROOF", [8])
    assert (v["valid"], v["reason"]) == (True, "ok")
    v = _first_step(p, "∀x (Drinks(x) → Tired(x))", "UNIV_GENERALIZATION", [8])
    assert (v["valid"], v["reason"]) == (True, "ok")
    v = _first_step(p, "∀x (Drinks(x) → Tired(x))", "UNIV_GENERALIZATION", [8, 1])
    assert v["reason"] == "UNIV_GENERALIZATION: every cited formula must be universal"


GOLD = """Thought: By disjunctive syllogism from [3] and [4]: [7] Drinks(tom).
FOL: Drinks(tom)
Action: <Option type="DISJUNCTIVE_SYLLOGISM" args="[3, 4]" />
Thought: By modus ponens from [0] and [7]: [8] Dependent(tom).
FOL: Dependent(tom)
Action: <Option type="MODUS_PONENS" args="[0, 7]" />
Thought: By modus ponens from [5] and [8]: [9] Tired(tom).
FOL: Tired(tom)
Action: <Option type="MODUS_PONENS" args="[5, 8]" />
Thought: [9] is Tired(tom). So the query is true.
Action: <Option type="CONCLUDE" args="[0]" />
Final Answer: TRUE"""


def test_whole_trace_verdict():
    v = verify_folio_trace(_problem(), GOLD)
    assert v == {
        "steps": [
            {"index": 0, "option": "DISJUNCTIVE_SYLLOGISM", "args": [3, 4], "claim": "Drinks(tom)", "valid": True, "reason": "ok"},
            {"index": 1, "option": "MODUS_PONENS", "args": [0, 7], "claim": "Dependent(tom)", "valid": True, "reason": "ok"},
            {"index": 2, "option": "MODUS_PONENS", "args": [5, 8], "claim": "Tired(tom)", "valid": True, "reason": "ok"},
            {"index": 3, "option": "CONCLUDE", "args": [0], "claim": "The query is true.", "valid": True, "reason": "ok"},
        ],
        "answer": "TRUE", "correct": True, "trace_valid": True, "step_validity": 1.0, "num_reasoning_steps": 3,
        "conclude_supported": True, "trace_reason": "ok",
    }


def test_trace_mutations_are_rejected():
    p = _problem()
    # a step dropped: later citations point at the wrong formulas
    dropped = "\n".join(GOLD.splitlines()[3:])
    v = verify_folio_trace(p, dropped)
    assert v["trace_reason"] == "step 0: cites its own formula 7"
    # a citation of a later formula
    v = verify_folio_trace(p, GOLD.replace('args="[0, 7]"', 'args="[0, 8]"'))
    assert v["steps"][1]["reason"] == "cites its own formula 8"
    assert v["steps"][2]["reason"] == "cites formula 8 from an invalid step"
    # negation flipped in a claim
    v = verify_folio_trace(p, GOLD.replace("FOL: Dependent(tom)", "FOL: ¬Dependent(tom)"))
    assert v["steps"][1]["reason"] == _needs("MODUS_PONENS")
    # wrong answer: unsupported and not the label
    v = verify_folio_trace(p, GOLD.replace('args="[0]"', 'args="[1]"').replace("Final Answer: TRUE", "Final Answer: FALSE"))
    assert v["steps"][3]["reason"] == ("answer FALSE not supported: '¬Tired(tom)' is neither a premise nor the "
                                       "claim of a valid step")
    assert (v["trace_valid"], v["conclude_supported"], v["correct"]) == (False, False, False)
    # two CONCLUDEs
    v = verify_folio_trace(p, GOLD.replace("Final Answer: TRUE", 'Thought: again.\nAction: <Option type="CONCLUDE" '
                                                               'args="[0]" />\nFinal Answer: TRUE'))
    assert v["trace_reason"] == "2 CONCLUDE steps (need exactly 1)"
    assert v["steps"][3]["reason"] == "CONCLUDE is not the last step"
    # CONCLUDE disagreeing with the Final Answer line
    v = verify_folio_trace(p, GOLD.replace("Final Answer: TRUE", "Final Answer: FALSE"))
    assert v["steps"][3]["reason"] == "CONCLUDE answer TRUE disagrees with Final Answer FALSE"


def test_unknown_answer_is_supported_by_the_solver():
    p = _problem(query="Tired(max)", label="UNKNOWN")
    text = 'Thought: Nothing decides it.\nAction: <Option type="CONCLUDE" args="[2]" />\nFinal Answer: UNKNOWN'
    v = verify_folio_trace(p, text)
    assert (v["trace_valid"], v["conclude_supported"], v["trace_reason"]) == (True, True, "ok")
    v = verify_folio_trace(_problem(), text.replace("UNKNOWN", "TRUE").replace("[2]", "[0]"))
    assert v["trace_reason"] == ("step 0: answer TRUE not supported: 'Tired(tom)' is neither a premise nor the "
                                 "claim of a valid step")


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(GOLD.splitlines() + ["FOL: ∀x (", "Action: <Option", "FOL: Tired(tom) ∧ ¬Tired(tom)",
                                                     'Action: <Option type="CONTRADICTION" args="[4, 3]" />',
                                                     "Thought: x", "Final Answer: UNKNOWN"]), max_size=14))
def test_verifier_never_raises(lines):
    v = verify_folio_trace(_problem(), "\n".join(lines))
    assert all(isinstance(s["reason"], str) and s["reason"] for s in v["steps"])


# --------------------------------------------------------------------------------------- prompt and gold

def test_prompt():
    p = _problem()
    p.premises, p.fol["premises"] = ["All drinkers depend.", "Rina drinks."], ["∀x (Drinks(x) → Dependent(x))", "Drinks(rina)"]
    assert build_folio_prompt(p) == (
        "Premises:\n[0] All drinkers depend.\n    FOL: ∀x (Drinks(x) → Dependent(x))\n[1] Rina drinks.\n"
        "    FOL: Drinks(rina)\nQuery: True or false: Tom is tired.\n    FOL: Tired(tom)\nProof:\n")


def test_gold_trace_of_a_small_problem():
    assert folio_gold_trace(_problem()) == GOLD


def test_gold_traces_on_handwritten_conclusions():
    rows = _train_rows()
    premises = {}
    for r in rows:
        premises.setdefault(r["story_id"], r["premises-FOL"])
    cases = json.loads(HANDWRITTEN.read_text(encoding="utf-8"))["conclusions"]
    found = {"TRUE": 0, "FALSE": 0, "UNKNOWN": 0}
    for i, c in enumerate(cases):
        fol = premises[c["story_id"]]
        p = Problem(id=str(i), task="folio", premises=[f"s{j}" for j in range(len(fol))], query="True or false: q.",
                    label=c["label"], rule="FOL", source="t", fol={"premises": fol, "query": c["fol"]})
        g = folio_gold_trace(p)
        if g is not None:
            assert verify_folio_trace(p, g)["trace_valid"]
            found[c["label"]] += 1
    assert found == {"TRUE": 23, "FALSE": 14, "UNKNOWN": 10}  # all 47


# ------------------------------------------------------------------------------------------------- CLI

def test_solve_cli(tmp_path, capsys):
    from oakdpo.cli import main
    probs = [_problem(), _problem("Tired(max)", "UNKNOWN"), _problem("Tired(tom)", "FALSE")]
    probs[1].id, probs[2].id = "u", "x"
    path = tmp_path / "problems.jsonl"
    path.write_text("".join(json.dumps(p.to_dict(), ensure_ascii=False) + "\n" for p in probs), encoding="utf-8")
    out = tmp_path / "labels.jsonl"
    assert main(["solve", "--problems", str(path), "-o", str(out)]) == 0
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["problem_id"], r["predicted"], r["label"], r["status"]) for r in recs] == [
        ("t", "TRUE", "TRUE", "ok"), ("u", "UNKNOWN", "UNKNOWN", "ok"), ("x", "TRUE", "FALSE", "ok")]
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {k: summary[k] for k in ("problems", "scored", "inconsistent", "timeout", "unparsed", "no_query")} == {
        "problems": 3, "scored": 3, "inconsistent": 0, "timeout": 0, "unparsed": 0, "no_query": 0}
    assert summary["agreement"] == pytest.approx(2 / 3)


def test_solve_cli_bad_input(tmp_path, capsys):
    from oakdpo.cli import main
    path = tmp_path / "problems.jsonl"
    path.write_text('{"id": "a", "premises": [], "query": "q"}\n', encoding="utf-8")
    out = tmp_path / "labels.jsonl"
    assert main(["solve", "--problems", str(path), "-o", str(out)]) == 2
    assert capsys.readouterr().err.strip() == f"error: {path}:1: missing key 'label'"
    assert not out.exists()


# ------------------------------------------------------------------------------- bounds: time and depth

def _chain(op, n):
    return f" {op} ".join(f"P{j}(a)" for j in range(n))


@pytest.mark.parametrize("text", [
    _chain("↔", 2000), _chain("⊕", 5000), _chain("→", 5000), "¬" * 5000 + "P(a)", "(" * 5000 + "P(a)" + ")" * 5000,
    "".join(f"∀x{j} " for j in range(3000)) + "P(a)", "P(" + "f(" * 3000 + "a" + ")" * 3001,
])
def test_deep_formulas_are_a_clear_error_not_a_recursion_error(text):
    from oakdpo.tasks.folio.fol import TOO_DEEP
    assert parse_fol(text).error == TOO_DEEP
    r = solve([text], "Q(a)")
    assert (r.predicted, r.status, r.detail) == (None, "unparsed", f"premise 0: {TOO_DEEP}")
    r = solve(["Q(a)"], text)
    assert (r.status, r.detail) == ("unparsed", f"conclusion: {TOO_DEEP}")
    v = verify_folio_trace(_problem(), _step("x", text, "AND_ELIM", [2]) + "\nFinal Answer: TRUE")
    assert v["steps"][0]["reason"] == f"claim does not parse: {TOO_DEEP}"


def test_depth_limit_keeps_real_formulas():
    from oakdpo.tasks.folio.fol import MAX_DEPTH, depth
    # a chain of n ↔ terms: n - 1 ↔ nodes, the atom, its term
    assert depth(parse_fol(_chain("↔", MAX_DEPTH - 1)).formula) == MAX_DEPTH
    assert not parse_fol(_chain("↔", MAX_DEPTH)).ok
    rows = _train_rows()
    assert max(depth(parse_fol(f, allow_empty=True).formula) for r in rows for f in r["premises-FOL"]) < 20


def test_long_chains_are_flat_and_solve_keeps_its_budget():
    f = parse_fol(_chain("∧", 5000)).formula
    assert (f.op, len(f.kids)) == ("and", 5000)
    g = parse_fol(f"({_chain('∨', 3)}) ∨ P9(a) ∨ ({_chain('∨', 2)})").formula
    assert (g.op, [to_text(k) for k in g.kids]) == ("or", ["P0(a)", "P1(a)", "P2(a)", "P9(a)", "P0(a)", "P1(a)"])
    big = _chain("∧", 60000)  # 700 KB: parsing and building count against the 100 ms
    r = solve([big], "Q(a)", timeout_ms=100)
    assert (r.predicted, r.status) == (None, "timeout")
    assert r.ms < 1000


def test_many_quantified_groups_parse_in_linear_time():
    # each ∀xj (...) used to scan the rest of the formula for a later use of xj
    text = " ∧ ".join(f"∀x{j} (Q(x{j}))" for j in range(20000))
    f = parse_fol(text).formula
    assert f.op == "and" and len(f.kids) == 20000 and f.kids[-1].name == "x19999"


def test_unknown_conclude_is_solved_once_per_problem(monkeypatch):
    from oakdpo.tasks.folio import solver
    calls = []
    real = solver.solve
    monkeypatch.setattr(solver, "solve", lambda *a, **k: calls.append(a) or real(*a, **k))
    solver._solve_cache.clear()
    p = _problem(query="Tired(max)", label="UNKNOWN")
    one = 'Thought: Nothing decides it.\nAction: <Option type="CONCLUDE" args="[2]" />'
    v = verify_folio_trace(p, "\n".join([one] * 20) + "\nFinal Answer: UNKNOWN")
    assert v["trace_reason"] == "20 CONCLUDE steps (need exactly 1)"
    assert [s["reason"] for s in v["steps"][1:]] == ["more than one CONCLUDE"] * 19
    assert verify_folio_trace(p, one + "\nFinal Answer: UNKNOWN")["trace_valid"]
    assert len(calls) == 1  # the 20-CONCLUDE trace and the next trace share one solve


def test_trace_budget_bounds_hard_steps():
    from oakdpo.verify import verify_one
    import time
    hard = ["∀x ∃y (R(x, y))", "∀x ¬R(x, x)", "∀x ∀y ∀z (R(x, y) ∧ R(y, z) → R(x, z))"]
    p = Problem(id="h", task="folio", premises=["a", "b", "c"], query="True or false: q.", label="UNKNOWN",
                rule="FOL", fol={"premises": hard, "query": "P(a)"})
    steps = "\n".join('Thought: x.\nFOL: ¬P(a)\nAction: <Option type="CONTRADICTION" args="[0, 1, 2]" />'
                      for _ in range(50))
    t0 = time.perf_counter()
    v = verify_one(p, steps + '\nThought: y\nAction: <Option type="CONCLUDE" args="[2]" />\nFinal Answer: UNKNOWN',
                   timeout_s=1.0)
    assert time.perf_counter() - t0 < 2.0
    assert (v["trace_valid"], v["timeout"], v["trace_reason"]) == (False, True,
                                                                    "timeout: over the 1 s verification budget")


def test_solve_cli_on_deep_premises(tmp_path, capsys):
    from oakdpo.cli import main
    from oakdpo.tasks.folio.fol import TOO_DEEP
    p = _problem()
    p.fol["premises"] = p.fol["premises"] + [_chain("⊕", 5000)]
    p.premises = p.premises + ["Deep."]
    path = tmp_path / "problems.jsonl"
    path.write_text(json.dumps(p.to_dict(), ensure_ascii=False) + "\n", encoding="utf-8")
    out = tmp_path / "labels.jsonl"
    assert main(["solve", "--problems", str(path), "-o", str(out)]) == 0
    (rec,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert (rec["status"], rec["detail"]) == ("unparsed", f"premise 7: {TOO_DEEP}")
    assert folio_gold_trace(p) is None
