"""oakdpo.rewards (TRL reward_funcs, verl compute_score) and `oakdpo data export --for trl|verl`."""

from __future__ import annotations

import importlib.util
import json
import re

import pytest

from oakdpo import rewards
from oakdpo.cli import main
from oakdpo.export import export_records
from oakdpo.tasks import get_task
from oakdpo.trace import Problem, parse_trace
from oakdpo.verify import POOL_MIN_TRACES

NAMES = rewards.REWARD_NAMES


def _scores(problem, texts, **kw) -> dict[str, list[float]]:
    col = [json.dumps(problem.to_dict())] * len(texts)
    return {n: rewards.get_reward(n)(prompts=["p"] * len(texts), completions=texts, problem=col, **kw) for n in NAMES}


# ------------------------------------------------------------------------------------------ gold and mutants

def _prontoqa(style):
    from oakdpo.tasks.prontoqa.generator import generate_problems

    p = next(p for p in generate_problems(20, hops=(3, 3), seed=5))
    return p, get_task("prontoqa").gold_trace(p, style)


def _folio(label="TRUE"):
    fol = ["∀x (Drinks(x) → Dependent(x))", "Drinks(rina)", "Student(max) ∧ Unaware(max)", "Jokes(tom) ∨ Drinks(tom)",
           "¬Jokes(tom)", "∀x (Dependent(x) → Tired(x))", "∃x (Student(x) ∧ Jokes(x))"]
    query = "Tired(tom)" if label == "TRUE" else "Tired(max)"
    p = Problem(id="f", task="folio", premises=[f"Sentence {i}." for i in range(len(fol))],
                query="True or false: someone is tired.", label=label, rule="FOL", source="test",
                fol={"premises": fol, "query": query})
    return p, get_task("folio").gold_trace(p, "natural")


def _proofwriter():
    """A ProofWriter problem with a gold trace of 2+ steps, when the task has a working verifier."""
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "proofwriter" / "train.json"
    task = get_task("proofwriter")
    if not path.is_file():
        pytest.skip("shared ProofWriter data absent")
    from oakdpo.tasks.base import Task

    if any(getattr(type(task), m) is getattr(Task, m) for m in ("load", "gold_trace", "verify")):
        pytest.skip("the proofwriter task has no loader, optionizer or verifier yet")
    for p in task.load(path, "proofwriter-logiclm")[:60]:
        gold = task.gold_trace(p, "natural")
        if gold and p.label != "UNKNOWN" and len(parse_trace(gold).steps) >= 3:
            return p, gold
    pytest.skip("no ProofWriter gold trace of 2+ steps")


CASES = {"prontoqa-natural": lambda: _prontoqa("natural"), "prontoqa-lookup": lambda: _prontoqa("lookup"),
         "folio": _folio, "proofwriter": _proofwriter}


def _with_args(text: str, step: int, args: list[int]) -> str:
    """The trace with step `step`'s Action citing `args` instead."""
    s = parse_trace(text).steps[step]
    line = text[s.span[0]:s.span[1]]
    new = re.sub(r'args="[^"]*"', f'args="[{", ".join(map(str, args))}]"', line)
    return text[:s.span[0]] + new + text[s.span[1]:]


def _flip_answer(text: str) -> str:
    ans = re.search(r"Final Answer: (TRUE|FALSE)", text).group(1)
    other = "FALSE" if ans == "TRUE" else "TRUE"
    code = {"TRUE": 0, "FALSE": 1}
    text = text.replace(f'type="CONCLUDE" args="[{code[ans]}]"', f'type="CONCLUDE" args="[{code[other]}]"')
    return text.replace(f"Final Answer: {ans}", f"Final Answer: {other}")


@pytest.mark.parametrize("case", list(CASES))
def test_gold_traces_score_one(case):
    problem, gold = CASES[case]()
    assert gold is not None
    assert _scores(problem, [gold]) == {n: [1.0] for n in NAMES}


@pytest.mark.parametrize("case", list(CASES))
def test_mutants_score_zero_and_step_fractions(case):
    problem, gold = CASES[case]()
    steps = [s for s in parse_trace(gold).steps if not s.is_conclude]
    n = len(steps)
    assert n >= 2
    # The last reasoning step cites what the first one cites: its claim no longer follows.
    last_broken = _with_args(gold, steps[-1].index, steps[0].args)
    # The first step cites the formula of the last one (a later formula): it and every step built on it fail.
    first_broken = _with_args(gold, steps[0].index, [len(problem.premises) + n - 1])
    got = _scores(problem, [_flip_answer(gold), last_broken, first_broken, "", "Final Answer: TRUE"])
    assert got["trace_validity"] == [0.0] * 5
    assert got["step_validity"] == [1.0, (n - 1) / n, 0.0, 0.0, 0.0]
    assert got["answer_correct"] == [0.0, 1.0, 1.0, 0.0, float(problem.label == "TRUE")]


def test_conclude_only_trace_scores_its_validity():
    """A FOLIO UNKNOWN is proved by a CONCLUDE alone: step validity follows the trace's validity."""
    problem, gold = _folio("UNKNOWN")
    assert len(parse_trace(gold).steps) == 1
    assert _scores(problem, [gold]) == {n: [1.0] for n in NAMES}
    wrong = gold.replace('args="[2]"', 'args="[0]"').replace("Final Answer: UNKNOWN", "Final Answer: TRUE")
    assert _scores(problem, [wrong]) == {n: [0.0] for n in NAMES}


# ------------------------------------------------------------------------------------------ interfaces

def test_conversational_completions_and_problem_forms():
    problem, gold = _prontoqa("natural")
    bad = _flip_answer(gold)
    conv = [[{"role": "assistant", "content": gold}], [{"role": "assistant", "content": [{"type": "text", "text": bad}]}]]
    for col in ([problem.to_dict()] * 2, [json.dumps(problem.to_dict())] * 2, [problem] * 2):
        assert rewards.trace_validity(prompts=[[{"role": "user", "content": "q"}]] * 2, completions=conv,
                                      problem=col) == [1.0, 0.0]
    # extra keyword arguments TRL passes (trainer_state, completion_ids, other columns) are ignored
    assert rewards.answer_correct(prompts=["q"], completions=[bad], problem=[problem], completion_ids=[[1]],
                                  trainer_state=None, task=["prontoqa"]) == [0.0]
    assert rewards.trace_validity(prompts=["q"], completions=[None], problem=[problem]) == [0.0]  # never raises
    odd = [{"role": "assistant", "content": [{"type": "text", "text": None}, {"type": "text", "text": gold}, 7]}]
    assert rewards.completion_text(odd) == gold


def test_get_reward_by_name():
    assert [rewards.get_reward(n).__name__ for n in NAMES] == list(NAMES)
    assert rewards.get_reward("step_validity") is rewards.step_validity
    with pytest.raises(ValueError, match="unknown reward 'validity'"):
        rewards.get_reward("validity")
    with pytest.raises(ValueError, match="no 'problem' column"):
        rewards.trace_validity(prompts=["q"], completions=["x"])


@pytest.mark.parametrize("case", ["prontoqa-natural", "folio", "proofwriter"])
def test_verl_compute_score_matches_trl(case):
    problem, gold = CASES[case]()
    steps = [s for s in parse_trace(gold).steps if not s.is_conclude]
    texts = [gold, _flip_answer(gold), _with_args(gold, steps[-1].index, steps[0].args), "garbage"]
    trl = _scores(problem, texts)
    row = export_records([problem], "verl", "natural", "chat")[0]
    # verl loads the file at custom_reward_function.path by itself, not as part of the package
    spec = importlib.util.spec_from_file_location("custom_module", rewards.__file__)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name in NAMES:
        got = [module.compute_score(row["data_source"], t, row["reward_model"]["ground_truth"], row["extra_info"],
                                    reward=name) for t in texts]
        assert got == trl[name]
        assert [getattr(module, f"compute_score_{name}")(row["data_source"], t, row["reward_model"]["ground_truth"])
                for t in texts] == trl[name]
        assert rewards.compute_score_batch([row["data_source"]] * 4, texts, [row["reward_model"]["ground_truth"]] * 4,
                                           [row["extra_info"]] * 4, reward=name) == trl[name]
    assert trl["step_validity"][2] == pytest.approx((len(steps) - 1) / len(steps))


def test_big_batch_in_the_pool_and_time_limit():
    problem, gold = _prontoqa("natural")
    texts = [gold, _flip_answer(gold)] * (POOL_MIN_TRACES // 2) + ["x"]
    texts = [t + " " * i for i, t in enumerate(texts)]  # distinct completions, none cached
    in_process = _scores(problem, texts, workers=1)
    rewards._cache.clear()
    assert _scores(problem, texts, workers=2) == in_process
    assert sum(in_process["trace_validity"]) == POOL_MIN_TRACES // 2
    rewards._cache.clear()
    old = rewards.TIMEOUT_S
    try:
        rewards.configure(timeout_s=1e-9)  # every verification runs out of time: scored 0
        assert _scores(problem, [gold])["trace_validity"] == [0.0]
    finally:
        rewards.configure(timeout_s=old)
        rewards._cache.clear()
    assert _scores(problem, [gold], timeout_s=30.0)["trace_validity"] == [1.0]


# ------------------------------------------------------------------------------------------ export

def test_export_trl_and_verl(tmp_path, capsys, tiny_model_dir):
    import datasets

    from oakdpo.tasks.prontoqa.generator import generate_problems
    from oakdpo.data import write_problems

    problems = generate_problems(5, hops=(1, 3), seed=3)
    write_problems(tmp_path / "p.jsonl", problems)
    assert main(["data", "export", "--for", "trl", "--problems", str(tmp_path / "p.jsonl"), "-o",
                 str(tmp_path / "trl.jsonl")]) == 0
    assert "exported 5 problems for trl (natural style, plain prompts)" in capsys.readouterr().out
    ds = datasets.load_dataset("json", data_files=str(tmp_path / "trl.jsonl"), split="train")
    assert ds.column_names == ["prompt", "problem", "problem_id", "task"]
    system, user = get_task("prontoqa").prompt(problems[0], "natural")
    assert ds[0]["prompt"] == f"{system}\n\n{user}"  # plain framing, as training frames it
    assert Problem.from_dict(json.loads(ds[0]["problem"])) == problems[0]

    assert main(["data", "export", "--for", "trl", "--problems", str(tmp_path / "p.jsonl"), "--prompt", "chat",
                 "--style", "lookup", "-o", str(tmp_path / "chat.jsonl")]) == 0
    chat = datasets.load_dataset("json", data_files=str(tmp_path / "chat.jsonl"), split="train")
    assert chat[0]["prompt"] == [{"role": "user", "content": get_task("prontoqa").prompt(problems[0], "lookup")[1]}]

    # a tokenizer without a chat template frames plain text, as training does
    assert main(["data", "export", "--for", "trl", "--problems", str(tmp_path / "p.jsonl"), "--tokenizer",
                 str(tiny_model_dir), "-o", str(tmp_path / "tok.jsonl")]) == 0
    assert "plain prompts" in capsys.readouterr().out

    assert main(["data", "export", "--for", "verl", "--problems", str(tmp_path / "p.jsonl"), "-o",
                 str(tmp_path / "v.parquet")]) == 0
    v = datasets.load_dataset("parquet", data_files=str(tmp_path / "v.parquet"), split="train")
    assert set(v.column_names) == {"data_source", "prompt", "ability", "reward_model", "extra_info"}
    assert v[1]["data_source"] == "oakdpo/prontoqa"
    system1, user1 = get_task("prontoqa").prompt(problems[1], "natural")
    assert v[1]["prompt"] == [{"role": "system", "content": system1}, {"role": "user", "content": user1}]
    assert v[1]["reward_model"]["style"] == "rule"
    assert v[1]["extra_info"] == {"split": "train", "index": 1, "problem_id": problems[1].id, "task": "prontoqa"}
    gold = get_task("prontoqa").gold_trace(problems[1], "natural")
    assert rewards.compute_score(v[1]["data_source"], gold, v[1]["reward_model"]["ground_truth"],
                                 v[1]["extra_info"]) == 1.0

    assert main(["data", "export", "--for", "verl", "--prompt", "plain", "--problems", str(tmp_path / "p.jsonl"),
                 "-o", str(tmp_path / "x.parquet")]) == 2
    assert "verl's prompt field is chat messages" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ TRL GRPO

def test_grpo_trains_two_steps_with_the_reward(tmp_path, tiny_model_dir, small_problems):
    """TRL's GRPOTrainer on the tiny model and an exported dataset, rewarded by trace validity; the completions it
    scored get the same scores from the verl-style function."""
    import datasets
    from transformers import AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from oakdpo.data import write_problems

    write_problems(tmp_path / "p.jsonl", small_problems[:4])
    assert main(["data", "export", "--for", "trl", "--problems", str(tmp_path / "p.jsonl"), "--style", "lookup",
                 "-o", str(tmp_path / "train.jsonl")]) == 0
    ds = datasets.load_dataset("json", data_files=str(tmp_path / "train.jsonl"), split="train")
    seen = []

    def record(prompts, completions, problem, **kwargs):  # weight 0: looks at what the reward saw
        seen.append((list(prompts), list(completions), list(problem)))
        return [0.0] * len(completions)

    args = GRPOConfig(output_dir=str(tmp_path / "grpo"), use_cpu=True, bf16=False, max_steps=2,
                      per_device_train_batch_size=2, num_generations=2, max_completion_length=16, logging_steps=1,
                      report_to="none", save_strategy="no", reward_weights=[1.0, 0.0], seed=0)
    trainer = GRPOTrainer(model=str(tiny_model_dir), reward_funcs=[rewards.trace_validity, record], args=args,
                          train_dataset=ds, processing_class=AutoTokenizer.from_pretrained(tiny_model_dir))
    trainer.train()
    assert trainer.state.global_step == 2
    logged = [h for h in trainer.state.log_history if "rewards/trace_validity/mean" in h]
    assert len(logged) == 2
    prompts_by_problem = dict(zip(ds["problem"], ds["prompt"]))
    for prompts, completions, problem in seen:
        assert [prompts_by_problem[p] for p in problem] == prompts  # each completion carried its own problem
        trl = rewards.trace_validity(prompts=prompts, completions=completions, problem=problem)
        assert [rewards.compute_score("oakdpo/prontoqa", c, p) for c, p in zip(completions, problem)] == trl
    assert [len(c) for _, c, _ in seen] == [2, 2]  # a step: one prompt, num_generations completions
