"""PrOntoQA sentence <-> formula: every sentence form of the original generator, normalization, rendering."""

import pytest

from oakdpo.tasks.prontoqa.logic import Assume, Contradicts, Lit, apply_option, make_fact, make_rule, negate_fact, parse_sentence, render, singular


def fact(name, *preds, op="atom"):
    """fact('Max', 'wumpus', '~wooden') -> Fact; '~' marks a negated literal."""
    return make_fact(name, [Lit(p.lstrip("~"), p.startswith("~")) for p in preds], op)


def rule(ante, cons, ante_op="atom", cons_op="atom"):
    lits = lambda ps: [Lit(p.lstrip("~"), p.startswith("~")) for p in ps]
    return make_rule(lits(ante), ante_op, lits(cons), cons_op)


@pytest.mark.parametrize("sentence, expected", [
    # facts
    ("Max is a wumpus.", fact("Max", "wumpus")),
    ("Max is not a wumpus.", fact("Max", "~wumpus")),
    ("Max is wooden.", fact("Max", "wooden")),
    ("Max is not wooden.", fact("Max", "~wooden")),
    ("Sam is an impus.", fact("Sam", "impus")),
    ("max is a WUMPUS", fact("Max", "wumpus")),
    ("Max is an wumpus.", fact("Max", "wumpus")),           # a/an ignored
    ("Max is a wumpuses.", fact("Max", "wumpus")),          # plural normalized
    # rules, ModusPonens forms
    ("Every wumpus is a yumpus.", rule(["wumpus"], ["yumpus"])),
    ("Each wumpus is a yumpus.", rule(["wumpus"], ["yumpus"])),
    ("Every wumpus is not a yumpus.", rule(["wumpus"], ["~yumpus"])),
    ("Each vumpus is not a brimpus", rule(["vumpus"], ["~brimpus"])),
    ("Wumpuses are yumpuses.", rule(["wumpus"], ["yumpus"])),
    ("Brimpuses are not grimpuses.", rule(["brimpus"], ["~grimpus"])),
    ("Every wumpus is wooden.", rule(["wumpus"], ["wooden"])),
    ("Each tumpus is not aggressive.", rule(["tumpus"], ["~aggressive"])),
    ("Wumpuses are wooden.", rule(["wumpus"], ["wooden"])),
    ("Lempuses are not slow.", rule(["lempus"], ["~slow"])),
    ("Impuses are luminous.", rule(["impus"], ["luminous"])),      # 'luminous' is not a plural
    ("No wumpus is a yumpus.", rule(["wumpus"], ["~yumpus"])),
    ("All wumpuses are yumpuses.", rule(["wumpus"], ["yumpus"])),
    # --proofs-only forms
    ("Each wooden wumpus is a yumpus.", rule(["wooden", "wumpus"], ["yumpus"], "and")),
    ("Wooden wumpuses are yumpuses.", rule(["wooden", "wumpus"], ["yumpus"], "and")),
    ("Everything that is a wumpus or a yumpus is a zumpus.", rule(["wumpus", "yumpus"], ["zumpus"], "or")),
    ("Everything that is a wumpus, a yumpus, or a dumpus is a zumpus.",
     rule(["wumpus", "yumpus", "dumpus"], ["zumpus"], "or")),
    ("Everything that is a wumpus and wooden is a zumpus.", rule(["wumpus", "wooden"], ["zumpus"], "and")),
    ("Everything that is wooden and a wumpus is not a zumpus.", rule(["wumpus", "wooden"], ["~zumpus"], "and")),
    ("Max is a wumpus and a yumpus.", fact("Max", "wumpus", "yumpus", op="and")),
    ("Max is a wooden wumpus.", fact("Max", "wumpus", "wooden", op="and")),
    ("Max is wooden and a wumpus.", fact("Max", "wumpus", "wooden", op="and")),
    ("Max is a wumpus or a yumpus.", fact("Max", "wumpus", "yumpus", op="or")),
    ("Max is a wumpus or Max is a yumpus.", fact("Max", "wumpus", "yumpus", op="or")),
    ("Max is not a yumpus and Max is not a wumpus.", fact("Max", "~wumpus", "~yumpus", op="and")),
    ("Max is not a yumpus and not a wumpus.", fact("Max", "~wumpus", "~yumpus", op="and")),
    ("Max is not a yumpus and a wumpus.", fact("Max", "wumpus", "~yumpus", op="and")),
    ("Wumpus are yumpuses.", rule(["wumpus"], ["yumpus"])),             # number agreement is not checked
    ("Max is a wumpus, a yumpus, and a dumpus.", fact("Max", "wumpus", "yumpus", "dumpus", op="and")),
    ("Assume Max is a wumpus.", Assume(fact("Max", "wumpus"))),
    ("This contradicts with Max is not a zumpus.", Contradicts(fact("Max", "~zumpus"))),
    # clause coordination with commas: the original generator writes the same formula with or without them
    ("Rex is a lorpus, Rex is a yumpus, and Rex is not a grimpus.", fact("Rex", "lorpus", "yumpus", "~grimpus", op="and")),
    ("Rex is not a shumpus, Rex is a yumpus, or Rex is a numpus.", fact("Rex", "~shumpus", "yumpus", "numpus", op="or")),
    ("Rex is a lorpus, Rex is a yumpus and Rex is not a grimpus.", fact("Rex", "lorpus", "yumpus", "~grimpus", op="and")),
    ("Rex is a lorpus and Rex is a yumpus, and Rex is a dumpus.", fact("Rex", "lorpus", "yumpus", "dumpus", op="and")),
    ("Assume Rex is a lorpus, Rex is a yumpus, or Rex is a dumpus.", Assume(fact("Rex", "lorpus", "yumpus", "dumpus", op="or"))),
    # a tautology / a contradiction (the original's OrIntro and AndIntro queries over random concepts)
    ("Rex is an impus or Rex is a rompus or Rex is not an impus.", fact("Rex", "impus", "~impus", "rompus", op="or")),
    ("Max is a wumpus and not a wumpus.", fact("Max", "wumpus", "~wumpus", op="and")),
])
def test_parse_forms(sentence, expected):
    assert parse_sentence(sentence) == expected


def test_fact_equality_ignores_order_case_and_display():
    assert parse_sentence("Max is a yumpus and a wumpus.") == parse_sentence("MAX is a wumpus and a yumpus")
    assert parse_sentence("Max is a wumpus.") != parse_sentence("Sam is a wumpus.")
    assert parse_sentence("Max is a wumpus and a yumpus.") != parse_sentence("Max is a wumpus or a yumpus.")


@pytest.mark.parametrize("sentence", [
    "", "   ", ".", "garbage", "Max", "Max is", "Max is not", "Every", "Every wumpus is", "Max is a",
    "Max is a wumpus and", "Max is and a wumpus", "Max is a wumpus and or a yumpus",
    "Max is a wumpus and a yumpus or a dumpus",  # mixed and/or: ambiguous
    "Max is a [wumpus].", "Max is a wumpus: yes", "Every wumpus are yumpuses.", "Max are yumpuses.",
    "All wumpus is a yumpus.", "So the query is true.",
    "Assume.", "This contradicts with.", "Everything that is a wumpus.",
    # clause lists: a bare comma list, mixed and/or, doubled or dangling separators, another entity, compound clauses
    "Rex is a lorpus, Rex is a yumpus.", "Rex is a lorpus, Rex is a yumpus, or Rex is a dumpus and Rex is a numpus.",
    "Rex is a lorpus, , Rex is a yumpus, and Rex is a dumpus.", "Rex is a lorpus, and, Rex is a yumpus.",
    "Rex is a lorpus and , Rex is a yumpus.", "Rex is , Rex is a yumpus, and Rex is a dumpus.",
    "Rex is a lorpus, Sam is a yumpus, and Rex is not a grimpus.", "Rex is a lorpus and and Rex is a yumpus.",
    "Rex is a wumpus and a dumpus, Rex is a yumpus, and Rex is a lorpus.",
])
def test_unparsable_gives_none(sentence):
    assert parse_sentence(sentence) is None


def test_non_strings_give_none():
    assert parse_sentence(None) is None
    assert parse_sentence(3) is None


def test_singular():
    assert singular("wumpuses") == ("wumpus", True)
    assert singular("brimpuses") == ("brimpus", True)
    assert singular("timples") == ("timple", True)
    assert singular("luminous") == ("luminous", False)
    assert singular("nervous") == ("nervous", False)


@pytest.mark.parametrize("sentence, text", [
    ("Brimpuses are not grimpuses.", "Every brimpus is not a grimpus."),
    ("Each wooden wumpus is a yumpus.", "Every wooden wumpus is a yumpus."),
    ("Everything that is a wumpus or a yumpus is a zumpus.", "Everything that is a wumpus or a yumpus is a zumpus."),
    ("Max is a wumpus or Max is not a yumpus.", "Max is a wumpus or not a yumpus."),
    ("sam is an impus", "Sam is an impus."),
    ("Max is a wumpus, a yumpus, and a dumpus.", "Max is a dumpus, a wumpus, and a yumpus."),
    ("Assume Max is a wumpus.", "Assume Max is a wumpus."),
    ("Rex is a lorpus, Rex is a yumpus, and Rex is not a grimpus.", "Rex is not a grimpus, a lorpus, and a yumpus."),
    ("Rex is an impus or Rex is not an impus.", "Rex is an impus or not an impus."),
])
def test_render_round_trip(sentence, text):
    f = parse_sentence(sentence)
    assert render(f) == text
    assert parse_sentence(render(f)) == f


def test_negate_fact_de_morgan():
    assert negate_fact(parse_sentence("Max is wooden.")) == parse_sentence("Max is not wooden.")
    assert negate_fact(parse_sentence("Max is a wumpus and not wooden.")) == \
        parse_sentence("Max is wooden or not a wumpus.")


def _lic(option, sentences, args=None):
    fs = [parse_sentence(s) for s in sentences]
    return apply_option(option, fs, args or list(range(len(fs))))


def test_modus_ponens_either_order_and_result():
    for order in ([0, 1], [1, 0]):
        sents = ["Max is a vumpus.", "Each vumpus is not a brimpus."]
        lic, reason = _lic("MODUS_PONENS", [sents[i] for i in order], [24, 22])
        assert reason == "ok"
        assert lic.ok(parse_sentence("Max is not a brimpus."))
        assert not lic.ok(parse_sentence("Max is a brimpus."))
        assert lic.expected == "Max is not a brimpus"


@pytest.mark.parametrize("option, sentences, reason", [
    ("MODUS_PONENS", ["Max is a vumpus.", "Every grimpus is a brimpus."],
     "rule does not apply: fact concept 'vumpus' does not match rule subject 'grimpus'"),
    ("MODUS_PONENS", ["Max is not a vumpus.", "Every vumpus is a brimpus."],
     "rule does not apply: fact concept 'not vumpus' does not match rule subject 'vumpus'"),
    ("MODUS_PONENS", ["Max is a vumpus.", "Max is a brimpus."],
     "MODUS_PONENS needs a fact and a rule, got fact 0 and fact 1"),
    ("MODUS_PONENS", ["Every vumpus is a brimpus.", "Every brimpus is wooden."],
     "MODUS_PONENS needs a fact and a rule, got rule 0 and rule 1"),
    ("MODUS_PONENS", ["Max is a vumpus.", "Every vumpus is a brimpus.", "Max is wooden."],
     "MODUS_PONENS needs 2 args, got 3"),
    ("MODUS_PONENS", ["Max is a vumpus."], "MODUS_PONENS needs 2 args, got 1"),
    ("AND_INTRO", ["Max is a vumpus.", "Every vumpus is a brimpus."],
     "AND_INTRO needs facts, formula 1 is a rule"),
    ("AND_INTRO", ["Max is a vumpus.", "Sam is wooden."], "AND_INTRO needs facts about one entity, got Max, Sam"),
    ("AND_ELIM", ["Max is a vumpus."], "AND_ELIM needs a conjunction, formula 0 is not one"),
    ("OR_INTRO", ["Every vumpus is a brimpus."], "OR_INTRO needs facts, formula 0 is a rule"),
    ("MODUS_TOLLENS", ["Max is a vumpus.", "Every vumpus is a brimpus."],
     "rule does not apply: fact 'vumpus' does not deny rule consequent 'brimpus'"),
    ("CASE_SPLIT", ["Max is a vumpus.", "Every vumpus is a brimpus."], "CASE_SPLIT needs at least 3 args, got 2"),
    ("CONTRADICTION", ["Max is a brimpus.", "Every vumpus is a brimpus."],
     "rule does not apply: fact 'brimpus' does not deny rule consequent 'brimpus'"),
    ("HYPOTHETICAL_SYLLOGISM", ["Every vumpus is a brimpus.", "Every wumpus is wooden."],
     "rules do not chain: consequent 'brimpus' does not match subject 'wumpus'"),
    ("UNIV_GENERALIZATION", ["Max is a vumpus."], "option UNIV_GENERALIZATION does not apply to PrOntoQA formulas"),
])
def test_option_rejections(option, sentences, reason):
    lic, got = _lic(option, sentences)
    assert lic is None
    assert got == reason


def test_other_options_license_exactly():
    lic, _ = _lic("AND_INTRO", ["Max is a wumpus.", "Max is wooden."])
    assert lic.ok(parse_sentence("Max is a wooden wumpus."))
    assert not lic.ok(parse_sentence("Max is a wumpus."))
    lic, _ = _lic("AND_ELIM", ["Max is a wooden wumpus."])
    assert lic.ok(parse_sentence("Max is wooden.")) and lic.ok(parse_sentence("Max is a wumpus."))
    assert not lic.ok(parse_sentence("Max is a yumpus."))
    lic, _ = _lic("OR_INTRO", ["Max is a wumpus."])
    assert lic.ok(parse_sentence("Max is a wumpus or a yumpus."))
    assert not lic.ok(parse_sentence("Max is a dumpus or a yumpus."))
    assert not lic.ok(parse_sentence("Sam is a wumpus or a yumpus."))
    lic, _ = _lic("CASE_SPLIT", ["Max is a wumpus or a yumpus.", "Every yumpus is a zumpus.", "Every wumpus is a zumpus."])
    assert lic.ok(parse_sentence("Max is a zumpus.")) and not lic.ok(parse_sentence("Max is a wumpus."))
    lic, _ = _lic("CONTRADICTION", ["Max is not a zumpus.", "Everything that is a wumpus or a yumpus is a zumpus."])
    assert lic.ok(parse_sentence("Max is not a wumpus.")) and lic.ok(parse_sentence("Max is not a yumpus."))
    assert not lic.ok(parse_sentence("Max is a wumpus."))
    lic, _ = _lic("MODUS_TOLLENS", ["Max is not wooden.", "Every wumpus is wooden."])
    assert lic.ok(parse_sentence("Max is not a wumpus."))
    lic, _ = _lic("DISJUNCTIVE_SYLLOGISM", ["Max is a wumpus or a yumpus.", "Max is not a wumpus."])
    assert lic.ok(parse_sentence("Max is a yumpus."))
    lic, _ = _lic("HYPOTHETICAL_SYLLOGISM", ["Every wumpus is a yumpus.", "Every yumpus is wooden."])
    assert lic.ok(parse_sentence("Wumpuses are wooden."))
    # MP with a conjunctive / disjunctive antecedent needs the matching compound fact
    lic, _ = _lic("MODUS_PONENS", ["Max is wooden and a wumpus.", "Each wooden wumpus is a yumpus."])
    assert lic.ok(parse_sentence("Max is a yumpus."))
    lic, r = _lic("MODUS_PONENS", ["Max is a wumpus.", "Each wooden wumpus is a yumpus."])
    assert r == "rule does not apply: fact concept 'wumpus' does not match rule subject 'wooden and wumpus'"


def test_unparsable_and_assumption_citations():
    assert apply_option("MODUS_PONENS", [None, parse_sentence("Every a is b.")], [3, 4]) == \
        (None, "cited formula 3 does not parse")
    assert apply_option("MODUS_PONENS", [parse_sentence("Assume Max is a wumpus."),
                                         parse_sentence("Every wumpus is a yumpus.")], [3, 4]) == \
        (None, "cited formula 3 is an assumption, not a statement")


# ------------------------------------------------------------------- CONTRADICTION, the extended forms

CONJ_RULE = "Everything that is an impus and a rompus and a wumpus is a dumpus."


@pytest.mark.parametrize("sentences, claim, others", [
    # the denied literal is one conjunct of the consequent
    (["Max is not a yumpus.", "Each wumpus is a dumpus, a yumpus, and a zumpus."], "Max is not a wumpus.",
     ["Max is not a dumpus.", "Max is a wumpus.", "Max is not a yumpus."]),
    # a conjunctive subject: facts for all parts but one deny the last one
    (["Max is not a dumpus.", CONJ_RULE, "Max is an impus.", "Max is a rompus."], "Max is not a wumpus.",
     ["Max is not an impus.", "Max is not a rompus or not a wumpus.", "Max is a wumpus.",
      "Max is not an impus or not a rompus or not a wumpus."]),
    # any order of the cited formulas
    (["Max is a rompus.", CONJ_RULE, "Max is an impus.", "Max is not a dumpus."], "Max is not a wumpus.", []),
    # facts for fewer parts: the parts left, as a disjunction of their negations
    (["Max is not a dumpus.", CONJ_RULE, "Max is an impus."], "Max is not a rompus or not a wumpus.",
     ["Max is not a wumpus.", "Max is not a rompus."]),
    # the denial is a disjunction: the denied disjunct is replaced by the denied subject
    (["Max is not a yumpus or not a dumpus.", "Every wumpus is a yumpus."], "Max is not a wumpus or not a dumpus.",
     ["Max is not a wumpus.", "Max is not a dumpus.", "Max is not a yumpus or not a wumpus."]),
    (["Max is not a wumpus or not a yumpus.", "Every wumpus is a yumpus."], "Max is not a wumpus.", []),
    (["Max is not a rompus or not a dumpus.", CONJ_RULE, "Max is an impus.", "Max is a wumpus."],
     "Max is not a rompus.", ["Max is not a dumpus.", "Max is not a rompus or not a dumpus."]),
    # two rules whose consequents contradict, with facts for the other parts of their subjects
    (["Every wumpus is a yumpus.", "Everything that is a dumpus and a zumpus is not a yumpus.", "Max is a zumpus."],
     "Max is not a wumpus or not a dumpus.", ["Max is not a wumpus.", "Max is not a dumpus.", "Max is not a zumpus."]),
    (["Everything that is a lorpus and a rompus and a wumpus is a yumpus.",
      "Everything that is a tumpus and a wumpus is not a yumpus.", "Max is a lorpus.", "Max is a rompus.",
      "Max is a tumpus."], "Max is not a wumpus.", ["Max is a wumpus.", "Max is not a tumpus."]),
    # a disjunctive subject: any one case is denied
    (["Everything that is a wumpus or a dumpus is a yumpus.", "Everything that is a lorpus and a zumpus is not a yumpus.",
      "Max is a lorpus."], "Max is not a dumpus or not a zumpus.",
     ["Max is not a zumpus.", "Max is not a lorpus or not a zumpus.", "Max is not a wumpus or not a dumpus."]),
])
def test_contradiction_extended_forms(sentences, claim, others):
    lic, reason = _lic("CONTRADICTION", sentences)
    assert reason == "ok", reason
    assert lic.ok(parse_sentence(claim))
    for other in others:
        assert not lic.ok(parse_sentence(other)), other


@pytest.mark.parametrize("sentences, reason", [
    # a part of the wrong polarity
    (["Max is not a dumpus.", CONJ_RULE, "Max is not an impus.", "Max is a rompus."],
     "rule does not apply: fact 'not impus' (formula 2) is not a part of rule subject 'impus and rompus and wumpus'"),
    # a fact that is no part of the subject
    (["Max is not a dumpus.", CONJ_RULE, "Max is a yumpus.", "Max is a rompus."],
     "rule does not apply: fact 'yumpus' (formula 2) is not a part of rule subject 'impus and rompus and wumpus'"),
    # a wrong rule: its consequent is not what the fact denies
    (["Max is not a dumpus.", "Everything that is an impus and a rompus and a wumpus is a yumpus.", "Max is an impus.",
      "Max is a rompus."], "rule does not apply: no cited fact denies rule consequent 'yumpus'"),
    (["Max is a dumpus.", CONJ_RULE, "Max is an impus.", "Max is a rompus."],
     "rule does not apply: no cited fact denies rule consequent 'dumpus'"),
    (["Max is a dumpus.", CONJ_RULE], "rule does not apply: fact 'dumpus' does not deny rule consequent 'dumpus'"),
    # a disjunctive consequent is not denied by denying one case
    (["Max is not a yumpus.", "Every wumpus is a yumpus or a dumpus."],
     "rule does not apply: fact 'not yumpus' does not deny rule consequent 'dumpus or yumpus'"),
    # parts only for a conjunctive subject; each part once; some part left to deny
    (["Max is not a dumpus.", "Everything that is an impus or a rompus is a dumpus.", "Max is an impus."],
     "CONTRADICTION cites facts for parts of the rule subject only when it is a conjunction, got 'impus or rompus'"),
    (["Max is not a dumpus.", CONJ_RULE, "Max is an impus.", "Max is an impus."],
     "CONTRADICTION cites part 'impus' twice"),
    (["Max is not a dumpus.", CONJ_RULE, "Max is an impus.", "Max is a rompus.", "Max is a wumpus."],
     "CONTRADICTION: the cited facts affirm every part of rule subject 'impus and rompus and wumpus', no part is "
     "left to deny"),
    # facts about two entities; formulas that are neither facts nor rules
    (["Max is not a dumpus.", CONJ_RULE, "Sam is an impus.", "Max is a rompus."],
     "CONTRADICTION needs facts about one entity, got Max, Sam"),
    (["Max is not a dumpus.", CONJ_RULE, "Every impus is a rompus.", "Every rompus is a wumpus."],
     "CONTRADICTION needs a negated fact and a rule (or two rules), and facts for parts of a rule subject, got "
     "fact 0, rule 1, rule 2, rule 3"),
    # a plain rule (one consequent, a concept or a conjunction as subject, no part facts) is MODUS_TOLLENS
    (["Max is not a dumpus.", "Every wumpus is a dumpus."],
     "CONTRADICTION: a fact that denies the one consequent of a rule whose subject is one concept is MODUS_TOLLENS"),
    ([CONJ_RULE, "Max is not a dumpus."],
     "CONTRADICTION: a fact that denies the one consequent of a rule whose subject is a conjunction is MODUS_TOLLENS"),
    # two rules: they must contradict, and a fact names the entity
    (["Every wumpus is a yumpus.", "Everything that is a dumpus and a zumpus is a yumpus.", "Max is a zumpus."],
     "rules do not contradict: consequents 'yumpus' and 'yumpus'"),
    (["Every wumpus is a yumpus.", "Every dumpus is not a yumpus."],
     "CONTRADICTION needs a negated fact and a rule, got rule 0 and rule 1"),
    (["Every wumpus is a yumpus.", "Everything that is a dumpus and a zumpus is not a yumpus.", "Max is a wumpus.",
      "Max is a dumpus.", "Max is a zumpus."], "rule does not apply: fact 'wumpus' (formula 2) is not a part of rule "
                                                "subject 'wumpus' / 'dumpus and zumpus'"),
    (["Everything that is a wumpus and a lorpus is a yumpus.", "Everything that is a dumpus and a zumpus is not a yumpus.",
      "Max is a wumpus.", "Max is a lorpus.", "Max is a dumpus.", "Max is a zumpus."],
     "CONTRADICTION: the cited facts affirm both rule subjects, no part is left to deny"),
])
def test_contradiction_extended_rejections(sentences, reason):
    lic, got = _lic("CONTRADICTION", sentences)
    assert lic is None
    assert got == reason


def test_contradiction_and_modus_tollens_never_license_the_same_step():
    """Each step has one option that names it: the plain contrapositive is MODUS_TOLLENS only, the other forms are
    CONTRADICTION only."""
    mt, _ = _lic("MODUS_TOLLENS", [CONJ_RULE, "Max is not a dumpus."])
    assert mt.ok(parse_sentence("Max is not an impus or not a rompus or not a wumpus."))
    for sentences in (["Max is not a yumpus.", "Each wumpus is a dumpus, a yumpus, and a zumpus."],
                      ["Max is not a zumpus.", "Everything that is a wumpus or a yumpus is a zumpus."],
                      ["Max is not a yumpus or not a dumpus.", "Every wumpus is a yumpus."],
                      ["Max is not a dumpus.", CONJ_RULE, "Max is an impus."]):
        assert _lic("CONTRADICTION", sentences)[0] is not None
        assert _lic("MODUS_TOLLENS", sentences)[0] is None, sentences


def test_contradiction_missing_part_or_wrong_polarity_claims_are_not_licensed():
    """Mutants of a valid step: a missing conjunct fact licenses only the weaker disjunction; flipped polarity
    and another concept are never licensed."""
    full, _ = _lic("CONTRADICTION", ["Max is not a dumpus.", CONJ_RULE, "Max is an impus.", "Max is a rompus."])
    short, _ = _lic("CONTRADICTION", ["Max is not a dumpus.", CONJ_RULE, "Max is an impus."])
    assert full.ok(parse_sentence("Max is not a wumpus.")) and not short.ok(parse_sentence("Max is not a wumpus."))
    for lic in (full, short):
        for bad in ("Max is a wumpus.", "Max is not a yumpus.", "Sam is not a wumpus.", "Max is a dumpus.",
                    "Max is not an impus."):
            assert not lic.ok(parse_sentence(bad)), bad
