"""Verification as a stage: every trace checked by its problem's task, in a process pool, within a time budget.

`verify_traces` gives one verdict per trace record {problem_id, sample, text}, in input order. Each trace is
verified by `get_task(problem.task).verify(problem, text, budget)` with a Budget of `verify.trace_timeout_s`
seconds that counts parsing and formula building as well as solver calls; a trace over budget gets the verdict
`timeout` (invalid), and the run goes on. A hard timer (SIGALRM at 1.5x the budget) backs the budget up for
any path that does not check it. With `verify.workers` > 1 the traces go to a pool of worker processes (fork,
as torch's own DataLoader workers: the children run no torch code); small batches stay in process.

`oakdpo verify` and `oakdpo solve` are the command-line faces of this module.
"""

from __future__ import annotations

import json
import os
import signal
import time
from contextlib import contextmanager
from pathlib import Path

from .io import UserError, read_jsonl, write_jsonl
from .tasks import get_task
from .trace import Budget, Problem, VerifyTimeout, timeout_verdict

SUMMARY_KEYS = ("traces", "reasoning_steps", "step_validity", "trace_validity", "accuracy")
POOL_MIN_TRACES = 64  # below this a pool costs more to start than it saves


def default_workers() -> int:
    """verify.workers = 0: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class _HardTimeout(Exception):
    pass


@contextmanager
def _alarm(seconds: float | None):
    """SIGALRM after `seconds` raises _HardTimeout (main thread of a POSIX process only; else a no-op)."""
    usable = seconds and hasattr(signal, "setitimer") and _in_main_thread()
    if not usable:
        yield
        return

    def on_alarm(signum, frame):
        raise _HardTimeout()

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def verify_one(problem: Problem, text: str, timeout_s: float | None = None) -> dict:
    """The verdict of one completion under a budget of `timeout_s` seconds (None: unbounded). Never raises on
    any text; a budget overrun is the verdict `timeout`."""
    task = get_task(problem.task)
    budget = Budget(timeout_s)
    try:
        with _alarm(timeout_s * 1.5 if timeout_s else None):
            return task.verify(problem, text if isinstance(text, str) else "", budget)
    except (VerifyTimeout, _HardTimeout):
        return timeout_verdict(f"over the {timeout_s:g} s verification budget")
    except RecursionError:
        return timeout_verdict("formula too deep")


_POOL_PROBLEMS: list[Problem] = []  # a worker's copy of the call's problems (set once per worker)


def _pool_init(problems: list[Problem]) -> None:
    global _POOL_PROBLEMS
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops the pool
    _POOL_PROBLEMS = problems


def _timed(problem: Problem, text: str, timeout_s: float | None) -> tuple[dict, float]:
    t0 = time.perf_counter()
    v = verify_one(problem, text, timeout_s)
    return v, time.perf_counter() - t0


def _verify_chunk(chunk: list[tuple[int, int, str, float | None]]) -> list[tuple[int, dict, float]]:
    """(position, verdict, seconds) for jobs (position, problem index, text, timeout_s) in a worker."""
    return [(pos, *_timed(_POOL_PROBLEMS[k], text, t)) for pos, k, text, t in chunk]


def verify_traces(problems: list[Problem], traces: list[dict], progress: bool = True, *, workers: int = 1,
                  timeout_s: float | None = None, task: str | None = None, timing: bool = False) -> list[dict]:
    """Verdicts for trace records {problem_id, sample, text}, in order: {problem_id, sample, **verdict}.

    `task` (None: each problem's own) verifies every problem as that task. An unknown problem_id raises
    UserError naming it. workers <= 0 means default_workers(). `timing` adds each trace's wall time of
    verification as `verify_s`. With a pool (workers > 1 and at least POOL_MIN_TRACES traces), the pool starts
    once per call, each worker gets the problems once, and the traces go in chunks grouped by problem (a
    worker keeps per-problem data such as parsed premises between the traces of a problem)."""
    from tqdm.auto import tqdm

    index = {p.id: i for i, p in enumerate(problems)}
    if task is not None:
        import dataclasses

        problems = [p if p.task == task else dataclasses.replace(p, task=task) for p in problems]
    jobs = []
    for i, rec in enumerate(traces):
        k = index.get(rec.get("problem_id"))
        if k is None:
            raise UserError(f"trace {i}: unknown problem_id {rec.get('problem_id')!r}")
        text = rec.get("text", "")
        jobs.append((i, k, text if isinstance(text, str) else "", timeout_s))
    workers = default_workers() if workers <= 0 else workers
    show = progress and int(os.environ.get("RANK", "0")) == 0
    bar = tqdm(total=len(jobs), desc="verify", disable=not show)
    results: list[tuple[dict, float] | None] = [None] * len(jobs)
    if workers == 1 or len(jobs) < POOL_MIN_TRACES:
        for pos, k, text, t in jobs:
            results[pos] = _timed(problems[k], text, t)
            bar.update()
    else:
        import multiprocessing as mp

        ordered = sorted(jobs, key=lambda j: j[1])  # stable: a problem's traces together, in input order
        size = max(1, min(64, len(ordered) // (32 * workers)))  # small chunks: the last ones balance the load
        chunks = [ordered[i:i + size] for i in range(0, len(ordered), size)]
        ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
        with ctx.Pool(workers, initializer=_pool_init, initargs=(problems,)) as pool:
            for done in pool.imap_unordered(_verify_chunk, chunks):
                for pos, v, secs in done:
                    results[pos] = (v, secs)
                bar.update(len(done))
    bar.close()
    out = []
    for rec, (v, secs) in zip(traces, results):
        row = {"problem_id": rec.get("problem_id"), "sample": rec.get("sample", 0), **v}
        if timing:
            row["verify_s"] = round(secs, 6)
        out.append(row)
    return out


def summarize(verdicts: list[dict]) -> dict:
    """Aggregate figures: step validity is over all reasoning steps (micro average); the rest per trace."""
    n = len(verdicts)
    steps = sum(v["num_reasoning_steps"] for v in verdicts)
    valid = sum(1 for v in verdicts for s in v["steps"] if s["option"] != "CONCLUDE" and s["valid"])
    return {
        "traces": n,
        "reasoning_steps": steps,
        "step_validity": valid / steps if steps else 0.0,
        "trace_validity": sum(bool(v["trace_valid"]) for v in verdicts) / n if n else 0.0,
        "accuracy": sum(bool(v["correct"]) for v in verdicts) / n if n else 0.0,
        "conclude_support": sum(bool(v.get("conclude_supported")) for v in verdicts) / n if n else 0.0,
        "timeouts": sum(bool(v.get("timeout")) for v in verdicts),
    }


# ----------------------------------------------------------------------------------------------- CLI

def _line_numbers(path: Path) -> list[int]:
    """Line numbers of the non-blank lines (read_jsonl skips blank ones), to name file:line in errors."""
    with open(path, encoding="utf-8", errors="replace") as f:
        return [i for i, line in enumerate(f, 1) if line.strip()]


def load_traces(path: str | Path, problem_ids: set[str]) -> list[dict]:
    """traces.jsonl -> records {problem_id, sample, text}; errors name file:line and the field."""
    path = Path(path)
    recs = read_jsonl(path, required=("problem_id", "text"))
    lines = _line_numbers(path)
    out = []
    for rec, line in zip(recs, lines):
        if not isinstance(rec["text"], str):
            raise UserError(f"{path}:{line}: field 'text' must be a string")
        sample = rec.get("sample", 0)
        if not isinstance(sample, int) or isinstance(sample, bool):
            raise UserError(f"{path}:{line}: field 'sample' must be an integer")
        if not isinstance(rec["problem_id"], str) or rec["problem_id"] not in problem_ids:
            raise UserError(f"{path}:{line}: field 'problem_id': unknown problem {rec['problem_id']!r}")
        out.append({"problem_id": rec["problem_id"], "sample": sample, "text": rec["text"]})
    return out


def run_verify(args) -> int:
    from .config import load_config

    cfg = load_config(args.config, args.set)
    fmt = args.format or "oakdpo"
    if fmt not in ("oakdpo", "sokrates"):
        raise UserError(f"--format: unknown format {fmt!r} (known: oakdpo, sokrates)")
    progress = not args.no_progress
    if fmt == "sokrates":
        if not args.input:
            raise UserError("verify --format sokrates: give the input file (INPUT.jsonl)")
        from .tasks.prontoqa.verify import verify_sokrates_record  # the original system's PrOntoQA samples

        path = Path(args.input)
        recs = read_jsonl(path)
        lines = _line_numbers(path)
        verdicts = [verify_sokrates_record(rec, where=f"{path}:{line}") for rec, line in zip(recs, lines)]
    else:
        if not args.problems or not args.traces:
            raise UserError("verify: --problems and --traces are required (or --format sokrates INPUT.jsonl)")
        from .data import read_problem_file

        task = None if args.dataset in (None, "auto") else args.dataset
        if task is not None:
            get_task(task)  # an unknown name fails here, in one line
        problems = read_problem_file(args.problems, task)
        traces = load_traces(args.traces, {p.id for p in problems})
        verdicts = verify_traces(problems, traces, progress=progress, workers=cfg.verify.workers,
                                 timeout_s=cfg.verify.trace_timeout_s, task=task)
    write_jsonl(args.output, verdicts)
    summary = summarize(verdicts)
    print(json.dumps({k: summary[k] for k in SUMMARY_KEYS}))
    return 0


def run_solve(args) -> int:
    """`oakdpo solve`: each problem's label from its task's own solver, compared with the record's label."""
    import statistics

    from .data import read_problem_file

    problems = read_problem_file(args.problems, args.dataset)
    records = []
    for p in problems:
        rec = get_task(p.task).solve_record(p)
        records.append({"problem_id": p.id, "predicted": rec.get("predicted"), "label": p.label,
                        **{k: v for k, v in rec.items() if k != "predicted"}})
    write_jsonl(args.output, records)
    scored = [r for r in records if r.get("status") != "no_query"]
    statuses: dict[str, int] = {}
    for r in records:
        statuses[r.get("status", "ok")] = statuses.get(r.get("status", "ok"), 0) + 1
    times = [r["ms"] for r in scored if isinstance(r.get("ms"), (int, float))]
    summary = {"problems": len(records), "scored": len(scored),
               "agreement": sum(r["predicted"] == r["label"] for r in scored) / len(scored) if scored else 0.0,
               **{s: statuses.get(s, 0) for s in ("inconsistent", "timeout", "unparsed", "no_query", "incomplete",
                                                  "undecided")},
               "median_ms": round(statistics.median(times), 2) if times else 0.0}
    print(json.dumps(summary))
    return 0


def add_cli(sub) -> None:
    p = sub.add_parser("verify", help="Verify traces step by step with each problem's task verifier.",
                       description="Verify traces: oakdpo verify --problems P.jsonl --traces T.jsonl -o V.jsonl, "
                                   "or oakdpo verify --format sokrates INPUT.jsonl -o V.jsonl. The last stdout "
                                   "line is a JSON summary.")
    p.add_argument("input", nargs="?", help="Input JSONL for --format sokrates.")
    p.add_argument("--problems", help="problems.jsonl (or a task's own file, with --dataset).")
    p.add_argument("--traces", help="traces.jsonl: {problem_id, sample, text} per line.")
    p.add_argument("-o", "--output", required=True, help="verdicts.jsonl to write (atomically).")
    p.add_argument("--format", default="oakdpo", help="oakdpo (default) or sokrates.")
    p.add_argument("--dataset", default=None, help="Verify every problem as this task (default: each problem's "
                   "own task).")
    p.add_argument("--config", default=None, help="YAML config (verify section: workers, trace_timeout_s).")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="Config override.")
    p.add_argument("--no-progress", action="store_true", help="No progress bar.")
    p.set_defaults(func=run_verify)

    s = sub.add_parser("solve", help="Label problems with their task's own solver (FOLIO: Z3) and compare with "
                                     "the records' labels.")
    s.add_argument("--problems", required=True, help="problems.jsonl (e.g. from oakdpo data import)")
    s.add_argument("--dataset", default=None, help="Task that reads a file in its own format.")
    s.add_argument("-o", "--output", required=True, help="labels.jsonl: {problem_id, predicted, label, status, ...}")
    s.set_defaults(func=run_solve)
