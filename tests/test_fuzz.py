"""Property-based fuzzing of random and mutated completions (>= 10,000 in total).

The parser and the verifier are total: any text gives a verdict, never an exception; every step gets a
non-empty reason, 'ok' exactly when it is valid; a valid trace has only valid steps and the right answer.
Counts: 2500 (random text) + 2000 (structured random traces) + 2000 (hypothesis edits of gold traces)
+ 8000 (seeded loop of gold-trace mutations) = 14,500 completions, plus 1500 sentences and 500 sokrates
records.
"""

import collections
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oakdpo.trace import OPTION_TYPES, Problem, render_trace
from oakdpo.tasks.prontoqa.gold import gold_trace
from oakdpo.tasks.prontoqa import logic
from oakdpo.tasks.prontoqa.logic import parse_sentence, render
from oakdpo.tasks.prontoqa.verify import verify_sokrates_record, verify_trace

FUZZ = settings(derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])


def fuzz(n: int):
    return settings(FUZZ, max_examples=n)


PROBLEM = Problem(
    id="p1",
    premises=["Every vumpus is a brimpus.", "Max is a vumpus.", "Brimpuses are wooden.", "Every wumpus is not wooden.",
              "Max is a wumpus.", "Everything that is a wumpus or a yumpus is a zumpus.", "Each wooden dumpus is a tumpus."],
    query="True or false: Max is not wooden.", label="FALSE",
    proof=["Max is a vumpus.", "Every vumpus is a brimpus.", "Max is a brimpus.", "Brimpuses are wooden.",
           "Max is wooden."])
GOLD = gold_trace(PROBLEM)
COUNTER = {"completions": 0}

SENTENCES = PROBLEM.premises + PROBLEM.proof + [
    "Max is not a brimpus.", "Max is a wumpus or a yumpus.", "Max is wooden and a dumpus.", "Max is a zumpus.",
    "Sam is a vumpus.", "So the query is false.", "Max is a brimpus and not wooden.", "Assume Max is a wumpus.",
    "This contradicts with Max is not a zumpus.", "Max is not a wumpus.", "Max is a tumpus.", "Max is wooden.",
]
WORDS = ["Max", "Sam", "is", "are", "not", "a", "an", "and", "or", ",", "every", "each", "everything", "that",
         "wumpus", "wumpuses", "vumpus", "brimpus", "brimpuses", "wooden", "red", "no", "all", "assume", "this",
         "contradicts", "with", "[3]", "So", "."]


def check(problem, text):
    """Verify and assert the verdict's invariants; returns the verdict."""
    COUNTER["completions"] += 1
    v = verify_trace(problem, text)
    n_actions = sum(1 for line in text.split("\n") if line.startswith("Action:"))
    assert len(v["steps"]) == n_actions
    for i, s in enumerate(v["steps"]):
        assert s["index"] == i
        assert isinstance(s["reason"], str) and s["reason"]
        assert (s["reason"] == "ok") == s["valid"]
    assert 0.0 <= v["step_validity"] <= 1.0
    assert v["num_reasoning_steps"] == sum(1 for s in v["steps"] if s["option"] != "CONCLUDE")
    assert isinstance(v["trace_reason"], str) and v["trace_reason"]
    if v["trace_valid"]:
        assert all(s["valid"] for s in v["steps"]) and v["correct"] and v["conclude_supported"]
        assert sum(1 for s in v["steps"] if s["option"] == "CONCLUDE") == 1
        assert v["steps"][-1]["option"] == "CONCLUDE"
    return v


@fuzz(1500)
@given(st.text(max_size=400))
def test_random_text(text):
    check(PROBLEM, text)


@fuzz(1000)
@given(st.text(alphabet=st.sampled_from(list("Action:<Option type=\"MODUS_PONENS\" args=[0, 1]/>\nThought: Final "
                                             "Answer TRUE FALSE.")), max_size=300))
def test_random_text_from_format_alphabet(text):
    check(PROBLEM, text)


_thought = st.one_of(
    st.lists(st.sampled_from(SENTENCES), min_size=0, max_size=3).map(" ".join),
    st.builds(lambda a, s: f"[{a}] {s}", st.integers(-2, 20), st.sampled_from(SENTENCES)),
    st.text(max_size=40),
)
_option = st.one_of(st.sampled_from(OPTION_TYPES), st.sampled_from(["RULE", "FOO", "", "modus_ponens"]))
_args = st.lists(st.integers(-3, 20), max_size=4)
_step = st.tuples(_thought, _option, _args)


@fuzz(2000)
@given(st.lists(_step, max_size=7), st.sampled_from(["TRUE", "FALSE", "UNKNOWN", "maybe"]),
       st.booleans())
def test_structured_random_traces(steps, answer, drop_thoughts):
    text = render_trace(steps, answer) if steps else f"Final Answer: {answer}"
    if drop_thoughts:
        text = "\n".join(line for line in text.splitlines() if not line.startswith("Thought:") or len(line) % 3)
    check(PROBLEM, text)


@fuzz(2000)
@given(st.lists(st.tuples(st.sampled_from(["insert", "delete", "replace", "dup_line", "drop_line", "swap_lines"]),
                          st.integers(0, 10_000), st.integers(0, 10_000), st.text(max_size=12)),
                min_size=1, max_size=4))
def test_edited_gold_traces(edits):
    text = GOLD
    for op, i, j, s in edits:
        lines = text.splitlines()
        if op == "insert":
            i %= len(text) + 1
            text = text[:i] + s + text[i:]
        elif op == "delete" and text:
            i %= len(text)
            text = text[:i] + text[i + j % 20:]
        elif op == "replace" and text:
            i %= len(text)
            text = text[:i] + s + text[i + len(s):]
        elif op == "dup_line" and lines:
            i %= len(lines)
            text = "\n".join(lines[:i + 1] + [lines[i]] + lines[i + 1:])
        elif op == "drop_line" and lines:
            i %= len(lines)
            text = "\n".join(lines[:i] + lines[i + 1:])
        elif op == "swap_lines" and len(lines) > 1:
            i, j = i % len(lines), j % len(lines)
            lines[i], lines[j] = lines[j], lines[i]
            text = "\n".join(lines)
    check(PROBLEM, text)


def test_seeded_gold_mutations():
    """8000 mutations of gold traces of generated problems: citations, options, claims, lines, answers."""
    from oakdpo.tasks.prontoqa.generator import generate_problems
    problems = generate_problems(100, hops=(1, 5), seed=11)
    golds = [gold_trace(p) for p in problems]
    rng = random.Random(0)
    n_valid = 0
    for i in range(8000):
        k = rng.randrange(len(problems))
        p, lines = problems[k], golds[k].splitlines()
        for _ in range(rng.randint(1, 3)):
            j = rng.randrange(len(lines))
            op = rng.randrange(6)
            if op == 0 and lines[j].startswith("Action:"):
                lines[j] = lines[j].replace(rng.choice(["[", ", "]), rng.choice(["[-1, ", ", 9999, ", "[", ", ", "[x"]), 1)
            elif op == 1 and lines[j].startswith("Action:"):
                lines[j] = lines[j].replace(lines[j].split('"')[1], rng.choice(OPTION_TYPES + ("BOGUS",)), 1)
            elif op == 2:
                words = lines[j].split(" ")
                w = rng.randrange(len(words))
                words[w] = rng.choice(WORDS)
                lines[j] = " ".join(words)
            elif op == 3:
                del lines[j]
                if not lines:
                    lines = [""]
            elif op == 4:
                lines.insert(j, lines[rng.randrange(len(lines))])
            else:
                lines[-1] = rng.choice(["Final Answer: TRUE", "Final Answer: FALSE", "Final Answer: UNKNOWN", ""])
        v = check(p, "\n".join(lines))
        n_valid += v["trace_valid"]
    assert n_valid < 8000  # the mutations do reject traces (some edits, e.g. a reworded thought, keep validity)


@fuzz(1500)
@given(st.one_of(st.text(max_size=80), st.lists(st.sampled_from(WORDS), max_size=12).map(" ".join)))
def test_sentences_parse_totally(sentence):
    f = logic._parse(sentence)  # the parser itself, without parse_sentence's last-resort except
    if f is not None:
        assert parse_sentence(render(f)) == f


@fuzz(500)
@given(st.lists(st.fixed_dictionaries({
    "thought": st.one_of(st.sampled_from(SENTENCES).map(lambda s: "so we conclude that " + s), st.text(max_size=30)),
    "option_type": st.one_of(st.sampled_from(OPTION_TYPES + ("RULE",)), st.text(max_size=5)),
    "option_args": st.one_of(st.lists(st.integers(-2, 15), max_size=3), st.text(max_size=8), st.none()),
}), max_size=5), st.sampled_from(["TRUE", "False", "unknown", None, 3]))
def test_sokrates_records(steps, final):
    rec = {"premises": PROBLEM.premises, "conclusion": "Max is not wooden.", "label": "False", "steps": steps,
           "final_answer": final}
    v = verify_sokrates_record(rec)
    assert all(isinstance(s["reason"], str) and s["reason"] and (s["reason"] == "ok") == s["valid"]
               for s in v["steps"])


# ------------------------------------------------------------ every task: the benchmark's mutators, briefly

def _bench_fuzz():
    """benchmarks/fuzz.py as a module (its mutators and pathological traces)."""
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "fuzz.py"
    spec = importlib.util.spec_from_file_location("bench_fuzz", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _task_problems(task, tmp_path):
    from oakdpo.tasks import get_task
    if task == "prontoqa":
        from oakdpo.tasks.prontoqa.generator import generate_problems
        return generate_problems(6, hops=(2, 4), seed=3)
    if task == "folio":
        fol = ["∀x (Drinks(x) → Dependent(x))", "Drinks(rina)", "Student(max) ∧ Unaware(max)",
               "Jokes(tom) ∨ Drinks(tom)", "¬Jokes(tom)", "∀x (Dependent(x) → Tired(x))",
               "∃x (Student(x) ∧ Jokes(x))", "∀x (Tired(x) ↔ ¬Awake(x))"]
        mk = lambda q, lab: Problem(id=q, task="folio", premises=[f"S{i}." for i in range(len(fol))],  # noqa: E731
                                    query="True or false: q.", label=lab, rule="FOL", fol={"premises": fol, "query": q})
        return [mk("Tired(tom)", "TRUE"), mk("Awake(tom)", "FALSE"), mk("Unaware(max) ∧ Dependent(rina)", "TRUE"),
                mk("Tired(max)", "UNKNOWN"), mk("∃x (Dependent(x))", "TRUE")]
    import json
    rows = [{"id": f"pw{i}", "context": ctx, "question": "Based on the above information, is the following "
             f"statement true, false, or unknown? {q}", "options": ["A) True", "B) False", "C) Unknown"], "answer": a}
            for i, (ctx, q, a) in enumerate([
                ("The cat is blue. If something is blue then it is big. If something is big then it is not red.",
                 "The cat is not red.", "A"),
                ("The cat is blue. The dog sees the cat. If something sees the cat then it is kind.",
                 "The dog is not kind.", "B"),
                ("The cat is blue. If something is red then it is big.", "The cat is big.", "C")])]
    path = tmp_path / "pw.json"
    path.write_text(json.dumps(rows))
    return get_task(task).load(path)


@pytest.mark.parametrize("task,style", [("prontoqa", "natural"), ("prontoqa", "lookup"), ("folio", "natural"),
                                        ("proofwriter", "natural"), ("proofwriter", "lookup")])
def test_every_task_rejects_every_mutant(task, style, tmp_path):
    """Gold traces (in each format style) verify; every mutant (citation, rule swap, polarity, dropped step, wrong
    answer, several or disagreeing Final Answer lines) is rejected; random and pathological traces never crash."""
    from oakdpo.tasks import get_task
    from oakdpo.verify import verify_one
    fz = _bench_fuzz()
    t = get_task(task)
    problems = _task_problems(task, tmp_path)
    golds = [t.gold_trace(p, style) for p in problems]
    assert all(g is not None for g in golds)
    rng = random.Random(0)
    made = collections.Counter()
    for p, g in zip(problems, golds):
        assert t.verify(p, g)["trace_valid"], (p.id, t.verify(p, g)["trace_reason"])
        for kind in fz.MUTANT_KINDS:
            for _ in range(12):
                m = fz.mutate(kind, task, p, g, rng)
                if m is None or m == g:
                    continue
                made[kind] += 1
                v = verify_one(p, m, 10.0)
                assert not v["trace_valid"], (kind, m)
        for _ in range(20):
            verify_one(p, fz.random_text(rng), 10.0)
            verify_one(p, fz.structured(task, p, golds, rng), 10.0)
    assert set(made) == set(fz.MUTANT_KINDS), made
    for i in range(0, 16, 3):  # a few pathological ones (each up to a second)
        p, text = fz.pathological(task, problems[0], golds[0], i)
        v = verify_one(p, text, 10.0)
        assert isinstance(v["trace_reason"], str)


@pytest.mark.slow
def test_fuzz_benchmark_passes(shared_data):
    """benchmarks/fuzz.py at a tenth of its size: 0 crashes, 0 traces over 2x budget, 0 accepted mutants."""
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, str(root / "benchmarks" / "fuzz.py"), "--traces", "3000", "--workers", "2"],
                       capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "PASS" in r.stdout


def test_zz_total_completions():
    """Runs last in this module (pytest keeps file order): at least 10,000 completions were verified."""
    if COUNTER["completions"] == 0:
        import pytest
        pytest.skip("run with the rest of tests/test_fuzz.py")
    assert COUNTER["completions"] >= 10_000, COUNTER
