"""PrOntoQA data: our generator against the original generator's data, the loaders, and `oakdpo data`."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from oakdpo import cli
from oakdpo.tasks.prontoqa import loaders
from oakdpo.tasks.prontoqa.generator import ADJECTIVES, CONCEPTS, NAMES, generate_problems, label_heuristics, parse_simple, shortcut_prediction
from oakdpo.tasks.prontoqa.loaders import load_logiclm, load_prontoqa_json
from oakdpo.data import read_problems, write_problems
from oakdpo.trace import Problem, query_statement

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
PRONTOQA = SHARED / "prontoqa"
FILES = ["1hop_0shot.json", "1hop_0shot_random.json", "2hop_0shot_random.json", "3hop_0shot.json",
         "3hop_0shot_random.json", "4hop_0shot_random.json", "5hop_0shot.json", "5hop_0shot_random.json"]


@pytest.fixture(scope="module")
def original() -> list[Problem]:
    if not PRONTOQA.is_dir():
        pytest.skip("shared PrOntoQA data absent")
    return [p for f in FILES for p in load_prontoqa_json(PRONTOQA / f)]


@pytest.fixture(scope="module")
def generated() -> list[Problem]:
    return generate_problems(2000, (1, 5), seed=0)


# ---------------------------------------------------------------------------------------------- templates

FUNCTION_WORDS = {"is", "are", "not", "each", "every", "true", "or", "false:", "the", "following", "statement",
                  "false?"}


def abstract(sentence: str, vocab: dict[str, set]) -> str:
    """Sentence -> template with slots; records the slot fillers in `vocab`. Independent of data.py's lists:
    concepts are the fictional '-pus' words, names are other capitalised words, adjectives the rest."""
    out = []
    for tok in sentence.rstrip(".").split():
        low = tok.lower()
        if low in ("a", "an"):
            out.append("A")
        elif low in FUNCTION_WORDS:
            out.append(tok)
        elif low.endswith("puses"):
            vocab["concept"].add(low[:-2])
            out.append("Cs")
        elif low.endswith("pus"):
            vocab["concept"].add(low)
            out.append("C")
        elif tok[0].isupper():
            vocab["name"].add(tok)
            out.append("NAME")
        else:
            vocab["adjective"].add(low)
            out.append("ADJ")
    return " ".join(out) + "."


def templates(problems: list[Problem]) -> tuple[Counter, dict[str, set]]:
    vocab: dict[str, set] = {"concept": set(), "name": set(), "adjective": set()}
    t: Counter = Counter()
    for p in problems:
        for s in p.premises + p.proof + [p.query]:
            t[abstract(s, vocab)] += 1
    return t, vocab


EXPECTED_TEMPLATES = {
    "Cs are ADJ.", "Cs are not ADJ.", "Cs are Cs.",
    "Each C is A C.", "Each C is ADJ.", "Each C is not ADJ.",
    "Every C is A C.", "Every C is ADJ.", "Every C is not ADJ.",
    "NAME is A C.", "NAME is ADJ.", "NAME is not ADJ.",
    "True or false: NAME is ADJ.", "True or false: NAME is not ADJ.",
}
LOGICLM_QUERIES = {"Is the following statement true or false? NAME is ADJ.",
                   "Is the following statement true or false? NAME is not ADJ."}


def test_templates_and_vocabulary_equal_the_original(original, generated):
    t_orig, v_orig = templates(original)
    t_gen, v_gen = templates(generated)
    print(f"\ntemplates: original {len(t_orig)}, generated {len(t_gen)}, differences {set(t_orig) ^ set(t_gen)}")
    assert set(t_orig) == EXPECTED_TEMPLATES
    assert set(t_gen) == EXPECTED_TEMPLATES | LOGICLM_QUERIES  # the default mixes both query phrasings
    for story in ("original", (8, 30)):
        one = generate_problems(300, (1, 5), seed=1, premises=story, query_phrasing="true-or-false")
        assert set(templates(one)[0]) == EXPECTED_TEMPLATES
    for kind in ("concept", "name", "adjective"):
        print(f"{kind}: original {len(v_orig[kind])}, generated {len(v_gen[kind])}, "
              f"differences {v_orig[kind] ^ v_gen[kind]}")
        assert v_gen[kind] == v_orig[kind]
    assert v_gen["concept"] == set(CONCEPTS) and len(CONCEPTS) == 17
    assert v_gen["name"] == set(NAMES) and len(NAMES) == 9
    assert v_gen["adjective"] == set(ADJECTIVES) and len(ADJECTIVES) == 45


def test_articles_follow_the_original(original, generated):
    for problems in (original, generated):
        pairs = Counter(m.group(1) + " " + m.group(2)[0] for p in problems for s in p.premises + p.proof
                        for m in re.finditer(r"\b(an?) ([a-z]+pus)\b", s))
        assert {k.split()[0] for k in pairs if k.endswith(" i")} == {"an"}  # 'an impus'
        assert {k.split()[0] for k in pairs if not k.endswith(" i")} == {"a"}


def test_original_story_sentence_counts_per_hop_match_the_original(original):
    def counts(problems):
        out: dict[int, set] = {}
        for p in problems:
            out.setdefault(p.hops, set()).add(len(p.premises))
        return out

    orig, gen = counts(original), counts(generate_problems(2000, (1, 5), seed=0, premises="original"))
    for hops in orig:
        assert gen[hops] == orig[hops] == {4 * depth + 5 for depth in range(hops, 6)}
    assert set(gen) == {1, 2, 3, 4, 5}


def _check_gold(p: Problem, n_facts: int | None = None) -> None:
    """Gold proof: fact, then (rule in the context, derived fact) per hop; it ends in the query (TRUE) or its
    negation (FALSE); the entity facts (the original: two, the real one and the distractor; Logic-LM's: one;
    ours: one or two) come last, one starts the proof."""
    if n_facts is None:
        n_facts = next(k for k in range(len(p.premises)) if parse_simple(p.premises[-1 - k])[0] != "fact")
        assert n_facts in (1, 2)
    assert len(p.proof) == 2 * p.hops + 1
    assert p.proof[0] in p.premises[-n_facts:]
    facts = [parse_simple(s) for s in p.premises[-n_facts:]]
    assert all(f is not None and f[0] == "fact" and not f[3] for f in facts)
    cur = parse_simple(p.proof[0])
    for rule_s, concl_s in zip(p.proof[1::2], p.proof[2::2]):
        assert rule_s in p.premises[:-n_facts]
        rule, concl = parse_simple(rule_s), parse_simple(concl_s)
        assert rule[0] == "rule" and rule[1] == cur[2] and not cur[3]
        assert concl == ("fact", cur[1], rule[2], rule[3])
        cur = concl
    q = parse_simple(query_statement(p.query))
    assert q[:3] == cur[:3]
    assert (q[3] == cur[3]) == (p.label == "TRUE")


def test_gold_proofs_have_the_original_shape(original, generated):
    for p in original + generated + generate_problems(300, (1, 5), seed=2, premises="original"):
        _check_gold(p)
    for p in original:
        _check_gold(p, n_facts=2)


def test_proof_order_puts_the_proof_rules_in_proof_order(original):
    orig = [p for p in original if "random" not in p.id]  # the original's postorder files
    for p in orig + [q for story in ("original", (8, 30))
                     for q in generate_problems(300, (1, 5), seed=5, context_order="proof", premises=story)]:
        idx = [p.premises.index(s) for s in p.proof[1::2]]
        assert idx == sorted(idx)
    for story in ("original", (8, 30)):  # preorder: parents before children, the proof's rules in reverse
        for p in generate_problems(100, (2, 5), seed=5, context_order="preorder", premises=story):
            idx = [p.premises.index(s) for s in p.proof[1::2]]
            assert idx == sorted(idx, reverse=True)


def test_deterministic_per_seed():
    a = [p.to_dict() for p in generate_problems(40, (1, 5), seed=3)]
    b = [p.to_dict() for p in generate_problems(40, (1, 5), seed=3)]
    c = [p.to_dict() for p in generate_problems(40, (1, 5), seed=4)]
    assert a == b
    assert a[:10] == [p.to_dict() for p in generate_problems(10, (1, 5), seed=3)]  # a prefix of a longer run
    assert sum(x["premises"] == y["premises"] for x, y in zip(a, c)) == 0
    assert a[0]["id"] == "gen-s3-000000" and c[39]["id"] == "gen-s4-000039"
    assert {p.hops for p in generate_problems(30, 2, seed=0)} == {2}
    assert {p.hops for p in generate_problems(60, (2, 3), seed=0)} == {2, 3}


def test_labels_are_balanced(generated):
    frac = sum(p.label == "TRUE" for p in generated) / len(generated)
    print(f"\nTRUE fraction over {len(generated)} generated problems: {frac:.4f}")
    assert 0.45 <= frac <= 0.55
    for hops in range(1, 6):
        sub = [p for p in generated if p.hops == hops]
        assert 0.40 <= sum(p.label == "TRUE" for p in sub) / len(sub) <= 0.60
    assert all(p.source == "oakdpo-generator" and p.rule == "ModusPonens" for p in generated)


def heuristic_accuracy(problems: list[Problem]) -> dict[str, tuple[float, int]]:
    """Per label heuristic: (accuracy, counting a non-applicable heuristic as a coin flip; times not applicable)."""
    out = {}
    for name in ("singleton_rule", "majority_polarity", "ontology_rule"):
        preds = [label_heuristics(p)[name] for p in problems]
        score = sum(0.5 if pr is None else float(pr == p.label) for pr, p in zip(preds, problems))
        out[name] = (score / len(problems), preds.count(None))
    return out


def test_shortcut_removed_by_default(original, generated):
    orig = heuristic_accuracy(original)
    kept = heuristic_accuracy(generate_problems(2000, (1, 5), seed=0, remove_shortcut=False))
    removed = heuristic_accuracy(generated)
    print(f"\nlabel heuristics (accuracy, not applicable): original {orig}\n  generator with shortcut {kept}\n"
          f"  generator default (removed) {removed}")
    # the README's shortcut: always right on the original data and with the shortcut kept
    assert orig["singleton_rule"] == (1.0, 0) and kept["singleton_rule"] == (1.0, 0)
    assert shortcut_prediction(original[0]) == original[0].label
    # removed: the distractor rule is still there in the same form (always applies) but predicts at chance
    acc, not_applicable = removed["singleton_rule"]
    assert not_applicable == 0 and acc <= 0.60
    # The price, measured: with one distractor rule of random polarity, the two rules about the query's
    # adjective agree half of the time, and then their common polarity is the answer (the original's
    # opposite polarities always tie). With one distractor rule no polarity rule keeps both at chance.
    assert orig["majority_polarity"] == (0.5, len(original)) and kept["majority_polarity"] == (0.5, 2000)
    assert 0.70 <= removed["majority_polarity"][0] <= 0.80
    # Inherent to PrOntoQA: the other rule about the adjective (the ontology's) gives the answer, everywhere.
    assert orig["ontology_rule"] == kept["ontology_rule"] == removed["ontology_rule"] == (1.0, 0)


# ---------------------------------------------------------------------------------------------- loaders

LABEL_COUNTS = {"1hop_0shot.json": (155, 145), "3hop_0shot.json": (152, 148), "5hop_0shot.json": (160, 140),
                "5hop_0shot_random.json": (146, 154)}


@pytest.mark.parametrize("name", FILES)
def test_load_shared_prontoqa(name):
    if not PRONTOQA.is_dir():
        pytest.skip("shared PrOntoQA data absent")
    problems = load_prontoqa_json(PRONTOQA / name)
    hops = int(name[0])
    stem = name[:-5]
    assert len(problems) == 300
    assert problems[0].id == f"{stem}/example1" and problems[299].id == f"{stem}/example300"
    assert {p.hops for p in problems} == {hops}
    assert {p.rule for p in problems} == {"ModusPonens"}
    assert {p.source for p in problems} == {f"prontoqa-json:{name}"}
    assert {p.label for p in problems} == {"TRUE", "FALSE"}
    assert all(p.query.startswith("True or false: ") and len(p.proof) == 2 * hops + 1 for p in problems)
    if name in LABEL_COUNTS:
        c = Counter(p.label for p in problems)
        assert (c["TRUE"], c["FALSE"]) == LABEL_COUNTS[name]
    raw = json.loads((PRONTOQA / name).read_text())["example1"]["test_example"]
    assert " ".join(problems[0].premises) == raw["question"]
    assert problems[0].proof == raw["chain_of_thought"]


LOGICLM = [
    {"id": "ProntoQA_1",
     "context": "Jompuses are not shy. Jompuses are yumpuses. Each yumpus is aggressive. Each yumpus is a dumpus. "
                "Dumpuses are not wooden. Numpuses are sour. Dumpuses are not sour. Max is a yumpus.",
     "question": "Is the following statement true or false? Max is sour.",
     "options": ["A) True", "B) False"], "answer": "B",
     "explanation": ["Max is a yumpus.", "Each yumpus is a dumpus.", "Max is a dumpus.", "Dumpuses are not sour.",
                     "Max is not sour."]},
    {"id": "ProntoQA_2",
     "context": "Every tumpus is not angry. Tumpuses are rompuses. Rompuses are bright. Stella is a tumpus.",
     "question": "Is the following statement true or false? Stella is bright.",
     "options": ["A) True", "B) False"], "answer": "A",
     "explanation": ["Stella is a tumpus.", "Tumpuses are rompuses.", "Stella is a rompus.", "Rompuses are bright.",
                     "Stella is bright."]},
]


def test_load_logiclm(tmp_path):
    path = tmp_path / "dev.json"
    path.write_text(json.dumps(LOGICLM, indent=2))
    a, b = load_logiclm(path)
    assert a.to_dict() == {
        "id": "ProntoQA_1",
        "premises": ["Jompuses are not shy.", "Jompuses are yumpuses.", "Each yumpus is aggressive.",
                     "Each yumpus is a dumpus.", "Dumpuses are not wooden.", "Numpuses are sour.",
                     "Dumpuses are not sour.", "Max is a yumpus."],
        "query": "True or false: Max is sour.", "label": "FALSE", "proof": LOGICLM[0]["explanation"],
        "hops": 2, "rule": "ModusPonens", "source": "logiclm:dev.json", "task": "prontoqa"}
    assert (b.id, b.label, b.query, b.hops) == ("ProntoQA_2", "TRUE", "True or false: Stella is bright.", 2)
    _check_gold(a, n_facts=1)  # Logic-LM's ProntoQA has no distractor fact
    _check_gold(b, n_facts=1)


def proofs_only_example(question: str, query: str, cot: list[str]) -> dict:
    # the original's --proofs-only JSON: no 'answer'; sentences after a contradiction carry "\n\n"
    return {"test_example": {"question": question, "query": query, "chain_of_thought": cot}}


PROOFS_ONLY = {
    "AndIntro": proofs_only_example(
        "Each bright wumpus is a yumpus. Every yumpus is a dumpus. Zumpuses are red. Alex is a wumpus. Alex is bright.",
        "Prove: Alex is a dumpus.",
        ["Alex is a wumpus.", "Alex is bright.", "Alex is a bright wumpus.", "Each bright wumpus is a yumpus.",
         "Alex is a yumpus.", "Every yumpus is a dumpus.", "Alex is a dumpus."]),
    "AndElim": proofs_only_example(
        "Every wumpus is a yumpus. Each rompus is a vumpus. Sam is a wumpus and a rompus.",
        "Prove: Sam is a yumpus.",
        ["Sam is a wumpus and a rompus.", "Sam is a wumpus.", "Every wumpus is a yumpus.", "Sam is a yumpus."]),
    "OrIntro": proofs_only_example(
        "Everything that is a wumpus or a rompus is a yumpus. Tumpuses are dull. Fae is a wumpus.",
        "Prove: Fae is a yumpus.",
        ["Fae is a wumpus.", "Fae is a wumpus or a rompus.", "Everything that is a wumpus or a rompus is a yumpus.",
         "Fae is a yumpus."]),
    "OrElim": proofs_only_example(
        "Every wumpus is a zumpus. Every rompus is a zumpus. Each impus is a numpus. Rex is a wumpus or a rompus.",
        "Prove: Rex is a zumpus.",
        ["Assume Rex is a wumpus.", "Every wumpus is a zumpus.", "Rex is a zumpus.\n\n", "Assume Rex is a rompus.",
         "Every rompus is a zumpus.", "Rex is a zumpus.\n\n", "Since Rex is a wumpus or a rompus, Rex is a zumpus."]),
    "ProofByContra": proofs_only_example(
        "Everything that is a wumpus or a rompus is a zumpus. Polly is not a zumpus.",
        "Prove: Polly is not a wumpus.",
        ["Assume Polly is a wumpus.", "Polly is a wumpus or a rompus.",
         "Everything that is a wumpus or a rompus is a zumpus.", "Polly is a zumpus.",
         "This contradicts with Polly is not a zumpus.\n\n", "Polly is not a wumpus."]),
}


@pytest.mark.parametrize("rule", sorted(PROOFS_ONLY))
def test_load_proofs_only(tmp_path, rule):
    ex = PROOFS_ONLY[rule]
    named = tmp_path / f"2hop_{rule}_0shot.json"  # the original's file name for --deduction-rule R --proofs-only
    named.write_text(json.dumps({"example1": ex}, indent=1))
    (p,) = load_prontoqa_json(named)
    t = ex["test_example"]
    assert (p.id, p.label, p.query, p.rule, p.hops) == (f"2hop_{rule}_0shot/example1", "TRUE", t["query"], rule, 2)
    assert p.proof == [s.strip() for s in t["chain_of_thought"]]
    assert p.premises == loaders.split_sentences(t["question"])
    # without the rule in the file name it is told from the sentence forms; no hop count in the name either
    unnamed = tmp_path / "examples.json"
    unnamed.write_text(json.dumps({"example7": ex}))
    (q,) = load_prontoqa_json(unnamed)
    assert (q.id, q.rule, q.hops) == ("examples/example7", rule, None)


def test_proofs_only_modus_ponens_file_name(tmp_path):
    ex = proofs_only_example("Every wumpus is a yumpus. Rex is a wumpus.", "Prove: Rex is a yumpus.",
                             ["Rex is a wumpus.", "Every wumpus is a yumpus.", "Rex is a yumpus."])
    path = tmp_path / "1hop_ProofsOnly_0shot.json"
    path.write_text(json.dumps({"example1": ex}))
    (p,) = load_prontoqa_json(path)
    assert (p.rule, p.hops, p.label) == ("ModusPonens", 1, "TRUE")


def test_problems_round_trip(tmp_path, generated):
    path = tmp_path / "p.jsonl"
    assert write_problems(path, generated[:50]) == 50
    assert [p.to_dict() for p in read_problems(path)] == [p.to_dict() for p in generated[:50]]


# ---------------------------------------------------------------------------------------------- CLI

def test_cli_generate(tmp_path, capsys):
    out = tmp_path / "problems.jsonl"
    rc = cli.main(["data", "generate", "--dataset", "prontoqa", "--num", "40", "--hops", "2-3", "--seed", "7",
                   "-o", str(out)])
    assert rc == 0
    problems = read_problems(out)
    assert [p.to_dict() for p in problems] == [p.to_dict() for p in generate_problems(40, (2, 3), seed=7)]
    n_true = sum(p.label == "TRUE" for p in problems)
    assert capsys.readouterr().out == (
        f"generated 40 problems (prontoqa, hops 2-3, premises 8-30, seed 7, mix context order, mix forms, mix query "
        f"phrasing, shortcut removed): TRUE {n_true} / FALSE {40 - n_true} ({100 * n_true / 40:.1f}% TRUE) -> {out}\n")
    rc = cli.main(["data", "generate", "--num", "5", "--hops", "4", "--context-order", "proof", "--premises", "18",
                   "--forms", "every", "--query-phrasing", "is-the-following", "--no-remove-shortcut", "-o", str(out)])
    assert rc == 0
    got = read_problems(out)
    assert [p.to_dict() for p in got] == [p.to_dict() for p in generate_problems(
        5, 4, seed=0, context_order="proof", remove_shortcut=False, premises=18, forms="every",
        query_phrasing="is-the-following")]
    assert {len(p.premises) for p in got} == {18}
    assert all(p.meta == {"premises": 18, "order": "proof", "forms": "every", "phrasing": "is-the-following"}
               for p in got)
    rc = cli.main(["data", "generate", "--num", "5", "--premises", "original", "-o", str(out)])
    assert rc == 0 and {len(p.premises) for p in read_problems(out)} <= {9, 13, 17, 21, 25}


def test_cli_import(tmp_path, capsys):
    if not PRONTOQA.is_dir():
        pytest.skip("shared PrOntoQA data absent")
    out = tmp_path / "problems.jsonl"
    rc = cli.main(["data", "import", "--format", "prontoqa-json", str(PRONTOQA / "1hop_0shot.json"),
                   str(PRONTOQA / "3hop_0shot.json"), "-o", str(out)])
    assert rc == 0
    problems = read_problems(out)
    assert len(problems) == 600
    assert problems[300].id == "3hop_0shot/example1"
    assert capsys.readouterr().out == (
        f"imported 600 problems from 2 file(s) (prontoqa-json; ModusPonens 600): TRUE 307 / FALSE 293 "
        f"(51.2% TRUE) -> {out}\n")
    logiclm = tmp_path / "dev.json"
    logiclm.write_text(json.dumps(LOGICLM))
    assert cli.main(["data", "import", "--format", "logiclm", str(logiclm), "-o", str(out)]) == 0
    assert [p.id for p in read_problems(out)] == ["ProntoQA_1", "ProntoQA_2"]


@pytest.mark.parametrize("style", ["natural", "lookup"])
def test_cli_gold(tmp_path, capsys, style):
    from oakdpo.tasks.prontoqa.gold import gold_trace

    problems = generate_problems(5, (1, 3), seed=2)
    pfile, tfile = tmp_path / "problems.jsonl", tmp_path / "traces.jsonl"
    write_problems(pfile, problems)
    assert cli.main(["data", "gold", "--problems", str(pfile), "--style", style, "-o", str(tfile)]) == 0
    recs = [json.loads(line) for line in tfile.read_text().splitlines()]
    assert recs == [{"problem_id": p.id, "sample": 0, "text": gold_trace(p, style)} for p in problems]
    assert capsys.readouterr().out.startswith(f"wrote 5 gold traces ({style} style) for 5 problems: ")


def test_cli_gold_skips_and_counts_problems_without_a_gold_proof(tmp_path, capsys):
    # A problem whose proof the optionizer cannot write is skipped and counted, never the end of the file; the
    # label summary counts the traces written.
    import dataclasses

    problems = generate_problems(4, (1, 3), seed=2)
    bad = dataclasses.replace(problems[1], proof=[], premises=["Max is a wumpus."], query="True or false: Max is a dumpus.")
    problems[1] = bad
    pfile, tfile = tmp_path / "problems.jsonl", tmp_path / "traces.jsonl"
    write_problems(pfile, problems)
    assert cli.main(["data", "gold", "--problems", str(pfile), "-o", str(tfile)]) == 0
    recs = [json.loads(line) for line in tfile.read_text().splitlines()]
    assert [r["problem_id"] for r in recs] == [p.id for p in problems if p is not bad]
    from oakdpo.data import label_summary

    out = capsys.readouterr().out
    assert out.startswith("wrote 3 gold traces (natural style) for 4 problems (1 without a gold proof skipped): "
                          + label_summary([p for p in problems if p is not bad]))


def test_cli_import_folio(tmp_path, capsys):
    pytest.importorskip("oakdpo.tasks.folio")
    path = SHARED / "folio" / "folio-v0.0-train.jsonl"
    if not path.is_file():
        pytest.skip("shared FOLIO data absent")
    out = tmp_path / "folio.jsonl"
    assert cli.main(["data", "import", "--format", "folio", str(path), "-o", str(out)]) == 0
    problems = read_problems(out)
    assert len(problems) == 1004  # every example of the train split (README)
    assert {p.label for p in problems} <= {"TRUE", "FALSE", "UNKNOWN"}
    assert capsys.readouterr().out.startswith("imported 1004 problems from 1 file(s) (folio; ")


def test_a_record_without_task_belongs_to_the_callers_task(tmp_path):
    # problems.jsonl lines without "task": the --dataset-type the caller names, not a guess from other fields
    from oakdpo.data import read_problem_file

    rec = {"id": "x", "premises": ["The cow is blue."], "query": "The cow is blue.", "label": "TRUE"}
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps(rec) + "\n")
    assert read_problem_file(path, "proofwriter")[0].task == "proofwriter"
    assert read_problem_file(path)[0].task == "prontoqa"
    rec["task"] = "folio"
    path.write_text(json.dumps(rec) + "\n")
    assert read_problem_file(path, "proofwriter")[0].task == "folio"  # the record's own field wins


# The original generator's Composed rule (--proofs-only): comma-joined clauses ("X is A, X is B, and X is not C"),
# proofs by contradiction with several sentences under the assumption, and an assumed fact used before "Assume".
COMPOSED = {
    "example1": proofs_only_example(
        "Each wumpus is a dumpus, a lorpus, and a grimpus. Rex is a lorpus, Rex is a yumpus, and Rex is not a grimpus.",
        "Prove: Rex is not a wumpus, Rex is a yumpus, or Rex is a numpus.",
        ["Rex is a lorpus, Rex is a yumpus, and Rex is not a grimpus.", "Rex is not a grimpus.\n\n",
         "Assume Rex is a wumpus.", "Each wumpus is a dumpus, a lorpus, and a grimpus.",
         "Rex is a dumpus, a lorpus, and a grimpus.", "Rex is a grimpus.", "This contradicts with Rex is not a grimpus.",
         "Rex is not a wumpus.\n\n", "Rex is not a wumpus or Rex is a yumpus or Rex is a numpus."]),
    "example2": proofs_only_example(
        "Lempuses are gorpuses. Yumpuses are vumpuses. Everything that is a gorpus and a vumpus is a shumpus. "
        "Fae is a rompus, Fae is a wumpus, and Fae is not a shumpus. Fae is a lempus.",
        "Prove: Fae is not a yumpus.",
        ["Fae is a rompus, Fae is a wumpus, and Fae is not a shumpus.", "Fae is not a shumpus.\n\n",
         "Assume Fae is a yumpus.", "Yumpuses are vumpuses.", "Fae is a vumpus.", "Fae is a lempus.",
         "Lempuses are gorpuses.", "Fae is a gorpus.", "Fae is a gorpus and a vumpus.",
         "Everything that is a gorpus and a vumpus is a shumpus.", "Fae is a shumpus.",
         "This contradicts with Fae is not a shumpus.", "Fae is not a yumpus.\n\n"]),
    "example3": proofs_only_example(
        "Every tumpus is a zumpus. Lempuses are impuses. Lempuses are grimpuses. Everything that is a zumpus and a "
        "grimpus is not a rompus. Each impus is a rompus and a jompus. Wren is a tumpus.",
        "Prove: Wren is not a lempus.",
        ["Wren is a lempus.", "Lempuses are grimpuses.", "Wren is a grimpus.", "Wren is a tumpus.",
         "Every tumpus is a zumpus.", "Wren is a zumpus.", "Wren is a zumpus and a grimpus.",
         "Everything that is a zumpus and a grimpus is not a rompus.", "Wren is not a rompus.\n\n",
         "Assume Wren is a lempus.", "Lempuses are impuses.", "Wren is an impus.",
         "Each impus is a rompus and a jompus.", "Wren is a rompus and a jompus.", "Wren is a rompus.",
         "This contradicts with Wren is not a rompus.", "Wren is not a lempus.\n\n"]),
}


def test_composed_proofs_by_contradiction_import_gold_verify(tmp_path, capsys):
    """import -> gold (both styles) -> verify: every Composed example gets a gold trace, and every trace is valid."""
    src = tmp_path / "3hop_Composed_0shot_random_nodistractor_noadj_seed1.json"
    src.write_text(json.dumps(COMPOSED, indent=1))
    problems = tmp_path / "problems.jsonl"
    assert cli.main(["data", "import", "--format", "prontoqa-json", str(src), "-o", str(problems)]) == 0
    assert [p.rule for p in read_problems(problems)] == ["Composed"] * 3
    capsys.readouterr()
    for style in ("natural", "lookup"):
        traces, verdicts = tmp_path / f"gold_{style}.jsonl", tmp_path / f"verdicts_{style}.jsonl"
        assert cli.main(["data", "gold", "--problems", str(problems), "--style", style, "-o", str(traces)]) == 0
        assert f"wrote 3 gold traces ({style} style) for 3 problems: " in capsys.readouterr().out
        assert cli.main(["verify", "--problems", str(problems), "--traces", str(traces), "-o", str(verdicts),
                         "--no-progress", "--set", "verify.workers=1"]) == 0
        recs = [json.loads(line) for line in verdicts.read_text().splitlines()]
        assert len(recs) == 3 and all(r["trace_valid"] for r in recs), [r["trace_reason"] for r in recs]
        steps = [[s["option"] for s in r["steps"]] for r in recs]
        assert steps == [["AND_ELIM", "CONTRADICTION", "OR_INTRO", "CONCLUDE"],
                         ["AND_ELIM", "MODUS_PONENS", "CONTRADICTION", "MODUS_TOLLENS", "CONCLUDE"],
                         ["MODUS_PONENS", "CONTRADICTION", "CONTRADICTION", "CONTRADICTION", "CONCLUDE"]]
