"""The trace format, the optionizer (gold traces) and the strict verifier.

Gold traces of all shared PrOntoQA examples and of 2000 generated problems verify 100%.
Mutated gold traces are 100% rejected, each for the right (exact) reason.
"""

import json
import random

import pytest

from oakdpo.trace import (Problem, citation_error, extract_claim, parse_action, parse_trace, query_statement,
                          render_trace)
from oakdpo.tasks.prontoqa.prompt import build_lookup_prompt as build_prompt, repeated_keys
from oakdpo.tasks.prontoqa.gold import gold_trace
from oakdpo.io import UserError
from oakdpo.verify import SUMMARY_KEYS, summarize, verify_traces
from oakdpo.tasks.prontoqa.verify import sokrates_claim, verify_sokrates_record, verify_trace

from oakdpo.tasks.prontoqa import generator as data, loaders  # noqa: E402

PROBLEM = Problem(
    id="p1",
    premises=["Every vumpus is a brimpus.", "Max is a vumpus.", "Brimpuses are wooden.", "Every wumpus is not wooden.",
              "Max is a wumpus."],
    query="True or false: Max is not wooden.", label="FALSE",
    proof=["Max is a vumpus.", "Every vumpus is a brimpus.", "Max is a brimpus.", "Brimpuses are wooden.",
           "Max is wooden."])

# A forward proof with every formula tagged: what the verifier reads whatever the gold style.
GOLD = """\
Thought: [1] Max is a vumpus. [0] Every vumpus is a brimpus. So [5] Max is a brimpus.
Action: <Option type="MODUS_PONENS" args="[1, 0]" />
Thought: [5] Max is a brimpus. [2] Brimpuses are wooden. So [6] Max is wooden.
Action: <Option type="MODUS_PONENS" args="[5, 2]" />
Thought: [6] Max is wooden. So [Q] Max is not wooden: false.
Action: <Option type="CONCLUDE" args="[1]" />
Final Answer: FALSE"""

GOLD_NATURAL = """\
Thought: Max is a vumpus. Every vumpus is a brimpus. So Max is a brimpus.
Action: <Option type="MODUS_PONENS" args="[1, 0]" />
Thought: Max is a brimpus. Brimpuses are wooden. So Max is wooden.
Action: <Option type="MODUS_PONENS" args="[5, 2]" />
Thought: Max is wooden. So the query is false.
Action: <Option type="CONCLUDE" args="[1]" />
Final Answer: FALSE"""


# ------------------------------------------------------------------------------------------ trace format

def test_citation_error_rules_in_order():
    # step deriving formula 12 of 15 (12 premises and formulas before it), formula 10 from an invalid step
    assert citation_error(3, 12, 15, {10}) is None
    assert citation_error(11, 12, 15, {10}) is None
    assert citation_error(-1, 12, 15, {10}) == "cited index -1 does not exist"
    assert citation_error(15, 12, 15, {10}) == "cited index 15 does not exist"
    assert citation_error(12, 12, 15, {12}) == "cites its own formula 12"  # before the invalid check
    assert citation_error(14, 12, 15, {14}) == "cites formula 14 from a later step"
    assert citation_error(10, 12, 15, {10}) == "cites formula 10 from an invalid step"


def test_gold_trace_exact():
    assert gold_trace(PROBLEM, "natural") == GOLD_NATURAL
    assert verify_trace(PROBLEM, GOLD_NATURAL)["trace_valid"] and verify_trace(PROBLEM, GOLD)["trace_valid"]


def test_gold_trace_backward_exact():
    text = gold_trace(PROBLEM)
    assert text == """\
Thought: wooden[2] Brimpuses are wooden. [2] brimpus[0] Every vumpus is a brimpus. So [5] Every vumpus is wooden.
Action: <Option type="HYPOTHETICAL_SYLLOGISM" args="[0, 2]" />
Thought: [5] vumpus[1] Max is a vumpus. So [6] Max is wooden.
Action: <Option type="MODUS_PONENS" args="[1, 5]" />
Thought: [6] Max is wooden. So [Q] Max is not wooden: false.
Action: <Option type="CONCLUDE" args="[1]" />
Final Answer: FALSE"""
    v = verify_trace(PROBLEM, text)
    assert (v["trace_valid"], v["num_reasoning_steps"], v["step_validity"]) == (True, 2, 1.0)
    # the same chain cited in the wrong order of composition, and a rule whose object is not the current subject
    bad = text.replace("So [5] Every vumpus is wooden.", "So [5] Every brimpus is wooden.")
    assert verify_trace(PROBLEM, bad)["steps"][0]["reason"] == "claim does not follow: expected 'Every vumpus is wooden'"
    bad = text.replace('args="[0, 2]"', 'args="[3, 2]"')
    assert verify_trace(PROBLEM, bad)["steps"][0]["reason"] == (
        "rules do not chain: consequent 'not wooden' does not match subject 'brimpus'")


def test_gold_trace_one_hop_backward():
    p = Problem(id="h1", premises=["Every wumpus is a yumpus.", "Max is a wumpus."],
                query="True or false: Max is a yumpus.", label="TRUE", proof=["Max is a wumpus.",
                                                                               "Every wumpus is a yumpus.",
                                                                               "Max is a yumpus."])
    assert gold_trace(p).splitlines()[0] == (
        "Thought: yumpus[0] Every wumpus is a yumpus. [0] wumpus[1] Max is a wumpus. So [2] Max is a yumpus.")
    assert verify_trace(p, gold_trace(p))["trace_valid"]


def test_dead_end_retry_cites_the_second_tag_form():
    # Two rules end in "wooden": the distractor (listed first, its subject "gorpus" ends no premise) and the
    # proof's. The later-listed one carries "{k}" before its last word, in the prompt and where the trace cites it.
    p = Problem(id="d", premises=["Every gorpus is not wooden.", "Every wumpus is a yumpus.", "Yumpuses are wooden.",
                                  "Max is a wumpus."],
                query="True or false: Max is wooden.", label="TRUE",
                proof=["Max is a wumpus.", "Every wumpus is a yumpus.", "Max is a yumpus.", "Yumpuses are wooden.",
                       "Max is wooden."])
    assert repeated_keys(p.premises) == [False, False, True, False]
    assert repeated_keys(["...", "", "a b.", "c b"]) == [False, False, False, True]  # any text: no error
    assert build_prompt(p).splitlines()[2:6] == ["[0] Every gorpus is not[0] wooden.", "[1] Every wumpus is a[1] yumpus.",
                                                 "[2] Yumpuses are{2} wooden.", "[3] Max is a[3] wumpus."]
    text = gold_trace(p)
    assert text.splitlines()[0] == ("Thought: wooden[0] Every gorpus is not wooden. [0] gorpus? wooden{2} Yumpuses are "
                                    "wooden. {2} yumpus[1] Every wumpus is a yumpus. So [4] Every wumpus is wooden.")
    assert verify_trace(p, text)["trace_valid"]
    assert extract_claim("wooden{2} Yumpuses are wooden. So {4} Every wumpus is wooden.") == "Every wumpus is wooden."


def test_gold_trace_query_is_premise_is_conclude_only():
    p = Problem(id="q", premises=["Max is a wumpus.", "Every wumpus is a yumpus."],
                query="True or false: Max is a wumpus.", label="TRUE", proof=["Max is a wumpus."])
    text = gold_trace(p)
    assert text == ('Thought: [0] Max is a wumpus. So [Q] Max is a wumpus: true.\n'
                    'Action: <Option type="CONCLUDE" args="[0]" />\nFinal Answer: TRUE')
    v = verify_trace(p, text)
    assert (v["trace_valid"], v["num_reasoning_steps"], v["step_validity"], v["trace_reason"]) == (True, 0, 0.0, "ok")


def test_parse_trace_fields_and_spans():
    t = parse_trace(GOLD)
    assert [(s.index, s.option, s.args, s.claim, s.error) for s in t.steps] == [
        (0, "MODUS_PONENS", [1, 0], "Max is a brimpus.", None),
        (1, "MODUS_PONENS", [5, 2], "Max is wooden.", None),
        (2, "CONCLUDE", [1], "Max is not wooden: false.", None),
    ]
    assert t.final_answer == "FALSE"
    for s in t.steps:
        a, b = s.span
        assert GOLD[a:b].startswith("Action: <Option") and GOLD[a:b].endswith("/>")
    assert t.steps[0].thought == "[1] Max is a vumpus. [0] Every vumpus is a brimpus. So [5] Max is a brimpus."


def test_parse_trace_malformed_parts():
    text = "\n".join([
        "Thought: So Max is a brimpus.",
        'Action: <Option type="FOO" args="[1, 2]" />',
        'Action: <Option type="MODUS_PONENS" args="[1, 0]" />',
        "Thought: hmm",
        "Action: do something",
        "Thought: x",
        'Action: <Option type="AND_INTRO" args="[1, a]" />',
        "Thought: We conclude that [7] Max is wooden",
        "FOL: Wooden(max)",
        'Action: <Option type="MODUS_PONENS" args="[]" />',
        "Final Answer: maybe",
    ])
    t = parse_trace(text)
    assert [(s.index, s.option, s.args, s.error) for s in t.steps] == [
        (0, "FOO", None, "unknown option 'FOO'"),
        (1, "MODUS_PONENS", [1, 0], "missing Thought"),
        (2, None, None, "unparsable action"),
        (3, "AND_INTRO", None, "bad args '[1, a]'"),
        (4, "MODUS_PONENS", [], None),
    ]
    assert t.steps[4].fol == "Wooden(max)"
    assert t.steps[4].claim == "Max is wooden"
    assert t.final_answer is None


@pytest.mark.parametrize("text, answer", [
    ("", None), ("Final Answer: TRUE", "TRUE"), ("x\nFinal Answer: false.\n", "FALSE"),
    ("Final Answer: UNKNOWN\nmore text", "UNKNOWN"), ("Final Answer: TRUEE", None), ("Final answer TRUE", None),
])
def test_final_answer(text, answer):
    assert parse_trace(text).final_answer == answer


@pytest.mark.parametrize("thought, claim", [
    ("[24] Max is a vumpus. [22] Each vumpus is a brimpus. So [25] Max is a brimpus.", "Max is a brimpus."),
    ("Thus, Max is wooden.", "Max is wooden."),
    ("Therefore we conclude that max is not a wumpus", "Max is not a wumpus"),
    ("Hence, it follows that [3] Max is a wumpus.", "Max is a wumpus."),
    ("This means Max is a wumpus.", "Max is a wumpus."), ("Which means that Max is dull.", "Max is dull."),
    ("By modus ponens, Max is a rompus.", "Max is a rompus."), ("By [8] and [3], Max is a rompus.", "Max is a rompus."),
    ("As a result, Max is a rompus.", "Max is a rompus."), ("This implies that Max is a rompus.", "Max is a rompus."),
    ("Since Max is a grimpus, Max is a rompus.", "Max is a rompus."),
    ("Max is a grimpus and grimpuses are rompuses, so Max is a rompus.", "Max is a rompus."),
    ('So "Max is a rompus".', "Max is a rompus."), ("So **Max is a rompus**.", "Max is a rompus."),
    ("So Alex isn't discordant.", "Alex is not discordant."), ("Wumpuses aren\u2019t dull.", "Wumpuses are not dull."),
    ("So Max is a grimpus, a rompus, and floral.", "Max is a grimpus, a rompus, and floral."),
    ("So.", None), ("", None), ("[3]", None),
])
def test_extract_claim(thought, claim):
    assert extract_claim(thought) == claim


def test_parse_action():
    assert parse_action('Action: <Option type="CONCLUDE" args="[0]" />') == ("CONCLUDE", [0], None)
    assert parse_action('Action: <Option type="MODUS_PONENS" args="[ 3,7 ]"/>') == ("MODUS_PONENS", [3, 7], None)
    assert parse_action("Action: CONCLUDE") == (None, None, "unparsable action")


# ------------------------------------------------------------------------------------------------ verdicts

def test_verdict_exact():
    v = verify_trace(PROBLEM, GOLD)
    assert v == {
        "steps": [
            {"index": 0, "option": "MODUS_PONENS", "args": [1, 0], "claim": "Max is a brimpus.", "valid": True,
             "reason": "ok"},
            {"index": 1, "option": "MODUS_PONENS", "args": [5, 2], "claim": "Max is wooden.", "valid": True,
             "reason": "ok"},
            {"index": 2, "option": "CONCLUDE", "args": [1], "claim": "Max is not wooden: false.", "valid": True,
             "reason": "ok"},
        ],
        "answer": "FALSE", "correct": True, "trace_valid": True, "step_validity": 1.0, "num_reasoning_steps": 2,
        "conclude_supported": True, "trace_reason": "ok",
    }


def _reasons(problem, text):
    v = verify_trace(problem, text)
    return [s["reason"] for s in v["steps"]], v


def test_verdict_reasons_handmade():
    # normalization: plural / article / case / missing period in the claim are fine
    ok = GOLD.replace("So [5] Max is a brimpus.", "So [5] MAX is an brimpuses")
    assert _reasons(PROBLEM, ok)[1]["trace_valid"]
    # the exploit of the original system: the entity fact with a far-away rule
    bad = GOLD.replace('args="[1, 0]"', 'args="[1, 2]"').replace("So [5] Max is a brimpus.", "So [5] Max is wooden.")
    reasons, v = _reasons(PROBLEM, bad)
    assert reasons == ["rule does not apply: fact concept 'vumpus' does not match rule subject 'brimpus'",
                       "cites formula 5 from an invalid step",
                       "answer FALSE not supported: 'Max is wooden' is not a premise or the formula of a valid step"]
    assert (v["trace_valid"], v["step_validity"], v["conclude_supported"], v["correct"]) == (False, 0.0, False, True)
    assert v["trace_reason"] == ("step 0: rule does not apply: fact concept 'vumpus' does not match rule subject "
                                 "'brimpus'")
    # no steps at all, only an answer
    reasons, v = _reasons(PROBLEM, "Final Answer: FALSE")
    assert (reasons, v["trace_valid"], v["correct"], v["trace_reason"]) == ([], False, True, "no CONCLUDE step")
    # UNKNOWN is never supported on PrOntoQA
    text = 'Thought: not sure.\nAction: <Option type="CONCLUDE" args="[2]" />\nFinal Answer: UNKNOWN'
    assert _reasons(PROBLEM, text)[0] == ["answer UNKNOWN cannot be supported by a proof"]
    # CONCLUDE with a bad code, and a claim that does not parse
    text = GOLD.replace('args="[1]"', 'args="[7]"').replace("So [6] Max is wooden.", "So [6] Max is very wooden.")
    assert _reasons(PROBLEM, text)[0] == ["ok", "claim does not parse: expected 'Max is wooden'",
                                          "CONCLUDE needs 1 arg (0=TRUE, 1=FALSE, 2=UNKNOWN), got [7]"]


def test_verify_traces_and_summary():
    traces = [{"problem_id": "p1", "sample": 0, "text": GOLD}, {"problem_id": "p1", "sample": 1, "text": "junk"}]
    vs = verify_traces([PROBLEM], traces, progress=False)
    assert [(v["problem_id"], v["sample"], v["trace_valid"]) for v in vs] == [("p1", 0, True), ("p1", 1, False)]
    assert summarize(vs) == {"traces": 2, "reasoning_steps": 2, "step_validity": 1.0, "trace_validity": 0.5,
                             "accuracy": 0.5, "conclude_support": 0.5, "timeouts": 0}
    assert summarize([]) == {"traces": 0, "reasoning_steps": 0, "step_validity": 0.0, "trace_validity": 0.0,
                             "accuracy": 0.0, "conclude_support": 0.0, "timeouts": 0}
    with pytest.raises(UserError, match="unknown problem_id 'nope'"):
        verify_traces([PROBLEM], [{"problem_id": "nope", "sample": 0, "text": GOLD}], progress=False)


# ---------------------------------------------------------------------------------- other proof rules

def _p(pid, premises, query, proof):
    return Problem(id=pid, premises=premises, query=query, label="TRUE", proof=proof)


OTHER_RULES = [
    (_p("and-intro", ["Max is a wumpus.", "Max is wooden.", "Each wooden wumpus is a yumpus.", "Every yumpus is red."],
        "Prove: Max is red.",
        ["Max is a wumpus.", "Max is wooden.", "Max is a wooden wumpus.", "Each wooden wumpus is a yumpus.",
         "Max is a yumpus.", "Every yumpus is red.", "Max is red."]),
     [("AND_INTRO", [0, 1]), ("MODUS_PONENS", [4, 2]), ("MODUS_PONENS", [5, 3]), ("CONCLUDE", [0])]),
    (_p("and-elim", ["Max is a wooden wumpus.", "Every wumpus is a yumpus."], "Prove: Max is a yumpus.",
        ["Max is a wooden wumpus.", "Max is a wumpus.", "Every wumpus is a yumpus.", "Max is a yumpus."]),
     [("AND_ELIM", [0]), ("MODUS_PONENS", [2, 1]), ("CONCLUDE", [0])]),
    (_p("or-intro", ["Max is a wumpus.", "Everything that is a wumpus or a yumpus is a zumpus."],
        "Prove: Max is a zumpus.",
        ["Max is a wumpus.", "Max is a wumpus or Max is a yumpus.",
         "Everything that is a wumpus or a yumpus is a zumpus.", "Max is a zumpus."]),
     [("OR_INTRO", [0]), ("MODUS_PONENS", [2, 1]), ("CONCLUDE", [0])]),
    (_p("or-elim", ["Max is a wumpus or Max is a yumpus.", "Every wumpus is a zumpus.", "Every yumpus is a zumpus.",
                    "Every dumpus is a zumpus."], "Prove: Max is a zumpus.",
        ["Assume Max is a wumpus.", "Every wumpus is a zumpus.", "Max is a zumpus.", "Assume Max is a yumpus.",
         "Every yumpus is a zumpus.", "Max is a zumpus.", "Since Max is a wumpus or a yumpus, Max is a zumpus."]),
     [("CASE_SPLIT", [0, 1, 2]), ("CONCLUDE", [0])]),
    (_p("contra", ["Max is not a zumpus.", "Everything that is a wumpus or a yumpus is a zumpus."],
        "Prove: Max is not a yumpus and Max is not a wumpus.",
        ["Assume Max is a wumpus.", "Max is a wumpus or a yumpus.", "Max is a zumpus.",
         "This contradicts with Max is not a zumpus.", "Max is not a wumpus.", "Assume Max is a yumpus.",
         "Max is a wumpus or a yumpus.", "Max is a zumpus.", "This contradicts with Max is not a zumpus.",
         "Max is not a yumpus.", "Max is not a yumpus and Max is not a wumpus."]),
     [("CONTRADICTION", [0, 1]), ("CONTRADICTION", [0, 1]), ("AND_INTRO", [2, 3]), ("CONCLUDE", [0])]),
]


@pytest.mark.parametrize("problem, options", OTHER_RULES, ids=[p.id for p, _ in OTHER_RULES])
def test_other_rules_gold_traces(problem, options):
    text = gold_trace(problem)
    v = verify_trace(problem, text)
    assert [(s["option"], s["args"]) for s in v["steps"]] == options
    assert (v["trace_valid"], v["correct"], v["step_validity"]) == (True, True, 1.0)


# Proofs by contradiction of the original generator's Composed rule: several sentences under the assumption.
COMPOSED_CONTRA = [
    # AND_INTRO of the assumption and two facts, a conjunctive rule: one CONTRADICTION citing the facts for the
    # other parts; the query is a disjunction with the result (OR_INTRO)
    (_p("contra-conj", ["Everything that is an impus and a rompus and a wumpus is a dumpus.",
                        "Max is a brimpus and Max is a rompus and Max is not a dumpus.", "Max is an impus.",
                        "Max is a rompus."], "Prove: Max is a shumpus or Max is not a wumpus.",
        ["Max is a brimpus and Max is a rompus and Max is not a dumpus.", "Max is not a dumpus.",
         "Assume Max is a wumpus.", "Max is a rompus.", "Max is an impus.", "Max is an impus, a rompus, and a wumpus.",
         "Everything that is an impus and a rompus and a wumpus is a dumpus.", "Max is a dumpus.",
         "This contradicts with Max is not a dumpus.", "Max is not a wumpus.", "Max is a shumpus or Max is not a wumpus."]),
     [("AND_ELIM", [1]), ("CONTRADICTION", [4, 0, 2, 3]), ("OR_INTRO", [5]), ("CONCLUDE", [0])]),
    # a conjunctive consequent and a chain of two rules under the assumption; comma-joined clauses
    (_p("contra-chain", ["Each impus is a gorpus, a rompus, and a tumpus.", "Each tumpus is a sterpus.",
                         "Rex is not a sterpus, Rex is a lorpus, and Rex is a brimpus."],
        "Prove: Rex is not an impus, Rex is a yumpus, or Rex is a numpus.",
        ["Rex is not a sterpus, Rex is a lorpus, and Rex is a brimpus.", "Rex is not a sterpus.",
         "Assume Rex is an impus.", "Each impus is a gorpus, a rompus, and a tumpus.",
         "Rex is a gorpus, a rompus, and a tumpus.", "Rex is a tumpus.", "Each tumpus is a sterpus.",
         "Rex is a sterpus.", "This contradicts with Rex is not a sterpus.", "Rex is not an impus.",
         "Rex is not an impus, Rex is a yumpus, or Rex is a numpus."]),
     [("AND_ELIM", [2]), ("MODUS_TOLLENS", [3, 1]), ("CONTRADICTION", [4, 0]), ("OR_INTRO", [5]),
      ("CONCLUDE", [0])]),
    # two parts of the conjunction follow from the assumption: the denial becomes a disjunction, resolved one
    # rule at a time
    (_p("contra-two-parts", ["Each impus is a sterpus.", "Every impus is a zumpus.",
                             "Everything that is a zumpus, a sterpus, and a yumpus is a jompus.", "Alex is not a jompus.",
                             "Alex is a yumpus."], "Prove: Alex is not an impus.",
        ["Assume Alex is an impus.", "Each impus is a sterpus.", "Alex is a sterpus.", "Alex is an impus.",
         "Every impus is a zumpus.", "Alex is a zumpus.", "Alex is a zumpus, a sterpus, and a yumpus.",
         "Everything that is a zumpus, a sterpus, and a yumpus is a jompus.", "Alex is a jompus.",
         "This contradicts with Alex is not a jompus.", "Alex is not an impus."]),
     [("CONTRADICTION", [3, 2, 4]), ("CONTRADICTION", [5, 1]), ("CONTRADICTION", [6, 0]), ("CONCLUDE", [0])]),
    # the assumed fact is used before "Assume" too: the denial itself follows from it, so the first step cites
    # the two rules that contradict
    (_p("contra-two-rules", ["Everything that is a lorpus and a brimpus is a yumpus.",
                             "Everything that is a tumpus and a brimpus is not a yumpus.", "Alex is a tumpus.",
                             "Alex is a lorpus."], "Prove: Alex is not a brimpus.",
        ["Alex is a brimpus.", "Alex is a tumpus.", "Alex is a tumpus and a brimpus.",
         "Everything that is a tumpus and a brimpus is not a yumpus.", "Alex is not a yumpus.",
         "Assume Alex is a brimpus.", "Alex is a lorpus.", "Alex is a lorpus and a brimpus.",
         "Everything that is a lorpus and a brimpus is a yumpus.", "Alex is a yumpus.",
         "This contradicts with Alex is not a yumpus.", "Alex is not a brimpus."]),
     [("CONTRADICTION", [0, 1, 3, 2]), ("CONCLUDE", [0])]),
    # contradictory premises (a generator quirk: the premise conjunction holds the assumed fact); the proof is
    # still sound step by step
    (_p("contra-quirk", ["Each jompus is a grimpus.", "Everything that is a lorpus and a grimpus is a zumpus.",
                         "Sam is a jompus and Sam is not a zumpus.", "Sam is a lorpus."], "Prove: Sam is not a jompus.",
        ["Sam is a jompus and Sam is not a zumpus.", "Sam is not a zumpus.", "Assume Sam is a jompus.",
         "Each jompus is a grimpus.", "Sam is a grimpus.", "Sam is a lorpus.", "Sam is a lorpus and a grimpus.",
         "Everything that is a lorpus and a grimpus is a zumpus.", "Sam is a zumpus.",
         "This contradicts with Sam is not a zumpus.", "Sam is not a jompus."]),
     [("AND_ELIM", [2]), ("CONTRADICTION", [4, 1, 3]), ("MODUS_TOLLENS", [5, 0]), ("CONCLUDE", [0])]),
    # a self-contradictory query over contradictory premises (another quirk): both halves are derived
    (_p("contra-query", ["Every grimpus is a vumpus.", "Vumpuses are yumpuses.", "Yumpuses are impuses and jompuses.",
                         "Stella is not an impus.", "Stella is a grimpus."],
        "Prove: Stella is not a yumpus and Stella is a yumpus.",
        ["Stella is a grimpus.", "Every grimpus is a vumpus.", "Stella is a vumpus.", "Vumpuses are yumpuses.",
         "Stella is a yumpus.", "Assume Stella is a yumpus.", "Yumpuses are impuses and jompuses.",
         "Stella is an impus and a jompus.", "Stella is an impus.", "This contradicts with Stella is not an impus.",
         "Stella is not a yumpus.", "Stella is not a yumpus and Stella is a yumpus."]),
     [("MODUS_PONENS", [4, 0]), ("MODUS_PONENS", [5, 1]), ("MODUS_PONENS", [6, 2]), ("AND_ELIM", [7]),
      ("CONTRADICTION", [3, 2]), ("AND_INTRO", [6, 9]), ("CONCLUDE", [0])]),
]


@pytest.mark.parametrize("style", ["natural", "lookup"])
@pytest.mark.parametrize("problem, options", COMPOSED_CONTRA, ids=[p.id for p, _ in COMPOSED_CONTRA])
def test_composed_contradiction_gold_traces(problem, options, style):
    text = gold_trace(problem, style)
    v = verify_trace(problem, text)
    assert [(s["option"], s["args"]) for s in v["steps"]] == options
    assert (v["trace_valid"], v["correct"], v["step_validity"]) == (True, True, 1.0)


def _flip_claim(line: str) -> str:
    head, _, claim = line.rpartition(" So ")
    flipped = claim.replace(" is not ", " is ") if " is not " in claim else claim.replace(" is ", " is not ", 1)
    return f"{head} So {flipped}"


@pytest.mark.parametrize("style", ["natural", "lookup"])
@pytest.mark.parametrize("problem, options", COMPOSED_CONTRA, ids=[p.id for p, _ in COMPOSED_CONTRA])
def test_composed_contradiction_mutants_rejected(problem, options, style):
    """Each CONTRADICTION / MODUS_TOLLENS step of those traces, mutated: a cited part dropped, the claim's
    polarity flipped, the rule replaced by another premise rule, a premise fact added, the other of the two
    options: the trace is rejected."""
    import re
    from oakdpo.tasks.prontoqa.logic import Rule, parse_sentence

    text = gold_trace(problem, style)
    lines = text.split("\n")
    rules = [i for i, s in enumerate(problem.premises) if isinstance(parse_sentence(s), Rule)]
    made = 0
    for k, line in enumerate(lines):
        m = re.match(r'Action: <Option type="(CONTRADICTION|MODUS_TOLLENS)" args="\[(.*)\]" />', line)
        if not m:
            continue
        other = "MODUS_TOLLENS" if m.group(1) == "CONTRADICTION" else "CONTRADICTION"
        args = [int(a) for a in m.group(2).split(", ")]
        mutants = [(k, line.replace(m.group(1), other))]
        if len(args) > 2:
            mutants.append((k, line.replace(m.group(2), ", ".join(map(str, args[:-1])))))
        mutants.append((k - 1, _flip_claim(lines[k - 1])))
        for a in args:
            for r in rules:
                if a in rules and r != a:
                    mutants.append((k, line.replace(m.group(2), ", ".join(str(r if x == a else x) for x in args))))
        facts = [i for i in range(len(problem.premises)) if i not in rules and i not in args]
        for f in facts:
            mutants.append((k, line.replace(m.group(2), ", ".join(map(str, args + [f])))))
        for at, new in mutants:
            mutated = "\n".join(lines[:at] + [new] + lines[at + 1:])
            assert mutated != text
            assert not verify_trace(problem, mutated)["trace_valid"], mutated
            made += 1
    assert made >= 3 * sum(o in ("CONTRADICTION", "MODUS_TOLLENS") for o, _ in options)


@pytest.mark.parametrize("style", ["natural", "lookup"])
def test_gold_trace_unreachable_is_none(style):
    p = Problem(id="x", premises=["Max is a wumpus."], query="True or false: Max is wooden.", label="TRUE")
    assert gold_trace(p, style) is None  # skipped and counted by the caller, never the end of a file


# ---------------------------------------------------------------------------------- sokrates records

SOKRATES = {
    "id": "s1",
    "premises": ["Every vumpus is a brimpus.", "Max is a vumpus.", "Brimpuses are wooden.", "Every wumpus is not wooden."],
    "conclusion": "Max is not wooden.", "label": "False",
    "steps": [
        {"step_idx": 0, "thought": "Max is a vumpus and every vumpus is a brimpus, so we conclude that Max belongs "
                                   "to brimpuses.", "option_type": "RULE", "option_args": [1, 0]},
        {"step_idx": 1, "thought": "Brimpuses are wooden. We derive that Max is wooden.", "option_type": "RULE",
         "option_args": "[4, 2]"},
        {"step_idx": 2, "thought": "The statement is false.", "option_type": "CONCLUDE", "option_args": [1]},
    ],
    "final_answer": "FALSE",
}


def test_sokrates_valid_record():
    v = verify_sokrates_record(SOKRATES)
    assert v["problem_id"] == "s1" and v["sample"] == 0
    assert [(s["option"], s["args"], s["claim"], s["valid"], s["reason"]) for s in v["steps"]] == [
        ("MODUS_PONENS", [1, 0], "Max is a brimpuses.", True, "ok"),
        ("MODUS_PONENS", [4, 2], "Max is wooden.", True, "ok"),
        ("CONCLUDE", [1], "The statement is false.", True, "ok"),
    ]
    assert (v["trace_valid"], v["correct"], v["step_validity"], v["answer"]) == (True, True, 1.0, "FALSE")


def test_sokrates_far_away_rule_is_rejected():
    rec = json.loads(json.dumps(SOKRATES))
    # the exploit: entity fact + a far-away rule, skipping the brimpus hop
    rec["steps"] = [
        {"step_idx": 0, "thought": "Max is a vumpus, so we infer that Max is wooden.", "option_type": "RULE",
         "option_args": [1, 2]},
        {"step_idx": 1, "thought": "The statement is false.", "option_type": "CONCLUDE", "option_args": [1]},
    ]
    v = verify_sokrates_record(rec)
    assert [(s["valid"], s["reason"]) for s in v["steps"]] == [
        (False, "rule does not apply: fact concept 'vumpus' does not match rule subject 'brimpus'"),
        (False, "answer FALSE not supported: 'Max is wooden' is not a premise or the formula of a valid step"),
    ]
    assert (v["trace_valid"], v["correct"], v["step_validity"]) == (False, True, 0.0)


def test_sokrates_claims_and_errors():
    assert sokrates_claim("so we conclude that Sam does not belong to wumpuses. Next.") == "Sam is not a wumpuses."
    assert sokrates_claim("We derive that X. Then we infer that Max is a dumpus") == "Max is a dumpus"
    assert sokrates_claim("Max is a dumpus.") == "Max is a dumpus."
    rec = dict(SOKRATES, steps=[{"thought": "t", "option_type": "BOGUS", "option_args": [0]}])
    assert verify_sokrates_record(rec)["steps"][0]["reason"] == "unknown option 'BOGUS'"
    with pytest.raises(UserError, match=r"^f.jsonl:3: missing key 'steps'$"):
        verify_sokrates_record({k: v for k, v in SOKRATES.items() if k != "steps"}, where="f.jsonl:3")
    with pytest.raises(UserError, match=r"^f.jsonl:3: field 'steps\[0\]' must be an object$"):
        verify_sokrates_record(dict(SOKRATES, steps=[3]), where="f.jsonl:3")


# ---------------------------------------------------------------------------------------- acceptance 1

def _shared_problems(shared_data):
    out = []
    for f in sorted((shared_data / "prontoqa").glob("*.json")):
        out += loaders.load_prontoqa_json(f)
    return out


@pytest.mark.parametrize("style", ["natural", "lookup"])
def test_acceptance1_shared_gold_traces_all_valid(shared_data, style):
    problems = _shared_problems(shared_data)
    assert len(problems) == 2400
    vs = verify_traces(problems, [{"problem_id": p.id, "sample": 0, "text": gold_trace(p, style)} for p in problems],
                       progress=False)
    s = summarize(vs)
    assert s["traces"] == 2400 and s["trace_validity"] == 1.0 and s["accuracy"] == 1.0 and s["step_validity"] == 1.0
    assert s["conclude_support"] == 1.0
    assert s["reasoning_steps"] == sum(p.hops for p in problems) == 7200


@pytest.mark.parametrize("style", ["natural", "lookup"])
def test_acceptance1_generated_gold_traces_all_valid(style):
    problems = data.generate_problems(2000, hops=(1, 5), seed=0)
    assert {p.hops for p in problems} == {1, 2, 3, 4, 5}
    vs = verify_traces(problems, [{"problem_id": p.id, "sample": 0, "text": gold_trace(p, style)} for p in problems],
                       progress=False)
    s = summarize(vs)
    assert (s["traces"], s["trace_validity"], s["accuracy"], s["step_validity"]) == (2000, 1.0, 1.0, 1.0)
    assert s["reasoning_steps"] == sum(p.hops for p in problems)


# ---------------------------------------------------------------------------------------- acceptance 2

def _steps(text):
    t = parse_trace(text)
    return [[s.thought, s.option, list(s.args)] for s in t.steps], t.final_answer


def _render(steps, answer):
    return render_trace([tuple(s) for s in steps], answer)


def _set_claim(thought, claim):
    head, sep, _ = thought.rpartition("So ")
    return head + sep + claim


def _obj(sentence):
    """('fact', name, object, negated) / ('rule', subject, object, negated) via the data module's own parser."""
    r = data.parse_simple(sentence)
    assert r is not None, sentence
    return r


def _lit(obj, negated):
    return ("not " if negated else "") + obj


def _mutations(problem, rng):
    """Yield (name, mutated text, expected reason of the first invalid step or the CONCLUDE / trace)."""
    gold = gold_trace(problem, "natural")
    steps, answer = _steps(gold)
    P = len(problem.premises)
    m = len(steps) - 1  # reasoning steps (all MODUS_PONENS [fact, rule])
    texts = {a: problem.premises[a] for a in range(P)}
    for k in range(m):
        texts[P + k] = extract_claim(steps[k][0])
    rules = [i for i in range(P) if _obj(problem.premises[i])[0] == "rule"]
    k = rng.randrange(m)
    fact_i, rule_i = steps[k][2]
    claim = extract_claim(steps[k][0])
    _, name, obj, neg = _obj(claim)

    # a cited index changed: to one that does not exist, and to another rule
    s = [[x[0], x[1], list(x[2])] for x in steps]
    s[k][2][1] = P + m + 3
    yield "index-missing", _render(s, answer), ("step", k, f"cited index {P + m + 3} does not exist")
    other = rng.choice([r for r in rules if r != rule_i])
    s = [[x[0], x[1], list(x[2])] for x in steps]
    s[k][2][1] = other
    fact_concept = _obj(texts[fact_i])[2]
    _, subj, o2, n2 = _obj(problem.premises[other])
    if subj == fact_concept:
        expected = f"claim does not follow: expected {data.fact_sentence(name, o2, n2, not data.is_concept(o2))[:-1]!r}"
    else:
        expected = f"rule does not apply: fact concept {fact_concept!r} does not match rule subject {subj!r}"
    yield "index-other-rule", _render(s, answer), ("step", k, expected)

    # a rule cited that does not fit: a hop skipped (step k>=1 applies its rule to the fact of step k-1)
    if m >= 2:
        j = rng.randrange(1, m)
        s = [[x[0], x[1], list(x[2])] for x in steps]
        older = steps[j - 1][2][0]
        s[j][2][0] = older
        expected = (f"rule does not apply: fact concept {_obj(texts[older])[2]!r} does not match rule subject "
                    f"{_obj(problem.premises[steps[j][2][1]])[1]!r}")
        yield "hop-skipped", _render(s, answer), ("step", j, expected)

    # a step dropped: later citations break (or the answer loses its support)
    j = rng.randrange(m)
    s = [x for i, x in enumerate(steps) if i != j]
    if j < m - 1:
        yield "step-dropped", _render(s, answer), ("step", j, f"cites its own formula {P + j}")
    else:
        stmt = problem.proof[-1].rstrip(".")
        yield "step-dropped", _render(s, answer), (
            "conclude", len(s) - 1, f"answer {answer} not supported: {stmt!r} is not a premise or the formula of a "
                                    f"valid step")

    # negation flipped in a claim; a claim naming another concept
    exp = f"claim does not follow: expected {claim.rstrip('.')!r}"
    flipped = data.fact_sentence(name, obj, not neg, not data.is_concept(obj))
    s = [[x[0], x[1], list(x[2])] for x in steps]
    s[k][0] = _set_claim(s[k][0], flipped)
    yield "negation-flipped", _render(s, answer), ("step", k, exp)
    pool = data.CONCEPTS if data.is_concept(obj) else data.ADJECTIVES
    new = rng.choice([c for c in pool if c != obj])
    s = [[x[0], x[1], list(x[2])] for x in steps]
    s[k][0] = _set_claim(s[k][0], data.fact_sentence(name, new, neg, not data.is_concept(new)))
    yield "other-concept", _render(s, answer), ("step", k, exp)

    # a citation of a later formula
    s = [[x[0], x[1], list(x[2])] for x in steps]
    s[k][2][0] = P + k + 1 if k + 1 < m else P + k
    later = "cites its own formula" if k + 1 == m else "cites formula"
    yield "later-formula", _render(s, answer), (
        "step", k, f"{later} {s[k][2][0]}" + ("" if k + 1 == m else " from a later step"))

    # two CONCLUDEs
    s = steps + [steps[-1]]
    yield "two-concludes", _render(s, answer), ("trace", None, "2 CONCLUDE steps (need exactly 1)")

    # a wrong final answer (CONCLUDE kept), and a wrong answer throughout
    wrong = "TRUE" if answer == "FALSE" else "FALSE"
    yield "final-answer", _render(steps, wrong), (
        "conclude", m, f"CONCLUDE answer {answer} disagrees with Final Answer {wrong}")
    s = [[x[0], x[1], list(x[2])] for x in steps]
    s[-1][2] = [0 if wrong == "TRUE" else 1]
    q = query_statement(problem.query).rstrip(".")
    stmt = q if wrong == "TRUE" else problem.proof[-1].rstrip(".")
    if wrong == "FALSE":  # the negation of the query: flip its polarity
        qo = _obj(q + ".")
        stmt = data.fact_sentence(qo[1], qo[2], not qo[3], not data.is_concept(qo[2]))[:-1]
    yield "wrong-answer", _render(s, wrong), (
        "conclude", m, f"answer {wrong} not supported: {stmt!r} is not a premise or the formula of a valid step")

    # a rule type that does not fit the cited formulas
    fact_obj = _obj(texts[fact_i])[2]
    _, _, robj, rneg = _obj(problem.premises[rule_i])
    expected = {
        "AND_INTRO": f"AND_INTRO needs facts, formula {rule_i} is a rule",
        "DISJUNCTIVE_SYLLOGISM": f"DISJUNCTIVE_SYLLOGISM needs facts, formula {rule_i} is a rule",
        "OR_INTRO": "OR_INTRO needs 1 arg, got 2",
        "AND_ELIM": "AND_ELIM needs 1 arg, got 2",
        "CASE_SPLIT": "CASE_SPLIT needs at least 3 args, got 2",
        "MODUS_TOLLENS": f"rule does not apply: fact {fact_obj!r} does not deny rule consequent {_lit(robj, rneg)!r}",
        "CONTRADICTION": f"rule does not apply: fact {fact_obj!r} does not deny rule consequent {_lit(robj, rneg)!r}",
        "HYPOTHETICAL_SYLLOGISM": f"HYPOTHETICAL_SYLLOGISM needs two rules, got fact {fact_i} and rule {rule_i}",
        "UNIV_INSTANTIATION": "option UNIV_INSTANTIATION does not apply to PrOntoQA formulas",
    }
    for option, reason in expected.items():
        s = [[x[0], x[1], list(x[2])] for x in steps]
        s[k][1] = option
        yield f"type-{option}", _render(s, answer), ("step", k, reason)


def _check(problem, text, expected):
    where, pos, reason = expected
    v = verify_trace(problem, text)
    if v["trace_valid"]:
        return "accepted"
    if where == "step":
        got = next((s for s in v["steps"] if not s["valid"]), None)
        return None if got and (got["index"], got["reason"]) == (pos, reason) else f"{got} != {expected}"
    if where == "conclude":
        got = v["steps"][pos]
        ok = got["option"] == "CONCLUDE" and got["reason"] == reason and all(
            s["valid"] for s in v["steps"] if s["option"] != "CONCLUDE")
        return None if ok else f"{[s['reason'] for s in v['steps']]} != {expected}"
    return None if v["trace_reason"] == reason else f"{v['trace_reason']} != {expected}"


def _run_mutations(problems, seed):
    rng = random.Random(seed)
    counts, failures = {}, []
    for p in problems:
        for name, text, expected in _mutations(p, rng):
            counts[name] = counts.get(name, 0) + 1
            err = _check(p, text, expected)
            if err:
                failures.append((p.id, name, err))
    return counts, failures


def test_acceptance2_mutations_shared(shared_data):
    problems = _shared_problems(shared_data)
    counts, failures = _run_mutations(problems, seed=0)
    assert failures == []
    multi = sum(1 for p in problems if p.hops >= 2)
    assert counts == {
        "index-missing": 2400, "index-other-rule": 2400, "hop-skipped": multi, "step-dropped": 2400,
        "negation-flipped": 2400, "other-concept": 2400, "later-formula": 2400, "two-concludes": 2400,
        "final-answer": 2400, "wrong-answer": 2400,
        **{f"type-{o}": 2400 for o in ("AND_INTRO", "DISJUNCTIVE_SYLLOGISM", "OR_INTRO", "AND_ELIM", "CASE_SPLIT",
                                       "MODUS_TOLLENS", "CONTRADICTION", "HYPOTHETICAL_SYLLOGISM",
                                       "UNIV_INSTANTIATION")},
    }


def test_acceptance2_mutations_generated():
    problems = data.generate_problems(300, hops=(1, 5), seed=7)
    counts, failures = _run_mutations(problems, seed=1)
    assert failures == []
    assert counts["hop-skipped"] == sum(1 for p in problems if p.hops >= 2)
    assert sum(counts.values()) == 18 * 300 + counts["hop-skipped"]


# ------------------------------------------------------------------------------------------------- CLI

def _cli(argv, capsys):
    from oakdpo.cli import main
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def test_cli_verify(tmp_path, capsys):
    probs = tmp_path / "problems.jsonl"
    probs.write_text(json.dumps(PROBLEM.to_dict()) + "\n\n")
    traces = tmp_path / "traces.jsonl"
    traces.write_text(json.dumps({"problem_id": "p1", "sample": 0, "text": GOLD}) + "\n" +
                      json.dumps({"problem_id": "p1", "sample": 3, "text": GOLD.replace("[5, 2]", "[5, 3]")}) + "\n")
    out_path = tmp_path / "out" / "verdicts.jsonl"
    rc, out, _ = _cli(["verify", "--problems", str(probs), "--traces", str(traces), "-o", str(out_path),
                       "--no-progress"], capsys)
    assert rc == 0
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary == {"traces": 2, "reasoning_steps": 4, "step_validity": 0.75, "trace_validity": 0.5,
                       "accuracy": 1.0}
    assert tuple(summary) == SUMMARY_KEYS
    lines = [json.loads(l) for l in out_path.read_text().splitlines()]
    assert [(v["problem_id"], v["sample"], v["trace_valid"]) for v in lines] == [("p1", 0, True), ("p1", 3, False)]
    assert lines[1]["steps"][1]["reason"] == ("rule does not apply: fact concept 'brimpus' does not match rule "
                                              "subject 'wumpus'")
    assert set(lines[0]) >= {"problem_id", "sample", "steps", "answer", "correct", "trace_valid"}

    # sokrates format
    sok = tmp_path / "sok.jsonl"
    sok.write_text(json.dumps(SOKRATES) + "\n")
    rc, out, _ = _cli(["verify", "--format", "sokrates", str(sok), "-o", str(tmp_path / "v2.jsonl")], capsys)
    assert rc == 0
    assert json.loads(out.strip().splitlines()[-1]) == {"traces": 1, "reasoning_steps": 2, "step_validity": 1.0,
                                                        "trace_validity": 1.0, "accuracy": 1.0}


@pytest.mark.parametrize("trace_line, message", [
    ('{"problem_id": "p1", "sample": 0}', "traces.jsonl:2: missing key 'text'"),
    ('{"problem_id": "zz", "sample": 0, "text": ""}', "traces.jsonl:2: field 'problem_id': unknown problem 'zz'"),
    ('{"problem_id": "p1", "sample": "a", "text": ""}', "traces.jsonl:2: field 'sample' must be an integer"),
    ("{not json", "traces.jsonl:2: invalid JSON"),
])
def test_cli_verify_bad_input(tmp_path, capsys, trace_line, message):
    probs = tmp_path / "problems.jsonl"
    probs.write_text(json.dumps(PROBLEM.to_dict()) + "\n")
    traces = tmp_path / "traces.jsonl"
    traces.write_text(json.dumps({"problem_id": "p1", "sample": 0, "text": GOLD}) + "\n" + trace_line + "\n")
    out_path = tmp_path / "verdicts.jsonl"
    rc, out, err = _cli(["verify", "--problems", str(probs), "--traces", str(traces), "-o", str(out_path)], capsys)
    assert rc == 2
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("error: ") and message in err
    assert sorted(tmp_path.iterdir()) == sorted([probs, traces])  # no partial output, no temp file left


def test_cli_verify_bad_options(tmp_path, capsys):
    rc, _, err = _cli(["verify", "--format", "xml", "x.jsonl", "-o", str(tmp_path / "v.jsonl")], capsys)
    assert (rc, err.strip()) == (2, "error: --format: unknown format 'xml' (known: oakdpo, sokrates)")
    rc, _, err = _cli(["verify", "-o", str(tmp_path / "v.jsonl")], capsys)
    assert rc == 2 and "--problems and --traces are required" in err
    sok = tmp_path / "sok.jsonl"
    sok.write_text(json.dumps(SOKRATES) + "\n" + json.dumps({"premises": []}) + "\n")
    rc, _, err = _cli(["verify", "--format", "sokrates", str(sok), "-o", str(tmp_path / "v.jsonl")], capsys)
    assert (rc, err.strip()) == (2, f"error: {sok}:2: missing key 'conclusion'")
    assert not (tmp_path / "v.jsonl").exists()


# -------------------------------------------------------------------------------- loaders: input types

LOGICLM_OK = {"id": "ProntoQA_1", "context": "Max is a cat. Every cat is a dog.",
              "question": "Is the following statement true or false? Max is a dog.",
              "options": ["A) True", "B) False"], "answer": "A", "explanation": ["Max is a cat."]}


@pytest.mark.parametrize("field, value, message", [
    ("options", 5, "field 'options' must be a list of strings such as \"A) True\", got 5"),
    ("options", [1, 2], "field 'options' must be a list of strings such as \"A) True\", got [1, 2]"),
    ("answer", ["A"], "field 'answer' must be one of A, B, got ['A']"),
    ("answer", None, "field 'answer' must be one of A, B, got None"),
    ("context", ["Max is a cat."], "field 'context' must be a string, got ['Max is a cat.']"),
    ("question", 3, "field 'question' must be a string, got 3"),
    ("id", {"a": 1}, "field 'id' must be a string, got {'a': 1}"),
    ("explanation", "Max is a cat.", "field 'explanation' must be a list of strings, got 'Max is a cat.'"),
])
def test_logiclm_bad_field_types_are_one_line_errors(tmp_path, capsys, field, value, message):
    rec = {**LOGICLM_OK, field: value}
    path = tmp_path / "lm.json"
    path.write_text(json.dumps([LOGICLM_OK, rec], indent=1))
    out_path = tmp_path / "problems.jsonl"
    rc, _, err = _cli(["data", "import", "--format", "logiclm", str(path), "-o", str(out_path)], capsys)
    assert rc == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ")
    assert message in err
    # names the file and where: the line of the record's id, or its item number when the id is not a string
    where = f"{path}: item 1" if field == "id" else f"{path}:"
    assert err.startswith(f"error: {where}")
    assert not out_path.exists()


def test_logiclm_good_record_loads():
    import tempfile
    from pathlib import Path
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "lm.json"
        path.write_text(json.dumps([LOGICLM_OK, {**LOGICLM_OK, "id": 7, "options": None}]))
        probs = loaders.load_logiclm(path)
    assert [(p.id, p.label, p.query) for p in probs] == [("ProntoQA_1", "TRUE", "True or false: Max is a dog."),
                                                         ("7", "TRUE", "True or false: Max is a dog.")]


# ------------------------------------------------------------------------ several Final Answer lines

@pytest.mark.parametrize("extra, where", [
    ("\nFinal Answer: TRUE", "end"),  # a second, other answer
    ("\nFinal Answer: FALSE", "end"),  # the same answer twice
    ("Final Answer: TRUE\n", "start"),
    ("\nFinal Answer: maybe", "end"),  # a garbled one counts too
])
def test_several_final_answer_lines_are_invalid(extra, where):
    text = GOLD + extra if where == "end" else extra + GOLD
    v = verify_trace(PROBLEM, text)
    assert not v["trace_valid"]
    assert v["trace_reason"].startswith("step 2: 2 Final Answer lines (")
    assert v["trace_reason"].endswith("; need exactly 1")
    assert parse_trace(text).final_answers == [line for line in text.splitlines() if line.startswith("Final Answer")]


@pytest.mark.parametrize("task", ["prontoqa", "folio", "proofwriter"])
def test_several_final_answer_lines_are_invalid_for_every_task(task, tmp_path):
    """The check sits in trace.parse_trace (an error of the last CONCLUDE step), so every task gets it."""
    from oakdpo.tasks import get_task
    t = get_task(task)
    if task == "prontoqa":
        p = PROBLEM
    elif task == "folio":
        p = Problem(id="f", task="folio", premises=["A cat.", "Tom."], query="True or false: Tom is an animal.",
                    label="TRUE", rule="FOL", fol={"premises": ["∀x (Cat(x) → Animal(x))", "Cat(tom)"],
                                                   "query": "Animal(tom)"})
    else:
        path = tmp_path / "pw.json"
        path.write_text(json.dumps([{"id": "pw", "context": "The cat is blue. If something is blue then it is big.",
                                     "question": "Based on the above information, is the following statement "
                                                 "true, false, or unknown? The cat is big.",
                                     "options": ["A) True", "B) False", "C) Unknown"], "answer": "A"}]))
        p = t.load(path)[0]
    gold = t.gold_trace(p, "natural")
    assert t.verify(p, gold)["trace_valid"]
    for other in ("TRUE", "FALSE"):
        v = t.verify(p, gold + f"\nFinal Answer: {other}")
        assert not v["trace_valid"] and "2 Final Answer lines" in v["trace_reason"], v["trace_reason"]


def test_extract_claim_strips_any_number_of_leading_connectives():
    assert extract_claim("So thus , therefore we conclude that Max is a cat.") == "Max is a cat."
    assert extract_claim("Sofia is a cat.") == "Sofia is a cat."  # a word that starts like one is kept
    huge = "So " * 300000 + "Max is a cat."  # 900 KB: one regex pass (this took seconds when stripped one by one)
    assert extract_claim(huge) == "Max is a cat."


def test_budget_capped():
    import time
    from oakdpo.trace import Budget, VerifyTimeout
    outer = Budget(10.0)
    assert 900 < outer.capped(1000).left_ms() <= 1000  # the sub-limit ends first
    assert outer.capped(60_000).left_ms() <= 10_000  # the outer deadline ends first
    assert Budget(None).capped(None).left_ms() == float("inf")
    b = Budget(0.01)
    time.sleep(0.02)
    with pytest.raises(VerifyTimeout):
        b.capped(1000).check()


def test_verify_traces_timing_and_pool_keep_order():
    problems = data.generate_problems(30, hops=(1, 3), seed=5)
    traces = [{"problem_id": p.id, "sample": s, "text": gold_trace(p) if s == 0 else "junk"}
              for s in range(3) for p in problems]  # interleaved: the pool groups them by problem
    one = verify_traces(problems, traces, progress=False, workers=1, timing=True)
    two = verify_traces(problems, traces, progress=False, workers=2, timing=True)
    assert all(isinstance(v["verify_s"], float) and v["verify_s"] >= 0 for v in one + two)
    strip = lambda vs: [{k: x for k, x in v.items() if k != "verify_s"} for v in vs]  # noqa: E731
    assert strip(one) == strip(two)
    assert [(v["problem_id"], v["sample"]) for v in two] == [(t["problem_id"], t["sample"]) for t in traces]
    assert [v["trace_valid"] for v in two] == [t["sample"] == 0 for t in traces]
    assert "verify_s" not in verify_traces(problems, traces[:2], progress=False)[0]
