"""ProofWriter: the sentence parser, the forward-chaining solver, gold traces, the strict verifier, the loader."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from oakdpo import cli
from oakdpo.io import UserError
from oakdpo.tasks import get_task
from oakdpo.tasks.proofwriter.gold import gold_steps
from oakdpo.tasks.proofwriter.loader import load_logiclm
from oakdpo.tasks.proofwriter.logic import VAR, Conj, Lit, Rule, parse_sentence, render
from oakdpo.tasks.proofwriter.mutants import KINDS, mutants
from oakdpo.tasks.proofwriter.solver import closure, read_theory, solve
from oakdpo.trace import OPTION_TYPES, Budget, Problem, VerifyTimeout, render_trace

TASK = get_task("proofwriter")
X = VAR


def L(pred, *args, positive=True):
    return Lit(pred, tuple(args), positive)


def problem(premises: list[str], query: str, label: str, pid: str = "p") -> Problem:
    return Problem(id=pid, premises=premises, query=query, label=label, task="proofwriter")


# ------------------------------------------------------------------------------------------------ parser

@pytest.mark.parametrize("text,expected", [
    ("The cow is blue.", L("blue", "the cow")),
    ("The cow is not big.", L("big", "the cow", positive=False)),
    ("The cow visits the tiger.", L("visits", "the cow", "the tiger")),
    ("The cow does not visit the tiger.", L("visits", "the cow", "the tiger", positive=False)),
    ("Bob is young.", L("young", "Bob")),
    ("The bald eagle chases the mouse.", L("chases", "the bald eagle", "the mouse")),
    ("the cow is blue", L("blue", "the cow")),
    ("If something is cold then it visits the tiger.", Rule((L("cold", X),), L("visits", X, "the tiger"))),
    ("If the cow is cold and the cow visits the lion then the lion sees the squirrel.",
     Rule((L("cold", "the cow"), L("visits", "the cow", "the lion")), L("sees", "the lion", "the squirrel"))),
    ("All cold things are blue.", Rule((L("cold", X),), L("blue", X))),
    ("Cold, blue things are big.", Rule((L("cold", X), L("blue", X)), L("big", X))),
    ("All kind, furry things are not blue.", Rule((L("kind", X), L("furry", X)), L("blue", X, positive=False))),
    ("If something is big and not red then it is round.",
     Rule((L("big", X), L("red", X, positive=False)), L("round", X))),
    ("Blue people are rough.", Rule((L("blue", X),), L("rough", X))),
    ("If someone likes the cow then they visit the cow.",
     Rule((L("likes", X, "the cow"),), L("visits", X, "the cow"))),
    ("If someone is furry and quiet then they are white.", Rule((L("furry", X), L("quiet", X)), L("white", X))),
    ("If someone is red and they eat the mouse then they do not see the dog.",
     Rule((L("red", X), L("eats", X, "the mouse")), L("sees", X, "the dog", positive=False))),
    ("If something sees the rabbit then the rabbit does not need the bear.",
     Rule((L("sees", X, "the rabbit"),), L("needs", "the rabbit", "the bear", positive=False))),
    ("If Charlie is not kind then Charlie is cold.", Rule((L("kind", "Charlie", positive=False),), L("cold", "Charlie"))),
    ("The cow is big and the cow visits the lion.",
     Conj((L("big", "the cow"), L("visits", "the cow", "the lion")))),
    ("The cow is big and red.", Conj((L("big", "the cow"), L("red", "the cow")))),
])
def test_parser_forms(text, expected):
    f = parse_sentence(text)
    assert f == expected
    assert parse_sentence(render(f)) == f  # the canonical sentence reads back as the same formula


@pytest.mark.parametrize("text", [
    "", "   ", ".", "Thought: so.", "The cow visit the tiger.", "They visit the cow.", "If then.", "Bob is",
    "If something is big then the cow is.", "If the cow is big then something is red.", "The cow is a big cat.",
    "Cows are blue", "All things are.", "x" * 1000, "If If If then then", "The the the is the.",
    "The cow does not visits the tiger.", "\u2203x P(x)", "[12] The cow is blue",
])
def test_parser_rejects_other_text(text):
    assert parse_sentence(text) is None


def test_parser_never_raises_on_any_text():
    rng = random.Random(0)
    words = ["the", "cow", "is", "not", "If", "then", "and", "something", "it", "they", "Bob", ",", ".", "all",
             "things", "people", "visits", "does", "do", "see", "are", "blue", "Cold", "\n", "?", "[3]", "x"]
    for _ in range(3000):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(0, 14)))
        parse_sentence(text)
    for junk in (None, 3, ["The cow is blue."], b"The cow is blue.", "\x00\ud800"):
        assert parse_sentence(junk) is None


def test_every_sentence_form_of_the_shared_file_parses(shared_data):
    from oakdpo.tasks.proofwriter.loader import split_sentences, statement_of

    rows = json.loads((shared_data / "proofwriter" / "train.json").read_text())
    unparsed = []
    kinds = {"Lit": 0, "Rule": 0}
    for row in rows:
        for s in split_sentences(row["context"]) + [statement_of(row["question"])]:
            f = parse_sentence(s)
            if f is None:
                unparsed.append(s)
            else:
                kinds[type(f).__name__] += 1
    assert unparsed == []
    assert kinds["Rule"] > 20000 and kinds["Lit"] > 30000


# ------------------------------------------------------------------------------------------------ solver

THEORY = [
    "The cow is cold.",                                             # 0
    "The cow visits the lion.",                                     # 1
    "The lion is big.",                                             # 2
    "The lion is not red.",                                         # 3
    "If something is cold then it visits the tiger.",               # 4
    "If the cow is cold and the cow visits the lion then the lion sees the squirrel.",  # 5
    "If something is big and not red then it is round.",           # 6
    "Round things are not kind.",                                   # 7
    "If something visits the tiger then it is big.",                # 8
    "If something is big and not kind then it is quiet.",          # 9
]


@pytest.mark.parametrize("query,label", [
    ("The cow visits the tiger.", "TRUE"),
    ("The lion sees the squirrel.", "TRUE"),
    ("The lion is round.", "TRUE"),
    ("The lion is kind.", "FALSE"),         # its negation is derived
    ("The lion is quiet.", "TRUE"),          # needs the derived negation "not kind"
    ("The cow is round.", "UNKNOWN"),        # the cow is big, but nothing says it is not red: open world
    ("The cow is quiet.", "UNKNOWN"),
    ("The tiger is cold.", "UNKNOWN"),
    ("The cow is not cold.", "FALSE"),
])
def test_solver_open_world(query, label):
    p = problem(THEORY, query, label)
    assert solve(p)[:2] == (label, "ok")
    assert TASK.label(p) == label


def test_solver_proof_and_depth():
    c = closure(read_theory(THEORY))
    proof = c.proof(L("quiet", "the lion"))
    assert [(d.fact, d.rule) for d in proof] == [
        (L("round", "the lion"), 6), (L("kind", "the lion", positive=False), 7), (L("quiet", "the lion"), 9)]
    assert proof[-1].depth == 3
    assert c.proof(L("cold", "the cow")) == []  # a premise needs no derivation


def _naive_closure(theory):
    """Reference: every rule on every binding, until nothing changes."""
    known = set(theory.facts)
    while True:
        new = set()
        for _, rule in theory.rules:
            for v in ([None] if rule.ground else theory.entities):
                if all(b.bind(v) in known for b in rule.body) and rule.head.bind(v) not in known:
                    new.add(rule.head.bind(v))
        if not new:
            return known
        known |= new


@pytest.fixture(scope="module")
def shared_problems(shared_data):
    return load_logiclm(shared_data / "proofwriter" / "train.json")


def test_solver_agrees_with_the_shared_file(shared_problems):
    problems = shared_problems
    assert len(problems) == 3000
    misses = [p.id for p in problems if solve(p)[0] != p.label]
    assert misses == []  # 100% (acceptance: >= 99%)
    for p in problems[::25]:  # the round-by-round closure equals the naive fixpoint
        theory = read_theory(p.premises)
        c = closure(theory)
        assert set(theory.facts) | set(c.derived) == _naive_closure(theory)


# ------------------------------------------------------------------------------------------------ gold traces

def test_gold_traces_verify_in_both_styles(shared_problems):
    problems = shared_problems
    sample = problems[::5]  # 600 problems, every label and depth (the full file: python -m oakdpo.tasks.proofwriter)
    assert {p.label for p in sample} == {"TRUE", "FALSE", "UNKNOWN"}
    for style in ("natural", "lookup"):
        bad = []
        for p in sample:
            v = TASK.verify(p, TASK.gold_trace(p, style))
            if not (v["trace_valid"] and v["correct"] and v["step_validity"] in (0.0, 1.0)):
                bad.append((p.id, v["trace_reason"]))
        assert bad == []
    depths = {p.hops for p in sample}
    assert depths >= {0, 1, 2, 3, 4, 5, None}


def test_gold_trace_shape():
    p = problem(THEORY, "The lion is quiet.", "TRUE")
    text = TASK.gold_trace(p, "natural")
    assert text.splitlines()[0] == ("Thought: The lion is big. The lion is not red. If something is big and not "
                                    "red then it is round. So the lion is round.")
    assert text.splitlines()[1] == 'Action: <Option type="MODUS_PONENS" args="[2, 3, 6]" />'
    assert 'args="[10, 7]"' in text and 'args="[2, 11, 9]"' in text
    assert text.endswith('Thought: The lion is quiet. So the query is true.\n'
                         'Action: <Option type="CONCLUDE" args="[0]" />\nFinal Answer: TRUE')
    assert TASK.gold_trace(p, "lookup") == text
    # a statement that is a premise: the CONCLUDE step alone
    p0 = problem(THEORY, "The cow is not cold.", "FALSE")
    assert TASK.gold_trace(p0, "natural") == ('Thought: The cow is cold. So the query is false.\n'
                                             'Action: <Option type="CONCLUDE" args="[1]" />\nFinal Answer: FALSE')
    assert TASK.verify(p0, TASK.gold_trace(p0, "natural"))["trace_valid"]
    # the solver disagrees with the label: no gold trace
    assert TASK.gold_trace(problem(THEORY, "The lion is quiet.", "FALSE"), "natural") is None


def test_unknown_gold_derives_what_could_lead_to_the_statement():
    premises = ["The cow is big.", "The bear is cold.", "If something is cold then it is big.",
                "If something is big and it is red then it is round.", "If something is cold then it is furry."]
    p = problem(premises, "The bear is round.", "UNKNOWN")
    text = TASK.gold_trace(p, "natural")
    # "the bear is big" could lead to "round" (with "red", which nothing gives); "furry" could not
    assert "So the bear is big." in text and "furry" not in text
    assert text.endswith("No premise or derived fact says that the bear is round or that the bear is not round. "
                         'So the query is unknown.\nAction: <Option type="CONCLUDE" args="[2]" />\n'
                         "Final Answer: UNKNOWN")
    v = TASK.verify(p, text)
    assert v["trace_valid"] and v["conclude_supported"]
    # concluding UNKNOWN before deriving it: a relevant rule can still fire
    bare = 'Thought: Nothing says so. So the query is unknown.\nAction: <Option type="CONCLUDE" args="[2]" />\n' \
           'Final Answer: UNKNOWN'
    v = TASK.verify(p, bare)
    assert not v["trace_valid"] and "rule 2 still gives 'The bear is big.'" in v["trace_reason"]
    # ... while with no relevant rule the CONCLUDE step alone is a valid UNKNOWN trace
    q = problem(premises, "The cow is cold.", "UNKNOWN")
    assert TASK.gold_trace(q, "natural").count("Action:") == 1
    assert TASK.verify(q, bare)["trace_valid"]


# ------------------------------------------------------------------------------------------------ verifier

def steps_text(steps, answer):
    return render_trace(steps, answer)


P_QUIET = problem(THEORY, "The lion is quiet.", "TRUE")
CONCLUDE_TRUE = ("So the query is true.", "CONCLUDE", [0])


def test_verifier_accepts_the_longer_routes():
    # AND_INTRO, then MODUS_PONENS on the conjunction; UNIV_INSTANTIATION, then MODUS_PONENS on the instance
    steps = [
        ("The lion is big and the lion is not red.", "AND_INTRO", [2, 3]),                       # 10
        ("So the lion is round.", "MODUS_PONENS", [10, 6]),                                      # 11
        ("If the lion is round then the lion is not kind.", "UNIV_INSTANTIATION", [7]),          # 12
        ("So the lion is not kind.", "MODUS_PONENS", [11, 12]),                                  # 13
        ("So the lion is big and the lion is not kind.", "AND_INTRO", [13, 2]),                  # 14
        ("So the lion is not kind.", "AND_ELIM", [14]),                                           # 15
        ("So the lion is quiet.", "MODUS_PONENS", [9, 14]),                                      # 16
        CONCLUDE_TRUE,
    ]
    v = TASK.verify(P_QUIET, steps_text(steps, "TRUE"))
    assert [s["reason"] for s in v["steps"]] == ["ok"] * 8
    assert v["trace_valid"] and v["step_validity"] == 1.0


@pytest.mark.parametrize("claim", [
    "So the lion is big, not red, and round.", "So the lion is big, not red and round.",
    "So the lion is big, the lion isn't red, and the lion is round.",
])
def test_a_conjunction_of_three_facts_may_be_a_comma_list(claim):
    steps = [("So the lion is round.", "MODUS_PONENS", [2, 3, 6]),                             # 10
             (claim, "AND_INTRO", [2, 3, 10]), CONCLUDE_TRUE]
    v = TASK.verify(problem(THEORY, "The lion is round.", "TRUE"), steps_text(steps, "TRUE"))
    assert [s["reason"] for s in v["steps"][:2]] == ["ok", "ok"]


@pytest.mark.parametrize("step,reason", [
    (("So the lion is round.", "MODUS_PONENS", [2, 6]), "the rule's condition 'The lion is not red.' is not a cited fact"),
    (("So the lion is round.", "MODUS_PONENS", [2, 3, 1, 6]), "cited fact 1 is not a condition of the rule"),
    (("So the lion is round.", "MODUS_PONENS", [2, 3]), "MODUS_PONENS cites one rule"),
    (("So the lion is round.", "MODUS_PONENS", [2, 3, 6, 7]), "MODUS_PONENS cites one rule"),
    (("So the lion is not round.", "MODUS_PONENS", [2, 3, 6]), "claim does not follow: expected 'The lion is round.'"),
    (("So the cow is round.", "MODUS_PONENS", [2, 3, 6]), "claim does not follow"),
    (("So the lion is round.", "MODUS_PONENS", [2, 2, 3, 6]), "cites a formula twice"),
    (("So the lion is round.", "MODUS_PONENS", [2, 3, 16]), "cited index 16 does not exist"),
    (("So the lion is round.", "MODUS_PONENS", [2, 3, 10]), "cites its own formula 10"),
    (("So it is so.", "MODUS_PONENS", [2, 3, 6]), "claim does not parse: expected 'The lion is round.'"),
    (("So the lion is not kind.", "MODUS_TOLLENS", [2, 7]), "MODUS_TOLLENS is not a ProofWriter inference"),
    (("So the lion is big.", "AND_INTRO", [2]), "AND_INTRO cites two or more facts"),
    (("So the lion is big and the lion is big.", "AND_INTRO", [2, 2]), "cites a formula twice"),
    (("So the lion is big and the lion is not red.", "AND_INTRO", [2, 6]), "cited formula 6 is not a fact"),
    (("So the lion is big.", "AND_ELIM", [2]), "AND_ELIM cites one conjunction"),
    (("If the lion is cold then the lion visits the lion.", "UNIV_INSTANTIATION", [4]), "claim does not follow"),
    (("If the lion is cold then the lion visits the tiger.", "UNIV_INSTANTIATION", [5]),
     'UNIV_INSTANTIATION cites one rule about "something"'),
])
def test_verifier_rejects_with_reason(step, reason):
    v = TASK.verify(P_QUIET, steps_text([step, CONCLUDE_TRUE], "TRUE"))
    assert not v["steps"][0]["valid"]
    assert reason in v["steps"][0]["reason"], v["steps"][0]["reason"]
    assert not v["trace_valid"] and v["trace_reason"].startswith("step 0:")


def test_verifier_citations_of_invalid_and_later_steps():
    steps = [("So the lion is round.", "MODUS_PONENS", [2, 6]),     # 10 invalid
             ("So the lion is not kind.", "MODUS_PONENS", [10, 7]),  # cites the invalid step
             ("So the lion is quiet.", "MODUS_PONENS", [2, 13, 9]),  # cites a later step
             ("So the lion is not kind.", "MODUS_PONENS", [11, 7]), CONCLUDE_TRUE]
    v = TASK.verify(P_QUIET, steps_text(steps, "TRUE"))
    assert [s["reason"] for s in v["steps"][1:3]] == ["cites formula 10 from an invalid step",
                                                      "cites formula 13 from a later step"]


def test_conclude_rules():
    good = TASK.gold_trace(P_QUIET, "natural")
    assert TASK.verify(P_QUIET, good)["trace_valid"]
    no_answer = good.rsplit("\n", 1)[0]
    assert TASK.verify(P_QUIET, no_answer)["trace_reason"].endswith("missing Final Answer")
    disagree = good.replace("Final Answer: TRUE", "Final Answer: FALSE")
    assert "disagrees with Final Answer FALSE" in TASK.verify(P_QUIET, disagree)["trace_reason"]
    only = 'Thought: So the query is true.\nAction: <Option type="CONCLUDE" args="[0]" />\nFinal Answer: TRUE'
    v = TASK.verify(P_QUIET, only)
    assert not v["trace_valid"] and "answer TRUE not supported: 'The lion is quiet.'" in v["trace_reason"]
    twice = good.replace("Final Answer: TRUE", 'Action: <Option type="CONCLUDE" args="[0]" />\nFinal Answer: TRUE')
    assert "CONCLUDE steps (need exactly 1)" in TASK.verify(P_QUIET, twice)["trace_reason"]
    bad_arg = good.replace('args="[0]"', 'args="[7]"')
    assert "CONCLUDE needs 1 arg" in TASK.verify(P_QUIET, bad_arg)["trace_reason"]


def test_mutants_of_each_kind_are_rejected(shared_problems):
    problems = shared_problems[::10]
    made = dict.fromkeys(KINDS, 0)
    accepted = []
    reasons = {k: set() for k in KINDS}
    for p in problems:
        for kind, text in mutants(p):
            made[kind] += 1
            v = TASK.verify(p, text)
            if v["trace_valid"]:
                accepted.append((p.id, kind))
            reasons[kind].add(v["trace_reason"].split(": ", 1)[-1])
    assert accepted == []
    assert all(made[k] >= 100 for k in KINDS), made

    def share(kind, *starts):
        return sum(r.startswith(starts) for r in reasons[kind]) / len(reasons[kind])

    assert share("polarity", "claim does not follow") == 1.0
    assert share("rule", "the rule's condition", "cited fact", "claim does not follow") == 1.0
    assert share("answer", "answer TRUE not supported", "answer FALSE not supported",
                 "answer UNKNOWN not supported") == 1.0
    assert share("index", "the rule's condition", "MODUS_PONENS cites one rule", "claim does not follow",
                 "cited fact", "cites a formula twice") == 1.0


def test_mutant_reasons_on_one_problem():
    p = P_QUIET
    got = {}
    for kind, text in mutants(p):
        v = TASK.verify(p, text)
        assert not v["trace_valid"], (kind, text)
        got.setdefault(kind, v["trace_reason"])
    assert set(got) == set(KINDS)
    assert "claim does not follow: expected 'The lion is round.'" in got["polarity"]
    assert got["answer"].startswith("step 3: answer FALSE not supported") or \
        got["answer"].startswith("step 3: answer UNKNOWN not supported")


def test_verify_never_raises_and_honours_the_budget():
    rng = random.Random(1)
    gold = TASK.gold_trace(P_QUIET, "natural")
    for _ in range(300):
        cut = list(gold)
        for _ in range(rng.randint(1, 6)):
            i = rng.randrange(len(cut))
            cut[i] = rng.choice(["", "[", "]", "9", ",", "\n", "Action:", "So ", "not ", '"'])
        v = TASK.verify(P_QUIET, "".join(cut))
        assert set(v) >= {"steps", "answer", "correct", "trace_valid", "step_validity", "trace_reason"}
    for junk in ("", None, 'Action: <Option type="MODUS_PONENS" args="[]" />', "Final Answer: TRUE"):
        assert TASK.verify(P_QUIET, junk)["trace_valid"] is False
    odd = problem(["The cow is blue.", "Nonsense here!"], "Nonsense?", "UNKNOWN")
    v = TASK.verify(odd, 'Thought: x.\nAction: <Option type="MODUS_PONENS" args="[1, 0]" />\n'
                         'Thought: ?\nAction: <Option type="CONCLUDE" args="[2]" />\nFinal Answer: UNKNOWN')
    assert v["steps"][0]["reason"] == "cited premise 1 is not a fact or rule the verifier reads"
    assert "the query does not parse" in v["steps"][1]["reason"]
    with pytest.raises(VerifyTimeout):
        TASK.verify(P_QUIET, gold, Budget(-1.0))


def test_task_pickles():
    import pickle

    copy = pickle.loads(pickle.dumps(TASK))  # verification runs in a process pool
    assert type(copy) is type(TASK) and copy.name == "proofwriter"
    gold = TASK.gold_trace(P_QUIET, "natural")
    assert copy.verify(P_QUIET, gold) == TASK.verify(P_QUIET, gold)


# ------------------------------------------------------------------------------------------------ prompt

def test_prompt_styles():
    p = problem(THEORY, "The lion is quiet.", "TRUE")
    system, user = TASK.prompt(p, "natural")
    for option in ("MODUS_PONENS", "AND_INTRO", "AND_ELIM", "UNIV_INSTANTIATION", "CONCLUDE"):
        assert sum(line.startswith(f"{option}: ") for line in system.splitlines()) == 1
    assert "numbered P+k" in system and "unknown" in system
    assert user.startswith("Premises:\n[0] The cow is cold.\n[1] The cow visits the lion.\n")
    assert user.count("[3] ") == 1 and "[9] If something is big and not kind then it is quiet." in user
    assert user.endswith("Query: The lion is quiet.\nProof:\n")
    assert TASK.prompt(p, "lookup") == (None, user)
    assert all(o in OPTION_TYPES for o in ("MODUS_PONENS", "AND_INTRO", "AND_ELIM", "UNIV_INSTANTIATION"))


# ------------------------------------------------------------------------------------------------ loader

ROW = {"id": "ProofWriter_AttNeg-OWA-D5-1_Q1", "context": "The cow is big. If something is big then it is red.",
       "question": "Based on the above information, is the following statement true, false, or unknown? "
                   "The cow is not red.", "options": ["A) True", "B) False", "C) Unknown"], "answer": "B"}


def write_rows(tmp_path: Path, rows) -> Path:
    path = tmp_path / "pw.json"
    path.write_text(json.dumps(rows, indent=1))
    return path


def test_loader_reads_rows(tmp_path):
    rows = [ROW, dict(ROW, id="x2", answer="C", question="Is it? The cow is round"),
            dict(ROW, id="x3", options=["A) Unknown", "B) True", "C) False"], answer="B",
                 question="The cow is big.")]
    ps = load_logiclm(write_rows(tmp_path, rows))
    assert [(p.query, p.label, p.hops) for p in ps] == [("The cow is not red.", "FALSE", 1),
                                                          ("The cow is round.", "UNKNOWN", None),
                                                          ("The cow is big.", "TRUE", 0)]
    p = ps[0]
    assert p.task == "proofwriter" and p.premises == ["The cow is big.", "If something is big then it is red."]
    assert p.meta == {"theory": "AttNeg-OWA-D5"} and p.source == "logiclm:pw.json"
    assert Problem.from_dict(p.to_dict()) == p


@pytest.mark.parametrize("change,message", [
    ({"options": 5}, "item 0: field 'options' must be a list of strings, got 5"),
    ({"answer": ["A"]}, "item 0: field 'answer' must be a string, got [\"A\"]"),
    ({"options": ["A) True", 3]}, "field 'options' must be a list of strings"),
    ({"options": ["A) Yes", "B) No"]}, "field 'options[0]' must read 'A) True'"),
    ({"answer": "D"}, "field 'answer' must be one of the option letters A, B, C, got 'D'"),
    ({"context": None}, "field 'context' must be a string, got null"),
    ({"context": "  "}, "field 'context' has no sentences"),
    ({"question": 7}, "field 'question' must be a string"),
    ({"id": 3}, "field 'id' must be a string"),
])
def test_loader_bad_rows_are_one_line_user_errors(tmp_path, change, message):
    path = write_rows(tmp_path, [dict(ROW, **change)])
    with pytest.raises(UserError) as e:
        load_logiclm(path)
    text = str(e.value)
    assert "\n" not in text and text.startswith(str(path)) and message in text, text


@pytest.mark.parametrize("data,message", [
    ({"a": 1}, ":1: expected a JSON list of ProofWriter rows, got dict"),
    ([3], "item 0: expected an object, got int"),
    ([{k: v for k, v in ROW.items() if k != "options"}], "missing key 'options'"),
    ([ROW, ROW], "field 'id': duplicate id"),
])
def test_loader_bad_files(tmp_path, data, message):
    with pytest.raises(UserError) as e:
        load_logiclm(write_rows(tmp_path, data))
    assert message in str(e.value) and "\n" not in str(e.value)


def test_loader_error_names_the_rows_line(tmp_path):
    path = write_rows(tmp_path, [ROW, dict(ROW, id="second", options=5)])
    with pytest.raises(UserError) as e:
        load_logiclm(path)
    line = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if '"second"' in t)
    assert str(e.value).startswith(f"{path}:{line}: item 1: field 'options'")


def test_cli_import(tmp_path, capsys):
    src = write_rows(tmp_path, [ROW, dict(ROW, id="x2", answer="A", question="? The cow is red.")])
    out = tmp_path / "problems.jsonl"
    assert cli.main(["data", "import", "--format", "proofwriter-logiclm", str(src), "-o", str(out)]) == 0
    assert "imported 2 problems" in capsys.readouterr().out
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["task"], r["label"]) for r in recs] == [("proofwriter", "FALSE"), ("proofwriter", "TRUE")]
    bad = write_rows(tmp_path, [dict(ROW, options=5)])
    assert cli.main(["data", "import", "--format", "proofwriter-logiclm", str(bad), "-o",
                     str(tmp_path / "b.jsonl")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "field 'options' must be a list of strings" in err[0]
    assert not (tmp_path / "b.jsonl").exists()
    # the imported file reads back, is verified as ProofWriter, and its gold traces verify
    from oakdpo.data import read_problems

    ps = read_problems(out)
    assert all(TASK.verify(p, TASK.gold_trace(p, "natural"))["trace_valid"] for p in ps)
    assert TASK.solve_record(ps[0]) == {"predicted": "FALSE", "status": "ok"}
    assert gold_steps(ps[0])[-1][1] == "CONCLUDE"
