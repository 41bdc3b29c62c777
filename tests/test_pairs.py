"""Preference pairs: selection rules and prompt stripping (exactly once, by prefix)."""

import pytest

from oakdpo.config import FormatConfig, PairsConfig
from oakdpo.pairs import build_pairs as _build_pairs, strip_prompt
from oakdpo.prompting import Framing
from oakdpo.tasks.prontoqa import PrOntoQATask
from oakdpo.tasks.prontoqa.prompt import build_lookup_prompt as build_prompt
from oakdpo.trace import Problem


class PlainTokenizer:
    """What a Framing reads of a tokenizer without a chat template."""
    chat_template = None
    eos_token, eos_token_id = "</s>", 2


FRAMING = Framing(PlainTokenizer(), FormatConfig(style="lookup"))


def build_pairs(problems, traces, verdicts, cfg):
    return _build_pairs(problems, traces, verdicts, cfg, FRAMING)


@pytest.fixture
def gold_is_GOLD(monkeypatch):
    monkeypatch.setattr(PrOntoQATask, "gold_trace", lambda self, problem, style: "GOLD")


def _problem(pid="p0", proof=True):
    return Problem(id=pid, premises=["Every wumpus is a tumpus.", "Max is a wumpus."],
                   query="True or false: Max is a tumpus.", label="TRUE",
                   proof=["Max is a wumpus.", "Every wumpus is a tumpus.", "Max is a tumpus."] if proof else [],
                   hops=1)


def _tv(pid, sample, text, valid, sv):
    return ({"problem_id": pid, "sample": sample, "text": text},
            {"problem_id": pid, "sample": sample, "trace_valid": valid, "step_validity": sv})


def test_strip_prompt_once_keeps_later_prompt_text():
    prompt = "Premises:\n[0] A.\nProof:\n"
    trace = "Thought: Premises:\n[0] A.\nProof:\nAction: x"
    assert strip_prompt(prompt, prompt + trace) == trace  # the repeat inside the trace stays
    assert strip_prompt(prompt, trace) == trace  # no prefix: untouched
    assert strip_prompt(prompt, prompt + prompt) == prompt  # removed once, not twice


def test_valid_vs_invalid_pairs_hardest_negative_first():
    p = _problem()
    prompt = build_prompt(p)
    tvs = [_tv("p0", 0, "bad-a", False, 0.0), _tv("p0", 1, prompt + "good", True, 1.0),
           _tv("p0", 2, "bad-b", False, 0.5), _tv("p0", 3, "bad-c", False, 0.25)]
    pairs = build_pairs([p], [t for t, _ in tvs], [v for _, v in tvs], PairsConfig(max_pairs_per_problem=2))
    assert [(x["chosen"], x["rejected"], x["kind"]) for x in pairs] == [
        ("good", "bad-b", "valid_vs_invalid"), ("good", "bad-c", "valid_vs_invalid")]
    assert pairs[0]["prompt"] == prompt and pairs[0]["chosen_sample"] == 1 and pairs[0]["rejected_sample"] == 2


def test_gold_pairs_when_no_valid_sample(gold_is_GOLD):
    p = _problem()
    tvs = [_tv("p0", 0, "bad", False, 0.0)]
    pairs = build_pairs([p], [t for t, _ in tvs], [v for _, v in tvs], PairsConfig())
    assert [(x["chosen"], x["rejected"], x["kind"], x["chosen_sample"]) for x in pairs] == [
        ("GOLD", "bad", "gold_vs_invalid", None)]


def test_step_validity_ranking_needs_gap_without_gold():
    p = _problem()
    tvs = [_tv("p0", 0, "a", False, 0.9), _tv("p0", 1, "b", False, 0.8), _tv("p0", 2, "c", False, 0.1)]
    pairs = build_pairs([p], [t for t, _ in tvs], [v for _, v in tvs],
                        PairsConfig(min_step_validity_gap=0.5, max_pairs_per_problem=5, use_gold=False))
    assert [(x["chosen"], x["rejected"], x["kind"]) for x in pairs] == [("a", "c", "step_validity")]
    none = build_pairs([p], [t for t, _ in tvs], [v for _, v in tvs],
                       PairsConfig(min_step_validity_gap=0.95, use_gold=False))
    assert none == []


def test_all_valid_or_no_samples_gives_no_pairs():
    p, q = _problem("p0"), _problem("p1")
    tvs = [_tv("p0", 0, "x", True, 1.0), _tv("p0", 1, "y", True, 1.0)]
    assert build_pairs([p, q], [t for t, _ in tvs], [v for _, v in tvs], PairsConfig()) == []


def _step(i, valid):
    return {"index": i, "valid": valid}


def test_truncate_rejected_after_first_invalid_step():
    from oakdpo.pairs import truncate_after_first_error

    text = ('Thought: a.\nAction: <Option type="MODUS_PONENS" args="[0, 1]" />\n'
            'Thought: b.\nAction: <Option type="MODUS_PONENS" args="[2, 3]" />\n'
            'Thought: c.\nAction: <Option type="CONCLUDE" args="[0]" />\nFinal Answer: TRUE')
    first_bad = {"steps": [_step(0, True), _step(1, False), _step(2, False)]}
    assert truncate_after_first_error(text, first_bad) == (
        'Thought: a.\nAction: <Option type="MODUS_PONENS" args="[0, 1]" />\n'
        'Thought: b.\nAction: <Option type="MODUS_PONENS" args="[2, 3]" />\n')
    # every step valid (the answer is what is wrong), or the last step is the first invalid one: kept whole
    assert truncate_after_first_error(text, {"steps": [_step(0, True), _step(1, True), _step(2, True)]}) == text
    assert truncate_after_first_error(text, {"steps": [_step(0, True), _step(1, True), _step(2, False)]}) == text
    assert truncate_after_first_error("no steps at all", {"steps": [_step(0, False)]}) == "no steps at all"


def test_build_pairs_truncates_rejected_only_when_configured():
    p = _problem()
    prompt = build_prompt(p)
    bad = ('Thought: x.\nAction: <Option type="MODUS_PONENS" args="[0, 1]" />\n'
           'Thought: y.\nAction: <Option type="CONCLUDE" args="[0]" />\nFinal Answer: TRUE')
    traces = [{"problem_id": "p0", "sample": 0, "text": prompt + "good"},
              {"problem_id": "p0", "sample": 1, "text": prompt + bad}]
    verdicts = [{"trace_valid": True, "step_validity": 1.0, "steps": []},
                {"trace_valid": False, "step_validity": 0.0, "steps": [_step(0, False), _step(1, False)]}]
    cut = build_pairs([p], traces, verdicts, PairsConfig(truncate_rejected=True))
    assert [(x["chosen"], x["rejected"]) for x in cut] == [
        ("good", 'Thought: x.\nAction: <Option type="MODUS_PONENS" args="[0, 1]" />\n')]
    whole = build_pairs([p], traces, verdicts, PairsConfig())
    assert [(x["chosen"], x["rejected"]) for x in whole] == [("good", bad)]


def test_on_policy_step_validity_pairs_come_before_gold(gold_is_GOLD):
    p = _problem()
    ranked = [_tv("p0", 0, "a", False, 0.9), _tv("p0", 1, "c", False, 0.1)]
    pairs = build_pairs([p], [t for t, _ in ranked], [v for _, v in ranked], PairsConfig(min_step_validity_gap=0.5))
    assert [(x["chosen"], x["rejected"], x["kind"]) for x in pairs] == [("a", "c", "step_validity")]
    # samples about equally wrong: no on-policy pair, so the gold trace is paired with each
    even = [_tv("p0", 0, "a", False, 0.5), _tv("p0", 1, "c", False, 0.4)]
    pairs = build_pairs([p], [t for t, _ in even], [v for _, v in even], PairsConfig(min_step_validity_gap=0.5))
    assert [(x["chosen"], x["rejected"], x["kind"]) for x in pairs] == [
        ("GOLD", "a", "gold_vs_invalid"), ("GOLD", "c", "gold_vs_invalid")]


@pytest.mark.parametrize("truncate_rejected", [False, True])
def test_a_rejected_trace_cut_by_max_new_tokens_is_partial(truncate_rejected):
    # A trace that hit max_new_tokens did not end: its rejected side is marked partial (DPO gives it no EOS),
    # whether or not pairs cut rejected traces after their first error; one that ended on its own is not.
    p = _problem()
    (t0, v0), (t1, v1), (t2, v2) = (_tv("p0", 0, "GOOD", True, 1.0), _tv("p0", 1, "CUT", False, 0.0),
                                    _tv("p0", 2, "ENDED", False, 0.0))
    t1["truncated"] = True
    pairs = build_pairs([p], [t0, t1, t2], [v0, v1, v2], PairsConfig(truncate_rejected=truncate_rejected,
                                                                     max_pairs_per_problem=2))
    by_rejected = {x["rejected"]: x for x in pairs}
    assert set(by_rejected) == {"CUT", "ENDED"}
    assert by_rejected["CUT"]["rejected_partial"] and by_rejected["CUT"]["rejected_truncated"]
    assert not by_rejected["ENDED"]["rejected_partial"] and not by_rejected["ENDED"]["rejected_truncated"]


def test_why_no_pairs_for_folio_without_conclusion_fol():
    # FOLIO problems without conclusion FOL have no gold trace: with invalid samples only, nothing pairs, and the
    # one-line reason names it and the way out (more samples for on-policy pairs).
    from oakdpo.pairs import explain_no_pairs

    p = Problem(id="f0", task="folio", premises=["All cats are mammals.", "Tom is a cat."],
                query="True or false: Tom is a mammal.", label="TRUE",
                fol={"premises": ["∀x (Cat(x) → Mammal(x))", "Cat(tom)"], "query": None})
    traces = [{"problem_id": "f0", "sample": 0, "text": "Final Answer: TRUE"}]
    verdicts = [{"problem_id": "f0", "sample": 0, "trace_valid": False, "step_validity": 0.0, "steps": []}]
    framing = Framing(PlainTokenizer(), FormatConfig(style="natural"))
    assert _build_pairs([p], traces, verdicts, PairsConfig(), framing) == []
    assert explain_no_pairs([p], traces, verdicts, PairsConfig(), framing) == (
        "0 of 1 traces are valid, no problem has a valid or sound sample beside an invalid one, and 1 of 1 problems "
        "have no gold trace for pairs.use_gold (their task cannot write one: e.g. FOLIO without conclusion FOL); "
        "sample more than once (--samples 4) for on-policy pairs")


def test_unchecked_unknown_answers_pair_on_folio_without_conclusion_fol():
    # A FOLIO problem without conclusion FOL cannot check any answer. A well-formed CONCLUDE-only trace with the
    # right UNKNOWN is sound (an UNKNOWN needs no derivation) and is chosen over a wrong answer; a right TRUE
    # without reasoning, or an UNKNOWN whose Final Answer disagrees, is not sound.
    from oakdpo.tasks import get_task

    task = get_task("folio")
    p = Problem(id="f1", task="folio", premises=["All cats are mammals.", "Tom is a cat."],
                query="True or false: Tom likes fish.", label="UNKNOWN",
                fol={"premises": ["∀x (Cat(x) → Mammal(x))", "Cat(tom)"], "query": None})
    unknown = ('Thought: Nothing about fish follows. So the query is unknown.\nAction: <Option type="CONCLUDE" '
               'args="[2]" />\nFinal Answer: UNKNOWN')
    texts = [unknown, unknown.replace('args="[2]"', 'args="[0]"').replace("UNKNOWN", "TRUE"),
             unknown.replace("Final Answer: UNKNOWN", "Final Answer: FALSE")]
    verdicts = [task.verify(p, t) | {"problem_id": "f1", "sample": i} for i, t in enumerate(texts)]
    assert [v["answer_unchecked"] for v in verdicts] == [True, True, False]
    assert not any(v["trace_valid"] for v in verdicts)
    traces = [{"problem_id": "f1", "sample": i, "text": t} for i, t in enumerate(texts)]
    framing = Framing(PlainTokenizer(), FormatConfig(style="natural"))
    pairs = _build_pairs([p], traces, verdicts, PairsConfig(), framing)
    assert [(x["kind"], x["chosen_sample"], x["rejected_sample"]) for x in pairs] == [
        ("sound_vs_invalid", 0, 1), ("sound_vs_invalid", 0, 2)]
    p_true = Problem(**{**p.__dict__, "label": "TRUE", "id": "f2"})
    v = task.verify(p_true, texts[1])
    assert v["correct"] and v["answer_unchecked"]  # right, well formed, but a TRUE needs a derivation
    from oakdpo.pairs import is_sound

    assert is_sound(verdicts[0]) and not is_sound(v)


def test_a_right_answer_with_an_unsupported_conclude_is_a_guess_not_sound():
    # PrOntoQA can check every answer: a trace whose steps are valid but stop short of the query, then CONCLUDE
    # anyway, guessed its right answer. It is rejected against the gold trace, never chosen.
    from oakdpo.pairs import is_sound
    from oakdpo.tasks import get_task

    p = PrOntoQATask().generate(1, seed=4, hops=(3, 3))[0]
    task = get_task("prontoqa")
    gold = task.gold_trace(p, "natural")
    lines = gold.splitlines()
    cut = lines[:2] + lines[-3:]  # the first step, then the last step's CONCLUDE and the answer
    guess = "\n".join(cut)
    v = task.verify(p, guess) | {"problem_id": p.id, "sample": 0}
    assert v["correct"] and not v["trace_valid"] and "not supported" in v["trace_reason"]
    assert all(s["valid"] for s in v["steps"][:-1]) and not is_sound(v)
    framing = Framing(PlainTokenizer(), FormatConfig(style="natural"))
    pairs = _build_pairs([p], [{"problem_id": p.id, "sample": 0, "text": guess}], [v], PairsConfig(), framing)
    assert [(x["kind"], x["chosen"]) for x in pairs] == [("gold_vs_invalid", gold)]
