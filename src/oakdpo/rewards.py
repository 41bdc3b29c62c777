"""The strict verifier as a reward: TRL `reward_funcs` and a verl-style `compute_score`, for every task.

TRL (GRPOTrainer, RLOOTrainer, OnlineDPOTrainer ...) calls each reward function as
`fn(prompts=..., completions=..., **columns)`, where every dataset column other than `prompt` arrives as a
keyword list with one entry per completion. The problem travels as the `problem` column (PROBLEM_COLUMN): a
Problem record (oakdpo.trace) as a JSON string or a dict, as `oakdpo data export --for trl` writes it; the
record's `task` picks the verifier. Completions are strings, or conversational ([{"role": "assistant",
"content": ...}]): the assistant content is the trace.

    trace_validity   1.0 when the whole trace is valid (every step, the CONCLUDE, the answer), else 0.0
    step_validity    the fraction of valid reasoning steps; a trace with no reasoning step scores its
                     validity (a CONCLUDE-only trace is the right proof of, e.g., a FOLIO UNKNOWN)
    answer_correct   1.0 when the trace's answer equals the problem's label, else 0.0

`get_reward(name)` returns one by name. verl's custom reward function is
`compute_score(data_source, solution_str, ground_truth, extra_info=None)`: point
`custom_reward_function.path` at this file (`python -c "import oakdpo.rewards as r; print(r.__file__)"`; it
imports only absolute names, so verl can load it by path) with `.name=compute_score`. `oakdpo data export
--for verl` puts the problem record in `reward_model.ground_truth`; the reward is picked with `reward=...`
(`custom_reward_function.reward_kwargs`) or by name (`compute_score_step_validity`, ...), and
`compute_score_batch` serves verl's batch reward manager. Both faces give the same score for the same
completion.

Verification goes through oakdpo.verify: a batch of at least verify.POOL_MIN_TRACES completions runs in a
process pool of WORKERS processes, each trace within TIMEOUT_S seconds (a trace over budget scores 0). Set
them with `configure(...)` or per call with the `timeout_s=` / `workers=` keywords. The verdicts of the last
completions scored are kept (CACHE_SIZE), so several reward functions on one batch verify it once.
"""

from __future__ import annotations

import dataclasses
import json
from collections import OrderedDict
from typing import Any, Callable

from oakdpo.trace import Problem  # absolute: verl loads this file by path (custom_reward_function.path)

PROBLEM_COLUMN = "problem"  # the dataset column that carries the problem record
TIMEOUT_S: float | None = 10.0  # per-trace verification budget (config verify.trace_timeout_s's default)
WORKERS: int = 0  # verification processes for a big batch (0: every CPU this process may use; 1: in process)
CACHE_SIZE = 4096  # verdicts kept, by (problem, completion)

REWARD_NAMES = ("trace_validity", "step_validity", "answer_correct")

_cache: OrderedDict = OrderedDict()


def configure(*, timeout_s: float | None | str = "keep", workers: int | None = None,
              problem_column: str | None = None) -> None:
    """Set the module-wide defaults: per-trace time limit (None: unbounded), pool size, problem column."""
    global TIMEOUT_S, WORKERS, PROBLEM_COLUMN
    if timeout_s != "keep":
        TIMEOUT_S = timeout_s
    if workers is not None:
        WORKERS = workers
    if problem_column is not None:
        PROBLEM_COLUMN = problem_column


# ------------------------------------------------------------------------------------------ inputs

def to_problem(value: Any) -> Problem:
    """A Problem from a record given as a Problem, a dict, or a JSON string (UserError when it is none)."""
    if isinstance(value, Problem):
        return value
    if isinstance(value, (bytes, bytearray)):
        value = value.decode("utf-8")
    if isinstance(value, str):
        from oakdpo.io import UserError

        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise UserError(f"reward: column '{PROBLEM_COLUMN}' is not a JSON problem record ({e.msg})") from None
    return Problem.from_dict(value, where=f"reward: column '{PROBLEM_COLUMN}'")


def completion_text(completion: Any) -> str:
    """The trace in a completion: a string as is; a conversational completion's assistant content (text parts
    of a multi-part content joined). Anything else is an empty trace (which scores 0), never an error."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        completion = [completion]
    if isinstance(completion, (list, tuple)):
        parts = []
        for msg in completion:
            if not isinstance(msg, dict) or msg.get("role", "assistant") != "assistant":
                continue
            content = msg.get("content")
            if isinstance(content, str):
                parts.append(content)
            elif isinstance(content, list):
                parts.extend(p["text"] for p in content
                             if isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str))
        return "".join(parts)
    return ""


def _key(problem: Problem, text: str) -> tuple:
    return (json.dumps(problem.to_dict(), sort_keys=True, ensure_ascii=False), text)


def verdicts(problems: list, completions: list, *, timeout_s: float | None | str = "default",
             workers: int | None = None) -> list[dict]:
    """The strict verdict of each completion against its problem (records as to_problem reads them)."""
    if len(problems) != len(completions):
        raise ValueError(f"reward: {len(completions)} completions but {len(problems)} problems")
    timeout_s = TIMEOUT_S if timeout_s == "default" else timeout_s
    workers = WORKERS if workers is None else workers
    parsed: dict = {}  # a GRPO batch repeats each problem num_generations times: parse it once
    items = []
    for value, completion in zip(problems, completions):
        ref = value if isinstance(value, str) else id(value)
        problem = parsed.get(ref)
        if problem is None:
            problem = parsed[ref] = to_problem(value)
        items.append((problem, completion_text(completion)))
    keys = [_key(p, t) for p, t in items]
    todo = {}
    for k, (p, t) in zip(keys, items):
        if k not in _cache and k not in todo:
            todo[k] = (p, t)
    if todo:
        from oakdpo.verify import verify_traces

        # One problem record per distinct key: problems that share an id but differ stay apart.
        jobs = list(todo.items())
        probs = [dataclasses.replace(p, id=str(i)) for i, (_, (p, _t)) in enumerate(jobs)]
        traces = [{"problem_id": str(i), "sample": 0, "text": t} for i, (_, (_p, t)) in enumerate(jobs)]
        for (k, _), v in zip(jobs, verify_traces(probs, traces, progress=False, workers=workers,
                                                 timeout_s=timeout_s)):
            _cache[k] = v
    out = []
    for k in keys:
        _cache.move_to_end(k)
        out.append(_cache[k])
    while len(_cache) > max(CACHE_SIZE, len(set(keys))):
        _cache.popitem(last=False)
    return out


# ------------------------------------------------------------------------------------------ scores

def score(verdict: dict, name: str) -> float:
    """One verdict's score under reward `name` (REWARD_NAMES)."""
    if name == "trace_validity":
        return 1.0 if verdict.get("trace_valid") else 0.0
    if name == "step_validity":
        if not verdict.get("num_reasoning_steps"):
            return 1.0 if verdict.get("trace_valid") else 0.0
        return float(verdict.get("step_validity") or 0.0)
    if name == "answer_correct":
        return 1.0 if verdict.get("correct") else 0.0
    raise ValueError(f"unknown reward {name!r} (known: {', '.join(REWARD_NAMES)})")


def _reward_func(name: str) -> Callable[..., list[float]]:
    def reward(prompts=None, completions=None, **kwargs) -> list[float]:
        column = kwargs.get("problem_column", PROBLEM_COLUMN)
        if column not in kwargs:
            raise ValueError(f"reward {name}: no '{column}' column (export the dataset with "
                             f"`oakdpo data export --for trl`, or pass {column}=[...])")
        vs = verdicts(kwargs[column], list(completions or []), timeout_s=kwargs.get("timeout_s", "default"),
                      workers=kwargs.get("workers"))
        return [score(v, name) for v in vs]

    reward.__name__ = reward.__qualname__ = name  # TRL logs each reward under its function's name
    reward.__doc__ = (f"TRL reward function: the {name.replace('_', ' ')} of each completion under the strict "
                      f"verifier of its problem's task (see oakdpo.rewards).")
    return reward


trace_validity = _reward_func("trace_validity")
step_validity = _reward_func("step_validity")
answer_correct = _reward_func("answer_correct")
REWARDS = {"trace_validity": trace_validity, "step_validity": step_validity, "answer_correct": answer_correct}


def get_reward(name: str) -> Callable[..., list[float]]:
    """The TRL reward function called `name` (trace_validity, step_validity, answer_correct)."""
    if name not in REWARDS:
        raise ValueError(f"unknown reward {name!r} (known: {', '.join(REWARD_NAMES)})")
    return REWARDS[name]


# ------------------------------------------------------------------------------------------ verl

def _verl_problem(ground_truth: Any, extra_info: Any) -> Any:
    if isinstance(extra_info, dict) and extra_info.get(PROBLEM_COLUMN) is not None:
        return extra_info[PROBLEM_COLUMN]
    return ground_truth


def compute_score(data_source: str | None, solution_str: str, ground_truth: Any, extra_info: dict | None = None,
                  reward: str = "trace_validity", **kwargs) -> float:
    """verl's custom reward function: the score of one response. `ground_truth` (reward_model.ground_truth) or
    extra_info["problem"] holds the problem record; `reward` names the score (REWARD_NAMES)."""
    v = verdicts([_verl_problem(ground_truth, extra_info)], [solution_str],
                 timeout_s=kwargs.get("timeout_s", "default"), workers=1)[0]
    return score(v, reward)


def compute_score_batch(data_sources: list, solution_strs: list, ground_truths: list, extra_infos: list | None = None,
                        reward: str = "trace_validity", **kwargs) -> list[float]:
    """verl's batch reward manager's form (reward_model.reward_manager=batch): one score per response, the batch
    verified in the process pool."""
    extra_infos = extra_infos if extra_infos is not None else [None] * len(solution_strs)
    problems = [_verl_problem(g, e) for g, e in zip(ground_truths, extra_infos)]
    vs = verdicts(problems, list(solution_strs), timeout_s=kwargs.get("timeout_s", "default"),
                  workers=kwargs.get("workers"))
    return [score(v, reward) for v in vs]


def compute_score_trace_validity(data_source, solution_str, ground_truth, extra_info=None, **kwargs) -> float:
    return compute_score(data_source, solution_str, ground_truth, extra_info, reward="trace_validity", **kwargs)


def compute_score_step_validity(data_source, solution_str, ground_truth, extra_info=None, **kwargs) -> float:
    return compute_score(data_source, solution_str, ground_truth, extra_info, reward="step_validity", **kwargs)


def compute_score_answer_correct(data_source, solution_str, ground_truth, extra_info=None, **kwargs) -> float:
    return compute_score(data_source, solution_str, ground_truth, extra_info, reward="answer_correct", **kwargs)
